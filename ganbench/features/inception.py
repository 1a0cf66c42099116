"""InceptionV3 features through torch-fidelity ("inception-v3-compat"), with checked weights.

The network is torch-fidelity's port of the TensorFlow FID Inception: the numbers are comparable
with torch-fidelity and with the original TensorFlow FID. ganbench adds:

- where the weights come from: ``--inception-weights FILE``, ``$GANBENCH_INCEPTION_WEIGHTS``,
  torch hub's cache, or torch-fidelity's own download; offline without them, a one-line error
  naming the file, its address and where to put it;
- a checksum: the file's sha256 must start with the prefix in its published name, unless other
  weights are explicitly allowed (tests use random weights; their hash is recorded in every row,
  so their numbers never mix with real ones);
- loading with ``weights_only=True`` before torch-fidelity sees the file;
- the fixed [-1, 1] -> uint8 mapping with rounding (never min-max rescaling);
- speed: batch norm folded into the convolutions, channels-last activations, inference mode
  (about 1.7x torch-fidelity's module on 2 CPU cores, same features up to float rounding);
- the feature extractor ``inception`` for the metrics: generated images against the first
  ``NUM_REAL`` images of the dataset's reference split, whose features are cached by content.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from unittest import mock

import numpy as np
import torch
from tqdm.auto import tqdm

from ganbench import distributed
from ganbench.errors import UserError
from ganbench.features.base import FeatureExtractor, register
from ganbench.features.cache import cached_arrays, tensor_digest
from ganbench.features.weights import WeightsSource, add_source, file_sha256

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
SHA256_PREFIX = "6726825d"  # torch hub convention: the file name carries its sha256 prefix
ENV_WEIGHTS = "GANBENCH_INCEPTION_WEIGHTS"
ENV_ALLOW_OTHER = "GANBENCH_ALLOW_OTHER_INCEPTION_WEIGHTS"
LAYERS = ("2048", "logits_unbiased")  # pool features (FID, KID, PR) and logits without bias (IS)
NUM_REAL = 10_000  # real images of the reference split (the first ones in file order; fewer if it is smaller)
VERSION = 1  # of the extraction below: part of every cache key and row
PREPROCESSING = ("uint8 = round((x + 1) * 127.5) clamped to [0, 255], gray -> RGB; torch-fidelity's TF1 bilinear "
                 "resize to 299x299; batch norm folded into the convolutions")


# for ``--weights inception=FILE`` (the same variable as --inception-weights); resolved by resolve_weights below
add_source(WeightsSource(key="inception", what="Inception weights", file_name=WEIGHTS_FILE,
                         url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_FILE))


def weights_url() -> str:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def default_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def resolve_weights(path: str | os.PathLike | None = None) -> Path:
    """The weights file to use: the argument, the environment variable, the hub cache, or a download."""
    given = path or os.environ.get(ENV_WEIGHTS)
    if given:
        if not Path(given).is_file():
            raise UserError(f"Inception weights file not found: {given}")
        return Path(given)
    target = default_weights_path()
    if target.is_file():
        return target
    hint = (f"Inception weights {WEIGHTS_FILE} are missing: download {weights_url()} and put it at {target} "
            f"(or pass --inception-weights FILE, or set {ENV_WEIGHTS})")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights_url(), str(target), progress=False)
    except Exception:  # offline, proxy, partial download: the same one-line instructions
        raise UserError(hint) from None
    return target


def check_weights(path: Path, allow_other: bool | None = None) -> str:
    """sha256 of the file after checking it; loads it with ``weights_only=True`` as a dict of tensors."""
    if allow_other is None:
        allow_other = os.environ.get(ENV_ALLOW_OTHER, "") not in ("", "0")
    sha = file_sha256(path)
    if not sha.startswith(SHA256_PREFIX) and not allow_other:
        raise UserError(f"{path}: sha256 {sha[:16]}... does not match the Inception weights {WEIGHTS_FILE} "
                        f"(set {ENV_ALLOW_OTHER}=1 to use other weights on purpose)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: unreadable weights file ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: not a state dict of tensors")
    return sha


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 by the fixed map round((x + 1) * 127.5), clamped; gray -> 3 channels."""
    x = ((images.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class InceptionFeatures:
    """Callable: images in [-1, 1] (N, C, H, W) -> {"2048": (N, 2048), "logits_unbiased": (N, 1008)}.

    Faster than calling torch-fidelity's module as it comes, with the same features up to float
    rounding: batch normalisation is folded into the preceding convolutions (one pass over each
    activation instead of two), activations are channels-last (the CPU convolution kernels'
    native layout), and batches run under ``torch.inference_mode``.
    """

    name = "inception-v3-compat"

    def __init__(self, weights: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                 batch_size: int = 64, allow_other_weights: bool | None = None):
        from torch_fidelity.feature_extractor_inceptionv3 import (
            FeatureExtractorInceptionV3,
        )

        path = resolve_weights(weights)
        self.weights_path = path
        self.weights_sha256 = check_weights(path, allow_other_weights)
        self.device = torch.device(device)
        self.batch_size = batch_size
        net = FeatureExtractorInceptionV3(self.name, list(LAYERS), feature_extractor_weights_path=str(path))
        fold_batch_norm(net)
        self.net = net.to(self.device, memory_format=torch.channels_last).eval()

    def batches(self, images: torch.Tensor, progress: bool = False) -> Iterator[dict[str, torch.Tensor]]:
        """Features batch by batch, so that statistics can be accumulated without holding them all."""
        bar = tqdm(total=len(images), desc="Inception features", unit="img", leave=False,
                   disable=None if progress else True)
        for chunk in images.split(self.batch_size):
            bar.update(len(chunk))
            yield self._forward(chunk)

    def _forward(self, chunk: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            x = to_uint8(chunk).to(self.device).contiguous(memory_format=torch.channels_last)
            out = self.net(x)
            return {k: v.float().cpu().clone() for k, v in zip(LAYERS, out)}

    def __call__(self, images: torch.Tensor, progress: bool = False) -> dict[str, torch.Tensor]:
        """All features at once; under torchrun the batches are split over the processes and every
        process gets all the features (the same numbers as one process)."""
        if distributed.splitting():
            return distributed.map_batches(self._forward, images, self.batch_size)
        parts = list(self.batches(images, progress))
        return {k: torch.cat([p[k] for p in parts]) for k in LAYERS}


def fold_batch_norm(net: torch.nn.Module) -> None:
    """Fold every eval-mode ``conv -> bn`` pair of torch-fidelity's BasicConv2d into the conv.

    bn(conv(x)) = s * (W x - mean) + beta with s = gamma / sqrt(var + eps) equals W' x + b' with
    W' = s W and b' = beta - s mean; the bn becomes the identity.
    """
    for m in net.modules():
        conv, bn = getattr(m, "conv", None), getattr(m, "bn", None)
        if not isinstance(conv, torch.nn.Conv2d) or not isinstance(bn, torch.nn.BatchNorm2d):
            continue
        with torch.no_grad():
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)  # (C_out,)
            bias = bn.bias.double() - scale * bn.running_mean.double()
            if conv.bias is not None:
                bias = bias + scale * conv.bias.double()
            conv.weight.copy_((conv.weight.double() * scale[:, None, None, None]).to(conv.weight.dtype))
            conv.bias = torch.nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
        m.bn = torch.nn.Identity()


def make_random_weights(path: Path, seed: int = 0, calibration: int = 16) -> str:
    """Write InceptionV3 weights of the right architecture with informative random values.

    For tests and offline demonstrations only (the numbers mean nothing). PyTorch's default
    initialisation makes activations fade through the 94 layers (every FID would be ~1e-13), so
    convolutions get Kaiming-normal (ReLU gain) weights; the classifier gets weights orthogonal to
    the mean feature of a calibration batch, so that logits vary between images and the Inception
    Score lands well above 1. Returns the file's sha256.
    """
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    gen = torch.Generator().manual_seed(seed)
    # build the module without any weights file: torch-fidelity's constructor always loads one
    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
        images = torch.randint(0, 256, (calibration, 3, 64, 64), dtype=torch.uint8, generator=gen)
        (feats,) = net(images)
        mean = feats.double().mean(0)
        mean = mean / mean.norm()
        w = torch.randn(1008, 2048, generator=gen, dtype=torch.float64)
        w -= (w @ mean)[:, None] * mean[None, :]  # no logit component along the common direction
        centred = feats.double() - feats.double().mean(0)
        w *= 3.0 / (centred @ w.T).std().clamp_min(1e-12)  # logits spread over a few units
        net.fc.weight.copy_(w.float())
        net.fc.bias.zero_()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return file_sha256(path)


# ----------------------------------------------------------------------------------------------
# the "inception" feature extractor: generated images and the dataset's reference split


def check_same_size(fake, real) -> None:
    """Two image sets (or their per-image shapes) must have the same channels and size."""
    a = tuple(fake) if isinstance(fake, tuple) else tuple(fake.shape[1:])
    b = tuple(real) if isinstance(real, tuple) else tuple(real.shape[1:])
    if a != b:
        raise UserError(f"image sizes differ: generated {'x'.join(map(str, a))}, real {'x'.join(map(str, b))} "
                        f"(resize one set, or set the run's resolution/channels to match)")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: tuple, allow_other: bool, device: str) -> InceptionFeatures:
    return InceptionFeatures(path, device, allow_other_weights=allow_other)


def extractor(weights: str | os.PathLike | None = None) -> InceptionFeatures:
    """The network for the resolved weights file, loaded and checked once per process."""
    path = resolve_weights(weights)
    st = path.stat()
    allow = os.environ.get(ENV_ALLOW_OTHER, "") not in ("", "0")
    return _load(str(path.resolve()), (st.st_size, st.st_mtime_ns), allow, str(default_device()))


@dataclass(frozen=True, eq=False)
class InceptionSet:
    fake: np.ndarray  # (N, 2048) float32 pool features of the generated images
    fake_logits: np.ndarray  # (N, 1008) float32 logits without bias (Inception Score)
    real: np.ndarray  # (M, 2048) float32 pool features of the reference images
    memo: dict = field(default_factory=dict, repr=False)  # results shared by several metrics


@functools.lru_cache(maxsize=8)
def reference_features(dataset, net: InceptionFeatures) -> np.ndarray:
    """(M, 2048) pool features of the first ``NUM_REAL`` reference images, cached by content (and
    kept in memory, so that evaluations during training neither hash the images nor read the file again)."""
    images = dataset.real_images()[0][:NUM_REAL]
    doc = _reference_doc(dataset, net, images)
    return cached_arrays("reference", doc, lambda: {"features": net(images, progress=True)["2048"].numpy()})["features"]


def _reference_doc(dataset, net: InceptionFeatures, images) -> dict:
    return {"kind": "inception-reference", "dataset": dataset.name, "split": dataset.eval_split, "n": len(images),
            "data": tensor_digest(images), "extractor": net.name, "weights_sha256": net.weights_sha256,
            "preprocessing": PREPROCESSING, "version": VERSION}


def cache_key(dataset) -> dict:
    """The document that names the reference split's Inception features (their on-disk cache key)."""
    return _reference_doc(dataset, extractor(), dataset.real_images()[0][:NUM_REAL])


def provenance(dataset) -> dict:
    """What a row on Inception features must record: network, weights hash, reference size."""
    return dict(_provenance(dataset, extractor()))


@functools.lru_cache(maxsize=8)
def _provenance(dataset, net: InceptionFeatures) -> dict:
    return {"extractor": net.name, "weights_sha256": net.weights_sha256, "reference_split": dataset.eval_split,
            "num_real": min(len(dataset.real_images()[0]), NUM_REAL), "extraction_version": VERSION}


def preflight(dataset) -> None:
    """Before any training: the weights file is there (or downloadable) and checks out."""
    extractor()


def inception_features(samples: torch.Tensor, dataset) -> InceptionSet:
    """InceptionV3 pool features and logits of generated images, with the reference split's features."""
    if samples.dim() != 4 or samples.shape[1] not in (1, 3):
        raise UserError(f"Inception features need images (N, 1 or 3, H, W), got {tuple(samples.shape)}")
    check_same_size(tuple(samples.shape[1:]), tuple(dataset.shape))
    net = extractor()
    real = reference_features(dataset, net)
    out = net(samples, progress=True)
    return InceptionSet(out["2048"].numpy(), out["logits_unbiased"].numpy(), real)


register(FeatureExtractor(
    name="inception", extract=inception_features, inputs="images", provenance=provenance, preflight=preflight,
    cache_key=cache_key, description="torch-fidelity's InceptionV3: 2048-d pool features and logits (FID, IS, KID)",
))
