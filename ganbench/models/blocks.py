"""Pieces shared by the models: the image-shape check, initialised weight layers, the generator's
output activation and PacGAN's packing of discriminator inputs."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganbench.errors import UserError

# N(0, 0.02) weights: Radford et al. 2016 (DCGAN) and the SN-GAN reference code (chainer-gan-lib)
INIT_STD = 0.02


def image_size(dataset, model: str, sides: tuple[int, ...]) -> tuple[int, int]:
    """(channels, side) of a dataset of square images whose side is in ``sides``, else a UserError."""
    shape = tuple(dataset.shape)
    if len(shape) == 3 and shape[1] == shape[2] and shape[1] in sides and shape[0] >= 1:
        return shape[0], shape[1]
    supported = ", ".join(map(str, sides[:-1])) + f" or {sides[-1]}"
    hint = f"; set resolution to {supported}" if len(shape) == 3 else ""
    raise UserError(f"model {model!r} needs square images (C, H, W) of side {supported} pixels, "
                    f"got samples of shape {shape}{hint}")


def weight_layer(layer: nn.Module, sn: bool = False, std: float = INIT_STD, truncated: bool = False) -> nn.Module:
    """A conv, transposed conv, linear or embedding layer with N(0, std) weights and zero bias,
    spectrally normalised (one power iteration per training forward, as in the paper) when ``sn``.
    ``truncated``: N(0, std) cut to [-2 std, 2 std], TensorFlow's ``truncated_normal_initializer``
    (values beyond are drawn again, so the standard deviation is 0.88 std)."""
    if truncated:
        nn.init.trunc_normal_(layer.weight, 0.0, std, -2.0 * std, 2.0 * std)
    else:
        nn.init.normal_(layer.weight, 0.0, std)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    # wrap only after initialising: spectral_norm starts its power iteration from the weight it is given
    return spectral_norm(layer) if sn else layer


def to_image(bounded: bool) -> nn.Module:
    """The generator's last activation: tanh for data in [-1, 1] (images), identity otherwise."""
    return nn.Tanh() if bounded else nn.Identity()


class Packed(nn.Module):
    """PacGAN (Lin et al. 2018): a discriminator that judges packs of ``pack`` samples at once.

    (B, *shape) -> logits (B / pack,): consecutive samples are concatenated into one input, along
    the features of flat data and along the channels of images, so ``inner`` is built for inputs of
    ``pack`` times the features (or channels). Real samples are packed with real ones and generated
    with generated ones; the real batches are i.i.d., so consecutive samples form random packs, and
    the training loop orders the generated batch so that pack i holds the i-th sample of each of
    G's per-slot calls (``ganbench.train.generate_packed``).
    """

    def __init__(self, inner: nn.Module, pack: int):
        super().__init__()
        self.inner, self.pack = inner, pack

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        if len(x) % self.pack:
            raise ValueError(f"a batch of {len(x)} samples does not split into packs of {self.pack}")
        n = len(x) // self.pack
        if x.dim() == 4:  # images (B, C, H, W) -> (B / pack, pack * C, H, W)
            packed = x.reshape(n, self.pack * x.shape[1], *x.shape[2:])
        else:  # (B, *shape) -> (B / pack, pack * prod(shape))
            packed = x.reshape(n, -1)
        return self.inner(packed, *args)
