"""Regression check: verdicts on synthetic rows, bad baseline files, and a tiny real suite where a run
trained for far too few steps fails `ganbench check` and a normal run passes."""

import math

import numpy as np
import pandas as pd
import pytest

from ganbench.errors import UserError
from ganbench.results.check import RESAMPLES, compare, holm, load_baseline, min_p, permutation_p, write_baseline
from ganbench.results.store import load_results


def _rows(values, protocol="p1"):
    return pd.DataFrame([{"dataset": "ring8", "label": "ns", "model": "mlp", "loss": "ns", "group_id": "g",
                          "run_id": f"r{i}", "seed": i, "metric": "hq", "value": v, "higher_is_better": True,
                          "status": "ok", "final": True, "step": 1, "protocol_id": protocol}
                         for i, v in enumerate(values)])


def _values(path):
    import json

    return json.loads(path.read_text())["entries"][0]["values"]


def _brute_force_p(new, base):
    """The exact one-sided permutation p-value by enumerating every split."""
    import itertools

    pooled, n = list(new) + list(base), len(new)
    observed = sum(new) / n
    splits = [sum(pooled[i] for i in c) / n for c in itertools.combinations(range(len(pooled)), n)]
    return sum(m <= observed + 1e-12 for m in splits) / len(splits)


BASE30 = [0.80 + 0.001 * i for i in range(30)]


def test_check_verdicts(tmp_path):
    path = tmp_path / "base.json"
    write_baseline(_rows(BASE30), path)
    assert _values(path) == pytest.approx(BASE30)              # every seed's value, in seed order
    base = load_baseline(path)
    ok = compare(_rows([0.805, 0.81, 0.82]), base)           # inside the baseline's seeds
    assert ok.loc[0, "verdict"] == "ok"
    assert ok.loc[0, "p"] == pytest.approx(_brute_force_p([0.805, 0.81, 0.82], BASE30))
    bad = compare(_rows([0.50, 0.52, 0.54]), base)           # below every baseline seed: the lowest of C(33, 3) splits
    assert bad.loc[0, "p"] == pytest.approx(1 / math.comb(33, 3)) and bad.loc[0, "verdict"] == "REGRESSED"
    assert bad.loc[0, "worse_by"] == pytest.approx(np.mean(BASE30) - 0.52)
    lower = compare(_rows([0.5, 0.5, 0.5]).assign(higher_is_better=False), load_baseline(_write(
        tmp_path, _rows(BASE30).assign(higher_is_better=False))))   # lower is better: 0.5 is no regression
    assert lower.loc[0, "verdict"] == "ok" and lower.loc[0, "p"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="protocols"):
        compare(_rows([0.8, 0.8], protocol="p2"), base)


@pytest.mark.parametrize("key", ["label", "dataset", "protocol_id"])
def test_rows_without_a_key_are_refused_and_leave_the_baseline_alone(tmp_path, key):
    """Rows missing a field a baseline entry is keyed by are refused before anything is written:
    an entry of NaN would overwrite a good baseline with one that cannot be read back."""
    path = tmp_path / "base.json"
    write_baseline(_rows(BASE30), path)
    before = path.read_bytes()
    with pytest.raises(UserError, match=f"^the results: rows of metric 'hq' have no {key}; not rows that ganbench wrote$"):
        write_baseline(_rows(BASE30).assign(**{key: None}), path)
    assert path.read_bytes() == before


def _write(tmp_path, rows, name="other.json"):
    write_baseline(rows, tmp_path / name)
    return tmp_path / name


def test_permutation_p_is_exact_with_ties_and_deterministic_when_sampled():
    modes = [8.0] * 25 + [7.0] * 4 + [5.0]                    # a metric with few values: ties everywhere
    for new in ([7.0, 8.0, 8.0], [7.0, 7.0, 5.0], [8.0, 8.0, 8.0]):
        assert permutation_p(new, modes) == pytest.approx(_brute_force_p(new, modes))
    assert permutation_p([8.0] * 3, [8.0] * 30) == 1.0        # every seed alike
    rng = np.random.default_rng(1)
    base, new = rng.normal(size=40), rng.normal(size=10) - 1.0  # C(50, 10) splits: sampled
    p = permutation_p(new, base)
    assert p == permutation_p(new, base) and 1 / (1 + RESAMPLES) <= p < 0.01
    assert min_p(3, 30) == 1 / 5456 and min_p(10, 40) == 1 / (1 + RESAMPLES)


def test_holm_adjusts_in_step_down_order():
    adjusted = holm([0.01, 0.04, 0.03, float("nan")])         # 3 tested: 3 * 0.01, max(2 * 0.03, .), max(., 1 * 0.04)
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])


def test_family_wise_rule_over_all_comparisons(tmp_path):
    """Three metrics each just short of significance alone at alpha / 3 pass; the family is what counts."""
    rows = pd.concat([_rows(BASE30).assign(metric=m) for m in ("hq", "kl", "modes")])
    base = load_baseline(_write(tmp_path, rows))
    worst = [0.80, 0.801, 0.802]                              # the 3 lowest seeds' values again: 15 of 5456 splits tie or beat it
    new = pd.concat([_rows(worst).assign(metric=m) for m in ("hq", "kl", "modes")])
    v = compare(new, base)
    assert v.attrs["family"] == 3 and np.allclose(v["p"], 15 / 5456) and np.allclose(v["p_holm"], 3 * 15 / 5456)
    assert (v["verdict"] == "REGRESSED").all()               # 45 / 5456 = 0.0082 < 0.01
    assert (compare(new, base, alpha=0.008)["verdict"] == "ok").all()


def test_diverged_seeds_and_duplicate_labels_and_bad_alpha(tmp_path):
    path = _write(tmp_path, _rows(BASE30), "base.json")
    base = load_baseline(path)
    assert base.loc[0, "diverged"] == 0
    new = _rows([0.83, 0.0, 0.0])
    new.loc[1:, "status"], new.loc[1:, "value"] = "diverged", None  # one finished seed, two diverged
    v = compare(new, base).set_index("metric")
    # Fisher's exact test, 2 of 3 against 0 of 30: both diverged runs in the new group, C(2, 2) C(31, 1) / C(33, 3)
    assert v.loc["diverged", "p"] == pytest.approx(31 / math.comb(33, 3))
    assert v.loc["diverged", "p_holm"] == pytest.approx(2 * 31 / math.comb(33, 3))   # a family of 2: hq and diverged
    assert v.loc["diverged", "verdict"] == "ok" and v.loc["hq", "verdict"] == "ok"  # 0.011 > 0.01
    assert compare(new, base, alpha=0.05).set_index("metric").loc["diverged", "verdict"] == "REGRESSED"
    one = _rows([0.83, 0.82, 0.0])
    one.loc[2, "status"], one.loc[2, "value"] = "diverged", None
    assert (compare(one, base)["verdict"] == "ok").all()      # 1 of 3 against 0 of 30: p = 3 / 33, not significant
    gone = _rows([0.0, 0.0, 0.0]).assign(status="diverged", value=None)
    assert (compare(gone, base).set_index("metric").loc["hq", "verdict"]) == "REGRESSED"   # no value left
    two = pd.concat([_rows([0.8, 0.8]), _rows([0.2, 0.2]).assign(group_id="other", run_id=lambda d: d.run_id + "x")])
    with pytest.raises(UserError, match="label 'ns' on ring8 stands for several configurations"):
        write_baseline(two, tmp_path / "two.json")
    with pytest.raises(UserError, match="several configurations"):
        compare(two, base)
    for alpha in (float("nan"), 0.0, 1.0, -1.0, True):
        with pytest.raises(UserError, match="alpha must be a number in"):
            compare(_rows([0.8, 0.8]), base, alpha=alpha)


def test_a_baseline_too_small_to_ever_fail_is_refused(tmp_path):
    base = load_baseline(_write(tmp_path, _rows([0.80, 0.82, 0.84, 0.86])))
    with pytest.raises(UserError, match=r"could never fail: with 4 baseline seeds and 3 new ones the smallest "
                                        r"possible p-value is 0\.0286"):
        compare(_rows([0.1, 0.1, 0.1]), base)


@pytest.mark.parametrize("field, value", [("n", 0), ("n", None), ("mean", "0.16"), ("higher_is_better", 1),
                                          ("diverged", 5), ("values", [0.8, 0.8]), ("values", [0.8, None, 0.8]),
                                          ("values", "0.8")])
def test_malformed_baseline_entries_are_user_errors(tmp_path, field, value):
    import json

    path = _write(tmp_path, _rows([0.80, 0.82, 0.84]), "base.json")
    doc = json.loads(path.read_text())
    doc["entries"][0][field] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="entry 0 is malformed"):
        load_baseline(path)


def test_bad_baseline_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_baseline(tmp_path / "missing.json")
    (tmp_path / "corrupt.json").write_text('{"format": 2, "entr')
    with pytest.raises(UserError, match="not valid JSON"):
        load_baseline(tmp_path / "corrupt.json")
    (tmp_path / "other.json").write_text('{"format": 2, "entries": [{"dataset": "ring8"}]}')
    with pytest.raises(UserError, match="entries lack"):
        load_baseline(tmp_path / "other.json")
    (tmp_path / "old.json").write_text('{"format": 1, "entries": []}')
    with pytest.raises(UserError, match="format 1 .* write it again from its results with `ganbench check DIR --update"):
        load_baseline(tmp_path / "old.json")


def test_no_overlap_and_changed_protocol_are_refused(tmp_path):
    base = load_baseline(_write(tmp_path, _rows(BASE30)))
    with pytest.raises(UserError, match="no setting of the results matches"):
        compare(_rows([0.8, 0.8]).assign(label="other"), base)
    # Same setting and metric under another protocol: refused even when something else matches.
    both = pd.concat([_rows([0.8, 0.8], protocol="p2"), _rows([0.8, 0.8]).assign(label="x", run_id=["x0", "x1"])])
    with pytest.raises(UserError, match="incompatible protocols"):
        compare(both, base)


# A tiny real suite: hinge loss with spectral norm on ring8 finds most of the 8 modes in 600 steps.
TINY = {
    "name": "tiny-ci",
    "defaults": {"model": "mlp", "dataset": "ring8", "loss": "hinge", "spectral_norm": True, "width": 64,
                 "depth": 3, "batch_size": 256, "lr_g": 5e-4, "lr_d": 4e-3, "betas": [0.0, 0.9], "steps": 600},
    "settings": [{"label": "mlp/hinge+sn"}],
}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Results folders: a baseline (seeds 10-20: with 3 new seeds the smallest p is 1 / C(14, 3) = 1 / 364,
    small enough for alpha 0.01 over 3 metrics), a normal run (seeds 0-2) and a run degraded by
    training for far too few steps (5 instead of 600, same seeds)."""
    import torch

    from ganbench.config import suite_from_dict
    from ganbench.runs.suite import run_suite

    root = tmp_path_factory.mktemp("tiny-ci")
    for name, seeds, overrides in [("base", list(range(10, 21)), {}), ("normal", [0, 1, 2], {}),
                                   ("degraded", [0, 1, 2], {"steps": 5})]:
        suite = suite_from_dict(TINY, "tiny-ci", overrides, seeds)
        run_suite(suite, root / name, torch.device("cpu"), progress=False)
    return root


def test_check_cli_fails_a_degraded_run_and_passes_a_normal_one(tiny_runs, capsys):
    from ganbench.cli import main

    baseline = tiny_runs / "ci.json"
    assert main(["check", str(tiny_runs / "base"), "--update", str(baseline)]) == 0
    assert main(["check", str(tiny_runs / "normal"), "--baseline", str(baseline)]) == 0
    assert "ok: 3 comparisons; family-wise alpha 0.01 over 3 tests" in capsys.readouterr().out
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
        assert_no_regression(tiny_runs / "degraded", baseline, alpha=0.01)
    assert "| verdict" in str(e.value) and "mlp/hinge+sn" in str(e.value)
    with pytest.raises(UserError):
        assert_no_regression(tiny_runs / "normal", tiny_runs / "missing.json")


def test_calibration_script_counts_family_wise_false_alarms_and_detections(tmp_path):
    """scripts/check_calibration.py splits a folder of seeds into disjoint re-runs and counts a re-run
    once however many of its comparisons fail; the former 3-sigma rule is counted beside it."""
    import importlib.util
    from pathlib import Path

    from ganbench.results.store import append_rows

    spec = importlib.util.spec_from_file_location("check_calibration",
                                                  Path(__file__).parents[1] / "scripts" / "check_calibration.py")
    calibration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(calibration)
    rows = pd.concat([_rows(BASE30).assign(metric=m) for m in ("hq", "kl")])
    baseline = load_baseline(_write(tmp_path, rows))
    # seeds 0-2 like the baseline; seeds 3-5 far below it on both metrics; seeds 6-8 below on hq only
    values = [0.81, 0.82, 0.815, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    new = pd.concat([_rows(values).assign(metric="hq"),
                     _rows(values[:6] + [0.81, 0.82, 0.815]).assign(metric="kl")])
    append_rows(tmp_path / "runs", new.to_dict("records"))
    out = calibration.reruns(tmp_path / "runs", 0, 3, 3, baseline, 0.01, "unchanged")
    assert [(r["seeds"], r["failed"], r["comparisons"]) for r in out] == [("0-2", 0, 2), ("3-5", 2, 2), ("6-8", 1, 2)]
    assert [r["which"] for r in out] == ["", "ns hq; ns kl", "ns hq"]
    assert [r["former_rule_failed"] for r in out] == [0, 2, 1]
    assert calibration.rate(1, 100).startswith("1 of 100 (1.0 %, 95 % interval 0.0-5.4 %)")
