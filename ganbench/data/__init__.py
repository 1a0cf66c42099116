"""Datasets: ``DATASETS`` maps a name to a factory ``fn(cfg) -> Dataset``.

A dataset says what one sample looks like and yields training batches drawn with an explicit
generator (the run's data-order stream).
"""

from __future__ import annotations

from typing import Iterator, Protocol

import torch

from ganbench.registry import Registry

DATASETS = Registry("dataset")


class Dataset(Protocol):
    name: str
    shape: tuple[int, ...]  # one sample, e.g. (2,) for points or (1, 28, 28) for images
    bounded: bool  # samples lie in [-1, 1] (images): generators end in tanh
    num_classes: int  # 0 when unlabelled
    default_metrics: tuple[str, ...]

    def batches(self, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
        """An endless stream of (batch_size, *shape) tensors on ``device``."""


from ganbench.data import toy  # noqa: E402,F401  (registers the toy datasets)
