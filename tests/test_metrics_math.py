"""Sample-quality metric math against closed forms, invariants and torch-fidelity's own functions."""

import math
import tracemalloc

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist
from scipy.stats import ortho_group
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import calculate_precision_recall_full

from ganbench.errors import UserError
from ganbench.features.stats import StreamingStats
from ganbench.metrics.frechet import FrechetReference, fid, frechet_distance
from ganbench.metrics.inception_score import inception_score, inception_score_from_probs
from ganbench.metrics.kernel import kid
from ganbench.metrics.prdc import density_coverage, prdc, precision_recall
from ganbench.metrics.uncertainty import (
    bootstrap_fid,
    bootstrap_kid,
    fid_infinity,
    fit_inverse_n,
)


def correlated(n, d, seed, shift=0.0):
    """(n, d) features with a random non-trivial covariance."""
    g = np.random.default_rng(seed)
    mix = np.eye(d) + 0.3 * g.standard_normal((d, d)) / math.sqrt(d)
    return g.standard_normal((n, d)) @ mix + shift


def stats(x):
    return x.mean(axis=0), np.cov(x, rowvar=False)


def fid_sqrtm(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root (reference only)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


# ---- Fréchet distance ----------------------------------------------------------------------------


def test_fid_commuting_covariances_closed_form():
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute: tr sqrt(S1 S2) = sum sqrt(a b), so
    # FID = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2
    g = np.random.default_rng(0)
    d = 64
    a, b = g.uniform(0.1, 4.0, d), g.uniform(0.1, 4.0, d)
    mu1, mu2 = g.standard_normal(d), g.standard_normal(d)
    expected = (mu1 - mu2) @ (mu1 - mu2) + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-8)
    q = ortho_group.rvs(d, random_state=1)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    assert frechet_distance(mu1, (s1 + s1.T) / 2, mu2, (s2 + s2.T) / 2) == pytest.approx(expected, rel=1e-8)


def test_fid_random_spd_matches_sqrtm():
    s1, s2 = stats(correlated(200, 24, seed=1)), stats(correlated(300, 24, seed=2, shift=0.2))
    assert frechet_distance(*s1, *s2) == pytest.approx(fid_sqrtm(*s1, *s2), rel=1e-8)


def test_unit_mean_shift_in_2048_dims():
    eye = np.eye(2048)
    assert frechet_distance(np.zeros(2048), eye, np.ones(2048), eye) == pytest.approx(2048.0, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    x, y = correlated(2000, 64, seed=3), correlated(1500, 64, seed=4, shift=0.1)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fid(x, y) == pytest.approx(fid(y, x), rel=1e-10)
    assert fid(x, y) > 0.5  # far from 0: the zero above is not a degenerate feature set


def test_rank_deficient_covariances():
    # 100 samples in 256 dimensions: rank 99, so Cholesky fails and the eigen-factor path runs
    s1, s2 = stats(correlated(100, 256, seed=5)), stats(correlated(100, 256, seed=6, shift=0.1))
    for a, b in ((s1, s2), (s2, s1), (s1, stats(correlated(1000, 256, seed=7)))):
        value = frechet_distance(*a, *b)
        assert isinstance(value, float) and math.isfinite(value) and value >= 0
        assert value == pytest.approx(fid_sqrtm(*a, *b), rel=1e-6)


def test_bad_statistics_raise_user_errors():
    mu, s = stats(correlated(50, 8, seed=8))
    bad = s.copy()
    bad[2, 3] = np.nan
    with pytest.raises(UserError, match="NaN or Inf"):
        frechet_distance(mu, bad, mu, s)
    with pytest.raises(UserError, match="NaN or Inf"):
        frechet_distance(mu, s, np.full(8, np.inf), s)
    with pytest.raises(UserError, match="dimensions differ"):
        frechet_distance(mu, s, mu[:4], s[:4, :4])
    with pytest.raises(UserError, match=r"need mu \(D,\) and sigma \(D, D\)"):
        frechet_distance(mu, s[:4], mu, s)
    skew = s.copy()
    skew[0, 5] += 1.0
    with pytest.raises(UserError, match="not symmetric"):
        frechet_distance(mu, s, mu, skew)
    x = correlated(50, 8, seed=9)
    x[7, 1] = np.nan
    with pytest.raises(UserError, match="NaN or Inf"):
        fid(x, correlated(50, 8, seed=10))


def test_torch_tensors_give_the_numpy_values():
    x, y = correlated(300, 16, seed=11), correlated(300, 16, seed=12, shift=0.3)
    assert fid(torch.from_numpy(x), torch.from_numpy(y)) == fid(x, y)
    assert fid(torch.from_numpy(x).float(), y) == pytest.approx(fid(x, y), rel=1e-5)


# ---- streaming statistics ------------------------------------------------------------------------


def test_streaming_stats_independent_of_batch_size():
    x = correlated(1000, 32, seed=13, shift=5.0)  # an offset, so that naive sums would lose digits
    mu, cov = stats(x)
    for batch in (1, 7, 128, 1000):
        s = StreamingStats(32)
        for start in range(0, len(x), batch):
            s.update(x[start:start + batch])
        assert s.n == 1000
        np.testing.assert_allclose(s.mean, mu, rtol=1e-10)
        np.testing.assert_allclose(s.cov, cov, rtol=1e-10, atol=1e-12)


def test_streaming_stats_merge_is_exact_in_any_order():
    x = correlated(900, 16, seed=14, shift=-3.0)
    shards = [StreamingStats.from_features(part) for part in np.split(x, [100, 150, 600])]
    left = ((shards[0] + shards[1]) + shards[2]) + shards[3]
    right = shards[3].merge(shards[2].merge(shards[1].merge(shards[0])))
    mu, cov = stats(x)
    for merged in (left, right):
        assert merged.n == 900
        np.testing.assert_allclose(merged.mean, mu, rtol=1e-10)
        np.testing.assert_allclose(merged.cov, cov, rtol=1e-10, atol=1e-12)
    assert shards[0].n == 100  # merging left the operands alone


def test_weighted_stats_equal_repeated_rows():
    x = correlated(200, 8, seed=15)
    counts = np.random.default_rng(0).integers(0, 4, 200)
    s = StreamingStats.from_features(x, counts=counts, batch_size=33)
    mu, cov = stats(np.repeat(x, counts, axis=0))
    assert s.n == counts.sum()
    np.testing.assert_allclose(s.mean, mu, rtol=1e-12)
    np.testing.assert_allclose(s.cov, cov, rtol=1e-10, atol=1e-13)


# ---- KID and IS against torch-fidelity -----------------------------------------------------------


@pytest.mark.parametrize("n_fake, n_real, d, subsets, size, seed", [
    (600, 500, 64, 20, 200, 7), (300, 400, 2048, 5, 100, 2020), (120, 100, 10, 50, 100, 0)])
def test_kid_equals_torch_fidelity(n_fake, n_real, d, subsets, size, seed):
    fake, real = correlated(n_fake, d, seed=16), correlated(n_real, d, seed=17, shift=0.05)
    ours = kid(fake, real, subsets=subsets, subset_size=size, seed=seed)
    theirs = kid_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=subsets,
                                    kid_subset_size=size, rng_seed=seed, verbose=False)
    assert ours.mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6)
    assert ours.std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-6)
    assert abs(ours.mean) > 1e-4  # a value that can disagree


def test_kid_of_two_samples_of_one_distribution_is_about_zero():
    g = np.random.default_rng(18)
    mix = np.eye(64) + 0.3 * g.standard_normal((64, 64)) / 8
    a, b = g.standard_normal((1000, 64)) @ mix, g.standard_normal((1000, 64)) @ mix
    same = kid(a, b, subsets=20, subset_size=500, seed=1)
    shifted = kid(a, b + 0.5, subsets=20, subset_size=500, seed=1)
    assert shifted.mean > 0.5
    assert abs(same.mean) < 0.01 * shifted.mean  # unbiased: scatters around 0, either sign


def test_kid_of_a_set_with_itself_closed_form():
    # With Y = X (m rows each) the unbiased MMD^2 is not 0: the cross term also sums k(x, x), so
    # MMD^2 = -2 / (m - 1) * (mean of k(x, x) - mean of k(x, y) over all pairs), slightly negative.
    # Subsets of all m rows see the whole set whatever the draw.
    x = correlated(300, 32, seed=19)
    k = (x @ x.T / 32 + 1) ** 3
    expected = -2 / (300 - 1) * (np.diagonal(k).mean() - k.mean())
    value = kid(x, x, subsets=3, subset_size=300, seed=0)
    assert expected < 0
    assert value.mean == pytest.approx(expected, rel=1e-9) and value.std == pytest.approx(0, abs=1e-12)


def test_kid_subset_larger_than_a_set_is_a_user_error():
    with pytest.raises(UserError, match="subset size"):
        kid(correlated(50, 4, seed=19), correlated(500, 4, seed=20), subset_size=100)


@pytest.mark.parametrize("n, splits, shuffle", [(1003, 10, True), (500, 10, False), (97, 3, True)])
def test_inception_score_equals_torch_fidelity(n, splits, shuffle):
    logits = 3.0 * np.random.default_rng(n).standard_normal((n, 100))
    ours = inception_score(logits, splits=splits, shuffle=shuffle, seed=5)
    theirs = isc_features_to_metric(torch.from_numpy(logits), splits, shuffle, 5)
    assert ours.mean == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert ours.std == pytest.approx(theirs["inception_score_std"], rel=1e-6)
    assert ours.mean > 2  # informative logits, far from the trivial score of 1
    probs = torch.from_numpy(logits).softmax(dim=1).numpy()
    from_probs = inception_score_from_probs(probs, splits=splits, shuffle=shuffle, seed=5)
    assert from_probs.mean == pytest.approx(ours.mean, rel=1e-10)


def test_inception_score_closed_forms():
    # one-hot predictions spread evenly over C classes: IS = C; all the same class: IS = 1
    probs = np.eye(20)[np.arange(2000) % 20]
    assert inception_score_from_probs(probs, shuffle=False).mean == pytest.approx(20.0, rel=1e-12)
    assert inception_score_from_probs(np.eye(20)[np.zeros(2000, int)]).mean == pytest.approx(1.0, rel=1e-12)


# ---- precision, recall, density, coverage --------------------------------------------------------


def prdc_brute_force(fake, real, k_pr=3, k_dc=5):
    """Full distance matrices, as in Naeem et al.'s reference code (< for density/coverage)."""
    rr, ff, rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real, r_fake = np.sort(rr, axis=1), np.sort(ff, axis=1)  # column 0: the point itself
    precision = (rf <= r_real[:, [k_pr]]).any(axis=0).mean()
    recall = (rf <= r_fake[:, k_pr][None, :]).any(axis=1).mean()
    density = (rf < r_real[:, [k_dc]]).sum() / (k_dc * len(fake))
    coverage = (rf.min(axis=1) < r_real[:, k_dc]).mean()
    return precision, recall, density, coverage


def test_prdc_matches_brute_force_and_torch_fidelity():
    fake, real = correlated(700, 12, seed=21, shift=0.2), correlated(600, 12, seed=22)
    ours = prdc(fake, real)
    np.testing.assert_allclose(ours, prdc_brute_force(fake, real), rtol=1e-12)
    p, r = calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(real), neighborhood=3)
    # torch-fidelity averages in float32: 1e-6 still means the same count (steps of 1/700, 1/600)
    assert ours.precision == pytest.approx(p, abs=1e-6) and ours.recall == pytest.approx(r, abs=1e-6)
    assert precision_recall(fake, real) == (ours.precision, ours.recall)
    assert density_coverage(fake, real) == (ours.density, ours.coverage)
    assert 0.3 < ours.precision < 1 and 0.3 < ours.recall < 1  # neither trivial nor saturated


def test_prdc_of_duplicated_points_decides_ties_as_exact_arithmetic():
    """Duplicated points (a collapsed generator's identical samples, repeated images) are at distance
    0. The expanded formula put identical points up to ~1e-15 apart and so decided ties at 0 at
    random (2-D case: density/coverage 0.024/0.118, not 0/0; 64-d case: precision 0.9986, not 1);
    set to 0, they give what exact arithmetic gives."""
    rng = np.random.default_rng(5)
    lattice = rng.integers(0, 3, (500, 2)).astype(float), rng.integers(0, 3, (500, 2)).astype(float)
    base = rng.normal(size=(60, 64))  # 60 distinct points, each drawn about 10 times into each set
    repeated = base[rng.integers(0, 60, 700)], base[rng.integers(0, 60, 600)]
    for fake, real in (lattice, repeated):
        assert tuple(prdc(fake, real)) == prdc_brute_force(fake, real)
        assert tuple(prdc(fake, real, block_bytes=8 * 700 * 13)) == prdc_brute_force(fake, real)
    assert prdc(*lattice)[2:] == (0.0, 0.0)  # 9 locations, each ~55 times: every real ball has radius 0
    # each pair's own bound: one generated point far out (an unstable GAN's) sets no other pair's
    # distance to 0 (a bound from the largest |x|^2 of the sets made density 0.005 here, not 1.007)
    fake, real = correlated(2000, 2, seed=41) * 0.01, correlated(2000, 2, seed=42) * 0.01  # ring8's sigma
    fake[0] = [1e5, 0.0]
    assert tuple(prdc(fake, real)) == pytest.approx(prdc_brute_force(fake, real), rel=1e-12)


def test_prdc_chunked_equals_unchunked():
    fake, real = correlated(1000, 16, seed=23, shift=0.1), correlated(900, 16, seed=24)
    one_block = prdc(fake, real, block_bytes=2**40)
    for block_bytes in (8 * 1000 * 7, 8 * 1000 * 64 + 5, 1):  # 7 rows, 64 rows, 1 row per block
        assert prdc(fake, real, block_bytes=block_bytes) == one_block


def test_prdc_never_holds_a_full_distance_matrix():
    # 4,000 x 4,000 float64 distances would be 128 MB; with 2 MB blocks the peak stays near a
    # few blocks (distances, their partition copy, masks) plus the shifted feature copies
    fake, real = correlated(4000, 16, seed=33), correlated(4000, 16, seed=34)
    tracemalloc.start()
    try:
        prdc(fake, real, block_bytes=2 * 2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_prdc_of_identical_sets():
    # Every point lies in its own ball (distance 0): precision = recall = coverage = 1 exactly.
    # With strict < each of the N balls holds k points (itself and k - 1 neighbours, the k-th
    # sits on the boundary), so density = N k / (k N) = 1; a boundary distance that rounds
    # differently in the two passes may move a few of the N k pairs, hence the 1e-3.
    x = correlated(2000, 16, seed=25)
    result = prdc(x, x)
    assert (result.precision, result.recall, result.coverage) == (1.0, 1.0, 1.0)
    assert result.density == pytest.approx(1.0, abs=1e-3)


def test_density_and_coverage_of_two_samples_of_one_distribution():
    # Naeem et al. 2020: for independent samples of one distribution E[density] = 1 exactly, and
    # E[coverage] = 1 - prod_{i=1..k} (N - i) / (N + M - i) -> 1 - 2^-k (0.96875 at k = 5).
    # Tolerances: over 30 seeds at N = M = 4,000 in 16 dims the spread was 0.020 (density) and
    # 0.0025 (coverage); we allow 5 of those.
    n, k = 4000, 5
    g = np.random.default_rng(26)
    real, fake = g.standard_normal((n, 16)), g.standard_normal((n, 16))
    density, coverage = density_coverage(fake, real, k=k)
    expected = 1 - np.prod([(n - i) / (2 * n - i) for i in range(1, k + 1)])
    assert expected == pytest.approx(1 - 2.0**-k, abs=2e-4)
    assert density == pytest.approx(1.0, abs=0.10)
    assert coverage == pytest.approx(expected, abs=0.0125)


def test_prdc_input_errors():
    with pytest.raises(UserError, match="more than 3 generated and 5 real points"):
        prdc(correlated(3, 3, seed=27), correlated(50, 3, seed=28))
    with pytest.raises(UserError, match="got 50 generated and 5 real"):
        prdc(correlated(50, 3, seed=27), correlated(5, 3, seed=28))
    assert prdc(correlated(4, 3, seed=27), correlated(6, 3, seed=28)).recall >= 0  # 4 > k_pr = 3, 6 > k_dc = 5
    with pytest.raises(UserError, match="dimensions differ"):
        prdc(correlated(50, 4, seed=27), correlated(50, 3, seed=28))


# ---- bootstrap and FID-infinity ------------------------------------------------------------------


def test_bootstrap_fid_interval_contains_estimate_and_narrows():
    reference = FrechetReference.from_features(correlated(4000, 8, seed=29))
    widths = []
    for n in (500, 4000):
        fake = correlated(n, 8, seed=30, shift=0.3)
        interval = bootstrap_fid(fake, reference, seed=0, resamples=100)
        assert interval.value == pytest.approx(fid(fake, correlated(4000, 8, seed=29)), rel=1e-10)
        assert interval.low < interval.value < interval.high
        assert interval.resamples.shape == (100,)
        widths.append(interval.high - interval.low)
    assert widths[1] < 0.6 * widths[0]  # ~ 1/sqrt(N): 0.35 expected
    fake = correlated(500, 8, seed=30, shift=0.3)
    runs = [bootstrap_fid(fake, reference, seed=0, resamples=20).resamples for _ in range(2)]
    assert np.array_equal(*runs)  # same seed, same resamples
    bc = bootstrap_fid(fake, reference, seed=0, resamples=100, method="bc")
    assert bc.low < bc.value < bc.high and bc.method == "bc"


def test_bootstrap_kid_value_is_kid_and_interval_contains_it():
    fake, real = correlated(400, 16, seed=31, shift=0.3), correlated(400, 16, seed=32)
    interval = bootstrap_kid(fake, real, seed=0, subsets=10, subset_size=100, kid_seed=3, resamples=40)
    assert interval.value == pytest.approx(kid(fake, real, subsets=10, subset_size=100, seed=3).mean, rel=1e-12)
    assert interval.low < interval.value < interval.high


def test_fit_inverse_n_recovers_the_line():
    sizes = np.linspace(5000, 50000, 15).astype(int)
    a, b = fit_inverse_n(sizes, 12.5 + 3000.0 / sizes)
    assert a == pytest.approx(12.5, rel=1e-10) and b == pytest.approx(3000.0, rel=1e-8)


def test_fid_infinity_removes_the_1_over_n_bias():
    # generated N(m, diag(s^2)) against the exact reference N(0, I): FID = |m|^2 + sum (1 - s)^2
    d = 64
    s, m = np.linspace(0.5, 1.5, d), np.full(d, 0.05)
    truth = m @ m + ((1 - s) ** 2).sum()
    fake = np.random.default_rng(0).standard_normal((20000, d)) * s + m
    reference = FrechetReference(np.zeros(d), np.eye(d))
    result = fid_infinity(fake, reference, seed=1)
    assert result.sizes.tolist()[0] == 2000 and result.sizes.tolist()[-1] == 20000 and len(result.fids) == 15
    fid_n = result.fids[-1]  # the largest size is the whole sample
    assert abs(result.value - truth) < 0.25 * abs(fid_n - truth)
    assert result.slope > 0  # FID is biased upward at finite N


def _features(extractor: str, n: int):
    """A feature object of ``extractor`` holding ``n`` generated samples and 1,500 real ones."""
    from ganbench.features.domain import DomainFeatures, StackedLabels
    from ganbench.features.embedding import EmbeddingSet
    from ganbench.features.inception import InceptionSet
    from ganbench.features.mode2d import ModeAssignment
    from ganbench.features.points import Points

    g = np.random.default_rng(n)
    real, fake = correlated(1500, 8, 1), correlated(n, 8, 2, shift=0.3)
    if extractor == "domain":
        return DomainFeatures(fake, g.dirichlet(np.ones(10), size=n), real, np.arange(1500) % 10, 10)
    if extractor == "inception":
        return InceptionSet(fake.astype(np.float32), g.standard_normal((n, 1008)).astype(np.float32),
                            real.astype(np.float32))
    if extractor in ("clip", "dinov2", "clip_cmmd"):
        unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
        return EmbeddingSet(unit(fake), unit(real), extractor)
    if extractor == "stacked":
        return StackedLabels(g.integers(0, 1000, n))
    if extractor == "mode2d":
        return ModeAssignment(g.integers(0, 8, n), g.uniform(0, 6, n), 8)
    if extractor == "points":
        return Points(g.standard_normal((n, 2)), 0.15)
    raise AssertionError(f"no test features for extractor {extractor!r}: add them here")


class _TenClasses:
    num_classes = 10


@pytest.mark.filterwarnings("ignore:.*rank-deficient")
def test_every_metric_s_min_fake_is_the_fewest_samples_its_definition_accepts():
    """The count a config's ``eval_samples`` is checked against before training is each registered
    metric's own limit: its definition computes at ``min_fake`` generated samples and refuses one
    fewer (with a one-line UserError, as at an evaluation)."""
    from ganbench.metrics import METRICS

    checked = {}
    for name, m in sorted(METRICS.items()):
        if m.num_fake <= 0 or not m.fn.__module__.startswith("ganbench."):
            continue  # a split's size (classification, translation) or a plug-in's own metric
        least = m.least(_TenClasses())
        value = m.fn(_features(m.features, least))
        assert math.isfinite(value), name
        if least > 1:
            with pytest.raises(UserError):
                m.fn(_features(m.features, least - 1))
        checked[name] = least
    assert checked["fid"] == checked["fd_dinov2"] == 2 and checked["fid_intra"] == 20
    assert checked["is"] == checked["cs"] == 10 and checked["kid"] == checked["kid_clip"] == 1000
    assert checked["precision"] == checked["recall"] == checked["coverage_clip"] == 4
    assert checked["modes"] == checked["sm_modes"] == checked["vendi"] == checked["cmmd"] == 1
