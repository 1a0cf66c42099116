"""Streaming Gaussian statistics of features and the Fréchet distance between two Gaussians.

FID (Heusel et al. 2017) is the Fréchet distance between N(mu1, S1) and N(mu2, S2) fitted to two
sets of features:

    d^2 = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1^1/2 S2 S1^1/2)

All statistics are numpy float64; inputs may be numpy arrays or torch tensors of any float dtype.
``StreamingStats`` accumulates the mean and the unbiased covariance (ddof = 1, as ``numpy.cov``
and torch-fidelity) batch by batch in O(D^2) memory, and merges exactly across shards.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas, eigh, eigvalsh, lapack

from ganbench.errors import UserError

BATCH = 4096  # rows per update when statistics are computed from a whole array


def as_features(x, name: str = "features") -> np.ndarray:
    """(N, D) float64 numpy view or copy of a numpy array or torch tensor; UserError when not finite."""
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise UserError(f"{name} must have shape (N, D), got {x.shape}")
    _check_finite(x, name)
    return x


def _check_finite(x: np.ndarray, name: str) -> None:
    # A sum is NaN or Inf whenever any element is, without an (N, D) boolean temporary.
    if x.size and not np.isfinite(x.sum()):
        raise UserError(f"NaN or Inf in {name}")


class StreamingStats:
    """Mean and covariance of D-dimensional rows, updated batch by batch, in float64.

    Holds the count, the mean and the sum of centred outer products (M2); batches and shards are
    combined with Chan et al.'s pairwise update, which is exact in exact arithmetic and stable in
    floating point, so the result does not depend on the batch size beyond rounding.
    """

    def __init__(self, dim: int):
        if dim < 1:
            raise UserError(f"feature dimension must be positive, got {dim}")
        self.dim = dim
        self._n = 0.0  # total weight: the row count, or the sum of integer counts
        self._mean = np.zeros(dim)
        self._m2 = np.zeros((dim, dim))

    @classmethod
    def from_features(cls, x, *, rows=None, counts=None, batch_size: int = BATCH) -> StreamingStats:
        """Statistics of ``x[rows]`` (each row repeated ``counts`` times), in batches of rows.

        ``counts`` (N,) non-negative integer multiplicities weight each row as if it were repeated,
        which is how a bootstrap resample is evaluated without copying the features.
        """
        x = as_features(x)
        stats = cls(x.shape[1])
        if rows is None and counts is None:  # contiguous slices: no gather copies
            for start in range(0, len(x), batch_size):
                stats.update(x[start:start + batch_size])
            return stats
        idx = np.arange(len(x)) if rows is None else np.asarray(rows)
        w = None
        if counts is not None:
            counts = np.asarray(counts)
            if counts.shape != (len(x),) or (counts < 0).any():
                raise UserError(f"counts must be {len(x)} non-negative numbers, got shape {counts.shape}")
            idx = idx[counts[idx] > 0]  # rows drawn 0 times cost nothing
            w = counts[idx]
        for start in range(0, len(idx), batch_size):
            sl = slice(start, start + batch_size)
            stats.update(x[idx[sl]], None if w is None else w[sl])
        return stats

    def update(self, batch, counts=None) -> StreamingStats:
        """Add a (B, D) batch of rows (optionally weighted by integer ``counts`` (B,)); returns self."""
        batch = as_features(batch, "batch")
        if batch.shape[1] != self.dim:
            raise UserError(f"batch has {batch.shape[1]} features, statistics have {self.dim}")
        if len(batch) == 0:
            return self
        if counts is None:
            nb = float(len(batch))
            mb = batch.mean(axis=0)
            xc = batch - mb
        else:
            counts = np.asarray(counts, dtype=np.float64)
            nb = float(counts.sum())
            if nb == 0:
                return self
            mb = counts @ batch / nb
            xc = (batch - mb) * np.sqrt(counts)[:, None]
        # xc.T @ xc on one buffer lets numpy call syrk (half the flops of a general product)
        self._combine(nb, mb, xc.T @ xc)
        return self

    def merge(self, other: StreamingStats) -> StreamingStats:
        """Statistics of the union of both streams (a new object; neither operand changes)."""
        if not isinstance(other, StreamingStats) or other.dim != self.dim:
            raise UserError("can only merge statistics of the same feature dimension")
        out = StreamingStats(self.dim)
        out._n, out._mean, out._m2 = self._n, self._mean.copy(), self._m2.copy()
        out._combine(other._n, other._mean, other._m2)
        return out

    __add__ = merge

    def _combine(self, nb: float, mb: np.ndarray, m2b: np.ndarray) -> None:
        if nb == 0:
            return
        n = self._n + nb
        delta = mb - self._mean
        self._m2 += m2b
        self._m2 += np.outer(delta, delta * (self._n * nb / n))
        self._mean += delta * (nb / n)
        self._n = n

    @property
    def n(self) -> int:
        return int(round(self._n))

    @property
    def mean(self) -> np.ndarray:
        """(D,) float64."""
        if self._n == 0:
            raise UserError("statistics of no samples")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """(D, D) float64 unbiased covariance (ddof = 1)."""
        if self._n < 2:
            raise UserError(f"a covariance needs at least 2 samples, got {self.n}")
        return self._m2 / (self._n - 1)


def _check_stats(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu.detach().cpu() if hasattr(mu, "detach") else mu, dtype=np.float64)
    sigma = np.asarray(sigma.detach().cpu() if hasattr(sigma, "detach") else sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise UserError(f"{name}: need mu (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
    _check_finite(mu, f"{name} mean")
    _check_finite(sigma, f"{name} covariance")
    # Row sums equal column sums for a symmetric matrix: a cheap (cache-friendly) screen for
    # something that is not a covariance; eigh and Cholesky would read one triangle silently.
    scale = np.abs(sigma).sum(axis=1).max(initial=0.0)
    if np.abs(sigma.sum(axis=0) - sigma.sum(axis=1)).max(initial=0.0) > 1e-8 * scale:
        raise UserError(f"{name} covariance is not symmetric")
    return mu, sigma


class FrechetReference:
    """One side's statistics, factored once, for many distances against it (bootstrap, FID-inf).

    The cross term uses tr sqrt(S1^1/2 S2 S1^1/2) = sum sqrt(eig(L^T S2 L)) for any factor
    S1 = L L^T (the matrices share their non-zero eigenvalues), so only a symmetric eigenvalue
    problem is solved: L is the Cholesky factor when S1 is positive definite, else V sqrt(w)
    from S1's eigendecomposition with the numerically zero directions dropped.
    """

    def __init__(self, mu, sigma, name: str = "reference"):
        self.mu, self.sigma = _check_stats(mu, sigma, name)
        self._trace = float(np.trace(self.sigma))
        factor, info = lapack.dpotrf(self.sigma, lower=1, clean=1)
        self._cholesky = info == 0
        if not self._cholesky:  # semi-definite (fewer samples than dimensions) or indefinite
            w, v = eigh(self.sigma, driver="evd", check_finite=False)
            if w[0] < -1e-6 * np.abs(w).max():
                raise UserError(f"{name} covariance is not positive semi-definite "
                                f"(eigenvalues from {w[0]:.3g} to {w[-1]:.3g})")
            keep = w > len(w) * np.finfo(np.float64).eps * max(w[-1], 0.0)
            factor = v[:, keep] * np.sqrt(w[keep])
        self._factor = factor  # (D, r), S1 = L L^T

    @classmethod
    def from_features(cls, x) -> FrechetReference:
        s = StreamingStats.from_features(x)
        return cls(s.mean, s.cov)

    def trace_sqrt_product(self, sigma: np.ndarray) -> float:
        """tr sqrt(S1^1/2 sigma S1^1/2) for a symmetric positive semi-definite (D, D) sigma."""
        L = self._factor
        if L.shape[1] == 0:  # S1 = 0: a point mass
            return 0.0
        if self._cholesky:  # triangular products: half the flops of general ones
            m = blas.dtrmm(1.0, L, sigma, side=1, lower=1)  # sigma L
            m = blas.dtrmm(1.0, L, m, side=0, lower=1, trans_a=1, overwrite_b=1)  # L^T sigma L
        else:
            m = L.T @ (sigma @ L)
        eig = eigvalsh(m, driver="evd", check_finite=False, overwrite_a=True)
        return float(np.sqrt(np.clip(eig, 0.0, None)).sum())  # rounding can leave tiny negatives

    def distance(self, mu, sigma, name: str = "statistics") -> float:
        """Squared Fréchet distance to N(mu, sigma); never negative, never complex."""
        mu, sigma = _check_stats(mu, sigma, name)
        if mu.shape != self.mu.shape:
            raise UserError(f"feature dimensions differ: {len(self.mu)} and {len(mu)}")
        diff = self.mu - mu
        d2 = diff @ diff + self._trace + np.trace(sigma) - 2.0 * self.trace_sqrt_product(sigma)
        return max(float(d2), 0.0)  # a squared distance; rounding can take it a hair below 0


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (the FID formula)."""
    return FrechetReference(mu1, sigma1, "first").distance(mu2, sigma2, "second")


def fid(fake, real) -> float:
    """FID between two (N, D) feature arrays."""
    a, b = StreamingStats.from_features(fake), StreamingStats.from_features(real)
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)
