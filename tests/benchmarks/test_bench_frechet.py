"""FID from statistics: ganbench vs scipy.linalg.sqrtm vs torch-fidelity, paired in one run.

All three compute the same 2,048-dimensional statistics (from 4,096 random correlated feature
vectors per side) and must agree with an independent eigendecomposition formula to 1e-6.

    pytest tests/benchmarks/test_bench_frechet.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean

With benchmarks disabled (the default run) each function runs once, at 256 dimensions, as a plain
agreement test: sqrtm at 2,048 dimensions takes about a minute on 2 busy cores.
"""

import numpy as np
import pytest
import scipy.linalg
from torch_fidelity.metric_fid import fid_statistics_to_metric

from ganbench.metrics.frechet import frechet_distance

DIM, SMOKE_DIM = 2048, 256
ROUNDS = 3  # the slowest reference takes tens of seconds per call
_STATS: dict[int, tuple] = {}


def statistics(dim: int):
    """(mu1, sigma1, mu2, sigma2, reference FID) for 2 * dim random feature vectors per side."""
    if dim not in _STATS:
        g = np.random.default_rng(0)
        mix = np.eye(dim) + 0.05 * g.standard_normal((dim, dim))  # correlated features, SPD covariance
        x = g.standard_normal((2 * dim, dim)) @ mix
        y = g.standard_normal((2 * dim, dim)) @ mix * 1.1 + 0.05
        mu1, s1, mu2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
        # independent of all three: sqrt(S1) by eigh, then the eigenvalues of sqrt(S1) S2 sqrt(S1)
        w, v = np.linalg.eigh(s1)
        root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum()
        reference = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * cross
        _STATS[dim] = (mu1, s1, mu2, s2, float(reference))
    return _STATS[dim]


def fid_ganbench(mu1, s1, mu2, s2):
    return frechet_distance(mu1, s1, mu2, s2)


def fid_scipy_sqrtm(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def fid_torch_fidelity(mu1, s1, mu2, s2):
    out = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)
    return out["frechet_inception_distance"]


@pytest.mark.parametrize("fn", [fid_ganbench, fid_scipy_sqrtm, fid_torch_fidelity],
                         ids=["ganbench", "scipy-sqrtm", "torch-fidelity"])
def test_frechet_distance_from_statistics(benchmark, fn):
    dim = SMOKE_DIM if benchmark.disabled else DIM
    mu1, s1, mu2, s2, reference = statistics(dim)
    benchmark.group = f"frechet-distance-{dim}d"
    value = benchmark.pedantic(fn, args=(mu1, s1, mu2, s2), rounds=ROUNDS, iterations=1)
    assert reference > 10  # far from 0, so that relative agreement means something
    assert value == pytest.approx(reference, rel=1e-6)
