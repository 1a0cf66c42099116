"""Metrics in the DINOv2 and CLIP feature spaces, CMMD, and the diversity scores' records.

- ``fd_dinov2``, ``kid_dinov2``, ``precision_dinov2``, ``recall_dinov2``, ``density_dinov2``,
  ``coverage_dinov2``: FID's Fréchet distance, torch-fidelity's KID and the k-NN metrics on DINOv2
  embeddings (Stein et al. 2023); the same with ``_clip`` on CLIP embeddings (Kynkäänniemi et al.
  2023). 10,000 generated images against the first 10,000 of the reference split, as for Inception.
- ``cmmd`` (Jayasumana et al. 2024): the biased (V-statistic) MMD^2 with the Gaussian kernel
  exp(-|x - y|^2 / (2 sigma^2)), sigma = 10, between unit-length CLIP ViT-L/14@336 embeddings of
  the generated and the reference images, times 1,000: the reference code's ``mmd``, to float
  rounding. A set against itself scores exactly 0.
- ``vendi_*`` and ``rke_modes_*`` (``ganbench.metrics.diversity``) of the generated samples alone:
  on DINOv2, CLIP and Inception embeddings, and ``vendi`` and ``rke_modes`` on 2-D points.
"""

from __future__ import annotations

import math

import numpy as np

from ganbench.errors import UserError
from ganbench.features.embedding import NUM_REAL
from ganbench.features.points import SIGMA_FACTOR, kernel_sigma
from ganbench.features.stats import as_features
from ganbench.metrics.base import Metric, register
from ganbench.metrics.diversity import rke_mode_count, vendi_cosine, vendi_gaussian
from ganbench.metrics.image import KID_SUBSET_SIZE, KID_SUBSETS, MIN_COV, MIN_KNN, SEED, fid_checked, memo
from ganbench.metrics.kernel import kid as _kid
from ganbench.metrics.modes import NUM_POINTS
from ganbench.metrics.prdc import prdc

NUM_FAKE = 10_000
CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0
CMMD_BLOCK = 4096  # rows per block of the kernel sums
# RKE bandwidth on unit-length embeddings (orthogonal ones are sqrt(2) apart); on 2-D points see ganbench.features.points
RKE_SIGMA_EMBEDDING = 0.5


def cmmd_value(x, y, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE) -> float:
    """scale * (mean k(x, x') + mean k(y, y') - 2 mean k(x, y)) over all pairs, diagonals included,
    k the Gaussian kernel of bandwidth sigma: the CMMD reference's ``mmd`` (on its inputs as given;
    the extractor makes them unit length). Sums in float64, one block of rows at a time."""
    x, y = as_features(x, "generated embeddings"), as_features(y, "reference embeddings")
    if x.shape[1] != y.shape[1]:
        raise UserError(f"embedding dimensions differ: {x.shape[1]} and {y.shape[1]}")
    if not len(x) or not len(y):
        raise UserError("CMMD needs at least one generated and one reference embedding")
    gamma = 1.0 / (2.0 * sigma ** 2)

    def mean_kernel(a: np.ndarray, b: np.ndarray) -> float:
        b_sq = (b * b).sum(1)
        total = 0.0
        for s in range(0, len(a), CMMD_BLOCK):
            blk = a[s:s + CMMD_BLOCK]
            d2 = (blk * blk).sum(1)[:, None] + b_sq[None, :] - 2.0 * (blk @ b.T)
            total += float(np.exp(-gamma * d2).sum())
        return total / (len(a) * len(b))

    return scale * (mean_kernel(x, x) + mean_kernel(y, y) - 2.0 * mean_kernel(x, y))


def _prdc(f):
    return memo(f, "prdc", lambda: prdc(f.fake, f.real))


def _kid_result(f):
    return memo(f, "kid", lambda: _kid(f.fake, f.real, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=SEED))


def _unit(x: np.ndarray) -> np.ndarray:
    x = as_features(x, "embeddings")
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-300)


def _vendi(f) -> float:
    return memo(f, "vendi", lambda: vendi_cosine(f.fake))


def _rke(f) -> float:
    return memo(f, "rke", lambda: rke_mode_count(_unit(f.fake), RKE_SIGMA_EMBEDDING))


INF = math.inf
_VENDI_PARAMS = (("kernel", "cosine"), ("order", 1))
_RKE_PARAMS = (("kernel", "gaussian, unit-length embeddings"), ("sigma", RKE_SIGMA_EMBEDDING), ("order", 2))


def _space(features: str, suffix: str, label: str) -> list[Metric]:
    """The FD, KID and k-NN metrics and the diversity scores in one embedding space."""
    common = dict(features=features, num_fake=NUM_FAKE)
    return [
        Metric(name=f"fd_{suffix}", min_fake=MIN_COV, fn=lambda f: fid_checked(f.fake, f.real, f"fd_{suffix}"), higher_is_better=False,
               num_real=NUM_REAL, range=(0, INF), **common, description=f"Fréchet distance of {label} embeddings"),
        Metric(name=f"kid_{suffix}", min_fake=KID_SUBSET_SIZE, fn=lambda f: _kid_result(f).mean, higher_is_better=False, num_real=NUM_REAL,
               **common, description=f"KID of {label} embeddings, mean over 100 subsets of 1,000"),
        Metric(name=f"precision_{suffix}", min_fake=MIN_KNN, fn=lambda f: _prdc(f).precision, higher_is_better=True, num_real=NUM_REAL,
               range=(0, 1), **common, description=f"improved precision, k = 3, {label} embeddings"),
        Metric(name=f"recall_{suffix}", min_fake=MIN_KNN, fn=lambda f: _prdc(f).recall, higher_is_better=True, num_real=NUM_REAL,
               range=(0, 1), **common, description=f"improved recall, k = 3, {label} embeddings"),
        Metric(name=f"density_{suffix}", min_fake=MIN_KNN, fn=lambda f: _prdc(f).density, higher_is_better=True, num_real=NUM_REAL,
               range=(0, INF), **common, description=f"density, k = 5, {label} embeddings"),
        Metric(name=f"coverage_{suffix}", min_fake=MIN_KNN, fn=lambda f: _prdc(f).coverage, higher_is_better=True, num_real=NUM_REAL,
               range=(0, 1), **common, description=f"coverage, k = 5, {label} embeddings"),
    ] + _diversity(features, suffix, label)


def _diversity(features: str, suffix: str, label: str) -> list[Metric]:
    common = dict(features=features, num_fake=NUM_FAKE, num_real=0)
    return [
        Metric(name=f"vendi_{suffix}", fn=_vendi, higher_is_better=True, range=(1, INF), params=_VENDI_PARAMS,
               **common, description=f"Vendi score (cosine kernel) of the generated {label} embeddings"),
        Metric(name=f"rke_modes_{suffix}", fn=_rke, higher_is_better=True, range=(1, INF), params=_RKE_PARAMS,
               **common, description=f"RKE mode count (Gaussian kernel, sigma {RKE_SIGMA_EMBEDDING} on unit-length "
                                     f"embeddings) of the generated {label} embeddings"),
    ]


def points_sigma(dataset) -> float:
    """The Gaussian kernel's bandwidth of ``vendi`` and ``rke_modes`` on a 2-D dataset."""
    return kernel_sigma(dataset)


def _points_vendi(p) -> float:
    return memo(p, "vendi", lambda: vendi_gaussian(p.x, p.sigma))


def _points_rke(p) -> float:
    return memo(p, "rke", lambda: rke_mode_count(p.x, p.sigma))


_POINTS = dict(features="points", num_fake=NUM_POINTS, num_real=0)
for _m in (
    *_space("dinov2", "dinov2", "DINOv2"),
    *_space("clip", "clip", "CLIP"),
    Metric(name="cmmd", fn=lambda f: memo(f, "cmmd", lambda: cmmd_value(f.fake, f.real)), higher_is_better=False,
           features="clip_cmmd", num_fake=NUM_FAKE, num_real=NUM_REAL, range=(0, INF),
           params=(("kernel", "gaussian"), ("sigma", CMMD_SIGMA), ("scale", CMMD_SCALE), ("estimator", "biased")),
           description="CMMD: Gaussian-kernel MMD^2 (sigma 10, x1000) of unit-length CLIP ViT-L/14@336 embeddings"),
    *_diversity("inception", "inception", "Inception"),
    Metric(name="vendi", fn=_points_vendi, higher_is_better=True, range=(1, INF), **_POINTS,
           params=(("kernel", "gaussian"), ("sigma_factor", SIGMA_FACTOR), ("order", 1)),
           description=f"Vendi score of the generated points (Gaussian kernel, sigma {SIGMA_FACTOR:g} x the mixture's)"),
    Metric(name="rke_modes", fn=_points_rke, higher_is_better=True, range=(1, INF), **_POINTS,
           params=(("kernel", "gaussian"), ("sigma_factor", SIGMA_FACTOR), ("order", 2)),
           description=f"RKE mode count of the generated points (Gaussian kernel, sigma {SIGMA_FACTOR:g} x the mixture's)"),
):
    register(_m)
