"""Pieces shared by the convolutional models: the image-shape check, initialised weight layers and
the generator's output activation."""

from __future__ import annotations

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


def weight_layer(layer: nn.Module, sn: bool = False, std: float = INIT_STD) -> nn.Module:
    """A conv, transposed conv, linear or embedding layer with N(0, std) weights and zero bias,
    spectrally normalised (one power iteration per training forward, as in the paper) when ``sn``."""
    nn.init.normal_(layer.weight, 0.0, std)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    # wrap only after initialising: spectral_norm starts its power iteration from the weight it is given
    return spectral_norm(layer) if sn else layer


def to_image(bounded: bool) -> nn.Module:
    """The generator's last activation: tanh for data in [-1, 1] (images), identity otherwise."""
    return nn.Tanh() if bounded else nn.Identity()
