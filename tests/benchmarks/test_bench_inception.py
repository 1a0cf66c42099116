"""Inception feature throughput and the memory of streaming FID statistics, each paired with a reference.

    pytest tests/benchmarks/test_bench_inception.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean

1. Throughput: ganbench's ``InceptionFeatures`` (batch norm folded into the convolutions,
   channels-last, inference mode) against torch-fidelity's ``FeatureExtractorInceptionV3`` called as
   torch-fidelity calls it (``torch.no_grad``, batches of 64), on the same images and the same
   weights file. The FID between the two halves of the images must be equal from either set of
   features. Images/s are in each result's ``extra_info``.
2. Peak memory of FID statistics of 50,000 and of 5,000 2,048-d feature vectors (synthetic, made
   batch by batch), each in a fresh subprocess under tracemalloc: ganbench's ``StreamingStats``
   (O(D^2), the ratio must be <= 1.2) against the usual way (all features in memory, then
   ``numpy.cov``; grows with N).

With benchmarks disabled (the default run) each case runs once at a tiny size, as a plain test.
"""

import json
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from ganbench.features import inception
from ganbench.metrics.frechet import fid

BATCH = 64
_FEATURES: dict = {}


def images(n: int) -> torch.Tensor:
    """n images 32x32 in [-1, 1]: the first half smooth gradients, the second half noise."""
    g = torch.Generator().manual_seed(0)
    half = n // 2
    ramp = torch.linspace(-1, 1, 32)
    smooth = (ramp[None, None, :, None] * torch.rand(half, 3, 1, 1, generator=g)
              + ramp[None, None, None, :] * torch.rand(half, 3, 1, 1, generator=g)).clamp(-1, 1)
    return torch.cat([smooth, torch.rand(n - half, 3, 32, 32, generator=g) * 2 - 1])


def ganbench_extractor(weights):
    net = inception.InceptionFeatures(weights, batch_size=BATCH, allow_other_weights=True)
    return lambda x: net(x)["2048"]


def torch_fidelity_extractor(weights):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))

    def run(x):
        with torch.no_grad():  # as torch_fidelity.utils.get_featuresdict_from_dataset
            return torch.cat([net(inception.to_uint8(chunk))[0] for chunk in x.split(BATCH)])

    return run


@pytest.mark.parametrize("make", [ganbench_extractor, torch_fidelity_extractor], ids=["ganbench", "torch-fidelity"])
def test_inception_feature_throughput(benchmark, inception_weights, make):
    n = 8 if benchmark.disabled else 128
    x = images(n)
    extract = make(inception_weights)
    benchmark.group = f"inception-features-{n}-images"
    feats = benchmark.pedantic(extract, args=(x,), rounds=3, iterations=1, warmup_rounds=0)
    if not benchmark.disabled:
        benchmark.extra_info["images_per_s"] = n / benchmark.stats.stats.min
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = fid(feats[: n // 2], feats[n // 2:])
    _FEATURES[(n, make.__name__)] = value
    assert value > 1.0  # informative features: smooth images are far from noise
    other = _FEATURES.get((n, ({ganbench_extractor, torch_fidelity_extractor} - {make}).pop().__name__))
    if other is not None:  # the second of the pair: equal FID from either network
        assert value == pytest.approx(other, rel=1e-5)


PEAK_SCRIPT = textwrap.dedent("""
    import json, sys, tracemalloc
    import numpy as np
    from ganbench.features.stats import StreamingStats

    dim, way, sizes = int(sys.argv[1]), sys.argv[2], [int(a) for a in sys.argv[3:]]


    def statistics(n):
        rng = np.random.default_rng(0)
        if way == "streaming":
            stats = StreamingStats(dim)
            for start in range(0, n, 1000):
                stats.update(rng.standard_normal((min(1000, n - start), dim)))
            return stats.mean, stats.cov
        # every feature kept, then numpy.cov (torch-fidelity's fid_features_to_statistics)
        feats = np.concatenate([rng.standard_normal((min(1000, n - s), dim)) for s in range(0, n, 1000)])
        return feats.mean(axis=0), np.cov(feats, rowvar=False)


    out = {}
    tracemalloc.start()
    for n in sizes:  # everything of one size is freed when statistics() returns
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        mu, sigma = statistics(n)
        out[n] = {"peak": tracemalloc.get_traced_memory()[1] - base, "trace": float(np.trace(sigma))}
        del mu, sigma
    print(json.dumps(out))
""")


def peak_bytes(dim: int, way: str, sizes: tuple[int, ...]) -> dict[int, dict]:
    """{n: {"peak": bytes above the start, "trace": trace of the covariance}} from a fresh process."""
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(dim), way, *map(str, sizes)],
                         capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(out.stdout).items()}


@pytest.mark.parametrize("way", ["streaming", "all-features"])
def test_fid_statistics_peak_memory(benchmark, way):
    small, large, dim = (1000, 10000, 128) if benchmark.disabled else (5000, 50000, 2048)
    benchmark.group = f"fid-statistics-memory-{dim}d"
    result = {}

    def measure():
        result.update(peak_bytes(dim, way, (small, large)))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = result[large]["peak"] / result[small]["peak"]
    benchmark.extra_info.update({f"peak_mb_{small}": result[small]["peak"] / 2**20,
                                 f"peak_mb_{large}": result[large]["peak"] / 2**20, "ratio": ratio})
    for r in result.values():  # the same statistics: unit-variance features, trace ~ dim
        assert r["trace"] == pytest.approx(dim, rel=0.05)
    if way == "streaming":
        assert ratio <= 1.2
    else:
        assert ratio > 3  # the reference grows with the number of samples
