"""CycleGAN (Zhu et al. 2017) and the identity translator, for the translation datasets.

A translator pair is one generator module with ``ab`` (A -> B) and ``ba`` (B -> A) and
``translator = True``; calling it translates A -> B. Its discriminator module holds ``a`` (judges
domain A) and ``b`` (judges B), and the two history pools the training step draws from, as buffers,
so that checkpoints carry them and a resumed run continues bit for bit.

- Generator (Johnson et al. 2016, as in the CycleGAN code): reflection pad 3, 7x7 conv to ``width``
  channels; two stride-2 3x3 convs (2 ``width``, 4 ``width``); ``depth`` residual blocks (reflection
  pad 1, 3x3 conv, instance norm, ReLU, reflection pad 1, 3x3 conv, instance norm, plus the input);
  two stride-2 transposed 3x3 convs back; reflection pad 3, 7x7 conv to C channels, tanh. Instance
  norm without affine parameters after every conv but the last; convs have biases. The paper uses
  width 64 with 6 blocks at 128 px and 9 at 256 px.
- Discriminator (70x70 PatchGAN at 256 px): 4x4 conv stride 2 to ``d_width`` channels, LeakyReLU 0.2;
  ``d_depth`` - 1 more stride-2 4x4 convs doubling the channels (at most 8 ``d_width``), instance
  norm, LeakyReLU; one stride-1 4x4 conv, instance norm, LeakyReLU; a stride-1 4x4 conv to one
  logit per patch. ``d_depth`` 0 means the paper's 3.
- Weights N(0, 0.02), biases 0 (the code's ``init_type normal``).
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.models.base import MODELS
from ganbench.models.blocks import INIT_STD
from ganbench.errors import UserError

PAPER_D_LAYERS = 3


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def resnet_generator(channels: int, width: int, blocks: int) -> nn.Sequential:
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7), _norm(width), nn.ReLU(True)]
    for mult in (1, 2):
        layers += [nn.Conv2d(width * mult, width * mult * 2, 3, stride=2, padding=1), _norm(width * mult * 2),
                   nn.ReLU(True)]
    layers += [ResnetBlock(width * 4) for _ in range(blocks)]
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(width * mult, width * mult // 2, 3, stride=2, padding=1, output_padding=1),
                   _norm(width * mult // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def patch_discriminator(channels: int, width: int, layers: int) -> nn.Sequential:
    seq = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, layers):
        prev, mult = mult, min(2**n, 8)
        seq += [nn.Conv2d(width * prev, width * mult, 4, stride=2, padding=1), _norm(width * mult),
                nn.LeakyReLU(0.2, True)]
    prev, mult = mult, min(2**layers, 8)
    seq += [nn.Conv2d(width * prev, width * mult, 4, stride=1, padding=1), _norm(width * mult),
            nn.LeakyReLU(0.2, True), nn.Conv2d(width * mult, 1, 4, stride=1, padding=1)]
    return nn.Sequential(*seq)


@torch.no_grad()
def init_normal(net: nn.Module, std: float = INIT_STD) -> None:
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)


class Translators(nn.Module):
    """A -> B (``ab``) and B -> A (``ba``); calling the module translates A -> B."""

    translator = True

    def __init__(self, ab: nn.Module, ba: nn.Module):
        super().__init__()
        self.ab, self.ba = ab, ba

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ab(x)


class PooledDiscriminators(nn.Module):
    """D_A (``a``), D_B (``b``) and a history pool of generated images for each (buffers)."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module, shape: tuple[int, ...], pool_size: int):
        super().__init__()
        self.a, self.b = d_a, d_b
        self.pool_size = pool_size
        for side in ("a", "b"):
            self.register_buffer(f"pool_{side}", torch.zeros(pool_size, *shape))
            self.register_buffer(f"pool_{side}_count", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean logit per image of D_B, (B,): the probe and the monitor read one logit per sample."""
        return self.b(x).flatten(1).mean(1)

    @torch.no_grad()
    def query(self, side: str, images: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        """The CycleGAN image pool: each image enters the pool while it has room and is returned;
        once full, with probability 1/2 a random stored image is returned and replaced by it, else
        the image itself is returned. Draws from ``noise`` only."""
        if self.pool_size == 0:
            return images
        pool, count = getattr(self, f"pool_{side}"), getattr(self, f"pool_{side}_count")
        u = torch.rand(len(images), generator=noise, device=noise.device)
        slot = torch.randint(self.pool_size, (len(images),), generator=noise, device=noise.device)
        out = images.clone()
        for i, image in enumerate(images):
            if count < self.pool_size:
                pool[count] = image
                count += 1
            elif u[i] > 0.5:
                k = int(slot[i])
                out[i] = pool[k]
                pool[k] = image
        return out


@MODELS.register("cyclegan")
def cyclegan(cfg, dataset) -> tuple[nn.Module, nn.Module]:
    """CycleGAN (Zhu et al. 2017): two ResNet generators (width, depth residual blocks) and two
    PatchGAN discriminators (d_width, d_depth layers); translation datasets only"""
    c = _check(cfg, dataset, "cyclegan")
    g = Translators(resnet_generator(c, cfg.width, cfg.depth), resnet_generator(c, cfg.width, cfg.depth))
    d_layers = cfg.d_depth or PAPER_D_LAYERS
    d = PooledDiscriminators(patch_discriminator(c, cfg.d_width or cfg.width, d_layers),
                             patch_discriminator(c, cfg.d_width or cfg.width, d_layers),
                             tuple(dataset.shape), cfg.pool_size)
    init_normal(g)
    init_normal(d)
    return g, d


@MODELS.register("identity")
def identity(cfg, dataset) -> tuple[nn.Module, nn.Module]:
    """The identity translator (no translation, no training): the baseline every translator must beat"""
    c = _check(cfg, dataset, "identity")
    d_layers = cfg.d_depth or PAPER_D_LAYERS
    d = PooledDiscriminators(patch_discriminator(c, cfg.d_width or cfg.width, d_layers),
                             patch_discriminator(c, cfg.d_width or cfg.width, d_layers), tuple(dataset.shape), 0)
    return Translators(nn.Identity(), nn.Identity()), d


def _check(cfg, dataset, model: str) -> int:
    shape = tuple(dataset.shape)
    if not getattr(dataset, "translation", False):
        raise UserError(f"model {model!r} translates between two domains; dataset {cfg.dataset!r} is not a "
                        f"translation pair (see `ganbench list datasets`: digits-invert, mnist-invert, ...)")
    if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
        raise UserError(f"model {model!r} needs images whose sides are multiples of 4, got samples of shape {shape}")
    return shape[0]
