"""Divergence detection: every reason code on constructed histories, and the policy in training."""

import math

import pytest

from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.monitor import GRAD_LIMIT, PATIENCE, WORSE_EVALS, Monitor
from ganbench.train import train


def row(step, **over):
    base = {"step": step, "d_loss": 1.0 + step * 1e-3, "g_loss": 0.7 - step * 1e-3, "d_real": 0.1, "d_fake": -0.1,
            "grad_d": 1.0, "grad_g": 1.0, "lr_d": 1e-3, "lr_g": 1e-3, "step_time": 0.01}
    return {**base, **over}


def test_healthy_history_passes():
    m = Monitor(sigmoid_outputs=True)
    assert all(m.record(row(i)) is None for i in range(1, 50))
    assert len(m.history) == 49


@pytest.mark.parametrize("bad, code", [
    ({"d_loss": math.nan}, "non-finite:"),
    ({"grad_g": math.inf}, "non-finite:"),
    ({"grad_d": GRAD_LIMIT * 10}, "exploding-gradient:"),
])
def test_single_row_reasons(bad, code):
    m = Monitor(sigmoid_outputs=False)
    assert m.record(row(1)) is None
    assert m.record(row(2, **bad)).startswith(code)


def test_saturation_needs_patience_and_sigmoid_outputs():
    sat = {"d_real": 8.0, "d_fake": -8.0}  # sigmoid 0.9997 and 0.0003
    m = Monitor(sigmoid_outputs=True)
    reasons = [m.record(row(i, **sat)) for i in range(1, PATIENCE + 1)]
    assert reasons[:-1] == [None] * (PATIENCE - 1) and reasons[-1].startswith("saturated:")
    w = Monitor(sigmoid_outputs=False)  # a critic's raw scores are not probabilities
    assert all(w.record(row(i, **sat)) is None for i in range(1, 3 * PATIENCE))
    r = Monitor(sigmoid_outputs=True)  # an interruption resets the count
    for i in range(1, 3 * PATIENCE):
        assert r.record(row(i, **(sat if i % PATIENCE else {}))) is None


def test_frozen_losses():
    m = Monitor(sigmoid_outputs=False)
    reasons = [m.record(row(i, d_loss=0.5, g_loss=0.25)) for i in range(1, PATIENCE + 2)]
    assert reasons[-1].startswith("frozen:") and reasons[-2] is None


def test_metric_getting_worse():
    m = Monitor(sigmoid_outputs=False)
    assert m.evaluation(100, 8.0, True) is None
    assert m.evaluation(200, 9.0, True) is None
    got = [m.evaluation(300 + i, 8.0 - i, True) for i in range(WORSE_EVALS)]
    assert got[:-1] == [None] * (WORSE_EVALS - 1) and got[-1].startswith("metric-worse:")
    k = Monitor(sigmoid_outputs=False)  # lower is better: rising values are worse
    assert [k.evaluation(i, 0.1 * i, False) for i in range(WORSE_EVALS + 1)][-1].startswith("metric-worse:")


def test_continue_policy_trains_to_the_end():
    cfg = RunConfig(loss="wgan-gp", lr_d=1e12, lr_g=1e12, betas=(0.0, 0.0), steps=20, batch_size=32, width=16,
                    depth=1, divergence="continue")
    result = train(cfg, DATASETS["ring8"](cfg), __import__("torch").device("cpu"))
    assert result.steps_done == 20 and result.diverged.startswith("non-finite:")
    stopped = train(cfg.replace(divergence="stop"), DATASETS["ring8"](cfg), __import__("torch").device("cpu"))
    assert stopped.steps_done < 20
