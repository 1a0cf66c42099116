"""The feature-extractor record and its registry.

A feature extractor turns samples into the arrays metrics are computed on. Extraction is kept
apart from the metric maths so that each feature set is computed once per evaluation and shared by
every metric that reads it. ``FEATURES`` maps a name to a ``FeatureExtractor``; a plug-in adds one
with ``FEATURES.register(name, FeatureExtractor(...))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ganbench.registry import Registry


# what an extractor reads: (N, D) vectors, (N, C, H, W) images, or a translator pair's outputs
# (``ganbench.features.translation.Translations``) on a translation dataset
INPUTS = ("points", "images", "translations")


def _nothing(dataset) -> dict:
    return {}


def _no_check(dataset) -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class FeatureExtractor:
    """One feature space.

    ``extract(samples, dataset)`` returns the object the metrics of this space read (its fields
    are the extractor's business). ``provenance(dataset)`` is what every result row on these
    features records: network or classifier, the hash of its weights, the real reference and its
    size (``num_real``). ``preflight(dataset)`` runs before any training and raises a ``UserError``
    when the extractor cannot run (a missing weights file); ``accepts(dataset)``, when set, says why
a dataset's samples do not suit it (beyond their shape, which ``inputs`` checks). ``cache_key(dataset)``, when set, is
    the document that names the features of the dataset's real reference split: every input that
    changes them; the reference features are cached on disk under its hash. A ``labelled`` extractor
    reads the samples' class labels too: it is called as ``extract(samples, dataset, labels,
    settings)`` on every sample given (it chooses its own subset), ``settings`` being the config
    fields its metrics name in ``Metric.config``.
    """

    name: str
    extract: Callable[[torch.Tensor, Any], Any]
    inputs: str  # one of INPUTS
    description: str
    provenance: Callable[[Any], dict] = _nothing
    preflight: Callable[[Any], None] = _no_check
    cache_key: Optional[Callable[[Any], dict]] = None
    accepts: Optional[Callable[[Any], Optional[str]]] = None  # dataset -> why it does not apply, or None
    labelled: bool = False  # reads (samples, dataset, labels, settings): needs class-labelled samples

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise ValueError(f"feature extractor {self.name!r}: inputs must be one of {INPUTS}, not {self.inputs!r}")

    def __call__(self, samples: torch.Tensor, dataset, *labelled):
        return self.extract(samples, dataset, *labelled)

    def mismatch(self, dataset) -> str | None:
        """Why this extractor cannot read the dataset's samples (completing "metric M ..."), or None."""
        reason = self.accepts(dataset) if self.accepts is not None else None
        if reason:
            return reason
        translation = bool(getattr(dataset, "translation", False))
        if translation != (self.inputs == "translations"):
            return (f"reads {self.inputs} ({self.name} features); dataset {dataset.name!r} is "
                    f"{'a translation pair (its metrics: `ganbench list metrics`, features translation)' if translation else 'not a translation pair'}")
        images = len(tuple(dataset.shape)) == 3
        if self.inputs == "images" and not images:
            return f"reads images ({self.name} features); dataset {dataset.name!r} has samples of shape {tuple(dataset.shape)}"
        if self.inputs == "points" and images:
            return f"reads points ({self.name} features); dataset {dataset.name!r} has images"
        return None


FEATURES = Registry("feature extractor", FeatureExtractor)


def register(extractor: FeatureExtractor) -> FeatureExtractor:
    """Add ``extractor`` to ``FEATURES`` under its name."""
    return FEATURES.register(extractor.name, extractor)
