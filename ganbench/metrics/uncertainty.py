"""How much a sample-based metric would move with other samples: bootstrap intervals and FID-inf.

``bootstrap`` resamples the generated features with replacement (the real side is a fixed
reference) and reports a percentile interval, or Efron's bias-corrected one. A resample is a
vector of counts, one per row, so FID resamples are weighted statistics of the original array
(no copy of the features) and KID resamples are index maps into it.

``fid_infinity`` (Chong & Forsyth 2020) fits FID_N = a + b / N over random subsets of several
sizes N and reports a, the FID at infinitely many generated samples, free of FID's 1/N bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import norm

from ganbench.errors import UserError
from ganbench.features.stats import StreamingStats, as_features
from ganbench.metrics.frechet import FrechetReference
from ganbench.metrics.kernel import SEED as KID_SEED
from ganbench.metrics.kernel import SUBSET_SIZE, SUBSETS, mmd2_subsets, subset_draws

RESAMPLES = 100
CONFIDENCE = 0.95
FID_INF_POINTS = 15  # Chong & Forsyth: 15 sizes from N / 10 (5,000) to N (50,000)


@dataclass(frozen=True)
class Interval:
    value: float  # the statistic on the full sample
    low: float
    high: float
    confidence: float
    method: str  # "percentile" or "bc"
    resamples: np.ndarray  # (B,) the statistic on each resample


@dataclass(frozen=True)
class FidInfinity:
    value: float  # the fitted FID at 1 / N = 0
    slope: float  # FID_N ~ value + slope / N
    sizes: np.ndarray  # (P,) subset sizes N
    fids: np.ndarray  # (P,) FID of one random subset of each size


def _generator(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise UserError("resampling needs an explicit seed")
    return np.random.default_rng(seed)


def bootstrap(statistic: Callable[[np.ndarray], float], n: int, *, seed, resamples: int = RESAMPLES,
              confidence: float = CONFIDENCE, method: str = "percentile") -> Interval:
    """Bootstrap interval of ``statistic(counts)`` over resamples of n rows with replacement.

    ``counts`` (n,) int64 says how many times each row is in the resample (all ones: the
    sample itself). method "percentile" takes the alpha/2 and 1 - alpha/2 quantiles of the
    resampled values; "bc" shifts them by the median bias of the resamples (Efron 1981), which
    matters for FID: a resample holds about 63% distinct rows, so its FID is biased upward by
    about the estimator's own 1/N bias, and with many dimensions per sample the percentile
    interval can lie wholly above the estimate.
    """
    if n < 2 or resamples < 2 or not 0 < confidence < 1:
        raise UserError(f"bootstrap needs n >= 2, resamples >= 2 and 0 < confidence < 1, "
                        f"got {n}, {resamples}, {confidence}")
    if method not in ("percentile", "bc"):
        raise UserError(f"unknown bootstrap method {method!r} (known: bc, percentile)")
    rng = _generator(seed)
    value = float(statistic(np.ones(n, dtype=np.int64)))
    values = np.empty(resamples)
    for b in range(resamples):
        values[b] = statistic(np.bincount(rng.integers(0, n, n), minlength=n))
    alpha = (1.0 - confidence) / 2
    q = np.array([alpha, 1.0 - alpha])
    if method == "bc":
        below = (np.count_nonzero(values < value) + 0.5 * np.count_nonzero(values == value)) / resamples
        z0 = norm.ppf(np.clip(below, 0.5 / resamples, 1 - 0.5 / resamples))
        q = norm.cdf(2 * z0 + norm.ppf(q))
    low, high = np.quantile(values, q)
    return Interval(value, float(low), float(high), confidence, method, values)


def bootstrap_fid(fake, reference: FrechetReference, *, seed, resamples: int = RESAMPLES,
                  confidence: float = CONFIDENCE, method: str = "percentile") -> Interval:
    """Bootstrap interval of the FID of (N, D) generated features against a fixed reference.

    Each resample costs one weighted pass over its distinct rows (about 0.63 N D^2
    multiply-adds) plus one D x D symmetric eigenvalue problem; memory stays O(D^2 + 4096 D).
    """
    fake = as_features(fake, "generated features")

    def statistic(counts: np.ndarray) -> float:
        s = StreamingStats.from_features(fake, counts=counts)
        return reference.distance(s.mean, s.cov)

    return bootstrap(statistic, len(fake), seed=seed, resamples=resamples, confidence=confidence, method=method)


def bootstrap_kid(fake, real, *, seed, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE,
                  kid_seed: int = KID_SEED, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                  method: str = "percentile") -> Interval:
    """Bootstrap interval of KID's mean; its value is ``kid(fake, real, seed=kid_seed).mean``.

    Every resample reuses the same subset positions (drawn with ``kid_seed``), so the spread
    reflects the generated sample only, not the subset draw. A subset of a resample can hold
    one row twice, which the unbiased estimator counts as a pair of distinct points: resampled
    KIDs lean slightly upward, by about subset_size / (2 N) of a duplicate pair's excess kernel.
    """
    fake, real = as_features(fake, "generated features"), as_features(real, "real features")
    if fake.shape[1] != real.shape[1]:
        raise UserError(f"feature dimensions differ: {fake.shape[1]} and {real.shape[1]}")
    draws = subset_draws(len(fake), len(real), subsets, subset_size, kid_seed)
    all_rows = np.arange(len(fake))

    def statistic(counts: np.ndarray) -> float:
        rows = np.repeat(all_rows, counts)  # (N,) the resample as row indices into fake
        return float(mmd2_subsets(fake, real, [(rows[f], r) for f, r in draws]).mean())

    return bootstrap(statistic, len(fake), seed=seed, resamples=resamples, confidence=confidence, method=method)


def fit_inverse_n(sizes, values) -> tuple[float, float]:
    """Least-squares line values ~ a + b / N over the sizes N; returns (a, b)."""
    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or len(np.unique(x)) < 2:
        raise UserError("a 1/N fit needs one value per size and at least two distinct sizes")
    design = np.stack([np.ones_like(x), x], axis=1)  # (P, 2)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(a), float(b)


def fid_infinity(fake, reference: FrechetReference, *, seed, sizes=None,
                 num_points: int = FID_INF_POINTS) -> FidInfinity:
    """FID-inf of (N, D) generated features: FID of a fresh random subset (without replacement)
    at each size, then the 1/N line's intercept. Default sizes: ``num_points`` evenly spaced
    from N / 10 to N, as Chong & Forsyth's code (5,000 to 50,000 at N = 50,000)."""
    fake = as_features(fake, "generated features")
    n = len(fake)
    if sizes is None:
        sizes = np.linspace(max(2, n // 10), n, num_points)
    sizes = np.asarray(sizes).astype(np.int64)
    if sizes.ndim != 1 or len(sizes) == 0 or sizes.min() < 2 or sizes.max() > n:
        raise UserError(f"FID-inf sizes must lie in [2, {n}], got {sizes.tolist()}")
    rng = _generator(seed)
    fids = np.empty(len(sizes))
    for i, size in enumerate(sizes):
        rows = np.sort(rng.permutation(n)[:size])  # sorted: same subset, contiguous reads
        s = StreamingStats.from_features(fake, rows=rows)
        fids[i] = reference.distance(s.mean, s.cov)
    value, slope = fit_inverse_n(sizes, fids)
    return FidInfinity(value, slope, sizes, fids)
