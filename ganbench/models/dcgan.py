"""DCGAN (Radford et al. 2016): all-convolutional generator and discriminator with batch norm.

Layout as in the reference implementation (pytorch/examples dcgan/main.py, itself a port of the
authors' dcgan.torch): G projects z to an s0 x s0 map with a transposed convolution, then each
4x4 stride-2 transposed convolution doubles the side and halves the channels, down to ``width``
channels before the output layer; D mirrors it with 4x4 stride-2 convolutions and ends in one
dense layer over the s0 x s0 map (written as an s0 x s0 convolution). At 64 px and width 64 this
is exactly the reference network (4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64xC); 32 px
drops the first stage (4x4x256 -> ... -> 32x32xC) and 28 px starts from 7x7 (7x7x128 -> 14x14x64 ->
28x28xC at width 64).

G: ReLU, batch norm on every layer but the output. D: LeakyReLU(0.2), batch norm on every layer but
the input and the output; with ``cfg.spectral_norm`` every D layer is spectrally normalised and D has
no batch norm. Weights N(0, 0.02) (paper), batch-norm scales N(1, 0.02) and shifts 0 (reference
code). Like the reference, the batch-norm networks have no biases (batch norm's shift replaces them);
the spectrally normalised D, having no batch norm, has a bias on every layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.models.base import MODELS
from ganbench.models.blocks import INIT_STD, Packed, image_size, to_image, weight_layer

FIRST_SIDE = {28: 7, 32: 4, 64: 4}  # image side -> side s0 of the smallest feature map
LEAK = 0.2  # LeakyReLU slope in D


def plan(side: int) -> tuple[int, int]:
    """(s0, number of stride-2 layers between s0 x s0 and side x side) for a supported image side."""
    s0 = FIRST_SIDE[side]
    return s0, (side // s0).bit_length() - 1  # 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    nn.init.normal_(bn.weight, 1.0, INIT_STD)  # N(1, 0.02) scales, as dcgan.torch and pytorch/examples
    nn.init.zeros_(bn.bias)
    return bn


class DCGANGenerator(nn.Module):
    """(B, in_dim) -> (B, C, side, side); ``in_dim`` is z_dim (cdcgan: z_dim + label code)."""

    def __init__(self, in_dim: int, channels: int, side: int, width: int, bounded: bool):
        super().__init__()
        s0, n = plan(side)
        c = width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            # (B, in_dim, 1, 1) -> (B, c, s0, s0): the paper's "project and reshape"
            weight_layer(nn.ConvTranspose2d(in_dim, c, s0, 1, 0, bias=False)), batch_norm(c), nn.ReLU(),
        ]
        for _ in range(n - 1):
            # (B, c, s, s) -> (B, c/2, 2s, 2s)
            up = weight_layer(nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False))
            layers += [up, batch_norm(c // 2), nn.ReLU()]
            c //= 2
        # (B, width, side/2, side/2) -> (B, C, side, side): no batch norm on the output layer
        layers += [weight_layer(nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False)), to_image(bounded)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z: (B, in_dim) -> (B, C, side, side)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """(B, C, side, side) -> logits (B,). ``features`` is phi(x), ``head`` the last layer psi; cdcgan
    reuses both for its projection discriminator."""

    def __init__(self, channels: int, side: int, width: int, sn: bool):
        super().__init__()
        s0, n = plan(side)
        bias = sn  # batch norm's shift stands in for biases; without it the layers need their own
        c = width
        layers: list[nn.Module] = [
            # (B, C, side, side) -> (B, width, side/2, side/2): no batch norm on the input layer
            weight_layer(nn.Conv2d(channels, c, 4, 2, 1, bias=bias), sn), nn.LeakyReLU(LEAK),
        ]
        for _ in range(n - 1):
            # (B, c, s, s) -> (B, 2c, s/2, s/2)
            layers.append(weight_layer(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=bias), sn))
            layers += [nn.LeakyReLU(LEAK)] if sn else [batch_norm(2 * c), nn.LeakyReLU(LEAK)]
            c *= 2
        self.features = nn.Sequential(*layers)
        self.feature_dim = c * s0 * s0
        # (B, c, s0, s0) -> (B, 1, 1, 1): one dense layer over the flattened map
        self.head = weight_layer(nn.Conv2d(c, 1, s0, 1, 0, bias=bias), sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, side, side) -> logits (B,)
        return self.head(self.features(x)).view(len(x))


@MODELS.register("dcgan")
def dcgan(cfg, dataset) -> tuple[nn.Module, nn.Module]:
    """DCGAN (Radford et al. 2016): batch-norm conv nets, 28/32/64 px, width = base channels (paper: 64); d_width, pack"""
    channels, side = image_size(dataset, "dcgan", tuple(FIRST_SIDE))
    g = DCGANGenerator(cfg.z_dim, channels, side, cfg.width, dataset.bounded)
    # d_width sizes D apart from G (Metz et al. 2017 shrink D to 1/4 or 1/2 of G); a pack of m
    # images is one input of m times the channels (PacGAN)
    d = DCGANDiscriminator(channels * cfg.pack, side, cfg.d_width or cfg.width, cfg.spectral_norm)
    return g, Packed(d, cfg.pack) if cfg.pack > 1 else d
