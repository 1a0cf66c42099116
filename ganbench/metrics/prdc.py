"""Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al.
2020) of generated features against real ones, from k-nearest-neighbour balls.

- precision: fraction of generated points inside some real point's k-NN ball (k = 3);
- recall: fraction of real points inside some generated point's k-NN ball (k = 3);
- density: 1 / (k N) times the sum over the N generated points of the number of real k-NN balls
  holding each (k = 5);
- coverage: fraction of real points whose k-NN ball holds some generated point (k = 5).

A k-NN radius is the distance to the k-th nearest *other* point of the same set. Membership is
``<=`` for precision and recall (Kynkäänniemi et al.'s and torch-fidelity's code) and ``<`` for
density and coverage (Naeem et al.'s code, under which identical sets have density exactly 1).

Distances are squared Euclidean in float64 by the expanded formula |a|^2 + |b|^2 - 2 a.b on
features shifted by (about) the real mean, which keeps the cancellation small. Its rounding error
is below (2 D + 4) eps (|a|^2 + |b|^2) (each of a.b, |a|^2 and |b|^2 to within D eps of its size,
plus the sums); a squared distance within its own pair's bound of 0 is set to exactly 0. So
identical points are at distance 0 in every pass, and a tie at 0 is decided as in exact arithmetic
(duplicated points: a ball of radius 0 holds no point under ``<`` and its copies under ``<=``).
Equal nonzero distances (the copies of a point seen from a third point, lattice data) are decided
by float64 rounding, which may differ between passes. They are computed one block of rows at a
time and never as a full N x M matrix. Peak memory beyond the caller's arrays: one float64 copy of
each feature set ((N + M) D 8 bytes; 1.6 GB for 50,000 x 2,048 each) plus one block of at most
``block_bytes`` and its rounding bounds or partition copy and masks (about 2.5 blocks; the default
block is 128 MiB), so about 2 GB at 50,000 x 2,048. Time at that size: three passes of
N^2 D multiply-adds in float64 (about 10 minutes on 2 CPU cores).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ganbench.errors import UserError
from ganbench.features.stats import as_features

K_PR = 3  # Kynkäänniemi et al. 2019
K_DC = 5  # Naeem et al. 2020
BLOCK_BYTES = 128 * 2**20  # one block of squared distances, float64


class PRDC(NamedTuple):
    precision: float
    recall: float
    density: float
    coverage: float


def _prepare(fake, real, k_fake: int, k_real: int) -> tuple[np.ndarray, np.ndarray]:
    """Both sets as float64 (N, D) arrays shifted by the mean of the first real rows; each set needs
    more points than the neighbours counted within it (k_fake = 0: none, but at least one point)."""
    shift = as_features(real[:4096], "real features").mean(axis=0)
    fake = _shifted(fake, shift, "generated features")
    real = _shifted(real, shift, "real features")
    if len(fake) <= k_fake or len(real) <= k_real:
        raise UserError(f"k-NN metrics need more than {k_fake} generated and {k_real} real points (their k-th "
                        f"neighbours within each set), got {len(fake)} generated and {len(real)} real")
    return fake, real


def _shifted(x, shift: np.ndarray, name: str) -> np.ndarray:
    """x - shift as a new float64 array, with a single (N, D) allocation whatever x's dtype."""
    raw = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    out = as_features(raw, name)
    if out.shape[1] != len(shift):
        raise UserError(f"feature dimensions differ: {name} have {out.shape[1]}, real features {len(shift)}")
    if out is raw or np.shares_memory(out, raw):
        return out - shift
    return np.subtract(out, shift, out=out)  # out is already a converted copy: reuse it


def _rows_per_block(cols: int, block_bytes: int) -> int:
    return max(1, int(block_bytes) // (8 * cols))


def _sq_dists(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared distances; one within the rounding bound (2 D + 4) eps (|a|^2 + |b|^2)
    of 0 is 0."""
    d2 = a @ b.T
    d2 *= -2.0
    bound = np.add.outer(a_sq, b_sq)
    d2 += bound
    bound *= (2 * a.shape[1] + 4) * np.finfo(np.float64).eps
    d2[d2 <= bound] = 0.0
    return d2


def knn_sq_radii(x: np.ndarray, ks: tuple[int, ...], block_bytes: int = BLOCK_BYTES) -> dict[int, np.ndarray]:
    """{k: (N,) squared distance from each row of x to its k-th nearest other row}."""
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    radii = {k: np.empty(n) for k in ks}
    rows = _rows_per_block(n, block_bytes)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        d2 = _sq_dists(x[start:stop], sq[start:stop], x, sq)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # a point is not its own neighbour
        part = np.partition(d2, [k - 1 for k in ks], axis=1)
        for k in ks:
            radii[k][start:stop] = part[:, k - 1]
    return radii


def _cross(fake, real, real_pr, fake_pr, real_dc, block_bytes) -> dict[str, float]:
    """One pass over real x generated distances; a radius argument of None skips its metrics.

    Returns precision, recall, coverage and ``inside``, the number of (generated point, real
    ball) pairs with the point strictly inside the ball (density = inside / (k N), N generated).
    """
    f_sq, r_sq = np.einsum("ij,ij->i", fake, fake), np.einsum("ij,ij->i", real, real)
    fake_in_real = np.zeros(len(fake), dtype=bool)  # precision
    real_in_fake = np.zeros(len(real), dtype=bool)  # recall
    covered = np.zeros(len(real), dtype=bool)  # coverage
    inside = 0  # density: (generated point, real ball) pairs
    rows = _rows_per_block(len(fake), block_bytes)
    for start in range(0, len(real), rows):
        blk = slice(start, min(start + rows, len(real)))
        d2 = _sq_dists(real[blk], r_sq[blk], fake, f_sq)  # (b, N generated)
        if real_pr is not None:
            fake_in_real |= (d2 <= real_pr[blk, None]).any(axis=0)
            real_in_fake[blk] = (d2 <= fake_pr[None, :]).any(axis=1)
        if real_dc is not None:
            inside += int(np.count_nonzero(d2 < real_dc[blk, None]))
            covered[blk] = d2.min(axis=1) < real_dc[blk]
    out = {}
    if real_pr is not None:
        out.update(precision=float(fake_in_real.mean()), recall=float(real_in_fake.mean()))
    if real_dc is not None:
        out.update(coverage=float(covered.mean()), inside=inside)
    return out


def precision_recall(fake, real, *, k: int = K_PR, block_bytes: int = BLOCK_BYTES) -> tuple[float, float]:
    """(precision, recall) of (N, D) generated against (M, D) real features."""
    fake, real = _prepare(fake, real, k, k)
    r_real = knn_sq_radii(real, (k,), block_bytes)[k]
    r_fake = knn_sq_radii(fake, (k,), block_bytes)[k]
    out = _cross(fake, real, r_real, r_fake, None, block_bytes)
    return out["precision"], out["recall"]


def density_coverage(fake, real, *, k: int = K_DC, block_bytes: int = BLOCK_BYTES) -> tuple[float, float]:
    """(density, coverage) of (N, D) generated against (M, D) real features."""
    fake, real = _prepare(fake, real, 0, k)  # the generated points' own neighbours are not used
    r_real = knn_sq_radii(real, (k,), block_bytes)[k]
    out = _cross(fake, real, None, None, r_real, block_bytes)
    return out["inside"] / (k * len(fake)), out["coverage"]


def prdc(fake, real, *, k_pr: int = K_PR, k_dc: int = K_DC, block_bytes: int = BLOCK_BYTES) -> PRDC:
    """All four metrics with shared distance passes (real radii for both k at once)."""
    fake, real = _prepare(fake, real, k_pr, max(k_pr, k_dc))  # recall: the generated points' k_pr-th neighbours
    r_real = knn_sq_radii(real, tuple(sorted({k_pr, k_dc})), block_bytes)
    r_fake = knn_sq_radii(fake, (k_pr,), block_bytes)[k_pr]
    out = _cross(fake, real, r_real[k_pr], r_fake, r_real[k_dc], block_bytes)
    return PRDC(out["precision"], out["recall"], out["inside"] / (k_dc * len(fake)), out["coverage"])
