"""2-D mode metrics against their closed forms."""

import math

import numpy as np
import pytest
import torch

from ganbench.data import DATASETS
from ganbench.evaluate import compute_metrics, resolve_metrics
from ganbench.features.mode2d import ModeAssignment, mode_assignment
from ganbench.metrics.modes import (
    NUM_POINTS,
    high_quality_fraction,
    kl_to_uniform,
    modes_covered,
)

HQ_GAUSSIAN = 1 - math.exp(-4.5)  # P(|x - mu| < 3 sigma) for an isotropic 2-D Gaussian


def _metrics(name, samples):
    ds = DATASETS[name]()
    return compute_metrics(samples, ds, resolve_metrics((), ds))


def test_protocol_geometry():
    ring, grid = DATASETS["ring8"](), DATASETS["grid25"]()
    assert ring.means.shape == (8, 2) and ring.sigma == 0.01
    assert torch.allclose(ring.means.norm(dim=1), torch.ones(8, dtype=torch.float64))
    assert torch.allclose(ring.means[2], torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-15)
    assert torch.cdist(ring.means, ring.means).add(torch.eye(8, dtype=torch.float64)).min() > 0.7  # 8 distinct
    assert grid.means.shape == (25, 2) and grid.sigma == 0.05
    assert sorted(set(grid.means[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


@pytest.mark.parametrize("name, k", [("ring8", 8), ("grid25", 25)])
def test_perfect_sampler(name, k):
    ds = DATASETS[name]()
    samples = ds.sample(NUM_POINTS, torch.Generator().manual_seed(1))
    v = _metrics(name, samples)
    assert v["modes"] == k
    # binomial standard error at 2,500 points is 0.0021; allow four of them
    assert abs(v["hq"] - HQ_GAUSSIAN) < 0.009
    assert 0 <= v["kl"] < 0.03  # E[KL] ~ (k - 1) / (2 N) for a uniform histogram


def test_high_quality_fraction_matches_closed_form_at_large_n():
    ds = DATASETS["grid25"]()
    samples = ds.sample(200_000, torch.Generator().manual_seed(2))
    a = mode_assignment(samples, ds)
    assert abs(high_quality_fraction(a) - HQ_GAUSSIAN) < 4 * math.sqrt(HQ_GAUSSIAN * (1 - HQ_GAUSSIAN) / 200_000)
    assert kl_to_uniform(a) < 1e-3


@pytest.mark.parametrize("name, k", [("ring8", 8), ("grid25", 25)])
def test_collapsed_sampler(name, k):
    ds = DATASETS[name]()
    samples = ds.means[3].float().expand(NUM_POINTS, 2).clone()
    v = _metrics(name, samples)
    assert v["modes"] == 1
    assert v["hq"] == 1.0
    assert v["kl"] == pytest.approx(math.log(k), abs=1e-12)


def test_points_far_from_every_mode():
    v = _metrics("ring8", torch.full((NUM_POINTS, 2), 5.0))
    assert v == {"modes": 0.0, "hq": 0.0, "kl": pytest.approx(math.log(8))}


def test_kl_closed_form_for_two_equal_modes():
    # half the points on mode 0, half on mode 1, of 8: KL = ln(8/2)
    a = ModeAssignment(np.array([0, 1] * 50), np.zeros(100), 8)
    assert kl_to_uniform(a) == pytest.approx(math.log(4), abs=1e-12)
    assert modes_covered(a) == 2


def test_only_high_quality_points_count():
    ds = DATASETS["ring8"]()
    on = ds.means[:2].float()  # exact hits on 2 modes
    off = ds.means[2:4].float() + 3.5 * ds.sigma  # near 2 others, but outside 3 sigma
    v = compute_metrics(torch.cat([on, off]).repeat(NUM_POINTS // 4, 1), ds, resolve_metrics((), ds))
    assert v["modes"] == 2 and v["hq"] == 0.5
    assert v["kl"] == pytest.approx(math.log(4))


def test_bad_samples_are_rejected():
    from ganbench.errors import UserError
    from ganbench.evaluate import NonFiniteSamples

    ds = DATASETS["ring8"]()
    bad = torch.zeros(NUM_POINTS, 2)
    bad[7, 1] = float("nan")
    with pytest.raises(NonFiniteSamples, match="1 of 2500 samples contain NaN or Inf"):
        _metrics("ring8", bad)
    with pytest.raises(UserError, match=r"samples: output has shape \(2500, 3\), expected \(N, 2\)"):
        _metrics("ring8", torch.zeros(NUM_POINTS, 3))
    with pytest.raises(UserError, match="needs 2500 samples, got 10"):
        _metrics("ring8", torch.zeros(10, 2))
