"""Fully connected GAN (Goodfellow et al. 2014) for any flat data: 2-D points or flattened images.

The published 2-D protocols differ in their hidden units, so they are config fields:

- ``activation``: ReLU in G and LeakyReLU(0.2) in D by default; ``tanh`` is the unit of the
  Unrolled-GAN and GDPP code, ``relu`` / ``leaky_relu`` put one unit in both networks.
- ``init``: PyTorch's default, ``orthogonal`` weights scaled by ``init_gain`` (the Unrolled-GAN and
  GDPP code: TensorFlow's orthogonal initialiser, gain 1.4), or ``normal`` N(0, ``init_gain``)
  weights (PacGAN: 0.02); biases zero.
- ``g_batch_norm``: batch norm after each hidden layer of G, as PacGAN's 2-D generator computes it
  (``StdevBatchNorm1d``; the hidden layers before it have no bias, as there).
- ``maxout``: D's hidden units are maxout units of that many pieces (Goodfellow et al. 2013),
  as in PacGAN's 2-D discriminator (``activation`` then applies to G only); ``d_width`` and
  ``d_depth`` size D apart from G.
- ``pack``: D judges packs of ``pack`` samples, concatenated (PacGAN; ``blocks.Packed``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganbench import distributed
from ganbench.models.base import MODELS
from ganbench.models.blocks import Packed

LEAK = 0.2  # LeakyReLU slope


def activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": lambda: nn.LeakyReLU(LEAK)}[name]()


class Maxout(nn.Module):
    """(B, n) -> (B, n // pieces): the maximum over each unit's ``pieces`` consecutive inputs.

    The gradient goes to the largest piece; when two pieces are equal (in float32 about one unit
    evaluation in ten million: PacGAN's 2-D discriminator evaluates 180,000 a step, so a tie every
    few dozen steps) it goes to the first of them, where Theano's max, under PacGAN's code, gives it
    to each. ``max`` routes it by the index it returns; ``amax``, which splits it between equal
    pieces, builds a mask, counts and divides in its backward pass: 5-15 % of PacGAN's whole 2-D
    step (tests/benchmarks/test_bench_maxout.py)."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(len(x), -1, self.pieces).max(dim=2).values


class StdevBatchNorm1d(nn.Module):
    """Batch norm as Blocks, the Theano library under PacGAN's code, computes it.

    Training: (x - mean) / sqrt(var + eps) * scale + shift over the batch, with the biased variance
    and eps = 1e-4 (PyTorch's ``BatchNorm1d``: 1e-5). Population statistics: a moving average of the
    batch mean and of the batch *standard deviation* sqrt(var + eps), p <- 0.95 p + 0.05 batch
    (PyTorch averages the unbiased variance); at evaluation x is normalised by them directly."""

    def __init__(self, features: int, eps: float = 1e-4, momentum: float = 0.05):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(features))  # Blocks' scale, initialised to 1
        self.bias = nn.Parameter(torch.zeros(features))  # Blocks' shift, initialised to 0
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_std", torch.ones(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, features) -> (B, features)
        if not self.training:
            return (x - self.running_mean) * (self.weight / self.running_std) + self.bias
        if distributed.sync_statistics():  # under torchrun: the statistics of the whole batch over every rank
            xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # statistics in float32
            mean, var, _, centred = distributed.batch_moments(xf, [0])
            inv_std = torch.rsqrt(var + self.eps)
            y = (centred * inv_std * self.weight + self.bias).to(x.dtype)
        else:  # one fused kernel that also returns the batch mean and 1 / sqrt(var + eps)
            y, mean, inv_std = torch.native_batch_norm(x, self.weight, self.bias, None, None, True, 0.0, self.eps)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(mean.detach(), alpha=self.momentum)
            self.running_std.mul_(1 - self.momentum).add_(inv_std.detach().reciprocal(), alpha=self.momentum)
        return y


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, out_shape: tuple[int, ...], width: int, depth: int, bounded: bool,
                 act: str = "relu", batch_norm: bool = False):
        super().__init__()
        self.out_shape = tuple(out_shape)
        layers: list[nn.Module] = []
        fan_in = z_dim
        for _ in range(depth):
            layers.append(nn.Linear(fan_in, width, bias=not batch_norm))  # batch norm removes a bias
            if batch_norm:
                layers.append(StdevBatchNorm1d(width))
            layers.append(activation(act))
            fan_in = width
        layers.append(nn.Linear(fan_in, math.prod(out_shape)))
        if bounded:  # images live in [-1, 1]; points are unbounded
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z: (B, z_dim) -> (B, *out_shape)
        return self.net(z).view(len(z), *self.out_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], width: int, depth: int, sn: bool,
                 act: str = "leaky_relu", maxout: int = 0):
        super().__init__()
        wrap = spectral_norm if sn else (lambda m: m)
        layers: list[nn.Module] = []
        fan_in = math.prod(in_shape)
        for _ in range(depth):
            if maxout:  # (B, fan_in) -> (B, width * pieces) -> (B, width)
                layers += [wrap(nn.Linear(fan_in, width * maxout)), Maxout(maxout)]
            else:
                layers += [wrap(nn.Linear(fan_in, width)), activation(act)]
            fan_in = width
        layers.append(wrap(nn.Linear(fan_in, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, *in_shape) -> logits (B,)
        return self.net(x.flatten(1)).squeeze(1)


@torch.no_grad()
def init_linear(net: nn.Module, kind: str, gain: float) -> None:
    """Orthogonal weights times ``gain``, or N(0, gain) weights, and zero biases on every linear
    layer (batch norm keeps its own)."""
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain) if kind == "orthogonal" else nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@MODELS.register("mlp")
def mlp(cfg, dataset) -> tuple[nn.Module, nn.Module]:
    """MLP generator and discriminator, width x depth hidden units (ReLU / LeakyReLU 0.2; activation,
    init, g_batch_norm, maxout, d_width, d_depth and pack select the published 2-D variants)"""
    shape = tuple(dataset.shape)
    g = MLPGenerator(cfg.z_dim, shape, cfg.width, cfg.depth, dataset.bounded,
                     cfg.activation or "relu", cfg.g_batch_norm)
    # a pack of m samples is one input of m times the features: (B, *shape) -> (B / m, m * prod(shape))
    # with an initialisation of its own, D is spectrally normalised after it (power iteration from the final weights)
    late_sn = cfg.spectral_norm and cfg.init != "default"
    d = MLPDiscriminator((cfg.pack * math.prod(shape),), cfg.d_width or cfg.width, cfg.d_depth or cfg.depth,
                         cfg.spectral_norm and not late_sn, cfg.activation or "leaky_relu", cfg.maxout)
    if cfg.init != "default":
        init_linear(g, cfg.init, cfg.init_gain)
        init_linear(d, cfg.init, cfg.init_gain)
    if late_sn:
        for m in d.modules():
            if isinstance(m, nn.Linear):
                spectral_norm(m)
    return g, Packed(d, cfg.pack) if cfg.pack > 1 else d
