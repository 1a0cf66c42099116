"""Regression check on synthetic rows: a degraded setting fails, a noisy repeat passes."""

import pandas as pd
import pytest

from ganbench.check import compare, load_baseline, write_baseline
from ganbench.errors import UserError


def _rows(values, protocol="p1"):
    return pd.DataFrame([{"dataset": "ring8", "label": "ns", "model": "mlp", "loss": "ns", "group_id": "g",
                          "run_id": f"r{i}", "seed": i, "metric": "hq", "value": v, "higher_is_better": True,
                          "status": "ok", "final": True, "step": 1, "protocol_id": protocol}
                         for i, v in enumerate(values)])


def test_check_verdicts(tmp_path):
    path = tmp_path / "base.json"
    write_baseline(_rows([0.80, 0.82, 0.84]), path)   # mean 0.82, std 0.02
    base = load_baseline(path)
    tol = 3 * 0.02 * (2 / 3) ** 0.5
    ok = compare(_rows([0.78, 0.80, 0.82]), base)      # worse by 0.02 < tol ~ 0.049
    assert ok.loc[0, "verdict"] == "ok" and ok.loc[0, "tolerance"] == pytest.approx(tol)
    bad = compare(_rows([0.50, 0.52, 0.54]), base)     # worse by 0.30
    assert bad.loc[0, "verdict"] == "REGRESSED"
    with pytest.raises(UserError, match="protocols"):
        compare(_rows([0.8, 0.8], protocol="p2"), base)
