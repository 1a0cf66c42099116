"""Comparison tables: final results grouped by setting, mean ± std over seeds.

Tables are derived views of the rows in ``results.jsonl``; they never change the rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ganbench.errors import UserError

GROUP = ["dataset", "label", "model", "loss", "group_id"]


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The final evaluation of each run, one row per (run, metric); the newest wins on repeats."""
    if df.empty:
        return df
    final = df[df["final"].astype(bool)]
    return final.drop_duplicates(subset=["run_id", "metric"], keep="last")


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
        out.append({
            **dict(zip(keys, key)),
            "mean": ok.mean() if len(ok) else math.nan,
            "std": ok.std(ddof=1) if len(ok) > 1 else math.nan,
            "n": int(g["seed"].nunique()),
            "diverged": int((g["status"] != "ok").sum()),
            "ci95": ci_halfwidth(ok),
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


def ranks(s: pd.DataFrame) -> pd.Series:
    """Rank within (dataset, metric, protocol): 1 + the number of entries whose 95% interval lies
    entirely on the better side of this entry's interval. Entries whose intervals overlap are never
    ordered by each other, so an entry ranks below exactly those it is clearly worse than. An entry
    without an interval (n < 2) has the single point mean ± 0; an entry without a mean has no rank."""
    out = pd.Series(np.nan, index=s.index)
    for _, g in s.groupby(["dataset", "metric", "protocol_id"], sort=False, dropna=False):
        sign = 1.0 if bool(g["higher_is_better"].iloc[0]) else -1.0
        score = sign * g["mean"].astype(float)           # higher is better after the sign flip
        half = g["ci95"].astype(float).fillna(0.0)
        low, high = score - half, score + half
        for i in g.index:
            if math.isnan(score[i]):
                continue
            out[i] = 1 + int((low > high[i]).sum())
    return out


def welch(x, y) -> dict:
    """Welch's t-test of x against y (seed values), Hedges' g and P(X > Y) over all seed pairs."""
    x = np.asarray(pd.Series(x, dtype=float).dropna())
    y = np.asarray(pd.Series(y, dtype=float).dropna())
    if len(x) < 2 or len(y) < 2:
        return {"t": math.nan, "p": math.nan, "g": math.nan, "p_improve": math.nan}
    t, p = stats.ttest_ind(x, y, equal_var=False)
    pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
    d = (x.mean() - y.mean()) / pooled if pooled > 0 else math.nan
    g = d * (1 - 3 / (4 * (len(x) + len(y)) - 9))  # Hedges' small-sample correction
    diff = x[:, None] - y[None, :]
    p_improve = float((diff > 0).mean() + 0.5 * (diff == 0).mean())
    return {"t": float(t), "p": float(p), "g": float(g), "p_improve": p_improve}


def _decimals(values: pd.Series) -> int:
    """Decimals giving three significant figures to the largest value of a column."""
    top = values.abs().max()
    if not top or math.isnan(top):
        return 3
    return max(0, 3 - math.ceil(math.log10(top) + 1e-12))


def _fmt(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "—"
    text = f"{mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


def comparison_table(df: pd.DataFrame) -> pd.DataFrame:
    """Wide table for people: one row per setting, one ``mean ± std`` column per metric (with ↑/↓)."""
    s = summarize(df)
    s["column"] = s["metric"] + " " + s["higher_is_better"].map({True: "↑", False: "↓"})
    digits = s.groupby("column")["mean"].transform(_decimals)
    s["cell"] = [_fmt(m, sd, d) for m, sd, d in zip(s["mean"], s["std"], digits)]
    # A setting evaluated under two protocols (e.g. an old metric version) gets one line per protocol.
    s["protocols"] = s.groupby(GROUP + ["metric"])["protocol_id"].transform("nunique")
    s["variant"] = s["protocol_id"].where(s["protocols"] > 1, "")
    index = GROUP + ["variant"]
    wide = s.pivot_table(index=index, columns="column", values="cell", aggfunc="first", sort=False)
    counts = s.groupby(index, sort=False).agg(n=("n", "max"), diverged=("diverged", "max"))
    table = counts.join(wide).reset_index()
    table["setting"] = table["label"] + table["variant"].map(lambda v: f" [protocol {v}]" if v else "")
    metric_cols = list(dict.fromkeys(s["column"]))
    order = {d: i for i, d in enumerate(dict.fromkeys(table["dataset"]))}  # datasets in order of first run
    table = table.sort_values("dataset", key=lambda c: c.map(order), kind="stable")
    return table[["dataset", "setting", "n", "diverged"] + metric_cols].reset_index(drop=True)


def to_markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    cells = [[str(v) for v in row] for row in table.itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(cols)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cols), rule] + [line(r) for r in cells])


FORMATS = ("md", "csv")


def render(df: pd.DataFrame, fmt: str = "md") -> str:
    """The comparison table as text: ``md`` for people, ``csv`` (numeric mean/std/n) for programs."""
    if fmt == "md":
        return to_markdown(comparison_table(df))
    if fmt == "csv":
        return summarize(df).to_csv(index=False).rstrip("\n")
    raise UserError(f"unknown table format {fmt!r} (use {', '.join(FORMATS)})")
