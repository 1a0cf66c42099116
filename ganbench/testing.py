"""Helpers for users' own test suites.

    from ganbench.testing import assert_no_regression

    def test_quality_did_not_regress():
        assert_no_regression("ci-results", "baselines/ci.json")
"""

from __future__ import annotations

from pathlib import Path

from ganbench.results.check import check, load_baseline
from ganbench.results.store import load_results


def assert_no_regression(results_dir, baseline, alpha: float = 0.01) -> None:
    """Raise ``AssertionError`` with the verdict table when a setting of ``results_dir`` regressed
    against the baseline file (the rule of ``ganbench check``); bad input raises ``UserError``."""
    table, regressed = check(load_results(Path(results_dir)), load_baseline(Path(baseline)), alpha=alpha)
    if regressed:
        raise AssertionError(f"regression against {baseline}:\n{table}")
