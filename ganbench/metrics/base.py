"""The metric record and its registry: ``METRICS`` maps a name to a ``Metric``.

A metric is pure maths on the output of one feature extractor (``ganbench.features``). Its record
pins the protocol that makes two values comparable: the extractor, how many generated and real
samples, the direction, and a version that changes whenever the definition does. A plug-in adds
one with ``register(Metric(...))``; every field is a keyword.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ganbench.registry import Registry



@dataclass(frozen=True, kw_only=True)
class Metric:
    """One registered metric.

    ``fn(features) -> float`` computes the value from what the extractor ``features`` returned.
    ``num_fake`` generated samples are drawn with the evaluation seed; ``num_real`` real samples
    are read (0: the metric uses the known distribution, -1: the whole reference split).
    ``range`` = (low, high) holds every value the metric can take (``math.inf`` where unbounded;
    KID's unbiased estimate can fall below 0): the bounds an interval over seeds can be read within.
    ``num_fake`` = ``TRAIN_SPLIT`` (-2): as many as the dataset's real training split (the
    classification metrics' synthetic training set). ``config`` names the config fields the value
    depends on (recorded in every row's protocol); ``params`` holds fixed settings of the definition
    (name, value) pairs, recorded there too. A ``final_only`` metric (one that trains classifiers,
    say) is computed at a run's final evaluation only, not at the ``eval_every`` ones. ``min_fake``
    is the fewest generated samples the definition works with (a covariance needs 2, an Inception
    Score one per split, KID one subset), or a function of the dataset that returns it (2 per class
    for an intra-class FID); it is checked before training when a config sets ``eval_samples``.
    """

    name: str
    fn: Callable[[Any], float]
    features: str  # name of the extractor in FEATURES
    higher_is_better: bool
    num_fake: int
    num_real: int
    description: str
    range: tuple[float, float] = (-math.inf, math.inf)
    version: int = 1  # bump when the definition changes; rows of other versions never mix
    config: tuple[str, ...] = ()  # config fields the value depends on
    params: tuple[tuple[str, Any], ...] = ()  # fixed settings of the definition
    final_only: bool = False  # computed at the end of a run only (too costly for every evaluation)
    min_fake: int | Callable[[Any], int] = 1  # the fewest generated samples the definition works with

    def __post_init__(self):
        lo, hi = self.range
        if not lo < hi:
            raise ValueError(f"metric {self.name!r}: range must be (low, high) with low < high, got {self.range}")
        if not callable(self.min_fake) and self.min_fake < 1:
            raise ValueError(f"metric {self.name!r}: min_fake must be at least 1, got {self.min_fake}")

    def least(self, dataset) -> int:
        """The fewest generated samples the definition works with on ``dataset``."""
        return int(self.min_fake(dataset)) if callable(self.min_fake) else self.min_fake

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def within(self, value: float) -> bool:
        """Whether ``value`` lies in the metric's range (up to rounding); NaN and inf are not judged."""
        lo, hi = self.range
        if not math.isfinite(value):
            return True
        return lo - 1e-9 * max(1.0, abs(lo)) <= value <= hi + 1e-9 * max(1.0, abs(hi))


TRAIN_SPLIT = -2  # num_fake: the size of the real training split (-1 is the translation metrics' whole test split)

METRICS = Registry("metric", Metric)


def register(metric: Metric) -> Metric:
    """Add ``metric`` to ``METRICS`` under its name."""
    return METRICS.register(metric.name, metric)
