import pytest

from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.losses import LOSSES
from ganbench.metrics import METRICS
from ganbench.models import MODELS
from ganbench.registry import Registry


def test_register_and_lookup():
    reg = Registry("widget")

    @reg.register("alpha")
    def alpha():
        return 1

    reg.register("beta", 2)
    assert reg["alpha"] is alpha and reg["beta"] == 2
    assert sorted(reg) == ["alpha", "beta"]


def test_duplicates_fail_loudly():
    reg = Registry("widget")
    reg.register("alpha", 1)
    with pytest.raises(ValueError, match="widget 'alpha' is already registered"):
        reg.register("alpha", 2)
    with pytest.raises(TypeError):
        reg["gamma"] = 3


def test_unknown_names_suggest_close_matches():
    with pytest.raises(UserError, match=r"unknown model 'mpl'; did you mean 'mlp'.*\(known: .*mlp"):
        MODELS["mpl"]
    with pytest.raises(UserError, match="unknown loss 'hinje'; did you mean 'hinge'"):
        LOSSES["hinje"]
    with pytest.raises(UserError, match="unknown dataset 'ring9'; did you mean 'ring8'"):
        DATASETS["ring9"]
    with pytest.raises(UserError, match=r"unknown metric 'zzz' \(known:"):
        METRICS["zzz"]


def test_builtin_entries():
    assert {"ns", "minimax", "lsgan", "wgan-gp", "hinge"} <= set(LOSSES)
    assert {"ring8", "grid25"} <= set(DATASETS)
    assert {"modes", "hq", "kl"} <= set(METRICS)
    assert "mlp" in MODELS
    assert METRICS["modes"].higher_is_better and not METRICS["kl"].higher_is_better


def test_registries_take_only_their_records():
    """A metric, extractor, step, format or test is a record with keyword fields; a bare function
    (the old way to add a feature extractor) is refused when it is registered, not when it is used."""
    from ganbench.features import FEATURES
    from ganbench.results.formats import FORMATS
    from ganbench.results.significance import TESTS
    from ganbench.steps import STEPS

    for registry, record in [(FEATURES, "FeatureExtractor"), (METRICS, "Metric"), (STEPS, "Step"),
                             (FORMATS, "TableFormat"), (TESTS, "SignificanceTest"), (LOSSES, "Loss")]:
        with pytest.raises(TypeError, match=f"register a {record} record, not function"):
            registry.register("plain-function", lambda *a: 0)
        assert "plain-function" not in registry


def test_metric_records_hold_their_range():
    import math

    from ganbench.metrics import Metric

    assert METRICS["hq"].range == (0, 1) and METRICS["modes"].range == (0, math.inf)
    assert METRICS["kid"].range == (-math.inf, math.inf)  # the unbiased estimate can fall below 0
    assert METRICS["is"].range[0] == 1 and METRICS["cs"].range[0] == 1
    assert METRICS["hq"].within(1.0) and METRICS["hq"].within(0.0) and not METRICS["hq"].within(1.01)
    assert not METRICS["fid"].within(-0.5) and METRICS["fid"].within(float("nan"))
    with pytest.raises(ValueError, match="low < high"):
        Metric(name="bad", fn=len, features="mode2d", higher_is_better=True, num_fake=1, num_real=0,
               description="", range=(1, 0))
    with pytest.raises(TypeError):  # keyword fields only
        Metric("bad", len, "mode2d", True, 1, 0, "")


def test_every_metric_names_a_registered_extractor_and_every_extractor_its_inputs():
    from ganbench.features import FEATURES

    assert sorted({m.features for m in METRICS.values()}) == sorted(FEATURES)
    assert {name: f.inputs for name, f in FEATURES.items()} == {
        "mode2d": "points", "points": "points", "inception": "images", "dinov2": "images", "clip": "images",
        "clip_cmmd": "images", "domain": "images", "stacked": "images",
        "translation": "translations", "translation-domain": "translations", "labelled": "images"}
    assert [name for name, f in FEATURES.items() if f.labelled] == ["labelled"]


def test_step_names_follow_the_options():
    from ganbench.config import RunConfig
    from ganbench.steps import STEPS, step_name

    assert {"alternating", "simultaneous", "unrolled"} <= set(STEPS)
    assert step_name(RunConfig()) == "alternating"
    assert step_name(RunConfig(update="simultaneous")) == "simultaneous"
    assert step_name(RunConfig(unroll_steps=5, loss="minimax")) == "unrolled"
    assert step_name(RunConfig(step="unrolled", unroll_steps=5)) == "unrolled"
    assert step_name(RunConfig(model="cyclegan", loss="lsgan")) == "cycle"  # a translator's own step
    # the new field at its default leaves every run id as it was
    assert "step" not in RunConfig().identity() and "step" in RunConfig(step="alternating").identity()
    for name in ("lr_decay", "cycle_weight", "identity_weight", "pool_size"):
        assert name not in RunConfig().identity()


def test_a_plugin_extractor_and_metric_are_computed_recorded_and_checked():
    """A feature extractor and a metric on it, registered as a plug-in would: computed once per
    evaluation, its provenance in the protocol, and refused before training on data it cannot read."""
    import torch

    from ganbench.config import RunConfig
    from ganbench.evaluate import compute_metrics, preflight, protocol
    from ganbench.features import FEATURES, FeatureExtractor
    from ganbench.metrics import Metric

    calls = []

    def radius(samples, dataset):
        calls.append(len(samples))
        return samples.norm(dim=1).numpy()

    FEATURES.register("radius-test", FeatureExtractor(
        name="radius-test", extract=radius, inputs="points", description="distance to the origin",
        provenance=lambda dataset: {"extractor": "radius-test", "centre": [0, 0]}))
    for name, fn in [("mean_radius", lambda r: float(r.mean())), ("max_radius", lambda r: float(r.max()))]:
        METRICS.register(name, Metric(name=name, fn=fn, features="radius-test", higher_is_better=False,
                                      num_fake=100, num_real=0, range=(0, float("inf")), description=name))
    try:
        ring = DATASETS["ring8"](RunConfig(dataset="ring8"))
        points = torch.tensor([[3.0, 4.0]] * 60 + [[0.0, 1.0]] * 40)
        metrics = [METRICS["mean_radius"], METRICS["max_radius"]]
        values = compute_metrics(points, ring, metrics)
        assert values == {"mean_radius": pytest.approx(0.6 * 5 + 0.4 * 1), "max_radius": 5.0}
        assert calls == [100]  # one extraction shared by both metrics
        p = protocol(metrics[0], 7, ring)
        assert p["centre"] == [0, 0] and p["features"] == "radius-test" and "num_real" in p
        preflight(metrics, ring)
        digits = DATASETS["digits"](RunConfig(dataset="digits"))
        with pytest.raises(UserError, match="metric 'mean_radius' reads points .* dataset 'digits' has images"):
            preflight(metrics, digits)
    finally:
        for name in ("mean_radius", "max_radius"):
            dict.pop(METRICS, name)
        dict.pop(FEATURES, "radius-test")
