"""``mode2d``: each 2-D point assigned to its nearest mode of a Gaussian mixture (ring8, grid25).

The features of the mode-coverage metrics (``ganbench.metrics.modes``): the mode index of every
point and its distance to that mode in units of the mixture's sigma.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ganbench.errors import UserError
from ganbench.features.base import FeatureExtractor, register

HQ_RADIUS = 3.0  # a point is high quality when it lies within 3 sigma of its nearest mode


@dataclass(frozen=True)
class ModeAssignment:
    mode: np.ndarray  # (N,) int64 index of the nearest mode
    dist: np.ndarray  # (N,) float64 distance to it, in units of sigma
    num_modes: int  # K

    @property
    def high_quality(self) -> np.ndarray:
        """(N,) bool: within HQ_RADIUS sigma of the nearest mode."""
        return self.dist < HQ_RADIUS


def mode_assignment(samples: torch.Tensor, dataset) -> ModeAssignment:
    """Nearest mode centre of each 2-D point and its distance in sigma units."""
    means = getattr(dataset, "means", None)
    if means is None:
        raise UserError(f"dataset {dataset.name!r} has no mode centres; 2-D mode metrics need ring8 or grid25")
    if samples.dim() != 2 or samples.shape[1] != 2:
        raise UserError(f"2-D mode metrics need samples of shape (N, 2), got {tuple(samples.shape)}")
    x = samples.detach().to("cpu", torch.float64)
    dist = torch.cdist(x, means.to(torch.float64), compute_mode="donot_use_mm_for_euclid_dist")  # (N, K)
    nearest, idx = dist.min(dim=1)
    return ModeAssignment(idx.numpy(), (nearest / dataset.sigma).numpy(), len(means))


def _mixture_only(dataset) -> str | None:
    if getattr(dataset, "means", None) is None:
        return f"applies to 2-D Gaussian mixtures (ring8, grid25, ...), not to dataset {dataset.name!r}"
    return None


register(FeatureExtractor(
    name="mode2d", extract=mode_assignment, inputs="points", accepts=_mixture_only,
    description="nearest mode centre of each 2-D point and its distance in sigma units",
))
