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
from ganbench.io import atomic_write_json
from ganbench.results.formats import to_markdown
from ganbench.results.tables import summarize

KEYS = ["dataset", "label", "metric", "protocol_id"]


def baseline_from(df: pd.DataFrame) -> dict:
    """A baseline document from result rows: one entry per setting x metric x protocol."""
    s = _summary(df, "the results")
    entries = [{k: r[k] for k in KEYS} | {"higher_is_better": bool(r["higher_is_better"]),
               "mean": _num(r["mean"]), "std": _num(r["std"]), "n": int(r["n"]), "diverged": int(r["diverged"])}
               for _, r in s.iterrows()]
    return {"format": 1, "entries": entries}


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


REQUIRED = KEYS + ["higher_is_better", "mean", "std", "n"]


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
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("entries"), list):
        raise UserError(f"baseline {path} is not a ganbench baseline (expected {{\"format\": 1, \"entries\": [...]}})")
    entries = pd.DataFrame(doc["entries"])
    missing = [k for k in REQUIRED if k not in entries.columns]
    if entries.empty or missing:
        raise UserError(f"baseline {path} has no entries" if entries.empty else
                        f"baseline {path}: entries lack {', '.join(missing)}")
    if "diverged" not in entries.columns:
        entries["diverged"] = 0
    for i, e in enumerate(doc["entries"]):
        number = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))  # noqa: E731
        count = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
        if not (number(e["mean"]) and number(e["std"]) and count(e["n"]) and e["n"] >= 1
                and count(e.get("diverged", 0)) and e.get("diverged", 0) <= e["n"]
                and isinstance(e["higher_is_better"], bool)):
            raise UserError(f"baseline {path}: entry {i} is malformed (mean and std numbers or null, n a count >= 1, "
                            "diverged a count <= n, higher_is_better true or false)")
    if entries.duplicated(KEYS).any():
        raise UserError(f"baseline {path}: an entry appears twice (same dataset, label, metric and protocol)")
    return entries


def compare(df: pd.DataFrame, baseline: pd.DataFrame, k: float = 3.0, floor: float = 1e-3) -> pd.DataFrame:
    """Verdict per setting x metric: ok, regressed; raises UserError when nothing is comparable.

    The means and spreads are over the seeds that finished; a larger share of diverged (or failed)
    seeds than the baseline's is a regression by itself."""
    if not (math.isfinite(k) and k > 0):
        raise UserError(f"k must be a number > 0, got {k}")
    new = _summary(df, "the results")
    both = new.merge(baseline, on=KEYS, suffixes=("", "_b"))
    _check_protocols(new, baseline)
    if both.empty:
        raise UserError("no setting of the results matches the baseline (different datasets, labels or metrics)")
    out = []
    for _, r in both.iterrows():
        sign = 1.0 if r["higher_is_better_b"] else -1.0
        s_b = r["std_b"] if r["std_b"] is not None and not pd.isna(r["std_b"]) else 0.0
        ok_b, ok = max(r["n_b"] - r["diverged_b"], 1), r["n"] - r["diverged"]  # seeds with a value
        tol = max(k * s_b * math.sqrt(1 / ok_b + 1 / max(ok, 1)), floor)
        worse = sign * (r["mean_b"] - r["mean"]) if r["mean_b"] is not None else math.nan  # > 0: worse
        more_diverged = r["diverged"] / r["n"] > r["diverged_b"] / r["n_b"]
        bad = pd.isna(r["mean"]) or worse > tol or more_diverged
        verdict = "REGRESSED" if bad else "ok"
        if more_diverged:
            verdict += f" (diverged {r['diverged']}/{r['n']}, baseline {r['diverged_b']}/{r['n_b']})"
        out.append({**{c: r[c] for c in KEYS}, "baseline": r["mean_b"], "new": r["mean"],
                    "worse_by": worse, "tolerance": tol, "verdict": verdict})
    return pd.DataFrame(out)


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


def check(df: pd.DataFrame, baseline: pd.DataFrame, k: float = 3.0) -> tuple[str, bool]:
    """The rule of ``ganbench check``: the verdict text, with the entries that were not compared,
    and whether any setting regressed."""
    verdicts = compare(df, baseline, k=k)
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
    """The verdict table as Markdown, with a closing line: ``ok: N comparisons`` or the regressions."""
    fmt = lambda v: "—" if v is None or pd.isna(v) else f"{v + 0.0:.4g}"  # noqa: E731  (no "-0")
    table = pd.DataFrame({
        "dataset": verdicts["dataset"], "setting": verdicts["label"], "metric": verdicts["metric"],
        "protocol": verdicts["protocol_id"], "baseline": verdicts["baseline"].map(fmt), "new": verdicts["new"].map(fmt),
        "worse by": verdicts["worse_by"].map(fmt), "tolerance": verdicts["tolerance"].map(fmt),
        "verdict": verdicts["verdict"],
    })
    failed = int((verdicts["verdict"] != "ok").sum())
    last = f"{failed} regression(s) in {len(verdicts)} comparisons" if failed else f"ok: {len(verdicts)} comparisons"
    return "\n".join([to_markdown(table), *notes, last])
