"""Mode coverage of 2-D Gaussian mixtures (protocol of Metz et al. 2017, Srivastava et al. 2017).

Each generated point goes to its nearest mode centre; it is high quality when it lies within
3 sigma of it. ``modes`` counts modes with at least one high-quality point, ``hq`` is the fraction
of high-quality points, and ``kl`` is KL(p || uniform) in nats, p the histogram of high-quality
points over the modes.
"""

from __future__ import annotations

import math

import numpy as np

from ganbench.features.mode2d import ModeAssignment
from ganbench.metrics.base import Metric, register

NUM_POINTS = 2500


def mode_histogram(a: ModeAssignment) -> np.ndarray:
    """(K,) counts of high-quality points per mode."""
    return np.bincount(a.mode[a.high_quality], minlength=a.num_modes)


def modes_covered(a: ModeAssignment) -> float:
    return float(np.count_nonzero(mode_histogram(a)))


def high_quality_fraction(a: ModeAssignment) -> float:
    return float(np.mean(a.high_quality)) if len(a.mode) else 0.0


def kl_to_uniform(a: ModeAssignment) -> float:
    """KL(p || uniform over K) in nats; ln K (its maximum) when no point is high quality."""
    counts = mode_histogram(a)
    total = counts.sum()
    if total == 0:
        return math.log(a.num_modes)
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * a.num_modes)))


_MODE2D = dict(features="mode2d", num_fake=NUM_POINTS, num_real=0)
register(Metric(name="modes", fn=modes_covered, higher_is_better=True, range=(0, math.inf), **_MODE2D,
                description="modes with at least one high-quality point (2-D mixtures)"))
register(Metric(name="hq", fn=high_quality_fraction, higher_is_better=True, range=(0, 1), **_MODE2D,
                description="fraction of points within 3 sigma of a mode (2-D mixtures)"))
register(Metric(name="kl", fn=kl_to_uniform, higher_is_better=False, range=(0, math.inf), **_MODE2D,
                description="KL(high-quality mode histogram || uniform), nats (2-D mixtures)"))
