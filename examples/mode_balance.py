"""A new metric, registered from outside ganbench: the share of the worst-covered mode.

``modes`` counts the modes a 2-D sampler reaches and ``kl`` summarises the whole histogram;
neither says how starved the weakest mode is. ``mode_balance`` is the high-quality mass of the
least-visited mode relative to a uniform share: K * min_k p_k, where p is the histogram of
high-quality points over the K modes. It is 1 for a perfectly balanced sampler, 0 when any mode
is missed, and lies in [0, 1]. It reads the built-in ``mode2d`` features (each point's nearest
mode and its distance), so it is computed with the same 2,500 points as ``modes`` and ``hq``.

    ganbench list metrics --plugin examples/mode_balance.py
    ganbench run --plugin examples/mode_balance.py --dataset ring8 --model mlp --loss ns \\
        --set metrics=modes,hq,mode_balance
"""

from __future__ import annotations

from ganbench.features.mode2d import ModeAssignment
from ganbench.metrics import Metric, register
from ganbench.metrics.modes import NUM_POINTS, mode_histogram


def mode_balance(a: ModeAssignment) -> float:
    """K * the smallest share of high-quality points held by any mode (0 when none is high quality)."""
    counts = mode_histogram(a)
    total = counts.sum()
    if total == 0:
        return 0.0
    return float(a.num_modes * counts.min() / total)


register(Metric(
    name="mode_balance", fn=mode_balance, features="mode2d", higher_is_better=True,
    num_fake=NUM_POINTS, num_real=0, range=(0.0, 1.0),
    description="K x the worst mode's share of high-quality points (1: balanced, 0: a mode missed)",
))

