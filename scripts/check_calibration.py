"""Measure the false-alarm rate and the power of `ganbench check` on a suite.

    python scripts/check_calibration.py [--suite ci] [--baseline baselines/ci.json] [--reruns 100]
                                        [--per 3] [--null-first 1000] [--degraded-first 2000]
                                        [--steps-fraction 0.3333] [--alpha 0.01] [--work DIR] [--jobs 2]

It trains the suite on reruns x per fresh seeds as it is (nothing changed: every failing re-run is
a false alarm) and on as many other seeds with every setting at a fraction of its steps (a stated
degradation: every passing re-run is a miss), both with `ganbench run --resume` so an interrupted
measurement continues. It then splits each set into disjoint re-runs of `per` consecutive seeds,
checks each against the baseline exactly as `ganbench check` does, and prints the family-wise
false-alarm rate and the detection rate with their 95 % Clopper-Pearson intervals, then the same
counts for the former rule (mean worse by more than 3 s_b sqrt(1/n_b + 1/n), floor 0.001) on the
same re-runs. Per-re-run verdicts go to WORK/calibration.csv.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from ganbench.config import load_suite
from ganbench.results.check import compare, load_baseline
from ganbench.results.store import load_results
from ganbench.results.tables import summarize


def train(suite: str, seeds: range, out: Path, jobs: int, overrides: list[tuple[str, int]] | None = None) -> None:
    """`ganbench run` of the suite on ``seeds`` (each setting with its own ``steps`` override when given)."""
    base = [sys.executable, "-m", "ganbench", "run", "--suite", suite, "--seeds", f"{seeds.start}-{seeds.stop - 1}",
            "--out", str(out), "--jobs", str(jobs), "--threads", "1", "--no-progress", "--resume"]
    for cmd in ([base + ["--setting", label, "--set", f"steps={steps}"] for label, steps in overrides]
                if overrides else [base]):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def former_rule(df: pd.DataFrame, baseline: pd.DataFrame, k: float = 3.0, floor: float = 1e-3) -> int:
    """How many comparisons the former k-sigma rule would have failed."""
    both = summarize(df).merge(baseline, on=["dataset", "label", "metric", "protocol_id"], suffixes=("", "_b"))
    sign = both["higher_is_better_b"].map({True: 1.0, False: -1.0})
    tol = (k * both["std_b"] * ((1 / both["n_b"] + 1 / both["n"]) ** 0.5)).clip(lower=floor)
    return int((sign * (both["mean_b"] - both["mean"]) > tol).sum())


def reruns(folder: Path, first: int, count: int, per: int, baseline: pd.DataFrame, alpha: float, kind: str) -> list[dict]:
    df = load_results(folder)
    out = []
    for i in range(count):
        seeds = set(range(first + i * per, first + (i + 1) * per))
        part = df[df["seed"].isin(seeds)]
        v = compare(part, baseline, alpha=alpha)
        bad = v[v["verdict"] != "ok"]
        out.append({"kind": kind, "seeds": f"{min(seeds)}-{max(seeds)}", "failed": len(bad),
                    "comparisons": len(v), "min_p_holm": float(v["p_holm"].min()),
                    "which": "; ".join(f"{r.label} {r.metric}" for r in bad.itertuples()),
                    "former_rule_failed": former_rule(part, baseline)})
    return out


def rate(k: int, n: int) -> str:
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"{k} of {n} ({100 * k / n:.1f} %, 95 % interval {100 * ci.low:.1f}-{100 * ci.high:.1f} %)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="ci")
    p.add_argument("--baseline", default="baselines/ci.json")
    p.add_argument("--reruns", type=int, default=100)
    p.add_argument("--per", type=int, default=3, help="seeds per re-run (as the CI job runs)")
    p.add_argument("--null-first", type=int, default=1000, help="first seed of the unchanged re-runs")
    p.add_argument("--degraded-first", type=int, default=2000, help="first seed of the degraded re-runs")
    p.add_argument("--steps-fraction", type=float, default=1 / 3, help="degradation: each setting at this share of its steps")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--work", default="/tmp/ganbench-check-calibration")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args(argv)
    work = Path(a.work)
    baseline = load_baseline(Path(a.baseline))
    n = a.reruns * a.per
    steps = {label: cfg.steps for label, cfg in load_suite(a.suite).runs()}
    degraded = [(label, max(1, round(s * a.steps_fraction))) for label, s in steps.items()]
    train(a.suite, range(a.null_first, a.null_first + n), work / "unchanged", a.jobs)
    train(a.suite, range(a.degraded_first, a.degraded_first + n), work / "degraded", a.jobs, degraded)
    rows = (reruns(work / "unchanged", a.null_first, a.reruns, a.per, baseline, a.alpha, "unchanged")
            + reruns(work / "degraded", a.degraded_first, a.reruns, a.per, baseline, a.alpha, "degraded"))
    table = pd.DataFrame(rows)
    table.to_csv(work / "calibration.csv", index=False)
    null, deg = table[table["kind"] == "unchanged"], table[table["kind"] == "degraded"]
    print(f"suite {a.suite}, baseline {a.baseline}, {a.reruns} re-runs of {a.per} seeds each, alpha {a.alpha:g}")
    print(f"false alarms (unchanged, seeds {a.null_first}-{a.null_first + n - 1}): "
          f"{rate(int((null['failed'] > 0).sum()), len(null))} re-runs; "
          f"{int(null['failed'].sum())} of {int(null['comparisons'].sum())} comparisons")
    print(f"detections ({', '.join(f'{label} at {s} steps' for label, s in degraded)}, seeds "
          f"{a.degraded_first}-{a.degraded_first + n - 1}): {rate(int((deg['failed'] > 0).sum()), len(deg))} re-runs")
    print(f"former 3-sigma rule on the same re-runs: false alarms "
          f"{rate(int((null['former_rule_failed'] > 0).sum()), len(null))}, detections "
          f"{rate(int((deg['former_rule_failed'] > 0).sum()), len(deg))}")
    if len(null[null["failed"] > 0]):
        print("false alarms:", "; ".join(f"{r.seeds}: {r.which}" for r in null[null["failed"] > 0].itertuples()))
    print(f"per-re-run verdicts: {work / 'calibration.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
