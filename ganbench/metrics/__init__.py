"""Metrics: ``METRICS`` maps a name to a ``Metric`` record.

A metric is pure math on the output of one feature extractor. Its record pins the protocol that
makes two values comparable: the extractor, how many generated and real samples, the direction,
and a version that changes whenever the definition does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ganbench.registry import Registry

METRICS = Registry("metric")


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Any], float]  # features -> value
    features: str  # name of the extractor in FEATURES
    higher_is_better: bool
    num_fake: int  # generated samples drawn with the eval seed
    num_real: int  # real samples (0: the metric uses the known distribution instead)
    version: int  # bump when the definition changes; rows of other versions never mix
    description: str

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


def register(metric: Metric) -> Metric:
    return METRICS.register(metric.name, metric)


from ganbench.metrics import modes  # noqa: E402,F401  (registers the built-in metrics)
from ganbench.metrics import image  # noqa: E402,F401  (image metrics: domain, Stacked MNIST, Inception)
