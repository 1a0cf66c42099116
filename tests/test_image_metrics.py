"""Image metrics on real small data: the digits classifier, domain metrics, Stacked MNIST modes, rows.

Everything runs on scikit-learn's bundled digits (no download). The classifier cache lives in a
temporary folder for the module, so the first test trains the classifier with the real recipe
(about 10 s on 2 cores) and the rest read it back.
"""

import json
import math

import numpy as np
import pytest
import torch

from ganbench.cli import main
from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.data.images import DOMAIN_METRICS, IMAGE_METRICS, STACKED_METRICS
from ganbench.data.mnist import StackedMNIST
from ganbench.errors import UserError
from ganbench.evaluate import protocol
from ganbench.features import classifier as classifier_mod
from ganbench.features import domain, inception
from ganbench.metrics import METRICS
from ganbench.metrics.image import (
    class_kl,
    classes_covered,
    fid_intra,
    stacked_kl,
    stacked_modes,
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("ganbench-cache")
    mp.setenv("GANBENCH_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def digits(cache_dir):
    return DATASETS["digits"](RunConfig(dataset="digits"))


@pytest.fixture(scope="module")
def real_vs_real(digits):
    """Domain features of the real train split, as if generated, against the test split."""
    train, _ = digits.real_images("train")
    return domain.domain_features(train, digits)


def test_digits_classifier_is_accurate_cached_and_recorded(digits, cache_dir, monkeypatch):
    clf = domain.classifier_for(digits)
    assert clf.test_accuracy >= 0.95  # the real recipe, on the 355 test digits
    files = list((cache_dir / "classifiers").glob("*.pt"))
    assert [f.name for f in files] == [f"{clf.key}.pt"]
    assert json.loads(files[0].with_suffix(".json").read_text())["dataset"] == "digits"

    def no_training(*args):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(classifier_mod, "_train", no_training)
    again = classifier_mod.get_classifier("digits", digits.real_images("train"), digits.real_images("test"), 10)
    assert again.key == clf.key and again.test_accuracy == clf.test_accuracy
    x, _ = digits.real_images("test", n=8)
    assert torch.equal(again(x)[0], clf(x)[0])
    p = protocol(METRICS["fid_domain"], 0, digits)
    assert p["classifier"] == clf.key and p["classifier_test_accuracy"] == clf.test_accuracy
    assert p["num_real"] == 355 and p["num_fake"] == 10_000 and p["extractor"] == "domain"


def test_classifier_training_is_reproducible_and_keyed_by_content(tmp_path, monkeypatch):
    monkeypatch.setitem(classifier_mod.RECIPE, "min_samples", 256)
    monkeypatch.setitem(classifier_mod.RECIPE, "min_epochs", 1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(128, 1, 28, 28, generator=g) * 2 - 1, torch.arange(128) % 4
    nets = []
    for i in range(2):
        monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / str(i)))
        nets.append(classifier_mod.get_classifier("toy", (x, y), (x[:16], y[:16]), 4))
    assert nets[0].key == nets[1].key
    for a, b in zip(nets[0].net.state_dict().values(), nets[1].net.state_dict().values()):
        assert torch.equal(a, b)  # same seed, same data: bit-identical weights
    x2 = x.clone()
    x2[0, 0, 0, 0] = 1.0
    monkeypatch.setitem(classifier_mod.RECIPE, "min_samples", 128)
    other = classifier_mod.get_classifier("toy", (x2, y), (x[:16], y[:16]), 4)
    assert other.key != nets[0].key


def test_domain_metrics_real_vs_real_are_near_perfect(digits, real_vs_real):
    f = real_vs_real
    assert f.fake.shape == (1442, 128) and f.real.shape == (355, 128) and f.fake_probs.shape == (1442, 10)
    m = {name: METRICS[name].fn(f) for name in DOMAIN_METRICS}
    assert [name for name, v in m.items() if not METRICS[name].within(v)] == []
    assert m["classes"] == 10
    assert m["class_kl"] < 0.005  # predicted train labels against true test labels: the same mix
    assert m["cs"] > 8.5  # near 10 = the number of equally frequent classes, for a confident classifier
    assert m["precision"] > 0.85 and m["recall"] > 0.85 and m["coverage"] > 0.9
    assert 0.8 < m["density"] < 1.3
    noise = torch.rand(1442, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    worse = METRICS["fid_domain"].fn(domain.domain_features(noise, digits))
    assert m["fid_domain"] < 0.02 * worse  # the same distribution is far closer than noise


def test_the_extractor_record_names_its_reference_cache_entry(digits, real_vs_real, cache_dir):
    """``cache_key(dataset)`` of the domain extractor is the document its reference features are
    stored under; its provenance is what every row records."""
    from ganbench.features import FEATURES
    from ganbench.features.cache import key_of

    record = FEATURES["domain"]
    doc = record.cache_key(digits)
    entry = cache_dir / "reference" / f"{key_of(doc)}.npz"
    assert entry.is_file() and json.loads(entry.with_suffix(".json").read_text()) == json.loads(json.dumps(doc))
    assert np.array_equal(np.load(entry)["features"], real_vs_real.real)
    p = record.provenance(digits)
    assert p["extractor"] == "domain" and p["classifier"] == doc["classifier"] and p["num_real"] == len(real_vs_real.real)
    assert "classifier_train_split" not in p  # trained on the train split: nothing extra, ids unchanged


def test_class_kl_and_coverage_closed_forms():
    def features(pred, real_labels, k=4):
        probs = np.eye(k)[pred]
        return domain.DomainFeatures(np.zeros((len(pred), 2)), probs, np.zeros((len(real_labels), 2)),
                                     np.asarray(real_labels), k, {})

    real = [0, 1, 2, 3] * 5
    assert class_kl(features([0, 1, 2, 3] * 3, real)) == pytest.approx(0.0, abs=1e-15)
    assert class_kl(features([2] * 7, real)) == pytest.approx(math.log(4))  # collapsed on one class
    assert class_kl(features([0, 0, 1, 1], real)) == pytest.approx(math.log(2))  # half the classes
    assert classes_covered(features([2] * 7, real)) == 1 and classes_covered(features([0, 3, 3], real)) == 2
    assert class_kl(features([0, 1], [1, 1, 1])) == math.inf  # a class absent from the reference


def test_fid_intra_uses_the_balanced_labels(digits, real_vs_real):
    train, labels = digits.real_images("train")
    per_class = [train[labels == c] for c in range(10)]
    n = min(len(p) for p in per_class)
    ordered = torch.stack([p[:n] for p in per_class], dim=1).flatten(0, 1)  # sample i has label i % 10
    shuffled = ordered[torch.randperm(len(ordered), generator=torch.Generator().manual_seed(0))]
    with pytest.warns(UserWarning, match="rank-deficient"):  # ~36 test digits per class, 128-d features
        right = fid_intra(domain.domain_features(ordered, digits))
        wrong = fid_intra(domain.domain_features(shuffled, digits))
    assert right < 0.2 * wrong


def stacked_from_digits(digits) -> StackedMNIST:
    """Stacked MNIST built on the digits data (MNIST itself needs a download). The same training
    images give the same classifier: the cached digits classifier reads the channels."""
    splits = {"train": (digits.images, digits.labels), "test": digits.real_images("test")}
    return StackedMNIST(digits.images, digits.labels, "train", lambda s: splits[s])


def test_stacked_modes_true_data_and_collapsed(digits):
    ds = stacked_from_digits(digits)
    assert ds.default_metrics == STACKED_METRICS
    # 5,000 stacks of test digits (the protocol's 26,000 take 5x longer): each mode is drawn with
    # probability 1 - exp(-5) = 0.993, so ~993 modes; KL from sampling noise ~(K - 1) / (2 N) = 0.1
    real, real_labels = ds.real_images(n=5000)
    s = domain.stacked_labels(real, ds)
    assert (s.triples == real_labels.numpy()).mean() > 0.95  # ~0.99^3 of the triples read right
    assert stacked_modes(s) >= 980
    assert stacked_kl(s) < 0.15
    collapsed = domain.stacked_labels(real[:1].expand(500, -1, -1, -1), ds)
    assert stacked_modes(collapsed) == 1 and stacked_kl(collapsed) == pytest.approx(math.log(1000))
    for name, value in [("sm_modes", 1000), ("sm_kl", math.log(1000)), ("sm_kl", 0.0)]:  # the ends of the ranges
        assert METRICS[name].within(value)
    assert not METRICS["sm_modes"].within(1001) and not METRICS["sm_kl"].within(math.log(1000) + 1e-6)
    with pytest.raises(UserError, match="3-channel"):
        domain.stacked_labels(real[:, :1], ds)


def test_defaults_and_registry():
    assert DATASETS["digits"]().default_metrics == DOMAIN_METRICS
    assert IMAGE_METRICS == ("fid", "is", "is_std", "kid", "kid_std")
    for name in DOMAIN_METRICS + STACKED_METRICS + IMAGE_METRICS + ("fid_intra",):
        assert name in METRICS
    assert METRICS["modes"].features == "mode2d" and METRICS["sm_modes"].features == "stacked"
    assert METRICS["sm_modes"].num_fake == 26_000 and METRICS["fid"].num_fake == 10_000
    assert not METRICS["fid"].higher_is_better and METRICS["is"].higher_is_better


def test_inception_extractor_on_a_dataset(digits, inception_weights, monkeypatch):
    monkeypatch.setenv(inception.ENV_ALLOW_OTHER, "1")
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(inception_weights))
    monkeypatch.setattr(inception, "NUM_REAL", 12)
    fake, _ = digits.real_images("train", n=12)
    f = inception.inception_features(fake, digits)
    assert f.fake.shape == (12, 2048) and f.real.shape == (12, 2048) and f.fake_logits.shape == (12, 1008)
    with pytest.warns(UserWarning, match="rank-deficient"):
        assert METRICS["fid"].fn(f) > 0
    inception._provenance.cache_clear()
    p = protocol(METRICS["fid"], 0, digits)
    assert p["weights_sha256"] == inception.file_sha256(inception_weights) and p["num_real"] == 12
    assert p["extractor"] == "inception-v3-compat"
    with pytest.raises(UserError, match="image sizes differ"):
        inception.inception_features(torch.zeros(2, 1, 32, 32), digits)


def test_run_digits_end_to_end_rows(cache_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--model", "dcgan", "--dataset", "digits", "--set", "steps=2", "--set", "width=8",
                 "--set", "batch_size=16", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["metric"] for r in rows] == list(DOMAIN_METRICS)
    clf = domain.classifier_for(DATASETS["digits"](RunConfig(dataset="digits")))
    for r in rows:
        assert r["status"] == "ok" and r["final"] and math.isfinite(r["value"])
        assert r["higher_is_better"] == METRICS[r["metric"]].higher_is_better
        p = r["protocol"]
        assert p["classifier"] == clf.key and p["classifier_test_accuracy"] >= 0.95
        assert p["num_fake"] == 10_000 and p["eval_seed"] == 0
        assert p["num_real"] == (0 if METRICS[r["metric"]].num_real == 0 else 355)  # the actual reference size
        assert p["extractor"] == "domain" and p["metric_version"] == 1
    values = {r["metric"]: r["value"] for r in rows}
    assert 1 <= values["classes"] <= 10 and values["fid_domain"] > 0 and 1 <= values["cs"] <= 10
    assert "fid_domain" in capsys.readouterr().out
