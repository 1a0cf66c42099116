"""Metrics: ``METRICS`` maps a name to a ``Metric`` record (in ``base``).

Pure maths on feature arrays: ``frechet`` (FID), ``kernel`` (KID), ``inception_score``, ``prdc``
(precision, recall, density, coverage), ``diversity`` (Vendi, RKE), ``uncertainty`` (bootstrap intervals, FID-infinity).
``modes``, ``image``, ``embedding`` (DINOv2, CLIP, CMMD, diversity), ``translation`` and ``classification`` (classifiers trained on samples) register the built-in metric records.
"""

from __future__ import annotations

from ganbench.metrics.base import METRICS, Metric, register  # noqa: F401
from ganbench.metrics import modes, image, embedding, translation, classification  # noqa: F401,I001  (register the built-in metrics, in this order)
