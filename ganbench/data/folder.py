"""``folder``: a user's folder of images (PNG, JPEG, BMP, WebP, read with Pillow), uint8 in memory.

- Layout: images directly in ``data_path`` (unlabelled), or one subfolder per class (label = the
  subfolder's index among the sorted subfolder names). Names starting with '.' and files of other
  types are ignored; loose images next to class subfolders, or an empty class subfolder, are errors.
- Channels: ``channels=1`` converts every image to grayscale (Pillow 'L'), ``channels=3`` to 'RGB'
  (alpha dropped, palettes expanded); ``channels=0`` keeps what is stored, which must be the same
  for every image and either grayscale ('L' or 1-bit) or 'RGB'.
- Size: each image is centre-cropped to a square (its shorter side), then resized to
  ``resolution`` (Pillow bilinear, antialiased when shrinking); ``resolution=0`` uses the shorter
  side of the first image in sorted path order (its ``native_resolution``).
- 16-bit and float images are refused: the fixed map uint8 x -> x / 127.5 - 1 would not hold.
- One split, ``all``: training batches and ``real_images`` both use every image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ganbench.data.base import DATASETS
from ganbench.data.images import ImageDataset, memo
from ganbench.errors import UserError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
WIDE_MODES = ("I", "F") + tuple(f"I;16{e}" for e in ("", "B", "L", "N"))  # more than 8 bits per channel


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES)


def scan(folder: Path) -> tuple[list[Path], Optional[list[int]], tuple[str, ...]]:
    """(image files in sorted order, their class indices or None when flat, class names)."""
    if not folder.is_dir():
        raise UserError(f"folder: data_path {folder} is not a folder")
    loose = _images_in(folder)
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = {d.name: _images_in(d) for d in subdirs}
    if loose:
        if any(per_class.values()):
            sub = next(k for k, v in per_class.items() if v)
            raise UserError(f"folder: {folder} holds both images ({loose[0].name}) and class subfolders ({sub}/); "
                            f"use one layout")
        return loose, None, ()
    if not subdirs or not any(per_class.values()):
        raise UserError(f"folder: no images ({', '.join(SUFFIXES)}) in {folder} or in its subfolders")
    empty = [k for k, v in per_class.items() if not v]
    if empty:
        raise UserError(f"folder: class subfolder {folder / empty[0]} has no images ({', '.join(SUFFIXES)})")
    files = [f for files in per_class.values() for f in files]
    labels = [i for i, files in enumerate(per_class.values()) for _ in files]
    return files, labels, tuple(per_class)


def _stored_channels(path: Path, mode: str) -> int:
    if mode in ("1", "L"):
        return 1
    if mode == "RGB":
        return 3
    raise UserError(f"folder: {path} has image mode {mode!r}; set channels=1 or channels=3 to convert")


def read_image(path: Path, channels: int, side: int) -> tuple[np.ndarray, int, int]:
    """One image -> ((side, side) or (side, side, 3) uint8, stored channel count, shorter side).

    ``channels`` 0 keeps the stored channels; ``side`` 0 keeps the shorter side.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in WIDE_MODES:
                raise UserError(f"folder: {path} has {im.mode} pixels (16-bit or float); save it as 8-bit")
            stored = 0 if channels else _stored_channels(path, im.mode)
            im = im.convert({1: "L", 3: "RGB"}[channels or stored])
            w, h = im.size
            short = min(w, h)
            left, top = (w - short) // 2, (h - short) // 2
            im = im.crop((left, top, left + short, top + short))
            side = side or short
            if short != side:
                im = im.resize((side, side), Image.Resampling.BILINEAR)
            return np.array(im, dtype=np.uint8), stored, short
    except UserError:
        raise
    except Exception as e:  # Pillow raises many types for broken files (OSError, SyntaxError, ValueError, ...)
        reason = (str(e).splitlines() or [""])[0]
        raise UserError(f"folder: cannot read image {path} ({type(e).__name__}: {reason})") from None


def load_folder(files: list[Path], channels: int, resolution: int) -> tuple[torch.Tensor, int]:
    """Images as one (N, C, side, side) uint8 tensor, and the first image's shorter side."""
    first, stored, native = read_image(files[0], channels, resolution)
    side = resolution or native
    c = channels or stored
    out = torch.empty((len(files), c, side, side), dtype=torch.uint8)
    for i, path in enumerate(files):
        x, mode_c, _ = (first, stored, native) if i == 0 else read_image(path, channels, side)
        if not channels and mode_c != stored:
            raise UserError(f"folder: {path} has {mode_c} channel(s) but {files[0]} has {stored}; "
                            f"set channels=1 or channels=3 to convert")
        out[i] = torch.from_numpy(x.reshape(side, side, c)).permute(2, 0, 1)
    return out, native


@DATASETS.register("folder")
def folder(cfg=None) -> ImageDataset:
    """Your own images: data_path = folder of PNG/JPEG files, or one subfolder per class"""
    if cfg is None or not cfg.data_path:
        raise UserError("dataset 'folder' needs data_path: --set data_path=DIR (images, or one subfolder per class)")
    root = Path(cfg.data_path).expanduser()
    files, labels, classes = scan(root)
    stamps = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = ("folder", stamps, cfg.channels, cfg.resolution)
    images, native = memo(key, lambda: load_folder(files, cfg.channels, cfg.resolution))
    y = None if labels is None else torch.tensor(labels, dtype=torch.long)
    return ImageDataset("folder", images, y, len(classes), native, "all", lambda split: (images, y),
                        splits=("all",), eval_split="all", classes=classes)
