"""The dataset interface and its registry: ``DATASETS`` maps a name to a factory ``fn(cfg) -> Dataset``.

A dataset says what one sample looks like and yields training batches drawn with an explicit
generator (the run's data-order stream). Files are looked for under ``data_root()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional, Protocol

import torch

from ganbench.registry import Registry

DATASETS = Registry("dataset")

Batch = tuple[torch.Tensor, Optional[torch.Tensor]]  # samples (B, *shape), labels (B,) int64 or None


def data_root() -> Path:
    """Where datasets are stored: ``$GANBENCH_DATA``, else ``~/.cache/ganbench/data``."""
    return Path(os.environ.get("GANBENCH_DATA") or Path.home() / ".cache" / "ganbench" / "data")


class Dataset(Protocol):
    name: str
    shape: tuple[int, ...]  # one sample, e.g. (2,) for points or (1, 28, 28) for images
    bounded: bool  # samples lie in [-1, 1] (images): generators end in tanh
    num_classes: int  # 0 when unlabelled
    default_metrics: tuple[str, ...]

    def batches(self, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[Batch]:
        """An endless stream of (samples, labels) on ``device``; labels are None when unlabelled."""

    # Image datasets also have ``native_resolution``, ``split`` (the training split) and
    # ``real_images(split=None, n=None)``: real images of a split as float32 in [-1, 1] with labels.
