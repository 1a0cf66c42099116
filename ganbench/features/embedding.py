"""Image embeddings from pretrained networks other than InceptionV3 (DINOv2, CLIP): the shared part.

An ``Embedding`` is a network family with its published preprocessing; ``register_embedding``
makes it a feature extractor whose metrics compare the generated images' embeddings with those
of the first ``NUM_REAL`` images of the dataset's reference split. Like Inception features:

- images in [-1, 1] become uint8 by the fixed map round((x + 1) * 127.5), as an image file would
  hold them (gray -> RGB by repeating the channel), then the family's own resize and normalisation;
- the network is built once per process from the weights file (``ganbench.features.weights``);
  its variant (read from the file's tensor shapes) and sha256 go into every row's protocol;
- the reference embeddings are cached on disk under a hash of the images, the weights, the
  preprocessing and the extraction version, and each evaluation extracts once per feature space;
- under torchrun the batches are dealt out over the processes (the same numbers as one process).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ganbench import distributed
from ganbench.errors import UserError
from ganbench.features.base import FeatureExtractor, register
from ganbench.features.cache import cached_arrays, tensor_digest
from ganbench.features.inception import check_same_size, default_device, to_uint8
from ganbench.features.weights import WeightsSource, add_source, file_sha256

NUM_REAL = 10_000  # real images of the reference split (the first ones in file order), as for Inception
ENV_ALLOW_OTHER = "GANBENCH_ALLOW_OTHER_WEIGHTS"  # use an architecture other than a metric's published one


def allow_other() -> bool:
    return os.environ.get(ENV_ALLOW_OTHER, "") not in ("", "0")


def pil_bicubic(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 3, size, size) by PIL's bicubic resampling (a = -0.5, antialiased
    when shrinking, rounded to uint8): torchvision's ``Resize((size, size), BICUBIC)`` on a PIL image,
    the resize of dgm-eval and open_clip."""
    if x.shape[-2:] == (size, size):
        return x
    hwc = x.permute(0, 2, 3, 1).contiguous().numpy()
    out = np.stack([np.asarray(Image.fromarray(im, "RGB").resize((size, size), Image.BICUBIC)) for im in hwc])
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """float images in [0, 1] -> (x - mean) / std per channel (torchvision's ``Normalize``)."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


class Network:
    """A loaded embedding network: ``forward(uint8 (N, 3, H, W)) -> float32 (N, D)``.

    Subclasses set ``family``, ``variant``, ``dim``, ``preprocessing`` and implement ``forward``.
    """

    family = ""
    version = 1  # of the extraction: part of every cache key and row
    preprocessing = ""

    def __init__(self, path: Path, device: torch.device, batch_size: int):
        self.weights_path = Path(path)
        self.weights_sha256 = file_sha256(self.weights_path)
        self.device = device
        self.batch_size = batch_size
        self.variant = "custom"

    @property
    def name(self) -> str:
        return f"{self.family}-{self.variant}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _batch(self, chunk: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.forward(to_uint8(chunk)).float().cpu().clone()

    def __call__(self, images: torch.Tensor, progress: bool = False) -> np.ndarray:
        """(N, D) float32 embeddings of images in [-1, 1], (N, 1 or 3, H, W)."""
        if distributed.splitting():
            return distributed.map_batches(self._batch, images, self.batch_size).numpy()
        bar = tqdm(total=len(images), desc=f"{self.name} features", unit="img", leave=False,
                   disable=None if progress else True)
        parts = []
        for chunk in images.split(self.batch_size):
            parts.append(self._batch(chunk))
            bar.update(len(chunk))
        bar.close()
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.dim), np.float32)


@dataclass(frozen=True, eq=False)
class EmbeddingSet:
    fake: np.ndarray  # (N, D) float32 embeddings of the generated images
    real: np.ndarray  # (M, D) float32 embeddings of the reference images
    network: str  # e.g. dinov2-vit-l-14
    memo: dict = field(default_factory=dict, repr=False)  # results shared by several metrics


@dataclass(frozen=True)
class Embedding:
    """A network family as a feature extractor.

    ``build(path, device)`` loads the weights file into a ``Network``; ``check(net)`` returns why
    the loaded variant does not suit the extractor's metrics (None when it does; overridden by
    ``GANBENCH_ALLOW_OTHER_WEIGHTS=1``).
    """

    name: str  # the extractor's name (metrics' ``features``)
    source: WeightsSource
    build: Callable[[Path, torch.device], Network]
    description: str
    check: Callable[[Network], str | None] = lambda net: None

    def network(self) -> Network:
        path = self.source.resolve()
        st = path.stat()
        net = _load(self, str(path.resolve()), (st.st_size, st.st_mtime_ns), str(default_device()))
        reason = self.check(net)
        if reason and not allow_other():
            raise UserError(f"{path}: {reason} (set {ENV_ALLOW_OTHER}=1 to use it on purpose; "
                            f"its variant is recorded in every row)")
        return net


@functools.lru_cache(maxsize=4)
def _load(embedding: Embedding, path: str, stamp: tuple, device: str) -> Network:
    return embedding.build(Path(path), torch.device(device))


@functools.lru_cache(maxsize=8)
def reference_embeddings(dataset, net: Network) -> np.ndarray:
    """(M, D) embeddings of the first ``NUM_REAL`` reference images, cached by content (and kept in
    memory, so that evaluations during training neither hash the images nor read the file again)."""
    images = dataset.real_images()[0][:NUM_REAL]
    return cached_arrays("reference", _reference_doc(dataset, net, images),
                         lambda: {"features": net(images, progress=True)})["features"]


def _reference_doc(dataset, net: Network, images) -> dict:
    return {"kind": f"{net.family}-reference", "dataset": dataset.name, "split": dataset.eval_split, "n": len(images),
            "data": tensor_digest(images), "extractor": net.name, "weights_sha256": net.weights_sha256,
            "preprocessing": net.preprocessing, "version": net.version}


def register_embedding(embedding: Embedding) -> FeatureExtractor:
    """Register ``embedding`` as a feature extractor of images (and its weights key for ``--weights``)."""
    add_source(embedding.source)

    def extract(samples: torch.Tensor, dataset) -> EmbeddingSet:
        if samples.dim() != 4 or samples.shape[1] not in (1, 3):
            raise UserError(f"{embedding.name} features need images (N, 1 or 3, H, W), got {tuple(samples.shape)}")
        check_same_size(tuple(samples.shape[1:]), tuple(dataset.shape))
        net = embedding.network()
        real = reference_embeddings(dataset, net)
        return EmbeddingSet(net(samples, progress=True), real, net.name)

    def provenance(dataset) -> dict:
        net = embedding.network()
        return {"extractor": net.name, "weights_sha256": net.weights_sha256, "preprocessing": net.preprocessing,
                "reference_split": dataset.eval_split, "num_real": min(len(dataset.real_images()[0]), NUM_REAL),
                "extraction_version": net.version}

    def cache_key(dataset) -> dict:
        net = embedding.network()
        return _reference_doc(dataset, net, dataset.real_images()[0][:NUM_REAL])

    return register(FeatureExtractor(
        name=embedding.name, extract=extract, inputs="images", provenance=provenance,
        preflight=lambda dataset: embedding.network(), cache_key=cache_key, description=embedding.description,
    ))
