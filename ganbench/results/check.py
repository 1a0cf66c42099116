"""Regression check of a results folder against a committed baseline file.

Rule: every (dataset, label, metric, protocol) present in both is one hypothesis of a family, and
the check fails when any of them is rejected at the family-wise error rate ``alpha`` (0.01 by
default) by Holm's step-down procedure:

- a metric: an exact one-sided permutation test that the new seeds' mean is worse than the baseline
  seeds' mean (statistic: the difference of means; every split of the pooled seeds into a "new" and
  a "baseline" group of the observed sizes is equally likely when nothing changed). It assumes only
  that seeds are exchangeable, so a metric that takes few values (modes) or a seed that sometimes
  drops modes needs no normal approximation and no floor. With more than ``EXACT`` splits it uses
  ``RESAMPLES`` random ones from a fixed generator, so the verdict is the same on every run.
- divergence: Fisher's exact one-sided test that the new runs diverge (or fail) more often, one
  hypothesis per setting, in the family only when a seed diverged on either side (a test that cannot
  reject is no hypothesis: Tarone's rule).

A setting whose new seeds all diverged has no mean to test and regressed. A baseline so small that
no result could be rejected (the smallest permutation p-value above alpha / family size) is refused,
since such a check could never fail.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ganbench.errors import UserError
from ganbench.io import atomic_write_json
from ganbench.results.formats import to_markdown
from ganbench.results.tables import final_rows, summarize

KEYS = ["dataset", "label", "metric", "protocol_id"]
FORMAT = 2
ALPHA = 0.01
EXACT = 100_000      # enumerate every split up to this many
RESAMPLES = 100_000  # random splits beyond it


def baseline_from(df: pd.DataFrame) -> dict:
    """A baseline document from result rows: one entry per setting x metric x protocol, with the
    value of every finished seed (in seed order) and the count of diverged ones."""
    s = _summary(df, "the results")
    for _, r in s.iterrows():  # a baseline entry without them could never be matched or read back
        if missing := [k for k in KEYS if not isinstance(r[k], str)]:
            raise UserError(f"the results: rows of metric {r['metric']!r} have no {' or '.join(missing)}; "
                            "not rows that ganbench wrote")
    values = seed_values(df)
    entries = [{k: r[k] for k in KEYS} | {"higher_is_better": bool(r["higher_is_better"]),
               "mean": _num(r["mean"]), "std": _num(r["std"]), "n": int(r["n"]), "diverged": int(r["diverged"]),
               "values": [float(v) for v in values.get(tuple(r[k] for k in KEYS), [])]}
               for _, r in s.iterrows()]
    return {"format": FORMAT, "entries": entries}


def seed_values(df: pd.DataFrame) -> dict[tuple, np.ndarray]:
    """Per (dataset, label, metric, protocol): the final values of the finished seeds, in seed order."""
    final = final_rows(df)
    ok = final[final["status"] == "ok"]  # final_rows gives them in seed order
    return {k: pd.to_numeric(g["value"], errors="coerce").dropna().to_numpy(dtype=float)
            for k, g in ok.groupby(KEYS, sort=False, dropna=False)}


def _summary(df: pd.DataFrame, what: str) -> pd.DataFrame:
    """``summarize``, refusing a label that stands for several configurations (their values would be
    compared with each other's)."""
    s = summarize(df)
    twice = s[s.duplicated(KEYS, keep=False)]
    if len(twice):
        r = twice.iloc[0]
        raise UserError(f"{what}: label {r['label']!r} on {r['dataset']} stands for several configurations; "
                        "give each its own label")
    return s


def write_baseline(df: pd.DataFrame, path: Path) -> None:
    doc = baseline_from(df)
    try:
        atomic_write_json(Path(path), doc)
    except OSError as e:
        raise UserError(f"cannot write baseline {path}: {e.strerror or e}") from None


REQUIRED = KEYS + ["higher_is_better", "mean", "std", "n", "diverged", "values"]


def load_baseline(path: Path) -> pd.DataFrame:
    """A baseline file as a DataFrame of entries; a missing, corrupt or malformed file is a UserError."""
    if not Path(path).is_file():
        raise UserError(f"baseline file not found: {path} (write one with `ganbench check DIR --update {path}`)")
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read baseline {path}: {e}") from None
    except ValueError as e:
        raise UserError(f"baseline {path} is not valid JSON: {e}") from None
    if isinstance(doc, dict) and doc.get("format") == 1:
        raise UserError(f"baseline {path} has format 1 (means and spreads only), but the check needs every seed's "
                        f"value: write it again from its results with `ganbench check DIR --update {path}`")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("entries"), list):
        raise UserError(f"baseline {path} is not a ganbench baseline "
                        f"(expected {{\"format\": {FORMAT}, \"entries\": [...]}})")
    entries = pd.DataFrame(doc["entries"])
    missing = [k for k in REQUIRED if k not in entries.columns]
    if entries.empty or missing:
        raise UserError(f"baseline {path} has no entries" if entries.empty else
                        f"baseline {path}: entries lack {', '.join(missing)}")
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
    count = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
    for i, e in enumerate(doc["entries"]):
        values = e["values"]
        if not (all(v is None or number(v) for v in (e["mean"], e["std"])) and count(e["n"]) and e["n"] >= 1
                and count(e["diverged"]) and e["diverged"] <= e["n"] and isinstance(e["higher_is_better"], bool)
                and isinstance(values, list) and all(number(v) for v in values)
                and len(values) == e["n"] - e["diverged"]):
            raise UserError(f"baseline {path}: entry {i} is malformed (mean and std numbers or null, n a count >= 1, "
                            "diverged a count <= n, higher_is_better true or false, values a list of the n - diverged "
                            "finished seeds' numbers)")
    if entries.duplicated(KEYS).any():
        raise UserError(f"baseline {path}: an entry appears twice (same dataset, label, metric and protocol)")
    return entries


def permutation_p(new, base) -> float:
    """One-sided p-value that ``new``'s mean is lower than ``base``'s (both signed so that higher is
    better): the share of the splits of the pooled values into groups of the two sizes whose "new"
    mean is as low as observed or lower. Exact up to ``EXACT`` splits, else ``RESAMPLES`` random
    splits from a fixed generator (p = (1 + hits) / (1 + RESAMPLES))."""
    new, base = np.asarray(new, dtype=float), np.asarray(base, dtype=float)
    if len(new) == 0 or len(base) == 0:
        return math.nan
    if np.ptp(np.concatenate([new, base])) == 0:  # every seed alike: nothing is worse
        return 1.0
    pooled = np.concatenate([new, base])
    tie = 1e-12 * max(1.0, float(np.abs(pooled).max()))
    if len(new) == 1:  # a split is the one value put in the new group (scipy wants 2 per group)
        return float(np.mean(pooled <= new[0] + tie))
    if len(base) == 1:  # ... or the one value left in the baseline group
        return float(np.mean(pooled >= base[0] - tie))
    splits = math.comb(len(new) + len(base), len(new))
    # The statistic is the new group's sum (for fixed group sizes it orders the splits as the difference
    # of means does): scipy counts ties within a tolerance relative to the statistic, which a difference
    # near 0 would make smaller than the rounding of equal sums added in another order.
    res = stats.permutation_test((new, base), _new_sum, permutation_type="independent", vectorized=True,
                                 alternative="less", n_resamples=EXACT if splits <= EXACT else RESAMPLES,
                                 rng=np.random.default_rng(0))
    return float(res.pvalue)


def _new_sum(x, y, axis):
    return x.sum(axis=axis)


def min_p(n_new: int, n_base: int) -> float:
    """The smallest p-value ``permutation_p`` can give for these group sizes."""
    splits = math.comb(n_new + n_base, n_new)
    return 1 / splits if splits <= EXACT else 1 / (1 + RESAMPLES)


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values (they control the family-wise error rate); NaN stays NaN
    and is not counted in the family."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - j) * p[i]))
        out[i] = running
    return out


def compare(df: pd.DataFrame, baseline: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Verdict per setting x metric (and per setting for divergence): ok or REGRESSED at family-wise
    error rate ``alpha``; raises UserError when nothing is comparable or nothing could fail."""
    if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise UserError(f"alpha must be a number in (0, 1), got {alpha}")
    new = _summary(df, "the results")
    both = new.merge(baseline, on=KEYS, suffixes=("", "_b"))
    _check_protocols(new, baseline)
    if both.empty:
        raise UserError("no setting of the results matches the baseline (different datasets, labels or metrics)")
    values = seed_values(df)
    out = []
    for _, r in both.iterrows():
        sign = 1.0 if r["higher_is_better_b"] else -1.0
        x = values.get(tuple(r[k] for k in KEYS), np.array([]))
        y = np.asarray(r["values"], dtype=float)
        out.append({**{c: r[c] for c in KEYS}, "baseline": r["mean_b"], "new": r["mean"],
                    "worse_by": sign * (r["mean_b"] - r["mean"]) if len(x) and len(y) else math.nan,  # > 0: worse
                    "n": len(x), "n_b": len(y), "p": permutation_p(sign * x, sign * y),
                    "no_value": len(x) == 0 and len(y) > 0})
    for (dataset, label), g in both.groupby(["dataset", "label"], sort=False):
        r = g.iloc[0]
        if r["diverged"] + r["diverged_b"] == 0:
            continue  # Tarone: a test that cannot reject is no hypothesis of the family
        table = [[r["diverged"], r["n"] - r["diverged"]], [r["diverged_b"], r["n_b"] - r["diverged_b"]]]
        out.append({"dataset": dataset, "label": label, "metric": "diverged", "protocol_id": "—",
                    "baseline": r["diverged_b"] / r["n_b"], "new": r["diverged"] / r["n"],
                    "worse_by": r["diverged"] / r["n"] - r["diverged_b"] / r["n_b"], "n": r["n"], "n_b": r["n_b"],
                    "p": float(stats.fisher_exact(table, alternative="greater").pvalue), "no_value": False})
    v = pd.DataFrame(out)
    family = int(v["p"].notna().sum())
    means = v[(v["metric"] != "diverged") & v["p"].notna()]
    if len(means) == family and min(min_p(a, b) for a, b in zip(means["n"], means["n_b"])) > alpha / family:
        t = means.iloc[0]
        raise UserError(f"this check could never fail: with {t['n_b']} baseline seeds and {t['n']} new ones the "
                        f"smallest possible p-value is {min_p(t['n'], t['n_b']):.3g}, above alpha / {family} tests "
                        f"= {alpha / family:.3g}; build the baseline from more seeds, or run more new ones")
    v["p_holm"] = holm(v["p"])
    v["verdict"] = np.where(v["no_value"] | (v["p_holm"] <= alpha), "REGRESSED", "ok")
    v.attrs["alpha"], v.attrs["family"] = alpha, family
    return v.drop(columns=["no_value"])


def _check_protocols(new: pd.DataFrame, baseline: pd.DataFrame) -> None:
    """A setting x metric present in both but under no common protocol cannot be checked: raise."""
    key = ["dataset", "label", "metric"]
    pairs = new[key + ["protocol_id"]].merge(baseline[key + ["protocol_id"]], on=key, suffixes=("", "_b"))
    if pairs.empty:
        return
    pairs["same"] = pairs["protocol_id"] == pairs["protocol_id_b"]
    bad = pairs.groupby(key, sort=False).filter(lambda g: not g["same"].any()).drop_duplicates(key)
    if len(bad):
        r = bad.iloc[0]
        raise UserError(f"incompatible protocols: {r['label']} {r['dataset']} {r['metric']} was evaluated under "
                        f"protocol {r['protocol_id']} but the baseline under {r['protocol_id_b']}"
                        f"{f' ({len(bad) - 1} more)' if len(bad) > 1 else ''}; write a new baseline or evaluate "
                        "under the baseline's protocol")


def check(df: pd.DataFrame, baseline: pd.DataFrame, alpha: float = ALPHA) -> tuple[str, bool]:
    """The rule of ``ganbench check``: the verdict text, with the entries that were not compared,
    and whether any setting regressed."""
    verdicts = compare(df, baseline, alpha=alpha)
    return verdict_text(verdicts, not_compared(df, baseline)), bool((verdicts["verdict"] != "ok").any())


def not_compared(df: pd.DataFrame, baseline: pd.DataFrame) -> list[str]:
    """Baseline entries without new results, and new settings without a baseline entry."""
    new = summarize(df)
    keys = lambda d: {tuple(r) for r in d[KEYS].itertuples(index=False)}  # noqa: E731
    a, b = keys(new), keys(baseline)
    text = lambda k: f"{k[1]} {k[0]} {k[2]}"  # noqa: E731
    return ([f"not in the results: {text(k)}" for k in sorted(b - a)] +
            [f"not in the baseline: {text(k)}" for k in sorted(a - b)])


def _num(v):
    return None if pd.isna(v) else float(v)


def verdict_text(verdicts: pd.DataFrame, notes: list[str] = ()) -> str:
    """The verdict table as Markdown, with a closing line: ``ok: N comparisons; ...`` or the regressions."""
    fmt = lambda v: "—" if v is None or pd.isna(v) else f"{v + 0.0:.4g}"  # noqa: E731  (no "-0")
    table = pd.DataFrame({
        "dataset": verdicts["dataset"], "setting": verdicts["label"], "metric": verdicts["metric"],
        "protocol": verdicts["protocol_id"], "baseline": verdicts["baseline"].map(fmt), "new": verdicts["new"].map(fmt),
        "worse by": verdicts["worse_by"].map(fmt), "seeds": [f"{a} vs {b}" for a, b in zip(verdicts["n"], verdicts["n_b"])],
        "p": verdicts["p"].map(fmt), "p (Holm)": verdicts["p_holm"].map(fmt), "verdict": verdicts["verdict"],
    })
    failed = int((verdicts["verdict"] != "ok").sum())
    rule = (f"family-wise alpha {verdicts.attrs['alpha']:g} over {verdicts.attrs['family']} tests "
            "(one-sided permutation tests of the means, Holm)")
    last = f"{failed} regression(s) in {len(verdicts)} comparisons; {rule}" if failed else \
        f"ok: {len(verdicts)} comparisons; {rule}"
    return "\n".join([to_markdown(table), *notes, last])
