"""Image datasets: one in-memory tensor per split, shuffled epoch by epoch with the run's generator.

Every image dataset is an ``ImageDataset``: a whole split held as one tensor (uint8 in [0, 255],
converted per batch as ``x / 127.5 - 1``, never min-max rescaled; or float32 already in [-1, 1])
at the run's resolution, resized once when loaded (bilinear, antialiased; uint8 data are rounded
back to uint8, as an image file would be). ``real_images(cfg, split, n)`` gives the real images of
a split for evaluation: the first ``n`` in file order.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (values 0..16 -> x / 8 - 1), 1,797
  images, 10 classes, resized to 28x28 by default. Needs no download. Split rule: within each class,
  in file order, every 5th image (the 5th, 10th, ...) is in the test split (355 images); the other
  1,442 are the train split. Fixed by the data alone: no random seed.

Other modules: ``mnist`` (mnist, fashion-mnist, stacked-mnist), ``cifar`` (cifar10), ``folder``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.config import RunConfig
from ganbench.data.base import DATASETS, Batch, data_root
from ganbench.errors import UserError

# Default metrics (see ganbench.metrics.image). Inception metrics need the InceptionV3 weights file;
# the MNIST family and digits default to the offline metrics of the dataset's own classifier.
IMAGE_METRICS: tuple[str, ...] = ("fid", "is", "is_std", "kid", "kid_std")  # cifar10, folder
DOMAIN_METRICS: tuple[str, ...] = ("fid_domain", "cs", "classes", "class_kl", "precision", "recall", "density",
                                   "coverage")  # digits, mnist, fashion-mnist
STACKED_METRICS: tuple[str, ...] = ("sm_modes", "sm_kl")  # stacked-mnist
DIGITS_RESOLUTION = 28  # default side of `digits`: the MNIST size
DIGITS_TEST_EVERY = 5  # every 5th image of each class is in the digits test split

T = TypeVar("T")
Split = tuple[torch.Tensor, Optional[torch.Tensor]]  # images (N, C, H, W) uint8 or float32, labels (N,) or None


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A split of images in memory, at the run's resolution; other splits load on demand."""

    name: str
    images: torch.Tensor = field(repr=False)  # (N, C, H, W): uint8 in [0, 255] or float32 in [-1, 1]
    labels: Optional[torch.Tensor] = field(repr=False)  # (N,) int64, or None when unlabelled
    num_classes: int  # 0 when unlabelled
    native_resolution: int  # side of the stored images before resizing
    split: str  # the split that training batches come from
    loader: Callable[[str], Split] = field(repr=False)  # split name -> (images, labels), resized
    splits: tuple[str, ...] = ("train", "test")  # splits that ``real_images`` accepts
    eval_split: str = "test"  # the split ``real_images`` gives by default: the reference images
    classes: tuple[str, ...] = ()  # class names, when known
    bounded: bool = True
    default_metrics: tuple[str, ...] = IMAGE_METRICS

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[Batch]:
        images = self.images.to(device)
        labels = None if self.labels is None else self.labels.to(device)
        for idx in index_batches(len(images), batch_size, generator, device):
            # index_select: much faster than advanced indexing (images[idx]) for small batches on the CPU
            yield to_float(images.index_select(0, idx)), None if labels is None else labels.index_select(0, idx)

    def real_images(self, split: str | None = None, n: int | None = None) -> Split:
        """The first ``n`` images (all when None) of ``split`` (default: ``eval_split``), as float32 in [-1, 1]."""
        split = split or self.eval_split
        if split not in self.splits:
            raise UserError(f"dataset {self.name!r} has no split {split!r} (splits: {', '.join(self.splits)})")
        images, labels = (self.images, self.labels) if split == self.split else self.loader(split)
        return first_n(self.name, split, images, labels, n)


def first_n(name: str, split: str, images: torch.Tensor, labels: Optional[torch.Tensor], n: int | None) -> Split:
    """Fresh float32 copies of the first ``n`` images (and labels) of a split."""
    if n is not None and not 0 < n <= len(images):
        raise UserError(f"dataset {name!r}: asked for {n} real images, split {split!r} has {len(images)}")
    n = len(images) if n is None else n
    return to_float(images[:n]).clone(), None if labels is None else labels[:n].clone()


def real_images(cfg, split: str | None = None, n: int | None = None) -> Split:
    """Real images of ``cfg.dataset`` at ``cfg``'s resolution for evaluation: (float32 [-1, 1], labels).

    Deterministic: the first ``n`` images of the split in file order (all when None); the split
    defaults to the dataset's reference split (``test``; ``all`` for a folder). ``stacked-mnist``
    gives ``n`` stacks drawn with a fixed seed (see ``ganbench.data.mnist.stacked_real``).
    """
    return DATASETS[cfg.dataset](cfg).real_images(split, n)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] by the fixed map x / 127.5 - 1; float data pass through."""
    if x.dtype == torch.uint8:
        return x.float().div_(127.5).sub_(1.0)
    return x.float()


def index_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """Endless (batch_size,) int64 indices: consecutive chunks of a stream of random permutations.

    The stream is perm_1 ++ perm_2 ++ ..., each perm a ``torch.randperm(n)`` drawn from
    ``generator`` alone, so every image appears exactly once per epoch of ``n`` indices.
    """
    pending = torch.empty(0, dtype=torch.long, device=device)
    while True:
        while len(pending) < batch_size:
            perm = torch.randperm(n, generator=generator, device=generator.device).to(device)
            pending = torch.cat([pending, perm])
        yield pending[:batch_size]
        pending = pending[batch_size:]


def resize(images: torch.Tensor, side: int, chunk: int = 2048) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, side, side), bilinear with antialiasing, same dtype.

    uint8 images are rounded back to uint8; float images stay float (clamped to [-1, 1]).
    """
    if tuple(images.shape[-2:]) == (side, side):
        return images
    out = []
    for part in images.split(chunk):
        x = F.interpolate(part.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else x.clamp_(-1, 1))
    return torch.cat(out)


def check_channels(cfg, name: str, stored: int) -> None:
    """Only ``folder`` converts channels; other datasets accept 0 or their own channel count."""
    if cfg.channels not in (0, stored):
        raise UserError(f"dataset {name!r} has {stored} channel(s); channels={cfg.channels} applies to 'folder' only "
                        f"(use channels=0)")


# A few loaded splits stay in memory, so that checking a suite and then running it loads data once.
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 6


def memo(key: tuple, load: Callable[[], T]) -> T:
    """``load()``, remembered under ``key`` (which must name everything the value depends on)."""
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = load()
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def torchvision_split(cls, name: str, train: bool, files: str, url: str, where: str) -> object:
    """``cls(root, train=train, download=True)`` under ``data_root()/name``; a failed download
    (no network, corrupt archive) becomes a one-line error naming the files and where they go.
    """
    root = data_root() / name
    try:
        return cls(str(root), train=train, download=True)
    except (RuntimeError, OSError) as e:  # urllib's URLError is an OSError
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        reason = lines[-1] if lines else type(e).__name__  # torchvision puts the URL error last
        raise UserError(f"{name}: could not download ({reason}); get {files} from {url} and put "
                        f"{'them' if ',' in files else 'it'} in {root / where}") from None


# ----------------------------------------------------------------------------------------------
# digits: scikit-learn's bundled 8x8 handwritten digits


def digits_split_mask(labels: torch.Tensor) -> torch.Tensor:
    """(N,) bool, True for the test split: within each class, in file order, every 5th image."""
    rank = torch.empty_like(labels)
    for c in labels.unique():
        where = (labels == c).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where))
    return rank % DIGITS_TEST_EVERY == DIGITS_TEST_EVERY - 1


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images (1797, 8, 8) with values 0..16, labels (1797,) int64.

    Reads the CSV bundled with scikit-learn, the file ``load_digits`` reads, without importing
    scikit-learn (2 s); falls back to ``load_digits`` if the file is not where it has always been.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",")
        if table.shape == (1797, 65):
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int64)


def _load_digits(split: str, side: int) -> Split:
    raw_images, raw_labels = digits_arrays()
    images = torch.from_numpy(raw_images).float().div_(8.0).sub_(1.0).unsqueeze(1)  # (1797, 1, 8, 8) in [-1, 1]
    labels = torch.from_numpy(raw_labels)
    test = digits_split_mask(labels)
    keep = test if split == "test" else ~test
    return resize(images[keep], side), labels[keep]


@DATASETS.register("digits")
def digits(cfg=None) -> ImageDataset:
    """scikit-learn's 8x8 handwritten digits, 10 classes, resized to 28x28 (no download)"""
    cfg = cfg or RunConfig(dataset="digits")
    check_channels(cfg, "digits", 1)
    side = cfg.resolution or DIGITS_RESOLUTION

    def loader(split: str) -> Split:
        return memo(("digits", split, side), lambda: _load_digits(split, side))

    images, labels = loader("train")
    return ImageDataset("digits", images, labels, 10, 8, "train", loader, classes=tuple("0123456789"),
                        default_metrics=DOMAIN_METRICS)
