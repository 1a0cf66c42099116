"""Published numbers beside ganbench's: the ``[[published]]`` rows of a ``paper-...`` suite and
their verdicts.

A published row names one setting of its suite (label and dataset), where the number was printed
(table and row), how many runs it averages and whether its spread is a standard deviation or a
standard error. ganbench's number is the mean over the suite's seeds with its standard error. Only
rows of that suite, with exactly the suite's config for that setting and the metric's current
protocol, are compared; anything else is ``not comparable`` with the reason, so a published number
is never set beside a number made under another protocol.

Verdicts: ``consistent`` when the 95% interval of the difference contains 0 (Welch's t-test from
the two means, spreads and counts, two-sided, 5% level; when the paper gives no spread, Student's
t with ganbench's spread for both sides, which is the paper's under the hypothesis tested (the same
procedure), over the paper's n runs, or 1 when it does not say; an exact comparison when the paper
prints a spread of 0 and every seed gives the same value; one seed: Student's t with the paper's
spread), else ``better`` or ``worse`` in the metric's direction. A paper that prints no spread
against seeds that all give the same value leaves nothing to test: an unknown spread is not a
spread of 0 (a published mean of 6.8 modes says the paper's runs differed), so that row is ``not
comparable``.
Each line is one test at the 5% level; nothing is corrected for the number of lines.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ganbench.config import ADDED

LEVEL = 0.05  # two-sided significance level of the verdicts


def verdict(pub_mean: float, pub_se: float, pub_n: int, ours: np.ndarray,
            higher_is_better: bool) -> tuple[str, float, str]:
    """(verdict, two-sided p, the test that gave p) of ganbench's seed values ``ours`` against a
    published mean: Welch's t-test from the summary statistics, or an exact comparison when the
    paper printed a spread of 0 and ours has none either. When one side has no spread the test
    borrows the other's, which under the hypothesis tested (the same procedure) is its own:
    - one seed against a published spread: Student's t with the published runs' spread, the pooled
      two-sample test in which the one run adds no degrees of freedom (is it a run like the paper's?);
    - no published spread (``pub_se`` NaN): Student's t with ganbench's spread for the paper's runs
      too, t = (mean - pub_mean) / (sd sqrt(1/n + 1/pub_n)) on n - 1 degrees of freedom, a mean
      printed without its n taken as one run (the widest interval: the least eager to call a
      difference). Treating the published mean as exact (a one-sample t-test) would leave out its
      own sampling error and call differences too eagerly.
    ``untestable`` says when there is no test; this raises ValueError then."""
    why = untestable(pub_se, ours)
    if why:
        raise ValueError(why)
    ours = np.asarray(ours, dtype=float)
    n = len(ours)
    mean = float(ours.mean())
    sd = float(ours.std(ddof=1)) if n > 1 else 0.0
    if pub_se == 0 and sd == 0:
        p, test = (1.0 if mean == pub_mean else 0.0), "exact"
    elif n == 1:
        pub_n = max(pub_n, 2)  # (a standard error printed without n: as below)
        p = float(stats.ttest_ind_from_stats(mean, 0.0, 1, pub_mean, pub_se * math.sqrt(pub_n), pub_n,
                                             equal_var=True).pvalue)
        test = "t, published spread"
    elif math.isnan(pub_se):  # no published spread: the paper's runs spread as ours do
        t = (mean - pub_mean) / (sd * math.sqrt(1 / n + 1 / max(pub_n, 1)))
        p, test = float(2 * stats.t.sf(abs(t), n - 1)), "t, our spread"
    else:
        # Welch from summary statistics; a standard error printed without n is taken as from 2 runs,
        # the fewest that give one (the widest interval, so the least eager to call a difference)
        pub_n = max(pub_n, 2)
        p = float(stats.ttest_ind_from_stats(mean, sd, n, pub_mean, pub_se * math.sqrt(pub_n), pub_n,
                                             equal_var=False).pvalue)
        test = "Welch"
    return _named(p, mean, pub_mean, higher_is_better), p, test


def differing(rows: pd.DataFrame, cfg, most: int = 4) -> str:
    """The config keys on which ``rows`` (of one setting, other seeds aside) differ from the suite's
    ``cfg``: 'steps 20, suite 500000; ...'; a key the rows predate counts at its default."""
    want = cfg.to_dict()
    seen: dict[str, list] = {}
    for _, row in rows.drop_duplicates("group_id").iterrows():
        for key, value in want.items():
            got = row.get(f"config.{key}", math.nan)
            if isinstance(got, float) and math.isnan(got) and key in ADDED:
                got = ADDED[key]
            if key != "seed" and got != value and got not in seen.setdefault(key, []):
                seen[key].append(got)
    keys = [k for k in want if seen.get(k)]
    parts = [f"{k} {', '.join(map(repr, seen[k]))}, suite {want[k]!r}" for k in keys[:most]]
    return "; ".join(parts) + (f"; and {len(keys) - most} more" if len(keys) > most else "")


def untestable(pub_se: float, ours: np.ndarray) -> str:
    """Why ganbench's seed values ``ours`` cannot be tested against a published mean with standard
    error ``pub_se`` (NaN: none printed), or ''."""
    ours = np.asarray(ours, dtype=float)
    if len(ours) == 0:
        return "no finished seed"
    if not np.isfinite(ours).all():
        return "a seed's value is not finite"
    if math.isnan(pub_se) and len(ours) == 1:
        return "1 finished seed, and no published spread to test it against"
    if math.isnan(pub_se) and ours.std(ddof=1) == 0:
        return "no spread on either side (the paper printed none, every seed gave the same value), no test"
    return ""


def _named(p: float, mean: float, pub_mean: float, higher_is_better: bool) -> str:
    if p >= LEVEL:
        return "consistent"
    return "better" if (mean > pub_mean) == higher_is_better else "worse"


def _fmt(x: float, digits: int) -> str:
    return "—" if math.isnan(x) else f"{x:.{digits}f}"


def _digits(*values: float) -> int:
    top = max((abs(v) for v in values if not math.isnan(v)), default=0.0)
    if top == 0:
        return 2
    return min(4, max(1, 3 - math.ceil(math.log10(top) + 1e-12)))


def comparison(final: pd.DataFrame, suite, metrics) -> pd.DataFrame:
    """One line per (published row, metric) of ``suite``: published and ganbench numbers and a verdict.

    ``final``: the final rows of a results folder (``tables.final_rows``); ``metrics``: the metric
    registry, whose records give each metric's direction and current version. Seeds evaluated under
    different protocols (say, another classifier's weights) are never pooled: each protocol gets a
    line of its own, named in the ``protocol`` column. ``n`` counts the finished seeds behind the
    mean and its standard error; ``diverged`` the seeds that did not finish."""
    configs = {(label, cfg.dataset): cfg for label, cfg in suite.settings}
    rows = final[final["suite"] == suite.name] if "suite" in final.columns else final.iloc[0:0]
    out = []
    for pub in suite.published:
        cfg = configs.get((pub.setting, pub.dataset))
        for metric, pub_mean, pub_spread in pub.values:
            pub_se = pub.standard_error(pub_spread)
            mine = rows[(rows["label"] == pub.setting) & (rows["dataset"] == pub.dataset) & (rows["metric"] == metric)]
            line = {"suite": suite.name, "dataset": pub.dataset, "setting": pub.setting, "metric": metric,
                    "source": pub.source, "published_mean": pub_mean, "published_spread": pub_spread,
                    "published_spread_kind": pub.spread, "published_n": pub.n, "published_se": pub_se,
                    "protocol": "", "mean": math.nan, "se": math.nan, "n": 0, "diverged": 0, "p": math.nan,
                    "test": ""}
            reason = None
            if cfg is None:
                reason = f"suite has no setting {pub.setting!r} on {pub.dataset!r}"
            elif metric not in metrics:
                reason = f"unknown metric {metric!r}"
            elif mine.empty:
                reason = "not run yet"
            else:
                same = mine[mine["group_id"] == cfg.group_id]
                if same.empty:
                    reason = f"config differs from the suite's ({differing(mine, cfg)})"
                else:
                    current = same[same["protocol.metric_version"] == metrics[metric].version] \
                        if "protocol.metric_version" in same.columns else same
                    if current.empty:
                        reason = "evaluated under an older version of the metric"
                    mine = current
            if reason is not None:
                out.append({**line, "verdict": f"not comparable: {reason}"})
                continue
            for protocol, seeds in mine.groupby("protocol_id", sort=False, dropna=False):
                line["protocol"] = protocol if isinstance(protocol, str) else ""  # (NaN: rows without one)
                out.append(_tested(dict(line), seeds, pub.n, pub_mean, pub_se, metrics[metric].higher_is_better))
    return pd.DataFrame(out)


def _tested(line: dict, seeds: pd.DataFrame, pub_n: int, pub_mean: float, pub_se: float,
            higher_is_better: bool) -> dict:
    """``line`` with ganbench's mean, se, counts and verdict from the final rows ``seeds`` (one protocol)."""
    ok = pd.to_numeric(seeds.loc[seeds["status"] == "ok", "value"], errors="coerce").dropna().to_numpy()
    line.update(n=len(ok), diverged=int((seeds["status"] != "ok").sum()))
    if len(ok):
        line.update(mean=float(ok.mean()), se=float(ok.std(ddof=1) / math.sqrt(len(ok))) if len(ok) > 1 else math.nan)
    why = untestable(pub_se, ok)
    if why:
        return dict(line, verdict=f"not comparable: {why}")
    line["verdict"], line["p"], line["test"] = verdict(pub_mean, pub_se, pub_n, ok, higher_is_better)
    return line


def display(c: pd.DataFrame) -> pd.DataFrame:
    """``comparison`` as text columns for people: published mean ± spread (n) beside ganbench's mean ± se (n)."""
    out = []
    # a published number tested under several protocols: one line each, marked with its protocol
    key = ["suite", "dataset", "setting", "metric", "source"]  # one published number (papers.py refuses repeats)
    several = c.groupby(key, sort=False)["protocol"].transform("size") > 1 if len(c) else pd.Series(dtype=bool)
    for i, r in c.iterrows():
        d = _digits(r["published_mean"], r["mean"])
        kind = r["published_spread_kind"]
        pub = _fmt(r["published_mean"], d)
        if kind != "none":
            pub += f" ± {_fmt(r['published_spread'], d)} {kind}"
        pub += f" (n={r['published_n']})" if r["published_n"] else " (n not stated)"
        counts = f"n={r['n']}" + (f", {r['diverged']} diverged" if r["diverged"] else "")
        if math.isnan(r["mean"]):
            ours = f"— ({counts})" if r["diverged"] else "—"
        else:
            spread = "" if math.isnan(r["se"]) else f" ± {_fmt(r['se'], d)} se"
            ours = f"{_fmt(r['mean'], d)}{spread} ({counts})"
        tested = f"{r['verdict']} (p={r['p']:.2g}, {r['test']})" if r["test"] else r["verdict"]
        setting = r["setting"] + (f" [protocol {r['protocol']}]" if several[i] else "")
        out.append({"dataset": r["dataset"], "setting": setting, "metric": r["metric"],
                    "published": pub, "ganbench": ours, "verdict": tested, "source": r["source"]})
    return pd.DataFrame(out, columns=["dataset", "setting", "metric", "published", "ganbench", "verdict", "source"])


def legend(suites) -> list[str]:
    """The lines printed under a published comparison: how to read it, then each suite's citation and deviations."""
    lines = ["published: mean ± spread as printed (std or se) and the runs behind it; ganbench: mean ± standard "
             "error over the suite's finished seeds (n; seeds that diverged are counted apart); verdict: consistent "
             "when the difference is not significant at the 5% level (two-sided; Welch's t-test from both means, "
             "spreads and run counts; when the paper printed no spread, Student's t with ganbench's spread for the "
             "paper's runs too, over its n runs or 1 when it does not say; an exact comparison when the paper "
             "printed a spread of 0 and the seeds have none; for one seed Student's t with the paper's spread over its runs), else better or worse "
             "in the metric's direction; each line is a test of its own, with no correction for the number of lines"]
    for s in suites:
        lines.append(f"{s.name}: {s.citation}")
        lines += [f"{s.name} deviation: {d}" for d in s.deviations]
    return lines
