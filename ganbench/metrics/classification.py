"""Classification metrics: generated samples used as training data, measured on real test data.

All of them read the ``labelled`` extractor (``ganbench.features.labelled``): one fixed,
class-balanced synthetic set the size of the real training split, with the labels it was generated
for. Every classifier is the domain classifier's network and recipe
(``ganbench.features.classifier``), trained from scratch for a length fixed by its set's size,
``zero_grad`` at every step, the last weights kept: no epoch or checkpoint is selected on any
score, and the only images ever scored are the real test split's, which no classifier trains on.
They train classifiers, so a run computes them at its final evaluation only (``final_only``).
Each value is the mean over the classifier seeds ``SEEDS``; the run folder's
``classification.json`` holds every seed's value, the 95 % t-interval over seeds, per-class
accuracy and, for the gains, a paired t-test.

- ``cas`` (Classification Accuracy Score, Ravuri & Vinyals 2019): test accuracy of a classifier
  trained on the synthetic set alone.
- ``cas_real``: the same recipe trained on the real training split, the reference every CAS is read
  against (cached on disk: it depends on the real data alone). ``cas_ratio`` = cas / cas_real.
- ``gan_test`` (Shmelkov et al. 2018, "How good is my GAN?"): accuracy of the real-trained domain
  classifier on the synthetic set against the labels it was generated for.
- ``aug_gain`` and ``aug_gain_1pct``: test accuracy of a classifier trained on a small real subset
  (10 % or 1 % of each class, at least one image, drawn per seed) plus the whole synthetic set,
  minus the same classifier on the subset alone. Both arms train with the recipe's random shifts
  (ordinary augmentation), so only a gain beyond it counts.
- ``rebalance_gain``: balanced accuracy (mean per-class recall) of a classifier trained on a
  long-tailed real subset topped up with synthetic samples to balance, minus the subset alone.
  Class c keeps ``max(1, round(n * tail_ratio ** (c / (K - 1))))`` real images, n being the smallest
  class count of the training split (class 0 the most common); ``tail_ratio`` is a config field.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from ganbench.features.cache import cached_arrays, tensor_digest
from ganbench.features.classifier import _train, predict, recipe_digest
from ganbench.features.domain import classifier_for
from ganbench.features.labelled import SEEDS, LabelledSamples, RealSplits
from ganbench.metrics.base import TRAIN_SPLIT, Metric, register
from ganbench.metrics.image import memo
from ganbench.seeding import make_generator

AUG_FRACTIONS = {"aug_gain": 0.1, "aug_gain_1pct": 0.01}
LEVEL = 0.95  # intervals over classifier seeds; gains are significant when the paired t-test's p < 1 - LEVEL


def fit_and_test(x: torch.Tensor, y: torch.Tensor, real: RealSplits, seed: int) -> np.ndarray:
    """Train a classifier from scratch on (x, y) with ``seed``; (K, 2) int64: correct and total test
    images per class."""
    net = _train(x, y, real.num_classes, seed=seed)
    hit = (predict(net, real.test_x) == real.test_y).long()
    k = real.num_classes
    return np.stack([torch.bincount(real.test_y, weights=hit.double(), minlength=k).round().long().numpy(),
                     torch.bincount(real.test_y, minlength=k).numpy()], axis=1).astype(np.int64)


def _real_only(kind: str, real: RealSplits, seed: int, x: torch.Tensor, y: torch.Tensor, **extra) -> np.ndarray:
    """``fit_and_test`` on real data alone, cached on disk under everything that changes it (the
    whole training split is named by ``real.digest`` already; a subset by its own hash)."""
    train = "whole split" if x is real.train_x else tensor_digest(x, y)
    doc = {"kind": kind, "recipe": recipe_digest(), "data": real.digest, "seed": seed, "train": train, **extra}
    return cached_arrays("classification", doc, lambda: {"counts": fit_and_test(x, y, real, seed)})["counts"]


def accuracy(counts: np.ndarray) -> float:
    return float(counts[:, 0].sum() / counts[:, 1].sum())


def balanced_accuracy(counts: np.ndarray) -> float:
    return float(np.mean(counts[:, 0] / counts[:, 1]))


def summary(values: list[float], low: float = 0.0, high: float = 1.0) -> dict:
    """Mean, sample std and the t-interval at ``LEVEL`` over seeds, clipped to [low, high] (the
    values' range: accuracies in [0, 1], gains in [-1, 1])."""
    v = np.asarray(values, dtype=np.float64)
    mean, std = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(v) - 1) * std / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return {"per_seed": [float(x) for x in v], "mean": mean, "std": std,
            "ci_low": max(low, mean - half), "ci_high": min(high, mean + half)}


def _per_class(counts: list[np.ndarray]) -> list[float]:
    total = np.sum(counts, axis=0)
    return [float(c) for c in total[:, 0] / total[:, 1]]


def _record(f: LabelledSamples, name: str, counts: list[np.ndarray], score=accuracy) -> float:
    f.details[name] = {"seeds": list(SEEDS), **summary([score(c) for c in counts]), "per_class": _per_class(counts)}
    return f.details[name]["mean"]


# ----------------------------------------------------------------------------------------------


def cas(f: LabelledSamples) -> float:
    counts = memo(f, "cas", lambda: [fit_and_test(f.images, f.labels, f.real, s) for s in SEEDS])
    return _record(f, "cas", counts)


def cas_real(f: LabelledSamples) -> float:
    r = f.real
    counts = memo(f, "cas_real", lambda: [_real_only("cas_real", r, s, r.train_x, r.train_y) for s in SEEDS])
    return _record(f, "cas_real", counts)


def cas_ratio(f: LabelledSamples) -> float:
    return cas(f) / cas_real(f)


def gan_test(f: LabelledSamples) -> float:
    def compute():
        net = classifier_for(f.dataset).net
        hit = (predict(net, f.images) == f.labels).double()
        k = f.real.num_classes
        per_class = torch.bincount(f.labels, weights=hit, minlength=k) / torch.bincount(f.labels, minlength=k)
        return float(hit.mean()), [float(v) for v in per_class]

    value, per_class = memo(f, "gan_test", compute)
    f.details["gan_test"] = {"value": value, "per_class": per_class, "classifier": classifier_for(f.dataset).key}
    return value


def _gain(f: LabelledSamples, name: str, base: list[np.ndarray], more: list[np.ndarray], score, **info) -> float:
    b = [score(c) for c in base]
    m = [score(c) for c in more]
    d = [y - x for x, y in zip(b, m)]
    s = summary(d, -1.0, 1.0)
    p = float(stats.ttest_1samp(d, 0.0).pvalue) if len(d) > 1 and s["std"] > 0 else math.nan
    f.details[name] = {"seeds": list(SEEDS), **info, "baseline": summary(b), "with_synthetic": summary(m), **s,
                       "p_value": p, "significant": bool(p < 1 - LEVEL) if p == p else False,
                       "per_class_baseline": _per_class(base), "per_class_with_synthetic": _per_class(more)}
    return s["mean"]


def subset_per_class(labels: torch.Tensor, counts: list[int], seed: int, key: str) -> torch.Tensor:
    """Indices of ``counts[c]`` images of each class c, drawn without replacement with ``seed``."""
    g = make_generator(seed, key)
    out = []
    for c, k in enumerate(counts):
        where = (labels == c).nonzero().squeeze(1)
        out.append(where[torch.randperm(len(where), generator=g)[:k]])
    return torch.cat(out).sort().values


def paired_fits(f: LabelledSamples, counts: list[int], key: str, kind: str, add: torch.Tensor,
                **extra) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per seed: a real subset of ``counts[c]`` images of each class (drawn with the seed under
    ``key``) alone (cached as ``kind``) and with the synthetic samples ``add`` (indices) -> (base, more)."""
    r = f.real
    base, more = [], []
    for s in SEEDS:
        idx = subset_per_class(r.train_y, counts, s, key)
        x, y = r.train_x[idx], r.train_y[idx]
        base.append(_real_only(kind, r, s, x, y, **extra))
        more.append(fit_and_test(torch.cat([x, f.images[add]]), torch.cat([y, f.labels[add]]), r, s))
    return base, more


def aug_gain_at(f: LabelledSamples, name: str) -> float:
    fraction = AUG_FRACTIONS[name]
    counts = [max(1, round(fraction * n)) for n in f.real.class_counts]
    every = torch.arange(len(f.labels))
    base, more = memo(f, name, lambda: paired_fits(f, counts, "subset", "aug_base", every, fraction=fraction))
    return _gain(f, name, base, more, accuracy, fraction=fraction, real_per_class=counts,
                 num_synthetic=len(f.labels))


def aug_gain(f: LabelledSamples) -> float:
    return aug_gain_at(f, "aug_gain")


def aug_gain_1pct(f: LabelledSamples) -> float:
    return aug_gain_at(f, "aug_gain_1pct")


def tail_counts(have: list[int], ratio: float) -> tuple[int, list[int]]:
    """(n, real images kept per class) of the long-tailed subset: n = the smallest class count."""
    n, k = min(have), len(have)
    return n, [max(1, round(n * ratio ** (c / (k - 1)))) for c in range(k)]


def rebalance_gain(f: LabelledSamples) -> float:
    ratio = float(f.settings.get("tail_ratio", 0.01))
    n, counts = tail_counts(f.real.class_counts, ratio)
    top_up = torch.cat([(f.labels == c).nonzero().squeeze(1)[: n - k] for c, k in enumerate(counts)])
    base, more = memo(f, "rebalance_gain",
                      lambda: paired_fits(f, counts, "tail", "rebalance_base", top_up, tail_ratio=ratio))
    return _gain(f, "rebalance_gain", base, more, balanced_accuracy, tail_ratio=ratio, real_per_class=counts,
                 synthetic_per_class=[n - k for k in counts])


_COMMON = dict(features="labelled", higher_is_better=True, num_fake=TRAIN_SPLIT, num_real=-1, final_only=True)
for _metric in (
    Metric(name="cas", fn=cas, range=(0.0, 1.0), **_COMMON,
           description="Classification Accuracy Score: real test accuracy of a classifier trained on samples alone"),
    Metric(name="cas_real", fn=cas_real, range=(0.0, 1.0), **_COMMON,
           description="the same classifier recipe trained on the real training split: the reference for cas"),
    Metric(name="cas_ratio", fn=cas_ratio, range=(0.0, math.inf), **_COMMON,
           description="cas / cas_real"),
    Metric(name="gan_test", fn=gan_test, range=(0.0, 1.0), **_COMMON,
           description="GAN-test: the real-trained domain classifier's accuracy on samples against their labels"),
    Metric(name="aug_gain", fn=aug_gain, range=(-1.0, 1.0), params=(("real_fraction", 0.1),), **_COMMON,
           description="test accuracy gained by adding the samples to 10 % of the real training labels"),
    Metric(name="aug_gain_1pct", fn=aug_gain_1pct, range=(-1.0, 1.0), params=(("real_fraction", 0.01),), **_COMMON,
           description="test accuracy gained by adding the samples to 1 % of the real training labels"),
    Metric(name="rebalance_gain", fn=rebalance_gain, range=(-1.0, 1.0), config=("tail_ratio",), **_COMMON,
           description="balanced accuracy gained by topping up a long-tailed real subset with samples"),
):
    register(_metric)
