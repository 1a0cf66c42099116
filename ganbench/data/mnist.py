"""MNIST, Fashion-MNIST and Stacked MNIST (28x28, uint8 in memory).

Where the files come from:

- ``data_path`` empty: torchvision under ``data_root()/<name>`` (downloaded on first use; offline,
  put the four ``.gz`` files in ``data_root()/mnist/MNIST/raw/`` or
  ``data_root()/fashion-mnist/FashionMNIST/raw/``).
- ``data_path`` a folder: its IDX files are read directly (plain or ``.gz``):
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (the ``-images.idx3-ubyte`` spelling is accepted too).
- Training needs the train split. A folder holding only the t10k files trains only when asked on
  purpose: ``data_path`` naming the images file itself (``DIR/t10k-images-idx3-ubyte.gz``) trains
  on that file's split (the dataset's ``split`` is then ``"test"``).

``stacked-mnist`` (the 1,000-mode benchmark): three MNIST digit images drawn independently and
uniformly (over the images of the split, with the run's data-order generator) become the three
channels of one image; label = 100 * d0 + 10 * d1 + d2. Its real images for evaluation are
``stacked_real``: the same construction on the test split with the fixed seed ``STACKED_SEED``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

from ganbench.config import RunConfig
from ganbench.data.base import DATASETS, Batch, data_root
from ganbench.data.idx import read_idx
from ganbench.data.images import (
    DOMAIN_METRICS,
    STACKED_METRICS,
    ImageDataset,
    Split,
    check_channels,
    first_n,
    memo,
    resize,
    to_float,
    torchvision_split,
)
from ganbench.errors import UserError

NATIVE = 28
STACKED_SEED = 0  # seed of the stacks that stacked_real gives for evaluation
PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class Family:
    torchvision_class: str  # class in torchvision.datasets; its folder under the root
    url: str  # where the IDX .gz files can be downloaded by hand
    classes: tuple[str, ...]


FAMILIES = {
    "mnist": Family("MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/", tuple("0123456789")),
    "fashion-mnist": Family("FashionMNIST", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                             "Bag", "Ankle boot")),
}


def idx_names(split: str) -> tuple[str, str]:
    """The canonical (images, labels) file names of a split, e.g. t10k-images-idx3-ubyte."""
    p = PREFIX[split]
    return f"{p}-images-idx3-ubyte", f"{p}-labels-idx1-ubyte"


def find_idx(folder: Path, split: str) -> tuple[Optional[Path], Optional[Path]]:
    """The (images, labels) files of a split in ``folder``, plain preferred over ``.gz``; None if absent."""

    def find(canonical: str) -> Optional[Path]:
        dotted = canonical.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some mirrors name them
        for stem in (canonical, dotted):
            for suffix in ("", ".gz"):
                if (folder / (stem + suffix)).is_file():
                    return folder / (stem + suffix)
        return None

    images, labels = idx_names(split)
    return find(images), find(labels)


def _stamp(p: Path) -> tuple:
    st = p.stat()
    return str(p), st.st_size, st.st_mtime_ns


def read_idx_pair(images_path: Path, labels_path: Path) -> Split:
    """An images file (N, H, W) uint8 and a labels file (N,) of digits -> ((N, 1, H, W) uint8, (N,) int64)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != "uint8":
        raise UserError(f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images) or not ((labels >= 0) & (labels <= 9)).all():
        raise UserError(f"{labels_path}: expected {len(images)} labels in 0..9, got {labels.dtype} {labels.shape}")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype("int64"))


class IdxFolder:
    """The splits of an IDX folder; ``chosen`` is an images file named on purpose by ``data_path``."""

    def __init__(self, name: str, folder: Path, side: int, chosen: Optional[Path] = None):
        self.name, self.folder, self.side, self.chosen = name, folder, side, chosen

    def __call__(self, split: str) -> Split:
        images, labels = find_idx(self.folder, split)
        if self.chosen is not None and split_of(self.name, self.chosen) == split:
            images = self.chosen
            twin = self.folder / self.chosen.name.replace("images", "labels").replace("idx3", "idx1")
            labels = twin if twin.is_file() else labels
        if images is None or labels is None:
            raise UserError(self.missing(split, images, labels))
        key = ("idx", _stamp(images), _stamp(labels), self.side)
        return memo(key, lambda: self._resized(images, labels))

    def _resized(self, images: Path, labels: Path) -> Split:
        x, y = read_idx_pair(images, labels)
        return resize(x, self.side), y

    def missing(self, split: str, images: Optional[Path], labels: Optional[Path]) -> str:
        names = [n + "[.gz]" for n, p in zip(idx_names(split), (images, labels)) if p is None]
        msg = (f"{self.name}: missing {' and '.join(names)} in {self.folder}; get "
               f"{'it' if len(names) == 1 else 'them'} from {FAMILIES[self.name].url} and put "
               f"{'it' if len(names) == 1 else 'them'} in {self.folder}")
        other, _ = find_idx(self.folder, "test")
        if split == "train" and other is not None:
            msg += (f" (training needs the train split; to train and evaluate on the test split on purpose, "
                    f"set data_path={other}: the domain classifier then trains on it too)")
        return msg


def split_of(name: str, path: Path) -> str:
    """The split of an images IDX file named by ``data_path``: train-... or t10k-/test-..."""
    base = path.name.lower()
    if "images" in base and base.startswith("train"):
        return "train"
    if "images" in base and base.startswith(("t10k", "test")):
        return "test"
    raise UserError(f"{name}: data_path {path} is not an images IDX file (expected a folder of IDX files "
                    f"or a file such as t10k-images-idx3-ubyte.gz)")


def _torchvision(name: str, split: str, side: int) -> Split:
    import torchvision.datasets

    fam = FAMILIES[name]
    cls = getattr(torchvision.datasets, fam.torchvision_class)
    files = ", ".join(f for f, _ in cls.resources)
    ds = torchvision_split(cls, name, split == "train", files, cls.mirrors[0], f"{fam.torchvision_class}/raw")
    return resize(ds.data.unsqueeze(1).contiguous(), side), ds.targets.long()


def mnist_loader(name: str, cfg) -> tuple[Callable[[str], Split], str]:
    """(split -> (images, labels) at the run's resolution, the split that training reads)."""
    side = cfg.resolution or NATIVE
    if not cfg.data_path:
        root = str(data_root())
        return (lambda split: memo(("torchvision", name, root, split, side), lambda: _torchvision(name, split, side))), "train"
    path = Path(cfg.data_path).expanduser()
    if path.is_dir():
        return IdxFolder(name, path, side), "train"
    if path.is_file():
        return IdxFolder(name, path.parent, side, chosen=path), split_of(name, path)
    raise UserError(f"{name}: data_path {path} does not exist (expected a folder of MNIST-format IDX files)")


def _family_dataset(name: str, cfg) -> ImageDataset:
    cfg = cfg or RunConfig(dataset=name)
    check_channels(cfg, name, 1)
    loader, split = mnist_loader(name, cfg)
    images, labels = loader(split)
    return ImageDataset(name, images, labels, 10, NATIVE, split, loader, classes=FAMILIES[name].classes,
                        default_metrics=DOMAIN_METRICS)


@DATASETS.register("mnist")
def mnist(cfg=None) -> ImageDataset:
    """MNIST handwritten digits 28x28, 10 classes (torchvision download, or data_path = folder of IDX files)"""
    return _family_dataset("mnist", cfg)


@DATASETS.register("fashion-mnist")
def fashion_mnist(cfg=None) -> ImageDataset:
    """Fashion-MNIST clothing 28x28, 10 classes (torchvision download, or data_path = folder of IDX files)"""
    return _family_dataset("fashion-mnist", cfg)


# ----------------------------------------------------------------------------------------------
# Stacked MNIST


def stack(digits: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> Batch:
    """digits (N, 1, H, W), labels (N,), idx (B, 3) -> images (B, 3, H, W) in [-1, 1], labels (B,) in 0..999.

    Channel c of image b is ``digits[idx[b, c]]``; its label is 100 * d0 + 10 * d1 + d2.
    """
    b, (h, w) = len(idx), digits.shape[-2:]
    images = to_float(digits.index_select(0, idx.flatten()).view(b, 3, h, w))  # (B*3, 1, H, W) -> (B, 3, H, W)
    weights = torch.tensor([100, 10, 1], dtype=torch.long, device=labels.device)
    return images, (labels.index_select(0, idx.flatten()).view(b, 3) * weights).sum(dim=1)


@dataclass(frozen=True, eq=False)
class StackedMNIST:
    """Stacks of three MNIST digits drawn on the fly; 1,000 classes (digit triples)."""

    digits: torch.Tensor = field(repr=False)  # (N, 1, H, W) uint8: the MNIST split the stacks come from
    digit_labels: torch.Tensor = field(repr=False)  # (N,) int64 in 0..9
    split: str
    loader: Callable[[str], Split] = field(repr=False)
    name: str = "stacked-mnist"
    native_resolution: int = NATIVE
    num_classes: int = 1000
    splits: tuple[str, ...] = ("train", "test")
    eval_split: str = "test"
    bounded: bool = True
    default_metrics: tuple[str, ...] = STACKED_METRICS

    @property
    def shape(self) -> tuple[int, int, int]:
        return (3, *self.digits.shape[2:])

    def batches(self, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[Batch]:
        digits, labels = self.digits.to(device), self.digit_labels.to(device)
        while True:  # three independent, uniform draws per image, from the data-order generator only
            idx = torch.randint(len(digits), (batch_size, 3), generator=generator, device=generator.device)
            yield stack(digits, labels, idx.to(device))

    def real_images(self, split: str | None = None, n: int | None = None, seed: int = STACKED_SEED) -> Split:
        """``n`` stacks (default: as many as the split has images) from ``split`` (default test), drawn
        on the CPU with a generator seeded by ``seed``: the same images on every machine and run."""
        digits, labels = self._digits(split or self.eval_split)
        n = len(digits) if n is None else n
        if n <= 0:
            raise UserError(f"dataset {self.name!r}: asked for {n} real images")
        idx = torch.randint(len(digits), (n, 3), generator=torch.Generator().manual_seed(seed))
        return stack(digits, labels, idx)

    def mnist_images(self, split: str = "test", n: int | None = None) -> Split:
        """The plain MNIST digits behind the stacks: first ``n`` of ``split``, (n, 1, H, W) in [-1, 1], labels 0..9
        (what a per-channel digit classifier trains and is tested on)."""
        return first_n("mnist", split, *self._digits(split), n)

    def _digits(self, split: str) -> Split:
        if split not in self.splits:
            raise UserError(f"dataset {self.name!r} has no split {split!r} (splits: {', '.join(self.splits)})")
        return (self.digits, self.digit_labels) if split == self.split else self.loader(split)


def stacked_real(cfg, split: str = "test", n: int | None = None, seed: int = STACKED_SEED) -> Split:
    """Real Stacked MNIST images for evaluation: ``n`` fixed stacks of the MNIST ``split``, float32 [-1, 1]."""
    return stacked_mnist(cfg).real_images(split, n, seed)


@DATASETS.register("stacked-mnist")
def stacked_mnist(cfg=None) -> StackedMNIST:
    """Stacked MNIST: 3 random MNIST digits as RGB channels, 1,000 modes (needs mnist's files)"""
    cfg = cfg or RunConfig(dataset="stacked-mnist")
    check_channels(cfg, "stacked-mnist", 3)
    loader, split = mnist_loader("mnist", cfg)
    digits, labels = loader(split)
    return StackedMNIST(digits, labels, split, loader)
