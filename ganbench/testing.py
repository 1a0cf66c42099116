"""Helpers for users' own test suites.

    from ganbench.testing import assert_no_regression

    def test_quality_did_not_regress():
        assert_no_regression("ci-results", "baselines/ci.json")
"""

from __future__ import annotations

from pathlib import Path

from ganbench.check import compare, load_baseline, not_compared, verdict_text
from ganbench.store import load_results


def assert_no_regression(results_dir, baseline, k: float = 3.0) -> None:
    """Raise ``AssertionError`` with the verdict table when a setting of ``results_dir`` regressed
    against the baseline file (the rule of ``ganbench check``); bad input raises ``UserError``."""
    df = load_results(Path(results_dir))
    base = load_baseline(Path(baseline))
    verdicts = compare(df, base, k=k)
    if (verdicts["verdict"] != "ok").any():
        table = verdict_text(verdicts, not_compared(df, base))
        raise AssertionError(f"regression against {baseline}:\n{table}")
