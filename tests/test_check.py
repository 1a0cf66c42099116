"""Regression check: verdicts on synthetic rows, bad baseline files, and a tiny real suite where a run
trained for far too few steps fails `ganbench check` and a normal run passes."""

import pandas as pd
import pytest

from ganbench.errors import UserError
from ganbench.results.check import compare, load_baseline, write_baseline
from ganbench.results.store import load_results


def _rows(values, protocol="p1"):
    return pd.DataFrame([{"dataset": "ring8", "label": "ns", "model": "mlp", "loss": "ns", "group_id": "g",
                          "run_id": f"r{i}", "seed": i, "metric": "hq", "value": v, "higher_is_better": True,
                          "status": "ok", "final": True, "step": 1, "protocol_id": protocol}
                         for i, v in enumerate(values)])


def test_check_verdicts(tmp_path):
    path = tmp_path / "base.json"
    write_baseline(_rows([0.80, 0.82, 0.84]), path)   # mean 0.82, std 0.02
    base = load_baseline(path)
    tol = 3 * 0.02 * (2 / 3) ** 0.5
    ok = compare(_rows([0.78, 0.80, 0.82]), base)      # worse by 0.02 < tol ~ 0.049
    assert ok.loc[0, "verdict"] == "ok" and ok.loc[0, "tolerance"] == pytest.approx(tol)
    bad = compare(_rows([0.50, 0.52, 0.54]), base)     # worse by 0.30
    assert bad.loc[0, "verdict"] == "REGRESSED"
    with pytest.raises(UserError, match="protocols"):
        compare(_rows([0.8, 0.8], protocol="p2"), base)


def test_diverged_seeds_and_duplicate_labels_and_bad_k(tmp_path):
    path = tmp_path / "base.json"
    write_baseline(_rows([0.80, 0.82, 0.84]), path)
    base = load_baseline(path)
    assert base.loc[0, "diverged"] == 0
    new = _rows([0.83, 0.0, 0.0])
    new.loc[1:, "status"], new.loc[1:, "value"] = "diverged", None  # one finished seed, two diverged
    v = compare(new, base)
    assert v.loc[0, "verdict"] == "REGRESSED (diverged 2/3, baseline 0/3)"
    assert v.loc[0, "tolerance"] == pytest.approx(3 * 0.02 * (1 / 3 + 1 / 1) ** 0.5)  # n = 1 finished seed
    two = pd.concat([_rows([0.8, 0.8]), _rows([0.2, 0.2]).assign(group_id="other", run_id=lambda d: d.run_id + "x")])
    with pytest.raises(UserError, match="label 'ns' on ring8 stands for several configurations"):
        write_baseline(two, tmp_path / "two.json")
    with pytest.raises(UserError, match="several configurations"):
        compare(two, base)
    for k in (float("nan"), 0.0, -1.0):
        with pytest.raises(UserError, match="k must be a number > 0"):
            compare(_rows([0.8, 0.8]), base, k=k)


@pytest.mark.parametrize("field, value", [("n", 0), ("n", None), ("mean", "0.16"), ("higher_is_better", 1),
                                          ("diverged", 5)])
def test_malformed_baseline_entries_are_user_errors(tmp_path, field, value):
    import json

    path = tmp_path / "base.json"
    write_baseline(_rows([0.80, 0.82, 0.84]), path)
    doc = json.loads(path.read_text())
    doc["entries"][0][field] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="entry 0 is malformed"):
        load_baseline(path)


def test_bad_baseline_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_baseline(tmp_path / "missing.json")
    (tmp_path / "corrupt.json").write_text('{"format": 1, "entr')
    with pytest.raises(UserError, match="not valid JSON"):
        load_baseline(tmp_path / "corrupt.json")
    (tmp_path / "other.json").write_text('{"format": 1, "entries": [{"dataset": "ring8"}]}')
    with pytest.raises(UserError, match="entries lack"):
        load_baseline(tmp_path / "other.json")


def test_no_overlap_and_changed_protocol_are_refused(tmp_path):
    path = tmp_path / "base.json"
    write_baseline(_rows([0.80, 0.82, 0.84]), path)
    base = load_baseline(path)
    with pytest.raises(UserError, match="no setting of the results matches"):
        compare(_rows([0.8, 0.8]).assign(label="other"), base)
    # Same setting and metric under another protocol: refused even when something else matches.
    both = pd.concat([_rows([0.8, 0.8], protocol="p2"), _rows([0.8, 0.8]).assign(label="x", run_id=["x0", "x1"])])
    with pytest.raises(UserError, match="incompatible protocols"):
        compare(both, base)


def test_tolerance_uses_both_sample_sizes_and_the_floor(tmp_path):
    path = tmp_path / "base.json"
    write_baseline(_rows([0.5, 0.5, 0.5, 0.5]), path)         # std 0: the floor applies
    v = compare(_rows([0.4995, 0.4995]), load_baseline(path))
    assert v.loc[0, "tolerance"] == pytest.approx(1e-3) and v.loc[0, "verdict"] == "ok"
    assert compare(_rows([0.498, 0.498]), load_baseline(path)).loc[0, "verdict"] == "REGRESSED"
    write_baseline(_rows([0.1, 0.2, 0.3, 0.4]), path)         # std sqrt(1/60)
    v = compare(_rows([0.2, 0.2]), load_baseline(path), k=2)
    assert v.loc[0, "tolerance"] == pytest.approx(2 * (1 / 60) ** 0.5 * (1 / 4 + 1 / 2) ** 0.5)


# A tiny real suite: hinge loss with spectral norm on ring8 finds most of the 8 modes in 600 steps.
TINY = {
    "name": "tiny-ci",
    "defaults": {"model": "mlp", "dataset": "ring8", "loss": "hinge", "spectral_norm": True, "width": 64,
                 "depth": 3, "batch_size": 256, "lr_g": 5e-4, "lr_d": 4e-3, "betas": [0.0, 0.9], "steps": 600},
    "settings": [{"label": "mlp/hinge+sn"}],
}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Results folders: a baseline (seeds 10-13), a normal run (seeds 0-2) and a run degraded by
    training for far too few steps (5 instead of 600, same seeds)."""
    import torch

    from ganbench.config import suite_from_dict
    from ganbench.runs.suite import run_suite

    root = tmp_path_factory.mktemp("tiny-ci")
    for name, seeds, overrides in [("base", [10, 11, 12, 13], {}), ("normal", [0, 1, 2], {}),
                                   ("degraded", [0, 1, 2], {"steps": 5})]:
        suite = suite_from_dict(TINY, "tiny-ci", overrides, seeds)
        run_suite(suite, root / name, torch.device("cpu"), progress=False)
    return root


def test_check_cli_fails_a_degraded_run_and_passes_a_normal_one(tiny_runs, capsys):
    from ganbench.cli import main

    baseline = tiny_runs / "ci.json"
    assert main(["check", str(tiny_runs / "base"), "--update", str(baseline)]) == 0
    assert main(["check", str(tiny_runs / "normal"), "--baseline", str(baseline)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("ok: 3 comparisons")
    assert main(["check", str(tiny_runs / "degraded"), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "regression(s) in 3 comparisons" in out
    # Bad input exits 2: missing baseline, corrupt baseline, missing results folder.
    assert main(["check", str(tiny_runs / "normal"), "--baseline", str(tiny_runs / "nope.json")]) == 2
    (tiny_runs / "corrupt.json").write_text("{")
    assert main(["check", str(tiny_runs / "normal"), "--baseline", str(tiny_runs / "corrupt.json")]) == 2
    assert main(["check", str(tiny_runs / "absent"), "--baseline", str(baseline)]) == 2


def test_assert_no_regression_helper(tiny_runs):
    from ganbench.testing import assert_no_regression

    baseline = tiny_runs / "helper.json"
    write_baseline(load_results(tiny_runs / "base"), baseline)
    assert_no_regression(tiny_runs / "normal", baseline)
    with pytest.raises(AssertionError, match="REGRESSED") as e:
        assert_no_regression(tiny_runs / "degraded", baseline, k=3)
    assert "| verdict" in str(e.value) and "mlp/hinge+sn" in str(e.value)
    with pytest.raises(UserError):
        assert_no_regression(tiny_runs / "normal", tiny_runs / "missing.json")
