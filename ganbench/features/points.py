"""``points``: the samples of a low-dimensional dataset as they are, for kernel diversity scores.

The features of ``vendi`` and ``rke_modes`` on 2-D data (``ganbench.metrics.diversity``): the
(N, D) float64 coordinates and the Gaussian kernel's bandwidth, ``SIGMA_FACTOR`` times the spread
``sigma`` of the dataset's mixture components. Unlike ``mode2d`` it reads no mode centres.

Why 15: with the kernel's bandwidth at m times the component spread s, two points of one
component have E k^2 = 1 / (1 + 4 / m^2) (0.982 at m = 15), so a perfect sampler of K equal,
well-separated modes has an RKE mode count of K (1 + 4 / m^2) = 1.018 K; neighbouring modes stay
apart (ring8: 0.77 apart, bandwidth 0.15; grid25: 2 apart, bandwidth 0.75, k^2 = 8e-4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ganbench.errors import UserError
from ganbench.features.base import FeatureExtractor, register


SIGMA_FACTOR = 15.0


@dataclass(frozen=True, eq=False)
class Points:
    x: np.ndarray  # (N, D) float64
    sigma: float  # the Gaussian kernel's bandwidth, in the data's units
    memo: dict = field(default_factory=dict, repr=False)


def kernel_sigma(dataset) -> float:
    """The kernel bandwidth on ``dataset``: ``SIGMA_FACTOR`` times its components' spread."""
    return SIGMA_FACTOR * float(dataset.sigma)


def raw_points(samples: torch.Tensor, dataset) -> Points:
    if samples.dim() != 2:
        raise UserError(f"point metrics need samples of shape (N, D), got {tuple(samples.shape)}")
    return Points(samples.detach().to("cpu", torch.float64).numpy(), kernel_sigma(dataset))


def _with_spread(dataset) -> str | None:
    if getattr(dataset, "translation", False) or len(tuple(dataset.shape)) != 1:
        return None  # not vectors at all: FeatureExtractor.mismatch says so
    if not isinstance(getattr(dataset, "sigma", None), (int, float)) or not dataset.sigma > 0:
        return f"needs a mixture's component spread (sigma) for its kernel; dataset {dataset.name!r} has none"
    return None


register(FeatureExtractor(
    name="points", extract=raw_points, inputs="points", accepts=_with_spread,
    provenance=lambda dataset: {"sigma": kernel_sigma(dataset)},
    description=f"the samples' own coordinates, Gaussian kernel of {SIGMA_FACTOR:g} x the components' sigma",
))
