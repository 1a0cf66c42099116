import math

import pytest

from ganbench.config import (
    RunConfig,
    config_diff,
    digest,
    load_suite,
    parse_overrides,
    suite_from_dict,
)
from ganbench.errors import UserError
from ganbench.results.store import load_rows


def test_defaults_are_valid_and_hash_is_stable():
    a, b = RunConfig(), RunConfig()
    assert a.run_id == b.run_id and len(a.run_id) == 12
    assert a.replace(seed=1).run_id != a.run_id
    assert a.replace(seed=1).group_id == a.group_id
    assert a.replace(lr_g=2e-3).group_id != a.group_id


def test_run_id_is_a_pure_function_of_the_values():
    # betas given as a list (as TOML gives it) or a tuple hash the same
    assert RunConfig(betas=[0.5, 0.9]).run_id == RunConfig(betas=(0.5, 0.9)).run_id
    assert RunConfig(lr_g=1).run_id == RunConfig(lr_g=1.0).run_id
    assert RunConfig(lr_g=1).lr_g == 1.0 and isinstance(RunConfig(lr_g=1).lr_g, float)


def test_a_field_added_later_keeps_the_ids_recorded_before_it():
    # ids recorded before `precision` existed: a field at its default stays out of the hash
    assert RunConfig().run_id == "6a0841b02488"
    assert RunConfig(model="dcgan", seed=3).group_id == "68530e6d6a58"
    bf16 = RunConfig(precision="bf16")
    assert bf16.run_id != RunConfig().run_id and bf16.group_id != RunConfig().group_id
    before = {k: v for k, v in RunConfig().to_dict().items() if k != "precision"}  # a config.json of then
    assert config_diff(before, RunConfig().to_dict()) == []
    assert config_diff(before, bf16.to_dict()) == ["precision: 'fp32' -> 'bf16'"]
    # the fields added with the Stacked MNIST protocol: out of the hash at their defaults, in it otherwise
    base = RunConfig(g_batch_norm=True)
    changed = (("eval_samples", 25600), ("eval_bn_batch", 128), ("update", "alternating-same-latents"))
    assert all(base.replace(**{k: v}).run_id != base.run_id for k, v in changed)
    assert not {"eval_samples", "eval_bn_batch", "update"} & set(base.identity())


def test_a_changed_builtin_model_gets_new_ids():
    """small-dcgan's networks changed (revision 2): its runs never share an id, a table cell or a
    checkpoint with the ones recorded before; other models keep theirs."""
    new = RunConfig(model="small-dcgan", dataset="stacked-mnist")
    assert new.identity() == {**{k: v for k, v in new.identity().items() if k != "model_revision"}, "model_revision": 2}
    assert "model_revision" not in RunConfig(model="dcgan").identity()
    before = {k: v for k, v in new.identity().items() if k != "model_revision"}  # the id it had before
    assert new.run_id == digest(new.identity()) and new.run_id != digest(before)
    assert new.replace(seed=1).group_id == new.group_id != digest({k: v for k, v in before.items() if k != "seed"})


def test_config_is_frozen():
    with pytest.raises(Exception):
        RunConfig().steps = 5


@pytest.mark.parametrize("changes, message", [
    ({"steps": 0}, "'steps' must be > 0"),
    ({"steps": -5}, "'steps' must be > 0"),
    ({"lr_g": 0.0}, "'lr_g' must be > 0"),
    ({"lr_d": -1e-3}, "'lr_d' must be > 0"),
    ({"batch_size": 0}, "'batch_size' must be > 0"),
    ({"n_dis": 0}, "'n_dis' must be > 0"),
    ({"betas": (0.5, 1.0)}, "'betas' must lie in [0, 1)"),
    ({"betas": (0.5,)}, "needs 2 values"),
    ({"seed": -1}, "'seed' must be >= 0"),
    ({"steps": 1.5}, "'steps' must be int"),
    ({"steps": True}, "'steps' must be int"),
    ({"spectral_norm": 1}, "'spectral_norm' must be bool"),
    ({"lr_g": float("nan")}, "must be finite"),
    ({"optimizer": "adma"}, "did you mean 'adam'"),
    ({"precision": "bf61"}, "unknown precision 'bf61'; did you mean 'bf16'"),
    ({"model": ""}, "'model' must not be empty"),
])
def test_bad_values_are_rejected(changes, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        RunConfig(**changes)


def test_overrides_are_parsed_by_field_type():
    o = parse_overrides(["steps=500", "lr_g=2e-4", "betas=0.0,0.9", "spectral_norm=true", "loss=hinge",
                         "metrics=modes,kl"])
    assert o == {"steps": 500, "lr_g": 2e-4, "betas": (0.0, 0.9), "spectral_norm": True, "loss": "hinge",
                 "metrics": ("modes", "kl")}
    cfg = RunConfig(**o)
    assert cfg.betas == (0.0, 0.9) and cfg.steps == 500


@pytest.mark.parametrize("pair, message", [
    ("stpes=5", "unknown config key 'stpes'; did you mean 'steps'"),
    ("steps=many", "expected int"),
    ("spectral_norm=maybe", "expected true or false"),
    ("steps", "expects key=value"),
])
def test_bad_overrides(pair, message):
    with pytest.raises(UserError, match=message):
        parse_overrides([pair])


def test_suite_matrix_settings_and_seeds():
    doc = {
        "name": "t", "seeds": [3, 4],
        "defaults": {"steps": 10, "lr_g": 2e-4},
        "matrix": {"dataset": ["ring8", "grid25"]},
        "settings": [{"loss": "ns"}, {"loss": "hinge", "spectral_norm": True, "label": "sn"},
                     {"loss": "lsgan", "dataset": "ring8"}],
    }
    s = suite_from_dict(doc, "t.toml", {"steps": 20})
    assert [lbl for lbl, _ in s.settings] == ["mlp/ns", "mlp/ns", "sn", "sn", "mlp/lsgan"]
    assert [c.dataset for _, c in s.settings] == ["ring8", "grid25", "ring8", "grid25", "ring8"]
    runs = s.runs()
    assert len(runs) == 10
    assert [c.seed for _, c in runs[:2]] == [3, 4]
    assert all(c.steps == 20 and c.lr_g == 2e-4 for _, c in runs)  # --set beats the file
    assert suite_from_dict(doc, "t.toml", {}, seeds=[7]).seeds == (7,)
    sweep = suite_from_dict({"matrix": {"lr_d": [1e-4, 1e-3]}, "settings": [{"loss": "ns"}]}, "t.toml", {})
    assert [(lbl, c.lr_d) for lbl, c in sweep.settings] == [("mlp/ns", 1e-4), ("mlp/ns", 1e-3)]  # one entry swept


@pytest.mark.parametrize("doc, message", [
    ({"setings": []}, "unknown suite key 'setings'; did you mean 'settings'"),
    ({"settings": [{"lr": 1e-3}]}, "unknown config key 'lr'"),
    ({"seeds": [], "settings": [{}]}, "seeds must be a non-empty list"),
    ({"seeds": [0, 0], "settings": [{}]}, "repeated seed"),
    ({"matrix": {"dataset": "ring8"}}, "must be a non-empty list"),
    ({"settings": [{"loss": "ns"}, {"loss": "ns"}]}, "same config"),
    ({"matrix": {"dataset": ["ring8", "grid25"]}, "settings": [{"loss": "ns", "label": "a"}, {"loss": "hinge", "label": "a"}]},
     r"^bad.toml: settings\[0\] and settings\[1\] are both labelled 'a' on 'ring8'; give each its own label$"),
    ({"settings": [{"loss": "ns"}, {"loss": "ns", "lr_d": 0.01}]},  # default labels: mlp/ns twice
     r"^bad.toml: settings\[0\] and settings\[1\] are both labelled 'mlp/ns' on 'ring8'; give each its own label$"),
    ({"defaults": {"steps": 0}, "settings": [{}]}, "'steps' must be > 0"),
    ({"defaults": {"steps": 10}}, "the suite has no settings"),
])
def test_bad_suites(doc, message):
    with pytest.raises(UserError, match=message):
        suite_from_dict(doc, "bad.toml", {})


def test_a_typo_in_a_setting_left_out_by_setting_is_a_warning(tmp_path, capsys):
    """`ganbench run --setting A` checks the names of every setting of the file: a misspelt loss in
    a setting it leaves out is a one-line warning (the part runs: it may need no plug-in that another
    setting needs), one in A itself an error, exit 2, before anything is written. The same label on
    two datasets is one setting of a matrix, not a repeat."""
    from ganbench.cli import main

    suite = tmp_path / "s.toml"
    suite.write_text('seeds = [0]\n[defaults]\nmodel = "mlp"\nsteps = 2\nwidth = 8\ndepth = 1\nbatch_size = 16\n'
                     '[matrix]\ndataset = ["ring8", "grid25"]\n'
                     '[[settings]]\nlabel = "good"\nloss = "ns"\n[[settings]]\nlabel = "typo"\nloss = "wgn"\n')
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--setting", "typo", "--out", str(out), "--no-progress", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown loss 'wgn'" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    assert main(["run", "--suite", str(suite), "--setting", "good", "--out", str(out), "--no-progress", "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()  # once, though the matrix makes two settings of it
    assert line.startswith(f"ganbench: warning: {suite}: setting 'typo', which --setting leaves out: unknown loss "
                           "'wgn'; did you mean 'wgan'") and line.endswith("; a plug-in's names need its --plugin")
    assert {(r["label"], r["dataset"]) for r in load_rows(out)} == {("good", "ring8"), ("good", "grid25")}


def test_bundled_suites_load():
    quick = load_suite("quick")
    assert len(quick.runs()) >= 12 and len(quick.seeds) >= 2
    assert {c.dataset for _, c in quick.settings} == {"ring8", "grid25", "digits"}
    assert {(c.model, c.loss) for _, c in quick.settings if c.dataset != "digits"} == {
        ("mlp", "ns"), ("mlp", "wgan-gp"), ("mlp", "hinge")}
    assert {(c.model, c.loss) for _, c in quick.settings if c.dataset == "digits"} == {
        ("dcgan", "ns"), ("dcgan", "wgan-gp")}
    toy = load_suite("toy")
    assert len(toy.seeds) == 10 and min(c.steps for _, c in toy.settings) >= 10_000


def test_suite_lookup_errors(tmp_path):
    with pytest.raises(UserError, match="unknown suite 'quik'; did you mean 'quick'"):
        load_suite("quik")
    with pytest.raises(UserError, match="suite file not found"):
        load_suite(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("seeds = [0,\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_suite(str(bad))


def test_config_diff():
    a, b = RunConfig().to_dict(), RunConfig(steps=7, lr_g=0.5).to_dict()
    assert config_diff(a, b) == ["lr_g: 0.001 -> 0.5", "steps: 2000 -> 7"]
    assert config_diff(a, a) == []


def test_from_dict_roundtrip():
    cfg = RunConfig(loss="hinge", betas=(0.0, 0.9), metrics=("modes",))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert math.isclose(RunConfig.from_dict({"lr_g": 1}).lr_g, 1.0)
