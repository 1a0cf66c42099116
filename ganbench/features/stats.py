"""Streaming Gaussian statistics of features: mean and unbiased covariance in float64.

``StreamingStats`` accumulates the mean and the unbiased covariance (ddof = 1, as ``numpy.cov``
and torch-fidelity) batch by batch in O(D^2) memory, and merges exactly across shards;
``feature_statistics`` computes them with the extraction split over torchrun processes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed

from ganbench import distributed
from ganbench.errors import UserError

BATCH = 4096  # rows per update when statistics are computed from a whole array


def as_features(x, name: str = "features") -> np.ndarray:
    """(N, D) float64 numpy view or copy of a numpy array or torch tensor; UserError when not finite."""
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise UserError(f"{name} must have shape (N, D), got {x.shape}")
    check_finite(x, name)
    return x


def check_finite(x: np.ndarray, name: str) -> None:
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

    def moments(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(total weight n, mean, M2): the sufficient statistics, e.g. to reduce across processes."""
        return self._n, self._mean.copy(), self._m2.copy()

    @classmethod
    def from_moments(cls, n: float, mean: np.ndarray, m2: np.ndarray) -> StreamingStats:
        """Statistics with the given sufficient statistics (the inverse of ``moments``)."""
        out = cls(len(mean))
        out._n, out._mean, out._m2 = float(n), np.array(mean, dtype=np.float64), np.array(m2, dtype=np.float64)
        return out

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


def reduce_stats(stats):
    """``StreamingStats`` of the union of every rank's rows, the same on every rank.

    Two float64 all-reduces: the counts and sums give the global mean, then each rank adds its
    centred second moment about that mean, sum (x - mean)(x - mean)^T = M2 + n (m - mean)(m - mean)^T,
    which keeps the precision of the centred (Chan) form that one process uses.
    """
    if not distributed.active():
        return stats
    d = stats.dim
    own_n, own_mean, own_m2 = stats.moments()
    first = torch.from_numpy(np.concatenate([[own_n], own_mean * own_n]))
    torch.distributed.all_reduce(first)
    n = float(first[0])
    if n == 0:
        raise UserError("statistics of no samples on any process")
    mean = first[1:].numpy() / n
    delta = own_mean - mean if own_n else np.zeros(d)
    second = torch.from_numpy(own_m2 + own_n * np.outer(delta, delta))
    torch.distributed.all_reduce(second)
    return StreamingStats.from_moments(n, mean, second.numpy())


def feature_statistics(extract, samples: torch.Tensor, batch: int = 500):
    """Mean and covariance of ``extract(samples)`` with the extraction split over the ranks.

    Rank r extracts the features of rows r, r + N, r + 2N, ...; the statistics are then reduced
    across ranks, so they equal one process's statistics of all the rows (to float64 rounding).
    ``extract(images) -> (B, D)`` features.
    """
    mine = samples[distributed.rank()::distributed.world_size()]
    stats = None
    with distributed.rank_local():  # each rank has its own rows: an extractor that splits must not split them again
        for part in mine.split(batch):
            f = extract(part)
            stats = stats or StreamingStats(f.shape[1])
            stats.update(f)
    dim = distributed.broadcast_object(stats.dim if stats is not None else None)
    return reduce_stats(stats or StreamingStats(dim))
