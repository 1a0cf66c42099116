"""The standard CNN of SN-GAN (Miyato et al. 2018, Table 3), the DCGAN-like pair behind its CIFAR-10
and STL-10 results. Channel counts are the table's with 64 replaced by ``width`` (w).

G: z -> dense -> M_g x M_g x 8w -> three 4x4 stride-2 transposed convolutions (4w, 2w, w; BN, ReLU)
-> 3x3 conv to C, tanh. M_g = side / 8 (the paper: 4 at 32 px, 6 at 48 px); at 28 px M_g = 7 and
there are two transposed convolutions (8w at 7x7 -> 4w at 14x14 -> 2w at 28x28).
D: seven convolutions, 3x3 stride 1 / 4x4 stride 2 alternating (w, w, 2w, 2w, 4w, 4w, 8w), LeakyReLU
0.1, then dense -> 1; spectral norm on every layer, always (``cfg.spectral_norm`` is not needed).

As in the authors' code (chainer-gan-lib's DCGANGenerator), the dense layer of G is followed by
batch norm (over its outputs) and ReLU, which the table leaves out: without a nonlinearity there,
dense and first transposed convolution would collapse into one linear map. Weights N(0, 0.02) as in
that code; layers followed by batch norm have no bias (it would be cancelled), the others have one.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.models.base import MODELS
from ganbench.models.blocks import image_size, to_image, weight_layer

SIDES = (28, 32, 48, 64)
LEAK = 0.1  # "the slopes of all lReLU functions in the networks are set to 0.1"


class SNGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, side: int, width: int, bounded: bool):
        super().__init__()
        s0, n = (7, 2) if side == 28 else (side // 8, 3)
        c = 8 * width
        self.first = (c, s0, s0)
        self.dense = nn.Sequential(
            # (B, z_dim) -> (B, 8w * s0 * s0)
            weight_layer(nn.Linear(z_dim, c * s0 * s0, bias=False)), nn.BatchNorm1d(c * s0 * s0), nn.ReLU(),
        )
        layers: list[nn.Module] = []
        for _ in range(n):
            # (B, c, s, s) -> (B, c/2, 2s, 2s)
            up = weight_layer(nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False))
            layers += [up, nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        # (B, c, side, side) -> (B, C, side, side)
        layers += [weight_layer(nn.Conv2d(c, channels, 3, 1, 1)), to_image(bounded)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z: (B, z_dim) -> (B, 8w, s0, s0) -> (B, C, side, side)
        return self.net(self.dense(z).view(len(z), *self.first))


def _sn_conv(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
    # padding 1 for both kernels: 3x3 stride 1 keeps the side, 4x4 stride 2 halves it (7 -> 3 at 28 px)
    return [weight_layer(nn.Conv2d(c_in, c_out, kernel, stride, 1), sn=True), nn.LeakyReLU(LEAK)]


class SNGANDiscriminator(nn.Module):
    def __init__(self, channels: int, side: int, width: int):
        super().__init__()
        w = width
        self.features = nn.Sequential(                 # x: (B, C, M, M)
            *_sn_conv(channels, w, 3, 1),              # -> (B, w, M, M)
            *_sn_conv(w, w, 4, 2),                     # -> (B, w, M/2, M/2)
            *_sn_conv(w, 2 * w, 3, 1),                 # -> (B, 2w, M/2, M/2)
            *_sn_conv(2 * w, 2 * w, 4, 2),             # -> (B, 2w, M/4, M/4)
            *_sn_conv(2 * w, 4 * w, 3, 1),             # -> (B, 4w, M/4, M/4)
            *_sn_conv(4 * w, 4 * w, 4, 2),             # -> (B, 4w, M/8, M/8)
            *_sn_conv(4 * w, 8 * w, 3, 1),             # -> (B, 8w, M/8, M/8)
        )
        bottom = side // 8  # 28 px: 28 -> 14 -> 7 -> 3
        # (B, 8w * M/8 * M/8) -> (B, 1)
        self.dense = weight_layer(nn.Linear(8 * w * bottom * bottom, 1), sn=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, M, M) -> logits (B,)
        return self.dense(self.features(x).flatten(1)).view(len(x))


@MODELS.register("sngan")
def sngan(cfg, dataset) -> tuple[nn.Module, nn.Module]:
    """SN-GAN standard CNN (Miyato et al. 2018, Table 3), spectral norm on every D layer; paper width 64"""
    channels, side = image_size(dataset, "sngan", SIDES)
    g = SNGANGenerator(cfg.z_dim, channels, side, cfg.width, dataset.bounded)
    d = SNGANDiscriminator(channels, side, cfg.width)
    return g, d
