"""Streaming Gaussian statistics of features and the Fréchet distance between two Gaussians.

FID (Heusel et al. 2017) is the Fréchet distance between N(mu1, S1) and N(mu2, S2) fitted to two
sets of features:

    d^2 = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1^1/2 S2 S1^1/2)

All statistics are numpy float64; inputs may be numpy arrays or torch tensors of any float dtype.
The mean and covariance come from ``ganbench.features.stats.StreamingStats``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas, eigh, eigvalsh, lapack

from ganbench.errors import UserError
from ganbench.features.stats import StreamingStats, check_finite


def _check_stats(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu.detach().cpu() if hasattr(mu, "detach") else mu, dtype=np.float64)
    sigma = np.asarray(sigma.detach().cpu() if hasattr(sigma, "detach") else sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise UserError(f"{name}: need mu (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
    check_finite(mu, f"{name} mean")
    check_finite(sigma, f"{name} covariance")
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
