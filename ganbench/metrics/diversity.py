"""Diversity scores that need no classifier: the Vendi score and the RKE mode count.

Both read the eigenvalues lambda_i of the normalised kernel matrix K / n of n samples (K_ii = 1,
so the lambda_i are >= 0 and sum to 1):

- Vendi score (Friedman & Dieng 2023), order 1: exp(-sum_i lambda_i log lambda_i), the exponential
  of the Shannon entropy of the eigenvalues (0 log 0 = 0). n identical samples score 1; n samples
  with orthogonal embeddings score n.
- RKE mode count (Jalali et al. 2023), the order-2 Renyi kernel entropy:
  1 / sum_i lambda_i^2 = n^2 / sum_ij K_ij^2 (the squared Frobenius norm of K / n). With a Gaussian
  kernel whose bandwidth is small against the distance between the modes of a mixture and large
  against their spread, it counts the modes, weighted by how evenly they are sampled.

Kernels: on embeddings, Vendi uses the cosine similarity (rows scaled to unit length, the
reference ``embedding_vendi_score`` and dgm-eval), whose eigenvalues are those of the (D, D)
matrix X^T X / n; on 2-D points, both use the Gaussian kernel exp(-|x - y|^2 / (2 sigma^2)).
RKE's sum of squared kernel entries is accumulated one block of rows at a time in float64, so no
(n, n) matrix is held.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigvalsh

from ganbench.errors import UserError
from ganbench.features.stats import as_features

BLOCK_BYTES = 64 * 2**20  # one block of the kernel matrix, float64


def entropy_exp(eigenvalues: np.ndarray) -> float:
    """exp(-sum l log l) over the non-negative eigenvalues (rounding below 0 is dropped)."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    lam = lam / lam.sum()
    nz = lam[lam > 0]
    return float(np.exp(-np.sum(nz * np.log(nz))))


def _unit_rows(x, name: str) -> np.ndarray:
    x = as_features(x, name)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise UserError(f"{name}: {int((norms == 0).sum())} rows are all zeros (no direction for a cosine kernel)")
    return x / norms


def vendi_cosine(x) -> float:
    """Vendi score of (n, D) embeddings under the cosine-similarity kernel, from the (D, D) matrix
    X^T X / n of the unit-length rows (the same non-zero eigenvalues as K / n)."""
    u = _unit_rows(x, "embeddings")
    return entropy_exp(eigvalsh(u.T @ u / len(u), driver="evd", check_finite=False))


def gaussian_kernel(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """(n, m) exp(-|x_i - y_j|^2 / (2 sigma^2)), float64."""
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    np.maximum(d2, 0.0, out=d2)
    return np.exp(d2 * (-0.5 / sigma ** 2), out=d2)


def _check_sigma(sigma: float) -> float:
    if not np.isfinite(sigma) or sigma <= 0:
        raise UserError(f"kernel bandwidth sigma must be a positive number, got {sigma}")
    return float(sigma)


def vendi_gaussian(x, sigma: float) -> float:
    """Vendi score of (n, D) samples under the Gaussian kernel of bandwidth ``sigma`` (an (n, n)
    eigenvalue problem: a few seconds at n = 2,500)."""
    sigma = _check_sigma(sigma)
    x = as_features(x, "samples")
    return entropy_exp(eigvalsh(gaussian_kernel(x, x, sigma) / len(x), driver="evd", check_finite=False))


def rke_mode_count(x, sigma: float, block_bytes: int = BLOCK_BYTES) -> float:
    """n^2 / sum_ij K_ij^2 for the Gaussian kernel of bandwidth ``sigma``: 1 for n identical
    samples, k for k far-apart clusters of equal size."""
    sigma = _check_sigma(sigma)
    x = as_features(x, "samples")
    x = x - x.mean(axis=0)  # distances are unchanged; the expanded formula cancels less
    n = len(x)
    rows = max(1, int(block_bytes) // (8 * n))
    total = 0.0
    for start in range(0, n, rows):
        k = gaussian_kernel(x[start:start + rows], x, sigma)
        total += float(np.einsum("ij,ij->", k, k))
    return n * n / total
