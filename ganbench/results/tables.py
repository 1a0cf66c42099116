"""Comparison tables: final results grouped by setting, the mean over seeds and its 95% interval.

The interval is Student's t interval of the mean over seeds, cut to the values the metric can take
on the dataset (``value_range``). The true mean lies in that range, so cutting loses no coverage;
it only drops values no run could produce (a mode count below 0, a fraction above 1). t is exact for
normal seed noise at any n >= 2 and is what the Welch tests and the ranks read, so cells, ranks and
tests agree. At n = 2 its factor is 12.7 (the interval says how little two seeds tell), at 3 seeds
4.30, at 4 seeds 3.18. A percentile bootstrap would stay in range too, but over 2-5
seeds it is too narrow (with 2 seeds it is the span of the two values, a 50% interval of the median).

Tables are derived views of the rows in ``results.jsonl``; they never change the rows. Values
measured under different protocols are never ranked, tested or averaged together: each protocol of
a setting gets its own line, and the table's notes (``table.attrs["notes"]``) say which lines were
kept apart and why.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from scipy import stats

from ganbench.config import Suite, available_suites, load_suite
from ganbench.data import DATASETS, toy
from ganbench.errors import UserError, suggest
from ganbench.features.translation import NO_TRUTH
from ganbench.metrics import METRICS
from ganbench.results import published
from ganbench.results.formats import FORMATS
from ganbench.results.significance import TESTS

GROUP = ["dataset", "label", "model", "loss", "group_id"]


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The final evaluation of each run, one row per (run, metric); the newest wins on repeats.

    In seed order: runs of a pool append their rows as they finish, and a mean taken in that order
    could differ in its last bit (and, rounded, in its last printed digit) from one run to the next."""
    if df.empty or "final" not in df.columns:
        return df.iloc[0:0]
    final = df[df["final"].astype(bool)]
    return final.drop_duplicates(subset=["run_id", "metric"], keep="last").sort_values("seed", kind="stable")


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Long table: one row per (setting, metric, protocol) with mean, std, n and diverged runs."""
    final = final_rows(df)
    if final.empty:
        raise UserError("no final results to tabulate")
    keys = GROUP + ["metric", "protocol_id", "higher_is_better"]
    out = []
    for key, g in final.groupby(keys, sort=False, dropna=False):
        values = pd.to_numeric(g["value"], errors="coerce")
        ok = values[g["status"] == "ok"].dropna()
        mean, half = (ok.mean() if len(ok) else math.nan), ci_halfwidth(ok)
        low, high = value_range(key[keys.index("metric")], key[0])
        out.append({
            **dict(zip(keys, key)),
            "mean": mean,
            "std": ok.std(ddof=1) if len(ok) > 1 else math.nan,
            "n": int(g["seed"].nunique()),
            "diverged": int((g["status"] != "ok").sum()),
            "ci95": half,
            "ci_low": max(mean - half, low) if not math.isnan(half) else math.nan,
            "ci_high": min(mean + half, high) if not math.isnan(half) else math.nan,
        })
    s = pd.DataFrame(out)
    s["rank"] = ranks(s)
    return s


def ci_halfwidth(values: pd.Series, level: float = 0.95) -> float:
    """Half-width of the t-interval of the mean over seeds: t(1-(1-level)/2, n-1) * s / sqrt(n)."""
    v = pd.Series(values, dtype=float).dropna()
    if len(v) < 2:
        return math.nan
    return float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def value_range(metric: str, dataset: str) -> tuple[float, float]:
    """The values ``metric`` can take on ``dataset``: its ``Metric.range``, with a mode count capped at
    the number of modes of a 2-D mixture (8 on ring8, 25 on grid25)."""
    low, high = METRICS[metric].range if metric in METRICS else (-math.inf, math.inf)
    if metric == "modes":
        high = min(high, _num_modes(dataset))
    return low, high


@functools.cache
def _num_modes(dataset: str) -> float:
    factory = DATASETS.get(dataset)  # only the 2-D mixtures are built: an image dataset may need its files
    return float(len(factory(None).means)) if getattr(factory, "__module__", "") == toy.__name__ else math.inf


def ranks(s: pd.DataFrame) -> pd.Series:
    """Rank within (dataset, metric, protocol): 1 + the number of entries whose 95% interval lies
    entirely on the better side of this entry's interval. Entries whose intervals overlap are never
    ordered by each other, so an entry ranks below exactly those it is clearly worse than. An entry
    without an interval (n < 2) has the single point mean; an entry without a mean has no rank."""
    out = pd.Series(np.nan, index=s.index)
    for _, g in s.groupby(["dataset", "metric", "protocol_id"], sort=False, dropna=False):
        sign = 1.0 if bool(g["higher_is_better"].iloc[0]) else -1.0
        score = sign * g["mean"].astype(float)           # higher is better after the sign flip
        a = sign * g["ci_low"].astype(float).fillna(g["mean"])
        b = sign * g["ci_high"].astype(float).fillna(g["mean"])
        low, high = np.minimum(a, b), np.maximum(a, b)
        for i in g.index:
            if math.isnan(score[i]):
                continue
            out[i] = 1 + int((low > high[i]).sum())
    return out


def _decimals(values: pd.Series) -> int:
    """Decimals giving three significant figures to the largest value of a column."""
    top = values.abs().max()
    if not top or math.isnan(top):
        return 3
    return max(0, 3 - math.ceil(math.log10(top) + 1e-12))


def _fmt(mean: float, low: float, high: float, digits: int) -> str:
    if math.isnan(mean):
        return "—"
    text = f"{mean:.{digits}f}"
    return text if math.isnan(low) else f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


RUN_COLUMNS = {  # per-run fields shown per setting: (column, aggregate over runs)
    "stability.best_final_gap": ("best−final", "mean"),
    "timing.samples_per_s": ("img/s", "mean"),
    "timing.peak_memory_mb": ("peak MB", "max"),
}


def resolve_baseline(s: pd.DataFrame, name: str) -> str:
    """The label of the baseline entry: a label, or a model name that has exactly one label."""
    labels = list(dict.fromkeys(s["label"]))
    if name in labels:
        return name
    by_model = list(dict.fromkeys(s.loc[s["model"] == name, "label"]))
    if len(by_model) == 1:
        return by_model[0]
    if by_model:
        raise UserError(f"--baseline {name!r}: that model has several settings ({', '.join(by_model)}); give one label")
    raise UserError(f"--baseline: no setting {suggest(name, labels)}")


def significance(s: pd.DataFrame, final: pd.DataFrame, baseline: str,
                 test: str = "welch") -> tuple[pd.DataFrame, list[str]]:
    """Per summary row: ``test`` of its seed values against the baseline entry with the same
    dataset, metric and protocol. Adds p, g (Hedges' g, positive = better in the metric's direction)
    and p_improve (probability that a seed of the row beats a seed of the baseline); notes say
    which rows could not be tested and why."""
    run_test = TESTS[test].fn
    ok = final[final["status"] == "ok"]
    values = {k: pd.to_numeric(g["value"], errors="coerce").dropna().to_numpy()
              for k, g in ok.groupby(GROUP + ["metric", "protocol_id"], sort=False, dropna=False)}
    s = s.assign(is_baseline=False, p=math.nan, g=math.nan, p_improve=math.nan)
    notes = []
    for (dataset, metric, pid), grp in s.groupby(["dataset", "metric", "protocol_id"], sort=False, dropna=False):
        base = grp[grp["label"] == baseline].sort_values("n", ascending=False, kind="stable")
        if base.empty:
            others = ", ".join(dict.fromkeys(grp["label"]))
            notes.append(f"{dataset} · {metric}: no result of {baseline} under protocol {pid}, "
                         f"so no test for {others}")
            continue
        b = base.iloc[0]
        s.loc[b.name, "is_baseline"] = True
        y = values.get(tuple(b[k] for k in GROUP) + (metric, pid), np.array([]))
        sign = 1.0 if bool(b["higher_is_better"]) else -1.0
        for i, r in grp.iterrows():
            if i == b.name:
                continue
            x = values.get(tuple(r[k] for k in GROUP) + (metric, pid), np.array([]))
            res = run_test(sign * x, sign * y)
            s.loc[i, ["p", "g", "p_improve"]] = [res["p"], res["g"], res["p_improve"]]
        if len(y) < 2:
            notes.append(f"{dataset} · {metric}: {baseline} has fewer than 2 finished seeds, so no test")
    return s, notes


def protocol_notes(s: pd.DataFrame, final: pd.DataFrame) -> list[str]:
    """One note per (dataset, metric) measured under several protocols, naming what differs."""
    notes = []
    pcols = [c for c in final.columns if c.startswith("protocol.")]
    for (dataset, metric), grp in s.groupby(["dataset", "metric"], sort=False):
        pids = list(dict.fromkeys(grp["protocol_id"]))
        if len(pids) < 2:
            continue
        rows = final[(final["dataset"] == dataset) & (final["metric"] == metric)]
        differ = [c.removeprefix("protocol.") for c in pcols
                  if rows.groupby("protocol_id")[c].first().astype(str).nunique() > 1]
        what = f" (they differ in {', '.join(differ)})" if differ else ""
        split = "; ".join(f"{pid}: {', '.join(dict.fromkeys(grp.loc[grp['protocol_id'] == pid, 'label']))}"
                          for pid in pids)
        notes.append(f"{dataset} · {metric}: values under {len(pids)} protocols{what} are shown on separate lines "
                     f"and never ranked or tested against each other ({split})")
    return notes


def _select_metrics(s: pd.DataFrame, metrics: list[str] | None) -> pd.DataFrame:
    """The summary rows of ``metrics`` (all without); a metric without results is a UserError."""
    if not metrics:
        return s
    unknown = [m for m in metrics if m not in set(s["metric"])]
    if unknown:
        raise UserError(f"--metric: no results for metric {suggest(unknown[0], set(s['metric']))}")
    return s[s["metric"].isin(metrics)]


def translation_notes(final: pd.DataFrame) -> list[str]:
    """Translation datasets without a ground truth say which metrics they cannot have."""
    if "protocol.transform" not in final.columns:
        return []
    untrue = set(final.loc[final["protocol.transform"] == NO_TRUTH, "dataset"])
    return [f"{d}: no ground truth and no labels, so no paired (mse, ssim), label or class metrics and no FID/KID in "
            f"classifier features; evaluation translates the training images of A/ and B/" for d in sorted(untrue)]


def comparison_table(df: pd.DataFrame, baseline: str | None = None, metrics: list[str] | None = None,
                     test: str = "welch") -> pd.DataFrame:
    """Wide table for people: one row per setting (and protocol), one ``mean [95% interval]`` column per
    metric (with ↑/↓), with ``baseline`` one test column per metric, then the stability and
    throughput columns. ``table.attrs["notes"]`` lists the lines kept apart or untested, and why."""
    final = final_rows(df)
    s = summarize(df)
    s = _select_metrics(s, metrics)
    notes = protocol_notes(s, final) + translation_notes(final)
    base = resolve_baseline(s, baseline) if baseline else None
    if base:
        s, more = significance(s, final, base, test)
        notes += more
    s["column"] = metric_column(s["metric"], s["higher_is_better"])
    digits = s.groupby("column")["mean"].transform(_decimals)
    s["cell"] = [_fmt(m, lo, hi, d) for m, lo, hi, d in zip(s["mean"], s["ci_low"], s["ci_high"], digits)]
    # Values under a protocol other than the one most entries of their dataset and metric share
    # (e.g. an old metric version) go on a line of their own, marked with the protocol.
    s["variant"] = s["protocol_id"].where(s["protocol_id"] != _dominant(s), "")
    index = GROUP + ["variant"]
    cells = s.pivot_table(index=index, columns="column", values="cell", aggfunc="first", sort=False)
    metric_cols = list(dict.fromkeys(s["column"]))
    columns = []
    if base:
        s["vs"] = [_test_cell(r) for _, r in s.iterrows()]
    for c in metric_cols:
        columns.append(c)
        if base:
            name = f"{c.rsplit(' ', 1)[0]} vs baseline"
            tests = s[s["column"] == c].pivot_table(index=index, values="vs", aggfunc="first", sort=False)
            cells = cells.join(tests.rename(columns={"vs": name}))
            columns.append(name)
    counts = s.groupby(index, sort=False).agg(n=("n", "max"), diverged=("diverged", "max"))
    table = counts.join(cells).join(_run_columns(final)).reset_index()
    table["setting"] = table["label"] + table["variant"].map(lambda v: f" [protocol {v}]" if v else "")
    extra = [name for name, _ in RUN_COLUMNS.values() if name in table.columns]
    order = {d: i for i, d in enumerate(dict.fromkeys(table["dataset"]))}  # datasets in order of first run
    table = table.sort_values("dataset", key=lambda c: c.map(order), kind="stable")
    out = table[["dataset", "setting", "n", "diverged"] + columns + extra].fillna("—").reset_index(drop=True)
    out.attrs["notes"] = notes
    out.attrs["baseline"] = base
    out.attrs["test"] = test
    out.attrs["gap_metrics"] = _gap_metrics(final)
    return out


def _dominant(s: pd.DataFrame) -> pd.Series:
    """Per row, the protocol most entries of its (dataset, metric) were evaluated under (first on ties)."""
    def most(ids: pd.Series) -> str:
        counts = ids.value_counts(sort=False)
        return counts.index[int(np.argmax(counts.to_numpy()))]
    return s.groupby(["dataset", "metric"], sort=False)["protocol_id"].transform(most)


def _test_cell(r) -> str:
    if r["is_baseline"]:
        return "baseline"
    if math.isnan(r["p"]):
        return "—"
    g = "—" if math.isnan(r["g"]) else f"{r['g']:+.2f}"  # no spread on either side: no effect size
    return f"p={r['p']:.2g} g={g} P={r['p_improve']:.2f}"


def _run_columns(final: pd.DataFrame) -> pd.DataFrame:
    """Per setting, the per-run stability and throughput fields aggregated over its runs, as text."""
    present = {c: v for c, v in RUN_COLUMNS.items() if c in final.columns}
    if not present:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=GROUP))
    runs = final.drop_duplicates("run_id")  # run-level fields repeat on each metric's row
    out = {}
    for col, (name, how) in present.items():
        values = pd.to_numeric(runs[col], errors="coerce")
        v = values.groupby([runs[k] for k in GROUP], sort=False, dropna=False).agg(how)
        d = 0 if name != "best−final" else _decimals(v)
        out[name] = v.map(lambda x: "—" if math.isnan(x) else f"{x:,.{d}f}")
    return pd.DataFrame(out)


def _gap_metrics(final: pd.DataFrame) -> list[str]:
    if "stability.metric" not in final.columns:
        return []
    return [m for m in dict.fromkeys(final["stability.metric"].dropna())]


def legend(table: pd.DataFrame, gap_metrics: list[str] | None = None) -> list[str]:
    """Lines explaining the columns of ``comparison_table``'s result (``gap_metrics``: those the
    best−final column follows, when several tables share one legend)."""
    lines = ["mean over seeds [95% interval of the mean: Student's t, cut to the values the metric can take]; "
             "diverged: how many of the n seeds diverged (they have no value)"]
    base = table.attrs.get("baseline")
    if base:
        name = {"welch": "Welch's t-test", "mannwhitney": "Mann-Whitney U test"}[table.attrs.get("test", "welch")]
        lines.append(f"vs baseline: {name} over seeds against {base} on the same dataset, metric and protocol; "
                     "p two-sided; g Hedges' g (positive: better); "
                     "P probability that a seed beats a seed of the baseline")
    if "best−final" in table.columns:
        gap = ", ".join(gap_metrics or table.attrs.get("gap_metrics", [])) or "the first metric"
        lines.append(f"best−final: how much worse the final value of {gap} is than the run's best evaluation "
                     "(mean over seeds)")
    if "img/s" in table.columns:
        lines.append("img/s: training samples per second (mean over seeds); peak MB: peak memory (max over seeds)")
    return lines


def metric_column(metric: pd.Series, higher_is_better: pd.Series) -> pd.Series:
    """``fid ↓``: each metric's name with the direction that is better."""
    return metric + " " + higher_is_better.astype(bool).map({True: "↑", False: "↓"})


def suites_of(df: pd.DataFrame) -> list[Suite]:
    """The suites that made the rows and carry a citation (``paper-...`` suites), found by name."""
    known = available_suites()
    names = dict.fromkeys(df["suite"].dropna()) if "suite" in df.columns else {}
    suites = [load_suite(str(known[name])) for name in names if name in known]
    return [s for s in suites if s.citation]


def published_table(df: pd.DataFrame, suites: list[Suite] | None = None) -> pd.DataFrame:
    """``published.comparison`` of every paper suite in the rows (or of ``suites``), one table."""
    suites = suites_of(df) if suites is None else suites
    parts = [published.comparison(final_rows(df), s, METRICS) for s in suites if s.published]
    if not parts:
        raise UserError("no published numbers for these results: run a paper-... suite "
                        "(`ganbench list suites`) into this folder")
    out = pd.concat(parts, ignore_index=True)
    out.attrs["suites"] = suites
    return out


def render_published(df: pd.DataFrame, fmt: str = "md", suites: list[Suite] | None = None) -> str:
    """Published numbers beside ganbench's with verdicts: csv keeps every number, the other formats
    show text cells, the legend, and each suite's citation and deviations."""
    form = FORMATS[fmt]
    c = published_table(df, suites)
    if form.table is None:
        return c.to_csv(index=False).rstrip("\n")
    return form.join([published.display(c)], published.legend(c.attrs["suites"]))


def render(df: pd.DataFrame, fmt: str = "md", baseline: str | None = None, metrics: list[str] | None = None,
           test: str = "welch") -> str:
    """The comparison table as text: ``md`` for people (with legend and notes), ``csv`` (one line
    per setting x metric with mean, std, ci95, n, rank and the tests) for programs, ``latex`` and
    ``html`` for papers and pages. A paper suite's citation and deviations follow its table."""
    form = FORMATS[fmt]
    if form.table is None:
        return long_table(df, baseline, metrics, test).to_csv(index=False).rstrip("\n")
    tables = comparison_tables(df, baseline, metrics, test)
    return form.join(tables, legend_lines(tables) + published.legend(suites_of(df))[1:])


def comparison_tables(df: pd.DataFrame, baseline: str | None = None, metrics: list[str] | None = None,
                      test: str = "welch") -> list[pd.DataFrame]:
    """``comparison_table`` of each block of datasets that share their metrics (see ``blocks``).

    ``baseline`` and ``metrics`` are checked against the whole folder; a block is tested against
    the baseline where the baseline has runs, and shows those of ``metrics`` it has."""
    if final_rows(df).empty:  # e.g. a folder whose only line was torn by a killed writer
        raise UserError("no final results to tabulate")
    if metrics or baseline:  # unknown or ambiguous names: one error, as comparison_table would give
        s = _select_metrics(summarize(df), metrics)
        if baseline:
            resolve_baseline(s, baseline)
            TESTS[test]
    out = []
    for part in blocks(df):
        names = set(part["metric"])
        mine = [m for m in metrics if m in names] if metrics else None
        if metrics and not mine:
            continue
        base = baseline if baseline and _has_setting(part, baseline) else None
        out.append(comparison_table(part, base, mine, test))
    return out


def legend_lines(tables: list[pd.DataFrame]) -> list[str]:
    """The legends and notes of several tables, each line once."""
    gaps = list(dict.fromkeys(m for t in tables for m in t.attrs.get("gap_metrics", [])))
    lines = list(dict.fromkeys(line for t in tables for line in legend(t, gaps)))
    return lines + list(dict.fromkeys(f"Note: {n}" for t in tables for n in t.attrs["notes"]))


def _has_setting(df: pd.DataFrame, name: str) -> bool:
    return bool((df["label"] == name).any() or (df["model"] == name).any())


def blocks(df: pd.DataFrame) -> list[pd.DataFrame]:
    """``df`` split by dataset into groups that share the same metrics (e.g. the 2-D datasets and
    the image datasets), in order of first appearance: one table each instead of one wide table of
    empty cells. A baseline or metric that a block lacks is looked for in the whole folder only."""
    final = final_rows(df)
    if final.empty:
        return [df]
    metric_sets = final.groupby("dataset", sort=False)["metric"].agg(lambda m: tuple(sorted(set(m))))
    groups: dict[tuple, list[str]] = {}
    for dataset, names in metric_sets.items():
        groups.setdefault(names, []).append(dataset)
    return [df[df["dataset"].isin(datasets)] for datasets in groups.values()]


def long_table(df: pd.DataFrame, baseline: str | None = None, metrics: list[str] | None = None,
               test: str = "welch") -> pd.DataFrame:
    """``summarize`` restricted to ``metrics``, with the tests against ``baseline`` when given."""
    s = summarize(df)
    s = _select_metrics(s, metrics)
    if baseline:
        s, _ = significance(s, final_rows(df), resolve_baseline(s, baseline), test)
    return s
