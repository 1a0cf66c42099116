"""Regression check of a results folder against a committed baseline file.

Rule, per (dataset, label, metric, protocol) present in both: let m_b, s_b, n_b be the baseline's
mean, standard deviation and number of seeds, and m the new mean over n seeds. The new runs regress
when they are worse than the baseline (in the metric's direction) by more than

    tol = max(k * s_b * sqrt(1/n_b + 1/n), floor)

with k = 3 by default. If the new seeds come from the baseline's distribution the difference of the
two means has standard deviation s_b * sqrt(1/n_b + 1/n), so with a known s_b a one-sided 3-sigma
threshold raises a false alarm with probability 1 - Phi(3) ~ 0.13% per metric and setting; with s_b
estimated from few seeds the tail is heavier (Student t with n_b - 1 degrees of freedom: about 4.8%
per comparison for n_b = 3), which the absolute floor keeps in check when s_b happens to be small.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ganbench.errors import UserError
from ganbench.store import atomic_write_json
from ganbench.tables import summarize

KEYS = ["dataset", "label", "metric", "protocol_id"]


def baseline_from(df: pd.DataFrame) -> dict:
    """A baseline document from result rows: one entry per setting x metric x protocol."""
    s = summarize(df)
    entries = [{k: r[k] for k in KEYS} | {"higher_is_better": bool(r["higher_is_better"]),
               "mean": _num(r["mean"]), "std": _num(r["std"]), "n": int(r["n"])}
               for _, r in s.iterrows()]
    return {"format": 1, "entries": entries}


def write_baseline(df: pd.DataFrame, path: Path) -> None:
    atomic_write_json(Path(path), baseline_from(df))


def load_baseline(path: Path) -> pd.DataFrame:
    try:
        doc = json.loads(Path(path).read_text())
        return pd.DataFrame(doc["entries"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"cannot read baseline {path}: {e}") from None


def compare(df: pd.DataFrame, baseline: pd.DataFrame, k: float = 3.0, floor: float = 1e-3) -> pd.DataFrame:
    """Verdict per setting x metric: ok, regressed; raises UserError when nothing is comparable."""
    new = summarize(df)
    both = new.merge(baseline, on=KEYS, suffixes=("", "_b"))
    if both.empty:
        raise UserError("no setting of the results matches the baseline (different settings or protocols)")
    out = []
    for _, r in both.iterrows():
        sign = 1.0 if r["higher_is_better_b"] else -1.0
        s_b = r["std_b"] if r["std_b"] is not None and not pd.isna(r["std_b"]) else 0.0
        tol = max(k * s_b * math.sqrt(1 / r["n_b"] + 1 / max(r["n"], 1)), floor)
        worse = sign * (r["mean_b"] - r["mean"])  # > 0: the new runs are worse
        bad = pd.isna(r["mean"]) or worse > tol
        out.append({**{c: r[c] for c in KEYS}, "baseline": r["mean_b"], "new": r["mean"],
                    "worse_by": worse, "tolerance": tol, "verdict": "REGRESSED" if bad else "ok"})
    return pd.DataFrame(out)


def _num(v):
    return None if pd.isna(v) else float(v)
