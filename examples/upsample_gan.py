"""A new architecture, benchmarked against the reference GANs without touching ganbench.

``upsample``: a generator that grows images by nearest-neighbour upsampling followed by a 3x3
convolution instead of DCGAN's strided transposed convolutions (Odena et al. 2016, "Deconvolution
and Checkerboard Artifacts"), paired with the DCGAN discriminator so that only the generator differs.

Run it against the baselines (see examples/README.md):

    ganbench run --plugin examples/upsample_gan.py --suite examples/digits_vs_baselines.toml
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.models import MODELS
from ganbench.models.blocks import image_size
from ganbench.models.dcgan import FIRST_SIDE, DCGANDiscriminator, batch_norm, plan


class UpsampleGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, side: int, width: int):
        super().__init__()
        s0, n = plan(side)
        c = width * 2 ** (n - 1)
        self.project = nn.Sequential(nn.Linear(z_dim, c * s0 * s0, bias=False), nn.Unflatten(1, (c, s0, s0)))
        layers: list[nn.Module] = [batch_norm(c), nn.ReLU()]  # (B, c, s0, s0)
        for _ in range(n):
            # (B, c, s, s) -> (B, c/2, 2s, 2s): resize, then convolve
            out = max(c // 2, width // 2)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, out, 3, 1, 1, bias=False),
                       batch_norm(out), nn.ReLU()]
            c = out
        layers += [nn.Conv2d(c, channels, 3, 1, 1), nn.Tanh()]  # (B, C, side, side) in [-1, 1]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z: (B, z_dim) -> (B, C, side, side)
        return self.net(self.project(z))


@MODELS.register("upsample")
def upsample(cfg, dataset):
    """Example plug-in: nearest-upsample + conv generator, DCGAN discriminator"""
    channels, side = image_size(dataset, "upsample", tuple(FIRST_SIDE))
    return (UpsampleGenerator(cfg.z_dim, channels, side, cfg.width),
            DCGANDiscriminator(channels, side, cfg.width, cfg.spectral_norm))
