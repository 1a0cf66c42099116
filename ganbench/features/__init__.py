"""Feature extractors: samples -> the arrays metrics are computed on.

One registered ``FeatureExtractor`` per file: ``mode2d`` (2-D points to their nearest mixture
mode), ``points`` (vectors as they are), ``inception`` (torch-fidelity's InceptionV3), ``dinov2``
and ``clip`` (``clip`` and ``clip_cmmd``; shared machinery in ``embedding``, weights files in ``weights``), ``domain`` and ``stacked`` (the dataset's own
digit classifier), ``translation`` (a translator pair's outputs and each domain's classifier), ``labelled``
(class-labelled samples for the classification metrics). ``cache`` keeps reference features on disk; ``stats`` holds the streaming
mean and covariance.
"""

from __future__ import annotations

from ganbench.features.base import FEATURES, FeatureExtractor, register  # noqa: F401
from ganbench.features import mode2d, points, inception, dinov2, clip, domain, translation, labelled  # noqa: F401,I001  (register the built-in extractors, in this order)
