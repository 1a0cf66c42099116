"""CIFAR-10: 32x32 colour images, 10 classes, through torchvision (uint8 in memory).

Files live under ``data_root()/cifar10`` (downloaded on first use; offline, put
``cifar-10-python.tar.gz`` there and it is unpacked on first use), or under ``data_path`` when
given: a folder holding the unpacked ``cifar-10-batches-py/`` (never downloaded into).
"""

from __future__ import annotations

from pathlib import Path

from ganbench.config import RunConfig
from ganbench.data.base import DATASETS, data_root
from ganbench.data.images import (
    ImageDataset,
    Split,
    check_channels,
    memo,
    resize,
    torchvision_split,
)
from ganbench.errors import UserError

NATIVE = 32
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _load(split: str, side: int, folder: str) -> Split:
    import torch
    import torchvision.datasets

    cls = torchvision.datasets.CIFAR10
    if folder:
        try:
            ds = cls(folder, train=split == "train", download=False)
        except RuntimeError:  # torchvision: "Dataset not found or corrupted"
            raise UserError(f"cifar10: no complete cifar-10-batches-py/ in {folder}; get {cls.filename} from "
                            f"{cls.url} and unpack it in {folder}") from None
    else:
        ds = torchvision_split(cls, "cifar10", split == "train", cls.filename, cls.url, "")
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    return resize(images, side), torch.tensor(ds.targets, dtype=torch.long)


@DATASETS.register("cifar10")
def cifar10(cfg=None) -> ImageDataset:
    """CIFAR-10 colour images 32x32, 10 classes (torchvision download)"""
    cfg = cfg or RunConfig(dataset="cifar10")
    check_channels(cfg, "cifar10", 3)
    side = cfg.resolution or NATIVE
    folder = str(Path(cfg.data_path).expanduser()) if cfg.data_path else ""
    if folder and not Path(folder).is_dir():
        raise UserError(f"cifar10: data_path {folder} is not a folder (expected one holding cifar-10-batches-py/)")

    def loader(split: str) -> Split:
        return memo(("cifar10", folder or str(data_root()), split, side), lambda: _load(split, side, folder))

    images, labels = loader("train")
    return ImageDataset("cifar10", images, labels, 10, NATIVE, "train", loader, classes=CLASSES)
