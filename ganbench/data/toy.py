"""2-D Gaussian mixtures of the mode-collapse benchmark (protocol in the README).

- ``ring8``: 8 modes at (cos 2πi/8, sin 2πi/8), i = 0..7, σ = 0.01.
- ``grid25``: 25 modes at {-4, -2, 0, 2, 4}², σ = 0.05.
- ``ring8-linspace``: the ring of the Unrolled-GAN, VEEGAN and GDPP code, means
  (sin θ, cos θ) for θ = np.linspace(0, 2π, 8), σ = 0.01. θ = 0 and θ = 2π are the same point, so
  the 8 components sit at 7 locations (spacing 2π/7) and the top one has twice the weight. Their
  evaluation keeps all 8 means, and the two at the top differ in the 16th decimal ((0, 1) and
  (-2.4e-16, 1)): nearest-mean assignment splits that location by the sign of x, so covering the 7
  locations counts as 8 modes. ganbench builds the means the same way in float64 and counts alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch

from ganbench.data.base import DATASETS, Batch

MODE_METRICS = ("modes", "hq", "kl")


@dataclass(frozen=True)
class GaussianMixture2D:
    """Equal-weight isotropic Gaussians in the plane."""

    name: str
    means: torch.Tensor  # (K, 2) float64 mode centres
    sigma: float  # standard deviation of every mode
    shape: tuple[int, ...] = (2,)
    bounded: bool = False
    num_classes: int = 0
    default_metrics: tuple[str, ...] = MODE_METRICS

    def sample(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
        """(n, 2) float32 points: a uniformly chosen mode plus σ-scaled standard normal noise."""
        means = self.means.to(device=device, dtype=torch.float32)
        idx = torch.randint(len(means), (n,), generator=generator, device=device)
        noise = torch.randn(n, 2, generator=generator, device=device)
        return means[idx] + self.sigma * noise

    def batches(self, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[Batch]:
        while True:
            yield self.sample(batch_size, generator, device), None


def ring_means(k: int = 8, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)  # no repeated endpoint
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def linspace_ring_means(k: int = 8, radius: float = 1.0) -> torch.Tensor:
    """np.linspace(0, 2π, k) angles, endpoint included, as (r sin θ, r cos θ): k - 1 distinct points."""
    angles = torch.linspace(0, 2 * math.pi, k, dtype=torch.float64)
    return radius * torch.stack([torch.sin(angles), torch.cos(angles)], dim=1)


def grid_means(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


@DATASETS.register("ring8")
def ring8(cfg=None) -> GaussianMixture2D:
    """8 Gaussians on the unit circle, sigma 0.01 (2-D mode coverage)"""
    return GaussianMixture2D("ring8", ring_means(8), 0.01)


@DATASETS.register("grid25")
def grid25(cfg=None) -> GaussianMixture2D:
    """25 Gaussians on the grid {-4,-2,0,2,4}^2, sigma 0.05 (2-D mode coverage)"""
    return GaussianMixture2D("grid25", grid_means(5), 0.05)


@DATASETS.register("ring8-linspace")
def ring8_linspace(cfg=None) -> GaussianMixture2D:
    """The Unrolled-GAN/VEEGAN/GDPP ring: np.linspace(0, 2pi, 8), 7 distinct locations, sigma 0.01"""
    return GaussianMixture2D("ring8-linspace", linspace_ring_means(8), 0.01)
