"""Precision, recall, density and coverage: ganbench vs the reference code's method, paired in one run.

The reference is Naeem et al.'s ``prdc.compute_prdc`` (github.com/clovaai/generative-evaluation-prdc)
as published: full real-real, fake-fake and real-fake distance matrices from scikit-learn's
``pairwise_distances``, k-th neighbour radii by ``np.partition`` (the point itself counted as its own
0-th neighbour), ``<`` for every membership. ganbench holds one block of distances at a time and
uses ``<=`` for precision and recall, as Kynkäänniemi et al.'s and torch-fidelity's code do; on
continuous features no distance sits exactly on a radius, so both give the same four numbers.

    pytest tests/benchmarks/test_bench_prdc.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean

With benchmarks disabled (the default run) each function runs once on 600 x 64 features as a plain
agreement test. Benchmarked: 5,000 generated and 5,000 real 2,048-d features (Inception's size).
"""

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from ganbench.metrics.prdc import prdc

SIZE, DIM = 5000, 2048
SMOKE_SIZE, SMOKE_DIM = 600, 64
_SETS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def features(n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(generated, real): float32 features as an extractor returns them, the generated ones shifted."""
    if (n, dim) not in _SETS:
        g = np.random.default_rng(0)
        mix = np.eye(dim) + 0.1 * g.standard_normal((dim, dim)) / np.sqrt(dim)
        real = (g.standard_normal((n, dim)) @ mix).astype(np.float32)
        fake = (g.standard_normal((n, dim)) @ mix + 0.01).astype(np.float32)
        _SETS[n, dim] = fake, real
    return _SETS[n, dim]


def prdc_ganbench(fake, real):
    return tuple(prdc(fake, real))


def prdc_reference(fake, real, k=5):
    """compute_prdc's method (k = 5 for all four, as that function has one k), with k = 3 for
    precision and recall as ganbench uses: full matrices, the k-th radius by partition. In float64,
    as ganbench computes: scikit-learn keeps float32 input in float32, whose 1e-7 relative rounding
    would move a few of the 25 million comparisons across a radius."""
    fake, real = np.asarray(fake, dtype=np.float64), np.asarray(real, dtype=np.float64)
    def radii(x, k):
        d = pairwise_distances(x, x, metric="euclidean")
        return np.partition(d, k, axis=-1)[:, k]  # column 0 is the point itself

    real_fake = pairwise_distances(real, fake, metric="euclidean")
    r_real3, r_fake3, r_real5 = radii(real, 3), radii(fake, 3), radii(real, k)
    precision = (real_fake <= r_real3[:, None]).any(axis=0).mean()
    recall = (real_fake <= r_fake3[None, :]).any(axis=1).mean()
    density = (1.0 / k) * (real_fake < r_real5[:, None]).sum(axis=0).mean()
    coverage = (real_fake.min(axis=1) < r_real5).mean()
    return float(precision), float(recall), float(density), float(coverage)


@pytest.mark.parametrize("fn", [prdc_ganbench, prdc_reference], ids=["ganbench", "reference-full-matrices"])
def test_prdc(benchmark, fn):
    n, dim = (SMOKE_SIZE, SMOKE_DIM) if benchmark.disabled else (SIZE, DIM)
    fake, real = features(n, dim)
    got = benchmark.pedantic(fn, args=(fake, real), rounds=1 if benchmark.disabled else 3, iterations=1)
    assert got == pytest.approx(prdc_reference(fake, real) if fn is prdc_ganbench else prdc_ganbench(fake, real),
                                abs=1e-12)
    assert 0.2 < got[0] < 1 and 0.2 < got[1] < 1  # neither trivial nor saturated
