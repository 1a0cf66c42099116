"""Kernel Inception Distance (Binkowski et al. 2018), exactly as torch-fidelity computes it.

KID is the unbiased estimate of MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over ``subsets`` random subsets of ``subset_size`` rows of
each set; the mean and the (population) standard deviation over subsets are reported.

The subsets are drawn by ``np.random.RandomState(seed)`` in torch-fidelity's order (for each
subset: generated rows, then real rows, each ``choice(n, subset_size, replace=False)``), so that
the same seed and features give torch-fidelity's values, with ``fake`` as its ``input1``.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from ganbench.errors import UserError
from ganbench.features.stats import as_features

SUBSETS = 100  # torch-fidelity's defaults
SUBSET_SIZE = 1000
SEED = 2020


class KID(NamedTuple):
    mean: float
    std: float  # over subsets (ddof = 0, as torch-fidelity)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """(n, m) kernel matrix (x y^T gamma + coef0)^degree; gamma defaults to 1 / D."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, **kernel) -> float:
    """Unbiased MMD^2 of two (m, D) samples: within-set sums without their diagonals."""
    m = len(x)
    k_xx = polynomial_kernel(x, x, **kernel)
    k_yy = polynomial_kernel(y, y, **kernel)
    k_xy = polynomial_kernel(x, y, **kernel)
    within = (k_xx.sum() - np.trace(k_xx)) + (k_yy.sum() - np.trace(k_yy))
    return float(within / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def subset_draws(n_fake: int, n_real: int, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE,
                 seed: int | np.random.RandomState = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row indices (fake, real) of each subset, in torch-fidelity's draw order."""
    if subset_size < 2 or subsets < 1:
        raise UserError(f"KID needs subset_size >= 2 and subsets >= 1, got {subset_size} and {subsets}")
    if min(n_fake, n_real) < subset_size:
        raise UserError(f"KID subset size {subset_size} is larger than a feature set "
                        f"({n_fake} generated, {n_real} real)")
    if seed is None:  # RandomState(None) would read the operating system's entropy
        raise UserError("KID needs an explicit seed")
    rng = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    draws = []
    for _ in range(subsets):
        f = rng.choice(n_fake, subset_size, replace=False)
        r = rng.choice(n_real, subset_size, replace=False)
        draws.append((f, r))
    return draws


def mmd2_subsets(fake: np.ndarray, real: np.ndarray,
                 draws: Sequence[tuple[np.ndarray, np.ndarray]], **kernel) -> np.ndarray:
    """(subsets,) unbiased MMD^2 of ``fake[f]`` and ``real[r]`` for each (f, r) in ``draws``."""
    return np.array([mmd2_unbiased(fake[f], real[r], **kernel) for f, r in draws])


def kid(fake, real, *, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE,
        seed: int | np.random.RandomState = SEED, degree: int = 3, gamma: float | None = None,
        coef0: float = 1.0) -> KID:
    """KID of (N, D) generated and (M, D) real features; randomness from ``seed`` only.

    Cost: 3 * subsets kernel matrices of subset_size^2 * D multiply-adds (about 1 minute at the
    defaults and D = 2048 on 2 CPU cores); memory: three subset_size^2 float64 matrices.
    """
    fake, real = as_features(fake, "generated features"), as_features(real, "real features")
    if fake.shape[1] != real.shape[1]:
        raise UserError(f"feature dimensions differ: {fake.shape[1]} and {real.shape[1]}")
    draws = subset_draws(len(fake), len(real), subsets, subset_size, seed)
    mmds = mmd2_subsets(fake, real, draws, degree=degree, gamma=gamma, coef0=coef0)
    return KID(float(np.mean(mmds)), float(np.std(mmds)))
