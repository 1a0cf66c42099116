"""Domain features for MNIST-family data (digits, mnist, fashion-mnist, stacked-mnist), offline.

The extractor ``domain`` passes generated images through the dataset's own classifier
(``ganbench.features.classifier``) and pairs them with the same features of the real reference split
(cached by content hash). Metrics on it: ``fid_domain``, ``cs`` (classifier score, the Inception
Score analogue), ``classes`` and ``class_kl`` (class coverage), ``precision``/``recall`` and
``density``/``coverage``. The extractor ``stacked`` labels each channel of a Stacked MNIST image
with the MNIST classifier, for ``sm_modes`` and ``sm_kl``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch

from ganbench import distributed
from ganbench.errors import UserError
from ganbench.features.base import FeatureExtractor, register
from ganbench.features.cache import cached_arrays, tensor_digest
from ganbench.features.classifier import TrainedClassifier, get_classifier
from ganbench.features.inception import check_same_size

FAMILIES = ("digits", "mnist", "fashion-mnist")  # datasets with a classifier of their own


@dataclass(frozen=True)
class DomainFeatures:
    fake: np.ndarray  # (N, 128) float64 classifier features of the generated images
    fake_probs: np.ndarray  # (N, K) float64 class probabilities
    real: np.ndarray  # (M, 128) float64 features of the reference split
    real_labels: np.ndarray  # (M,) int64 true labels of the reference split
    num_classes: int
    memo: dict = field(default_factory=dict, repr=False, compare=False)  # results shared by several metrics


def classifier_split(dataset) -> str:
    """The split the classifier trains on: the one the GAN trains on (``dataset.split``), which is
    the train split unless ``data_path`` named the test split's images file on purpose."""
    return getattr(dataset, "split", "train")


HELD_OUT = 10  # a classifier trained on the test split is measured on 1 in HELD_OUT of its images, never trained on
HELD_OUT_SEED = 0


def held_out(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training rows, held-out rows) of a split of ``n`` images whose classifier has no other split
    to be measured on: a fixed random tenth is held out (not the last rows: MNIST's test split puts
    its two writer populations in halves)."""
    if n < HELD_OUT:
        raise UserError(f"a classifier trained on the test split needs at least {HELD_OUT} images to hold "
                        f"one out for its accuracy, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(HELD_OUT_SEED))
    k = n // HELD_OUT
    return order[k:].sort().values, order[:k].sort().values


def _digit_source(dataset):
    """(name, classifier training split, the split its accuracy is measured on, test split) of the
    single-digit data behind a dataset. Trained on the test split on purpose, the classifier learns
    from nine tenths of it and is measured on the other tenth."""
    split = classifier_split(dataset)
    if dataset.name == "stacked-mnist":
        name, train, test = "mnist", dataset.mnist_images(split), dataset.mnist_images("test")
    elif dataset.name in FAMILIES:
        name, train, test = dataset.name, dataset.real_images(split), dataset.real_images("test")
    else:
        raise UserError(f"domain metrics need one of {', '.join(FAMILIES)} or stacked-mnist, not {dataset.name!r}")
    if split == "train" or train[1] is None:
        return name, train, test, test
    fit, measure = held_out(len(train[0]))
    return name, (train[0][fit], train[1][fit]), (train[0][measure], train[1][measure]), test


def _split_provenance(dataset) -> dict:
    """A classifier trained on another split than train says so in every row, with the count of that
    split's images held out to measure its accuracy; the usual case adds nothing."""
    split = classifier_split(dataset)
    if split == "train":
        return {}
    return {"classifier_train_split": split, "classifier_held_out": _classifier(dataset)[2]}


@functools.lru_cache(maxsize=8)
def _classifier(dataset) -> tuple[TrainedClassifier, tuple[torch.Tensor, torch.Tensor], int]:
    """(the classifier, the test split, how many images its accuracy is measured on)."""
    name, train, measure, test = _digit_source(dataset)
    if train[1] is None:
        raise UserError(f"dataset {dataset.name!r} has no labels: its classifier cannot be trained")
    num_classes = int(train[1].max()) + 1
    # under torchrun: trained (or read from the cache) once, by process 0
    return distributed.main_then_share(lambda: get_classifier(name, train, measure, num_classes)), test, len(measure[0])


def classifier_for(dataset) -> TrainedClassifier:
    return _classifier(dataset)[0]


PREPROCESSING = "float [-1, 1]; bilinear antialiased resize to 28x28 when the side differs"


def _reference_split(dataset) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(split name, images, labels) of the real reference: the test split (for Stacked MNIST, the
    single MNIST test digits the classifier reads)."""
    if dataset.name == "stacked-mnist":
        return "mnist-test", *_classifier(dataset)[1]
    images, labels = dataset.real_images()
    return dataset.eval_split, images, labels


@functools.lru_cache(maxsize=8)
def _reference(dataset) -> dict[str, np.ndarray]:
    """Features of the real reference split, cached under every input that changes them (and kept
    in memory, so that evaluations during training neither hash the split nor read the file again)."""
    clf = classifier_for(dataset)
    split, images, labels = _reference_split(dataset)
    doc = cache_key(dataset)

    def compute():
        feats, _ = features_and_probs(clf, images)
        return {"features": feats.numpy(), "labels": labels.numpy()}

    return cached_arrays("reference", doc, compute)


def cache_key(dataset) -> dict:
    """The document that names the reference split's domain features (their on-disk cache key)."""
    split, images, labels = _reference_split(dataset)
    return {"kind": "domain-reference", "extractor": "domain", "classifier": classifier_for(dataset).key,
            "dataset": dataset.name, "split": split, "n": len(images), "data": tensor_digest(images, labels),
            "preprocessing": PREPROCESSING}


BATCH = 500  # images per classifier call


def features_and_probs(clf: TrainedClassifier, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``clf(images)``, under torchrun split by batches over the processes."""
    return distributed.map_batches(clf, images, BATCH)


@functools.lru_cache(maxsize=8)
def provenance(dataset) -> dict:
    """What a row on domain features must record: classifier hash and accuracy, reference size."""
    clf = classifier_for(dataset)
    split, images, _ = _reference_split(dataset)
    return {"extractor": "domain", **clf.provenance, **_split_provenance(dataset), "reference_split": split,
            "num_real": len(images)}


def domain_features(samples: torch.Tensor, dataset) -> DomainFeatures:
    """Classifier features and class probabilities of generated single-channel digit images."""
    if samples.dim() != 4 or samples.shape[1] != 1:
        raise UserError(f"domain features need single-channel images (N, 1, H, W), got {tuple(samples.shape)}")
    clf = classifier_for(dataset)
    check_same_size(tuple(samples.shape[1:]), tuple(dataset.shape))
    feats, probs = features_and_probs(clf, samples)
    ref = _reference(dataset)
    return DomainFeatures(feats.numpy(), probs.numpy(), ref["features"], ref["labels"], clf.num_classes)


register(FeatureExtractor(
    name="domain", extract=domain_features, inputs="images", provenance=provenance, cache_key=cache_key,
    description="the dataset's own digit classifier: 128-d features and class probabilities",
))


@dataclass(frozen=True)
class StackedLabels:
    triples: np.ndarray  # (N,) int64: 100 * d0 + 10 * d1 + d2 as the classifier reads the channels


def stacked_labels(samples: torch.Tensor, dataset) -> StackedLabels:
    """Each of the three channels classified as a digit by the MNIST classifier."""
    if samples.dim() != 4 or samples.shape[1] != 3:
        raise UserError(f"Stacked MNIST metrics need 3-channel images, got {tuple(samples.shape)}")
    check_same_size(tuple(samples.shape[1:]), tuple(dataset.shape))
    clf = classifier_for(dataset)
    digits = [features_and_probs(clf, samples[:, c : c + 1])[1].argmax(1) for c in range(3)]
    triples = (100 * digits[0] + 10 * digits[1] + digits[2]).numpy()
    return StackedLabels(triples)


def stacked_provenance(dataset) -> dict:
    return {"extractor": "stacked", **classifier_for(dataset).provenance, **_split_provenance(dataset)}


register(FeatureExtractor(
    name="stacked", extract=stacked_labels, inputs="images", provenance=stacked_provenance,
    description="Stacked MNIST: each of the three channels read as a digit by the MNIST classifier",
))
