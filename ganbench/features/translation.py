"""Translation features: what a translator pair made of the test split, and the domain classifiers.

``Translations`` holds, in the order of the test split, G(a) for every test image a of domain A
and, when the B -> A translator is known, F(b) for every b of B_test, the cycles F(G(a)) and
G(F(b)), and the steganography probes F(G(a) + n) and G(F(b) + n), n ~ N(0, ``STEGO_SIGMA``^2)
per pixel drawn with the evaluation seed (clamped to [-1, 1]). ``ganbench.evaluate.translate``
makes it.

The extractor ``translation`` reads the pixels (paired error, cycles); ``translation-domain``
pairs them with each domain's classifier (the digit classifier of
``ganbench.features.classifier``, trained on the source's whole training split, mapped by T for
domain B; cached by content hash): 128-d features and class probabilities of the translations and
of the real images of the target domain, built when a metric reads them. The unlabelled
``folder-pair`` has only the first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ganbench.errors import UserError
from ganbench.features.base import FeatureExtractor, register
from ganbench.features.classifier import TrainedClassifier, get_classifier

# noise of the steganography probe, in the [-1, 1] units of the images (about 4 of 255 grey levels)
STEGO_SIGMA = 0.03
NO_TRUTH = "none (no ground truth)"  # the transform a row records for folder-pair
DIRECTIONS = {"ab": ("a", "b"), "ba": ("b", "a")}  # direction -> (input domain, target domain)


@dataclass(frozen=True)
class Translations:
    """A translator pair's outputs on the test split, float32 in [-1, 1], (N, C, H, W) each."""

    ab: torch.Tensor  # G(a) for a in A_test
    ba: Optional[torch.Tensor] = None  # F(b) for b in B_test
    cycle_a: Optional[torch.Tensor] = None  # F(G(a))
    cycle_b: Optional[torch.Tensor] = None  # G(F(b))
    stego_a: Optional[torch.Tensor] = None  # F(G(a) + n)
    stego_b: Optional[torch.Tensor] = None  # G(F(b) + n)

    def images(self) -> torch.Tensor:
        """Every tensor held, concatenated (for the finiteness check)."""
        return torch.cat([t for t in (self.ab, self.ba, self.cycle_a, self.cycle_b, self.stego_a, self.stego_b)
                          if t is not None])


@dataclass(frozen=True)
class DomainSide:
    fake: np.ndarray  # (N, 128) float64 features of the translations into the domain
    fake_probs: np.ndarray  # (N, K) class probabilities
    real: np.ndarray  # (M, 128) features of the domain's real test images
    labels: np.ndarray  # (N,) int64 classes of the inputs (the test labels)
    num_classes: int


@dataclass(frozen=True)
class TranslationFeatures:
    translations: Translations
    dataset: object
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def output(self, direction: str) -> torch.Tensor:
        out = getattr(self.translations, direction)
        if out is None:
            raise UserError(f"the {direction[0].upper()} -> {direction[1].upper()} translations are not known "
                            f"(give the translator pair, or both directions' translations)")
        return out

    def side(self, direction: str) -> DomainSide:
        """Classifier features of the ``direction`` translations and of their target domain's test images."""
        if direction not in self.memo:
            _, target = DIRECTIONS[direction]
            clf = classifier(self.dataset, target)
            fake_feats, fake_probs = clf(self.output(direction))
            real = reference(self.dataset, target)
            labels = self.dataset.test_labels.numpy()
            self.memo[direction] = DomainSide(fake_feats.numpy(), fake_probs.numpy(), real, labels, clf.num_classes)
        return self.memo[direction]


@functools.lru_cache(maxsize=8)
def classifier(dataset, side: str) -> TrainedClassifier:
    """Domain ``side``'s digit classifier ("a" or "b")."""
    train, test, background = dataset.classifier_data(side)
    name = dataset.source if side == "a" else f"{dataset.name}-B"
    return get_classifier(name, train, test, dataset.num_classes, background)


@functools.lru_cache(maxsize=8)
def reference(dataset, side: str) -> np.ndarray:
    """(M, 128) classifier features of domain ``side``'s real test images."""
    images = dataset.test_a if side == "a" else dataset.test_b
    return classifier(dataset, side)(images)[0].numpy()


def extract(translations: Translations, dataset) -> TranslationFeatures:
    if not isinstance(translations, Translations):
        raise UserError(f"translation metrics read a translator's outputs, got {type(translations).__name__}")
    return TranslationFeatures(translations, dataset)


def provenance(dataset) -> dict:
    """The truth, the test split's size and the probe's noise."""
    return {"extractor": "translation", "transform": dataset.transform or NO_TRUTH,
            "reference_split": dataset.eval_split, "num_real": len(dataset.test_a), "stego_sigma": STEGO_SIGMA}


def domain_provenance(dataset) -> dict:
    """As ``provenance``, with both domain classifiers' hashes and test accuracies."""
    if not dataset.num_classes:
        raise UserError(f"dataset {dataset.name!r} has no labels: metrics in classifier features do not apply "
                        f"(its metrics: {', '.join(dataset.default_metrics)})")
    p = {**provenance(dataset), "extractor": "translation-domain"}
    for side in ("a", "b"):
        clf = classifier(dataset, side)
        p[f"classifier_{side}"] = clf.key
        p[f"classifier_{side}_test_accuracy"] = clf.test_accuracy
    return p


def accepts(dataset) -> Optional[str]:
    if not getattr(dataset, "translation", False):
        return f"reads a translator's outputs; dataset {dataset.name!r} is not a translation pair"
    return None


def accepts_labelled(dataset) -> Optional[str]:
    reason = accepts(dataset)
    if reason is None and not dataset.num_classes:
        return f"needs labelled domains (classifier features); dataset {dataset.name!r} has no labels"
    return reason


register(FeatureExtractor(
    name="translation", extract=extract, inputs="translations", provenance=provenance, accepts=accepts,
    description="a translator pair's outputs on the test split, as pixels (paired error, cycles)",
))
register(FeatureExtractor(
    name="translation-domain", extract=extract, inputs="translations", provenance=domain_provenance,
    accepts=accepts_labelled,
    description="a translator pair's outputs on the test split, in each domain's digit classifier's features",
))
