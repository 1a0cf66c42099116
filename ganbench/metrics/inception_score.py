"""Inception Score (Salimans et al. 2016), exactly as torch-fidelity computes it.

IS = exp(E_x KL(p(y|x) || p(y))), computed on each of ``splits`` consecutive chunks of the
(shuffled) samples, with p(y) the mean class distribution of the chunk; the mean and the
(population) standard deviation over chunks are reported. torch-fidelity shuffles the rows with
``np.random.RandomState(seed).permutation(N)`` and cuts chunk i at rows [i N // splits,
(i + 1) N // splits); both are mirrored here, so the same logits give the same values.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import log_softmax, xlogy

from ganbench.errors import UserError
from ganbench.features.stats import as_features

SPLITS = 10  # torch-fidelity's defaults
SEED = 2020


class InceptionScore(NamedTuple):
    mean: float
    std: float  # over splits (ddof = 0, as torch-fidelity)


def inception_score(logits, *, splits: int = SPLITS, shuffle: bool = True, seed: int = SEED) -> InceptionScore:
    """IS from (N, C) class logits (torch-fidelity's ``logits_unbiased`` layer)."""
    logits = as_features(logits, "logits")
    log_p = log_softmax(logits[_order(len(logits), splits, shuffle, seed)], axis=1)
    return _split_scores(np.exp(log_p), log_p, splits)


def inception_score_from_probs(probs, *, splits: int = SPLITS, shuffle: bool = True,
                               seed: int = SEED) -> InceptionScore:
    """IS from (N, C) class probabilities (rows summing to 1; zeros allowed)."""
    probs = as_features(probs, "class probabilities")
    if (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
        raise UserError("class probabilities must be non-negative rows summing to 1")
    p = probs[_order(len(probs), splits, shuffle, seed)]
    log_p = np.log(np.where(p > 0, p, 1.0))  # 0 where p = 0, so that p log p = 0 there
    return _split_scores(p, log_p, splits)


def _order(n: int, splits: int, shuffle: bool, seed: int | None) -> np.ndarray:
    if splits < 1 or n < splits:
        raise UserError(f"the Inception Score needs at least {max(splits, 1)} samples and splits >= 1, "
                        f"got {n} samples and {splits} splits")
    if not shuffle:
        return np.arange(n)
    if seed is None:
        raise UserError("a shuffled Inception Score needs an explicit seed")
    return np.random.RandomState(seed).permutation(n)


def _split_scores(p: np.ndarray, log_p: np.ndarray, splits: int) -> InceptionScore:
    n = len(p)
    scores = []
    for i in range(splits):
        rows = slice(i * n // splits, (i + 1) * n // splits)
        q = p[rows].mean(axis=0)  # (C,) marginal class distribution of the chunk
        kl = p[rows] * log_p[rows] - xlogy(p[rows], q)  # (n_i, C); q > 0 wherever p > 0
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return InceptionScore(float(np.mean(scores)), float(np.std(scores)))
