"""Labelled samples: generated images with the classes they were generated for, for the
classification metrics (``ganbench.metrics.classification``: ``cas``, ``gan_test``, ``aug_gain``,
``rebalance_gain``).

The extractor ``labelled`` reads images *and* labels: a class-conditional generator's samples
(labels 0, 1, ..., K-1, 0, 1, ... as ``ganbench.evaluate.generate`` draws them), an ``.npz`` file
with ``samples`` and ``labels``, or a folder with one subfolder per class. From them it takes one
fixed synthetic set the size of the real training split with the same count of every class: for
class c, the first ``n_c`` samples of class c in the order given, ``n_c`` being the real training
split's count of class c. The MNIST family is nearly balanced (MNIST train: 5,421 to 6,742 per
class; digits: 140 to 147), so the set is class-balanced as the real split is, and a classifier
trained on it differs from the ``cas_real`` one only in where its images come from: real training
images given as samples reproduce ``cas_real`` exactly. A generator draws ``K * max_c n_c`` samples
(its labels cycle through the classes) so that every class has enough. Too few samples of a
class, a missing class or a label outside 0..K-1 is a UserError before any classifier is
trained. Datasets: the single-digit MNIST family (``digits``, ``mnist``, ``fashion-mnist``), whose
classifier recipe is ``ganbench.features.classifier``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ganbench.errors import UserError
from ganbench.features.base import FeatureExtractor, register
from ganbench.features.cache import tensor_digest
from ganbench.features.classifier import recipe_digest
from ganbench.features.domain import FAMILIES, _split_provenance, classifier_for, classifier_split

SEEDS = (0, 1, 2)  # classifier seeds: every classification metric is the mean over these, with its interval


@dataclass(frozen=True, eq=False)
class RealSplits:
    """The real data a classification metric trains and tests on (float32 [-1, 1], int64 labels)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    digest: str  # content hash of both splits: the key of every cached real-only result

    @property
    def class_counts(self) -> list[int]:
        """Images of each class in the training split."""
        return torch.bincount(self.train_y, minlength=self.num_classes).tolist()


@dataclass(frozen=True, eq=False)
class LabelledSamples:
    images: torch.Tensor  # (n, 1, H, W) float32 in [-1, 1]: the synthetic set, n = real training split size
    labels: torch.Tensor  # (n,) int64, as many of each class as the real training split has
    real: RealSplits
    dataset: Any
    settings: dict  # config fields the metrics read (tail_ratio)
    memo: dict = field(default_factory=dict, repr=False)  # results shared by several metrics
    details: dict = field(default_factory=dict, repr=False)  # per-seed and per-class results, for the run folder


def accepts(dataset) -> str | None:
    if dataset.name not in FAMILIES:
        return (f"trains a digit classifier on labelled single-channel data ({', '.join(FAMILIES)}); "
                f"dataset {dataset.name!r} is not one of them")
    if not dataset.num_classes:
        return f"needs class labels; dataset {dataset.name!r} has none"
    if classifier_split(dataset) != "train":
        return (f"trains on the real training split and tests on the test split; this run's data_path makes "
                f"{classifier_split(dataset)!r} the training split, so the two would be the same images")
    return None


@functools.lru_cache(maxsize=4)
def real_splits(dataset) -> RealSplits:
    """The classifier training split (the split the GAN trains on) and the test split."""
    train_x, train_y = dataset.real_images(classifier_split(dataset))
    test_x, test_y = dataset.real_images("test")
    return RealSplits(train_x, train_y, test_x, test_y, dataset.num_classes,
                      tensor_digest(train_x, train_y, test_x, test_y))


DRAW_MULTIPLE = 16  # torch.randn on the CPU fills its last 16 values apart unless the count is a multiple of 16


def synthetic_size(dataset) -> int:
    """Samples a generator draws so that every class has the real training split's count: K * the
    largest class count (labels cycle through the classes), rounded up to a multiple of 16 rows.

    The rounding keeps the synthetic set the same whatever else an evaluation draws: CPU
    ``torch.randn(n, z)`` gives the first rows of a longer draw except, when n * z is not a multiple
    of 16, its last row or rows; with n a multiple of 16 every row is the longer draw's."""
    real = real_splits(dataset)
    n = real.num_classes * max(real.class_counts)
    return -(-n // DRAW_MULTIPLE) * DRAW_MULTIPLE


def check_labels(labels, n: int, num_classes: int, where: str = "labels") -> torch.Tensor:
    """(n,) integer labels in 0..K-1 -> int64 tensor; anything else is a UserError."""
    arr = np.asarray(labels)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise UserError(f"{where}: labels must be integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and arr.size and not (np.abs(arr) < 2**31).all():
        raise UserError(f"{where}: labels must be integers in 0..{num_classes - 1}, got values up to {np.nanmax(np.abs(arr))}")
    y = torch.as_tensor(arr)
    if y.dim() != 1 or len(y) != n:
        raise UserError(f"{where}: expected {n} labels of shape ({n},), got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        if not (y.dtype.is_floating_point and torch.isfinite(y).all() and (y == y.round()).all()):
            raise UserError(f"{where}: labels must be integers, got dtype {y.dtype}")
    y = y.long()
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise UserError(f"{where}: {int(bad.sum())} labels outside 0..{num_classes - 1} (first: {int(y[bad][0])})")
    return y


def matching_subset(labels: torch.Tensor, counts: list[int], where: str = "samples") -> torch.Tensor:
    """Indices (in their original order) of the first ``counts[c]`` samples of each class c. Raises a
    UserError naming a class that has too few."""
    have = torch.bincount(labels, minlength=len(counts)).tolist()
    short = [c for c, n in enumerate(counts) if have[c] < n]
    if short:
        c = short[0]
        raise UserError(f"{where}: class {c} has {have[c]} samples; the classification metrics need {counts[c]} (the "
                        f"real training split's count of class {c})"
                        + (f"; {len(short)} classes are short" if len(short) > 1 else ""))
    keep = torch.zeros(len(labels), dtype=torch.bool)
    for c, n in enumerate(counts):
        keep[(labels == c).nonzero().squeeze(1)[:n]] = True
    return keep.nonzero().squeeze(1)


def labelled_samples(samples: torch.Tensor, dataset, labels: torch.Tensor,
                     settings: dict | None = None) -> LabelledSamples:
    """The synthetic set: the labelled samples' subset with the real training split's class counts."""
    real = real_splits(dataset)
    if samples.dim() != 4 or samples.shape[1] != 1:
        raise UserError(f"classification metrics need single-channel images (N, 1, H, W), got {tuple(samples.shape)}")
    y = check_labels(labels, len(samples), real.num_classes)
    idx = matching_subset(y, real.class_counts)
    return LabelledSamples(samples[idx].float(), y[idx], real, dataset, dict(settings or {}))


@functools.lru_cache(maxsize=8)
def provenance(dataset) -> dict:
    """Recipe hash, seeds, set sizes and the domain classifier (for ``gan_test``) of every row."""
    real = real_splits(dataset)
    return {"extractor": "labelled", "classifier_recipe": recipe_digest(), "classifier_seeds": list(SEEDS),
            "num_synthetic": len(real.train_y), "num_train_real": len(real.train_y), "num_test": len(real.test_y),
            "real_data": real.digest[:16], **classifier_for(dataset).provenance, **_split_provenance(dataset)}


register(FeatureExtractor(
    name="labelled", extract=labelled_samples, inputs="images", labelled=True, provenance=provenance, accepts=accepts,
    description="generated images with their class labels: classifiers trained on them and tested on real data",
))
