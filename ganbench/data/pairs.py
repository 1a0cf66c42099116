"""Unpaired translation datasets with a hidden ground truth.

Domain B is a fixed map T of a disjoint half of domain A's images, so training never sees a pair,
while T(a) exists for every test image a and scores the translation directly:

- ``digits-invert``: scikit-learn's digits (no download) <-> the same kind of digits, inverted (T(x) = -x).
- ``mnist-invert``, ``mnist-rotate`` (90 degrees counter-clockwise), ``mnist-thick`` (strokes dilated
  by a 3x3 maximum): MNIST, from ``data_path`` (a folder of IDX files) or torchvision's download.
- ``folder-pair``: your own domains, ``data_path`` = a folder with ``A/`` and ``B/`` subfolders of
  images. No truth: the paired metrics are absent, and evaluation reads the training images.

Split rule (fixed by the data alone, no seed): within each class of the source's training split, in
file order, images of even rank form domain A and images of odd rank, mapped by T, form domain B.
The test split is read in both directions: A_test = the source's test images, B_test = T(A_test),
so the hidden truth of a -> B is T(a) and of b = T(a) -> A is a. Labels are never used in training;
they score label preservation.

A translation dataset yields (a, b) batches (two independent shuffles, one of each domain) instead
of (samples, labels), and has ``translation = True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F

from ganbench.config import RunConfig
from ganbench.data.base import DATASETS
from ganbench.data.images import _load_digits, check_channels, index_batches, memo, to_float, DIGITS_RESOLUTION
from ganbench.errors import UserError

TRANSLATION_METRICS: tuple[str, ...] = (
    "fid_ab", "fid_ba", "fid_ab_ci", "fid_ba_ci", "kid_ab", "kid_ba", "mse_ab", "mse_ba", "ssim_ab", "ssim_ba", "label_ab", "label_ba",
    "cycle_a", "cycle_b", "stego_a", "stego_b", "class_kl_ab", "class_kl_ba",
)
UNPAIRED_METRICS: tuple[str, ...] = ("cycle_a", "cycle_b", "stego_a", "stego_b")  # folder-pair: no truth, no labels


def invert(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> their negatives."""
    return -x


def rotate(x: torch.Tensor) -> torch.Tensor:
    """A quarter turn counter-clockwise."""
    return torch.rot90(x, 1, dims=(-2, -1))


def thicken(x: torch.Tensor) -> torch.Tensor:
    """Strokes (bright on a dark background) dilated by a 3x3 maximum."""
    return F.max_pool2d(x, 3, stride=1, padding=1)


TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"invert": invert, "rotate": rotate, "thick": thicken}


@dataclass(frozen=True, eq=False)
class TranslationPair:
    """Two image domains in memory (float32 in [-1, 1]) and, when known, the map between them."""

    name: str
    a: torch.Tensor = field(repr=False)  # (Na, C, H, W) domain A, training
    b: torch.Tensor = field(repr=False)  # (Nb, C, H, W) domain B, training
    test_a: torch.Tensor = field(repr=False)  # (N, C, H, W): evaluation inputs of A -> B
    test_b: torch.Tensor = field(repr=False)  # (M, C, H, W): evaluation inputs of B -> A
    test_labels: Optional[torch.Tensor] = field(repr=False)  # (N,) classes of test_a (and of test_b when paired)
    transform: str  # the name of T, or "" when there is no truth (folder-pair)
    num_classes: int  # 0 when unlabelled
    source: str  # the dataset the domains come from, for the classifiers and the provenance
    source_train: Optional[tuple] = field(default=None, repr=False)  # (images, labels) the domain classifiers train on
    eval_split: str = "test"
    bounded: bool = True
    translation: bool = True
    default_metrics: tuple[str, ...] = TRANSLATION_METRICS

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.a.shape[1:])

    @property
    def paired(self) -> bool:
        """The truth is known: test_b[i] = T(test_a[i])."""
        return bool(self.transform)

    def truth_ab(self) -> torch.Tensor:
        return self.test_b

    def truth_ba(self) -> torch.Tensor:
        return self.test_a

    def classifier_data(self, side: str) -> tuple[tuple, tuple, float]:
        """(train (images, labels), test (images, labels), background) of domain ``side``'s classifier:
        the source's whole training split (both halves), mapped by T for domain B."""
        if self.source_train is None or self.test_labels is None:
            raise UserError(f"dataset {self.name!r} has no labels: its domain classifiers cannot be trained")
        (x, y), T = self.source_train, TRANSFORMS[self.transform]
        if side == "a":
            return (x, y), (self.test_a, self.test_labels), -1.0
        background = float(T(torch.full((1, *self.shape), -1.0)).mean())
        return (T(x), y), (self.test_b, self.test_labels), background

    def batches(self, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[tuple]:
        """Endless (a, b) pairs of unrelated batches: A's and B's shuffles drawn in turn from ``generator``."""
        a, b = self.a.to(device), self.b.to(device)
        for ia, ib in zip(index_batches(len(a), batch_size, generator, device),
                          index_batches(len(b), batch_size, generator, device)):
            yield a.index_select(0, ia), b.index_select(0, ib)


def is_translation(dataset) -> bool:
    return bool(getattr(dataset, "translation", False))


def halves(labels: torch.Tensor) -> torch.Tensor:
    """(N,) bool, True for domain A: within each class, in file order, the images of even rank."""
    rank = torch.empty_like(labels)
    for c in labels.unique():
        where = (labels == c).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where))
    return rank % 2 == 0


def make_pair(name: str, source: str, transform: str, train: tuple, test: tuple, num_classes: int) -> TranslationPair:
    """A and T(B's half) from a labelled training split; the test split in both directions."""
    T = TRANSFORMS[transform]
    (x, y), (tx, ty) = train, test
    x, tx = to_float(x), to_float(tx)
    in_a = halves(y)
    return TranslationPair(name, a=x[in_a].contiguous(), b=T(x[~in_a]).contiguous(), test_a=tx, test_b=T(tx),
                           test_labels=ty, transform=transform, num_classes=num_classes, source=source,
                           source_train=(x, y))


@DATASETS.register("digits-invert")
def digits_invert(cfg=None) -> TranslationPair:
    """scikit-learn's digits <-> inverted digits, unpaired halves, truth T(x) = -x (no download)"""
    cfg = cfg or RunConfig(dataset="digits-invert")
    check_channels(cfg, "digits-invert", 1)
    side = cfg.resolution or DIGITS_RESOLUTION
    train = memo(("digits", "train", side), lambda: _load_digits("train", side))
    test = memo(("digits", "test", side), lambda: _load_digits("test", side))
    return memo(("digits-invert", side), lambda: make_pair("digits-invert", "digits", "invert", train, test, 10))


def _mnist_pair(name: str, transform: str, cfg) -> TranslationPair:
    from ganbench.data.mnist import mnist_loader

    cfg = cfg or RunConfig(dataset=name)
    check_channels(cfg, name, 1)
    if cfg.data_path and not Path(cfg.data_path).expanduser().is_dir():
        raise UserError(f"{name}: data_path must be a folder of MNIST IDX files (both splits), got {cfg.data_path}")
    loader, _ = mnist_loader("mnist", cfg)
    return make_pair(name, "mnist", transform, loader("train"), loader("test"), 10)


@DATASETS.register("mnist-invert")
def mnist_invert(cfg=None) -> TranslationPair:
    """MNIST <-> inverted MNIST, unpaired halves, truth T(x) = -x"""
    return _mnist_pair("mnist-invert", "invert", cfg)


@DATASETS.register("mnist-rotate")
def mnist_rotate(cfg=None) -> TranslationPair:
    """MNIST <-> MNIST turned 90 degrees, unpaired halves, truth a quarter turn"""
    return _mnist_pair("mnist-rotate", "rotate", cfg)


@DATASETS.register("mnist-thick")
def mnist_thick(cfg=None) -> TranslationPair:
    """MNIST <-> MNIST with strokes dilated (3x3 maximum), unpaired halves"""
    return _mnist_pair("mnist-thick", "thick", cfg)


def _domain(root: Path, side: str, cfg) -> torch.Tensor:
    from PIL import Image

    from ganbench.data.folder import SUFFIXES, _images_in, load_folder

    folder = root / side
    if not folder.is_dir():
        raise UserError(f"folder-pair: {root} has no {side}/ subfolder (expected {root}/A and {root}/B)")
    files = _images_in(folder)
    if not files:
        raise UserError(f"folder-pair: no images ({', '.join(SUFFIXES)}) in {folder}")
    if not cfg.resolution:
        sizes = {}
        for p in files:
            try:
                with Image.open(p) as im:
                    sizes.setdefault(im.size, p)
            except Exception as e:  # noqa: BLE001 - Pillow raises many types for broken files
                raise UserError(f"folder-pair: cannot read image {p} ({type(e).__name__})") from None
        if len(sizes) > 1:
            (s1, p1), (s2, p2) = list(sizes.items())[:2]
            raise UserError(f"folder-pair: images of different sizes in {folder} ({p1.name} is {s1[0]}x{s1[1]}, "
                            f"{p2.name} is {s2[0]}x{s2[1]}); set resolution to resize them")
    images, _ = load_folder(files, cfg.channels, cfg.resolution)
    return to_float(images)


@DATASETS.register("folder-pair")
def folder_pair(cfg=None) -> TranslationPair:
    """Your own two domains: data_path = folder with A/ and B/ subfolders of images (no ground truth)"""
    if cfg is None or not cfg.data_path:
        raise UserError("dataset 'folder-pair' needs data_path: --set data_path=DIR (with A/ and B/ subfolders)")
    root = Path(cfg.data_path).expanduser()
    if not root.is_dir():
        raise UserError(f"folder-pair: data_path {root} is not a folder")
    a, b = _domain(root, "A", cfg), _domain(root, "B", cfg)
    if a.shape[1:] != b.shape[1:]:
        raise UserError(f"folder-pair: {root}/A holds {tuple(a.shape[1:])} images and {root}/B {tuple(b.shape[1:])}; "
                        f"set resolution (and channels) so that both match")
    return TranslationPair("folder-pair", a=a, b=b, test_a=a, test_b=b, test_labels=None, transform="",
                           num_classes=0, source="folder-pair", eval_split="train", default_metrics=UNPAIRED_METRICS)
