"""Slow end-to-end checks, kept out of the default run (`pytest -m slow` runs them)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ganbench.results.store import load_results
from ganbench.results.tables import long_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_suite_reproduces_the_committed_leaderboard(tmp_path):
    """`ganbench run` (the quick suite, as scripts/leaderboard.sh runs it) gives the committed
    results/leaderboard.csv again, every mean and std bit for bit (on a machine like the one that
    made it: the image rows depend on the CPU's convolution kernels and on the thread count, one per run here)."""
    out = tmp_path / "quick"
    run = subprocess.run([sys.executable, "-m", "ganbench", "run", "--suite", "quick", "--out", str(out), "--no-progress",
                          "--threads", "1"], capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stderr[-2000:]
    committed = pd.read_csv(ROOT / "results" / "leaderboard.csv")
    committed = committed[committed["suite"] == "quick"].set_index(["dataset", "label", "metric"])
    fresh = long_table(load_results(out)).set_index(["dataset", "label", "metric"])
    assert sorted(fresh.index) == sorted(committed.index)
    for column in ("mean", "std", "n", "diverged"):
        assert fresh[column].astype(float).to_dict() == committed.loc[fresh.index, column].astype(float).to_dict(), column
