"""Fully connected GAN (Goodfellow et al. 2014) for any flat data: 2-D points or flattened images."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganbench.models import MODELS


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, out_shape: tuple[int, ...], width: int, depth: int, bounded: bool):
        super().__init__()
        self.out_shape = tuple(out_shape)
        layers: list[nn.Module] = []
        fan_in = z_dim
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU()]
            fan_in = width
        layers.append(nn.Linear(fan_in, math.prod(out_shape)))
        if bounded:  # images live in [-1, 1]; points are unbounded
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z: (B, z_dim) -> (B, *out_shape)
        return self.net(z).view(len(z), *self.out_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], width: int, depth: int, sn: bool):
        super().__init__()
        wrap = spectral_norm if sn else (lambda m: m)
        layers: list[nn.Module] = []
        fan_in = math.prod(in_shape)
        for _ in range(depth):
            layers += [wrap(nn.Linear(fan_in, width)), nn.LeakyReLU(0.2)]
            fan_in = width
        layers.append(wrap(nn.Linear(fan_in, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, *in_shape) -> logits (B,)
        return self.net(x.flatten(1)).squeeze(1)


@MODELS.register("mlp")
def mlp(cfg, dataset) -> tuple[nn.Module, nn.Module]:
    """MLP generator and discriminator (ReLU / LeakyReLU 0.2), width x depth hidden units"""
    g = MLPGenerator(cfg.z_dim, dataset.shape, cfg.width, cfg.depth, dataset.bounded)
    d = MLPDiscriminator(dataset.shape, cfg.width, cfg.depth, cfg.spectral_norm)
    return g, d
