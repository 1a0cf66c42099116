"""Tables on synthetic rows with known means and standard deviations."""

import io
import math

import pandas as pd
import pytest

from ganbench.errors import UserError
from ganbench.results.tables import comparison_table, long_table, render, summarize


def _rows():
    rows = []
    def add(label, seed, metric, value, hib, status="ok", final=True, step=100, protocol="p1"):
        rows.append({"dataset": "ring8", "label": label, "model": "mlp", "loss": label, "group_id": "g" + label,
                     "run_id": f"{label}{seed}", "seed": seed, "metric": metric, "value": value,
                     "higher_is_better": hib, "status": status, "final": final, "step": step,
                     "protocol_id": protocol})
    for seed, v in enumerate([8.0, 6.0, 7.0]):
        add("ns", seed, "modes", v, True)
        add("ns", seed, "kl", v / 10, False)
        add("ns", seed, "modes", 1.0, True, final=False, step=50)  # intermediate: ignored
    add("hinge", 0, "modes", 2.0, True)
    add("hinge", 1, "modes", None, True, status="diverged")
    add("hinge", 0, "kl", 0.5, False)
    add("hinge", 1, "kl", None, False, status="diverged")
    return pd.DataFrame(rows)


def test_summary_means_stds_and_counts():
    s = summarize(_rows()).set_index(["label", "metric"])
    assert s.loc[("ns", "modes"), "mean"] == pytest.approx(7.0)
    assert s.loc[("ns", "modes"), "std"] == pytest.approx(1.0)  # sample std of 8, 6, 7
    assert s.loc[("ns", "kl"), "mean"] == pytest.approx(0.7)
    assert s.loc[("ns", "modes"), "n"] == 3 and s.loc[("ns", "modes"), "diverged"] == 0
    assert s.loc[("hinge", "modes"), "mean"] == 2.0 and math.isnan(s.loc[("hinge", "modes"), "std"])
    assert s.loc[("hinge", "modes"), "n"] == 2 and s.loc[("hinge", "modes"), "diverged"] == 1


def test_summary_does_not_depend_on_the_order_the_runs_finished():
    """Runs of a pool append their rows as they finish; the means and tests are taken in seed
    order, so the same rows in any order give the same bits (here 0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1)."""
    rows = _rows()
    for seed, v in enumerate([0.1, 0.2, 0.3]):
        rows.loc[len(rows)] = {**rows.iloc[0].to_dict(), "metric": "hq", "seed": seed, "run_id": f"ns{seed}", "value": v}
        rows.loc[len(rows)] = {**rows.iloc[0].to_dict(), "label": "hinge", "group_id": "ghinge", "metric": "hq",
                               "seed": seed, "run_id": f"hinge{seed}", "value": v + 0.5}
    assert (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1
    forward, backward = rows, rows.iloc[::-1].reset_index(drop=True)
    a = summarize(forward).set_index(["label", "metric"]).sort_index()
    b = summarize(backward).set_index(["label", "metric"]).sort_index()
    assert a[["mean", "std", "ci_low", "ci_high"]].equals(b[["mean", "std", "ci_low", "ci_high"]])
    assert a.loc[("ns", "hq"), "mean"] == sum([0.1, 0.2, 0.3]) / 3
    p = [long_table(d, baseline="hinge").set_index(["label", "metric"]).sort_index()[["p", "g", "p_improve"]] for d in (forward, backward)]
    assert p[0].equals(p[1])


def test_comparison_table_cells_and_arrows():
    t = comparison_table(_rows()).set_index("setting")
    assert list(t.columns) == ["dataset", "n", "diverged", "modes ↑", "kl ↓"]
    # mean [t-interval]: 7 ± t(0.975, 2) * 1 / sqrt(3) = 7 ± 2.48, cut at the ring's 8 modes; three significant
    # figures of the column maximum
    assert t.loc["ns", "modes ↑"] == "7.00 [4.52, 8.00]"
    assert t.loc["hinge", "modes ↑"] == "2.00"  # one finished seed: no spread
    assert t.loc["ns", "kl ↓"] == "0.700 [0.452, 0.948]"
    md = render(_rows(), "md")
    assert md.splitlines()[0].startswith("| dataset | setting")
    csv = pd.read_csv(io.StringIO(render(_rows(), "csv"))).set_index(["label", "metric"])
    assert csv.loc[("ns", "modes"), ["ci_low", "ci_high"]].tolist() == pytest.approx([7 - 2.4841377, 8.0])
    assert csv.loc[("ns", "kl"), ["ci_low", "ci_high"]].tolist() == pytest.approx([0.7 - 0.24841377, 0.7 + 0.24841377])
    assert csv.loc[("hinge", "modes"), ["ci_low", "ci_high"]].isna().all()   # one finished seed: no interval


def test_protocols_are_never_mixed():
    rows = _rows()
    extra = rows[(rows["label"] == "ns") & (rows["seed"] == 0) & rows["final"]].copy()
    extra["run_id"] = "other"
    extra["protocol_id"] = "p2"
    s = summarize(pd.concat([rows, extra]))
    ns_modes = s[(s["label"] == "ns") & (s["metric"] == "modes")]
    assert sorted(ns_modes["protocol_id"]) == ["p1", "p2"]
    assert sorted(ns_modes["n"]) == [1, 3]
    t = comparison_table(pd.concat([rows, extra]))
    assert sum(t["setting"].str.startswith("ns")) == 2 and t["setting"].str.contains("protocol p2").any()


def test_empty_results_are_a_user_error():
    with pytest.raises(UserError, match="no final results"):
        summarize(_rows().assign(final=False))
    with pytest.raises(UserError, match="unknown table format"):
        render(_rows(), "xls")


def _ranked(entries):
    """entries: label -> values of one metric (higher is better)."""
    rows = []
    for label, values in entries.items():
        for seed, v in enumerate(values):
            rows.append({"dataset": "digits", "label": label, "model": "mlp", "loss": label, "group_id": label,
                         "run_id": f"{label}{seed}", "seed": seed, "metric": "cs", "value": v,
                         "higher_is_better": True, "status": "ok", "final": True, "step": 1,
                         "protocol_id": "p1"})
    return summarize(pd.DataFrame(rows)).set_index("label")


def test_t_interval_and_ranks_with_ties():
    from scipy import stats
    s = _ranked({"a": [10.0, 11.0, 12.0], "b": [10.5, 11.5, 12.5], "c": [1.0, 2.0, 3.0]})
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert s.loc["a", "ci95"] == pytest.approx(half) and half == pytest.approx(2.4841, abs=1e-4)
    # a and b overlap: they share rank 1; c is clearly worse than both: rank 3.
    assert s["rank"].to_dict() == {"a": 1, "b": 1, "c": 3}


def test_welch_matches_scipy():
    from scipy import stats

    from ganbench.results.significance import welch
    x, y = [0.9, 0.95, 0.92, 0.97], [0.8, 0.85, 0.9]
    w = welch(x, y)
    ref = stats.ttest_ind(x, y, equal_var=False)
    assert w["p"] == pytest.approx(ref.pvalue) and w["t"] == pytest.approx(ref.statistic)
    assert w["p_improve"] == pytest.approx(11.5 / 12)  # 11 pairs x > y, one tie (0.9, 0.9)


def _two(x, y, hib=True, px="p1", py="p1"):
    """Two settings of one metric: 'new' with seed values x, 'base' with y."""
    rows = []
    for label, values, pid in (("new", x, px), ("base", y, py)):
        for seed, v in enumerate(values):
            rows.append({"dataset": "ring8", "label": label, "model": label + "-model", "loss": "ns", "group_id": label,
                         "run_id": f"{label}{seed}", "seed": seed, "metric": "kl", "value": v,
                         "higher_is_better": hib, "status": "ok", "final": True, "step": 1, "protocol_id": pid})
    return pd.DataFrame(rows)


def test_tests_against_a_baseline_in_the_metrics_direction():
    from scipy import stats

    from ganbench.results.tables import final_rows, significance
    df = _two([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], hib=False)   # lower is better: 'new' is better
    s, notes = significance(summarize(df), final_rows(df), "base", "welch")
    r = s.set_index("label").loc["new"]
    t = -3.0 / math.sqrt(1 / 3 + 1 / 3)                      # Welch: both variances 1, n = 3
    assert r["p"] == pytest.approx(2 * stats.t.sf(abs(t), 4)) and notes == []
    assert r["g"] == pytest.approx(3.0 * (1 - 3 / (4 * 6 - 9)))  # Cohen's d 3 (pooled sd 1), Hedges 0.8 factor
    assert r["p_improve"] == 1.0                             # every seed of 'new' beats every seed of 'base'
    assert bool(s.set_index("label").loc["base", "is_baseline"])
    s, _ = significance(summarize(df), final_rows(df), "base", "mannwhitney")
    assert s.set_index("label").loc["new", "p"] == pytest.approx(2 / 20)  # exact: 2 of C(6,3) orderings as extreme


def test_table_with_baseline_columns_and_untested_protocol_note():
    df = pd.concat([_two([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], hib=False),
                    _two([1.0, 1.5], [9.0], hib=False, px="p2", py="p3").query("label == 'new'").assign(
                        label="other", group_id="other", run_id=lambda d: "o" + d["run_id"])])
    t = comparison_table(df, baseline="base")
    assert list(t.columns[:6]) == ["dataset", "setting", "n", "diverged", "kl ↓", "kl vs baseline"]
    cells = t.set_index("setting")["kl vs baseline"]
    assert cells["base"] == "baseline" and cells["new"].startswith("p=") and "g=+2.40" in cells["new"]
    assert cells["other [protocol p2]"] == "—"               # protocol p2: no baseline entry to test against
    notes = " ".join(t.attrs["notes"])
    assert "no result of base under protocol p2" in notes and "other" in notes
    assert "2 protocols" in notes                            # p1 and p2 lines are kept apart
    assert comparison_table(df, baseline="base-model").attrs["baseline"] == "base"  # a model with one setting
    with pytest.raises(UserError, match="did you mean 'base'"):
        comparison_table(df, baseline="bsae")
    with pytest.raises(UserError, match="metric"):
        comparison_table(df, metrics=["fid"])


def test_formats_escape_user_labels():
    df = _two([1.0, 2.0], [3.0, 4.0]).replace({"label": {"new": "a&b <i>_x|y"}})
    html_text = render(df, "html")
    assert "a&amp;b &lt;i&gt;_x|y" in html_text and "<i>" not in html_text
    latex = render(df, "latex")
    assert r"a\&b \textless{}i\textgreater{}\_x|y" in latex and r"kl $\uparrow$" in latex
    md = render(df, "md", baseline="base")
    assert r"a&b <i>_x\|y" in md and "kl vs baseline" in md and "Welch's t-test over seeds against base" in md
    csv = render(df, "csv", baseline="base")
    assert csv.splitlines()[0].endswith("rank,is_baseline,p,g,p_improve")


def test_datasets_with_other_metrics_get_their_own_table():
    ring = _rows()
    image = pd.DataFrame([{**ring.iloc[0].to_dict(), "dataset": "digits", "label": "dcgan", "model": "dcgan",
                           "run_id": f"dcgan{s}", "seed": s, "metric": "fid_domain", "value": v,
                           "higher_is_better": False} for s, v in enumerate([100.0, 120.0])])
    text = render(pd.concat([ring, image], ignore_index=True), "md", baseline="ns", metrics=["modes", "fid_domain"])
    first, second = text.split("\n\n")[:2]
    assert "modes ↑" in first and "fid_domain" not in first and "modes vs baseline" in first
    assert "fid_domain ↓" in second and "modes" not in second and "vs baseline" not in second
    assert "| digits  | dcgan   | 2 | 0        | 110 [0, 237]" in second  # 110 ± 12.7 * 14.1 / sqrt(2), cut at 0
    with pytest.raises(UserError, match="--baseline: no setting 'nope'"):
        render(pd.concat([ring, image]), "md", baseline="nope")


def test_exact_mann_whitney_with_ties_and_welch_without_spread():
    from ganbench.results.significance import mannwhitney, welch

    # 2 vs 2 seeds: the smallest exact two-sided p is 2/C(4,2) = 1/3, ties or not
    assert mannwhitney([7, 7], [8, 8])["p"] == pytest.approx(1 / 3)
    assert mannwhitney([8, 8, 7], [6, 6, 6])["p"] == pytest.approx(0.1)  # 2/C(6,3)
    assert math.isnan(welch([7, 7], [8, 8])["p"])  # no spread on either side: no t-test
    assert welch([8, 8], [8, 8])["p"] == 1.0


def test_csv_with_an_unknown_metric_is_an_error():
    with pytest.raises(UserError, match="--metric: no results for metric 'mods'"):
        render(_rows(), "csv", metrics=["mods"])


def test_plugin_table_format_and_test_through_the_cli(tmp_path, capsys):
    """A table format and a significance test registered by a plug-in, used by `ganbench table`."""
    import json

    from ganbench.cli import main
    from ganbench.results.formats import FORMATS
    from ganbench.results.significance import TESTS

    out = tmp_path / "res"
    out.mkdir()
    with open(out / "results.jsonl", "w") as f:
        for r in _rows().to_dict("records"):
            f.write(json.dumps({**r, "suite": "t", "protocol": {}, "config": {}, "env": {}}) + "\n")
    plugin = tmp_path / "fmt.py"
    plugin.write_text(
        "from ganbench.results.formats import TableFormat, register\n"
        "from ganbench.results.significance import SignificanceTest, register as register_test\n"
        "register(TableFormat(name='tsv-test', description='tab-separated',\n"
        "                     table=lambda t: t.to_csv(sep='\\t', index=False).rstrip(), notes=lambda lines: ''))\n"
        "register_test(SignificanceTest(name='always-half', description='p = 0.5',\n"
        "                               fn=lambda x, y: {'t': 0.0, 'p': 0.5, 'g': 0.0, 'p_improve': 0.5}))\n")
    try:
        assert main(["table", str(out), "--plugin", str(plugin), "--format", "tsv-test"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split("\t")[:4] == ["dataset", "setting", "n", "diverged"] and lines[1].startswith("ring8\t")
        argv = ["table", str(out), "--plugin", str(plugin), "--format", "csv", "--baseline", "ns", "--test", "always-half"]
        assert main(argv) == 0
        table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
        assert set(table.loc[table["label"] == "hinge", "p"]) == {0.5}
        assert main(["table", str(out), "--format", "tsv-nope"]) == 2
        assert "unknown table format 'tsv-nope'" in capsys.readouterr().err
    finally:
        dict.pop(FORMATS, "tsv-test", None)
        dict.pop(TESTS, "always-half", None)
