"""Adversarial objectives as pure functions of discriminator logits.

``LOSSES`` maps a name to a ``Loss`` record: ``d(real_logits, fake_logits)`` and ``g(fake_logits)``
return scalar losses to minimise; ``penalty`` marks losses that add the gradient penalty
(weighted by ``cfg.gp_weight``), computed by ``gradient_penalty``; ``clip`` marks losses whose
discriminator weights are clipped to [-cfg.weight_clip, cfg.weight_clip] after every update;
``zero_sum`` marks losses whose generator objective is the negated discriminator loss (the Unrolled
GAN's look-ahead then takes G's loss as -d at the unrolled D, real term included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ganbench.registry import Registry

Tensor = torch.Tensor


@dataclass(frozen=True)
class Loss:
    name: str
    d: Callable[[Tensor, Tensor], Tensor]  # (real logits (B,), fake logits (B,)) -> scalar
    g: Callable[[Tensor], Tensor]  # fake logits (B,) -> scalar
    description: str
    penalty: bool = False  # add cfg.gp_weight * gradient_penalty to the discriminator loss
    clip: bool = False  # clip discriminator weights after each of its updates (clip_weights)
    zero_sum: bool = False  # g is -d up to D(x) terms: G's full objective is -d(real, fake) (the Unrolled GAN's f)
    sigmoid: bool = False  # D's logits are read through a sigmoid as probabilities (the monitor checks D(x) and D(G(z)))


LOSSES = Registry("loss", Loss)


def _bce_d(real: Tensor, fake: Tensor) -> Tensor:
    # -log sigmoid(r) - log(1 - sigmoid(f)), written with softplus for stability
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def _wasserstein_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def _register(loss: Loss) -> Loss:
    return LOSSES.register(loss.name, loss)


_register(Loss(
    "ns", _bce_d, lambda f: F.softplus(-f).mean(),
    "non-saturating GAN: G maximises log D(G(z)) (Goodfellow et al. 2014)",
    sigmoid=True,
))
_register(Loss(
    "minimax", _bce_d, lambda f: -F.softplus(f).mean(),
    "original minimax GAN: G minimises log(1 - D(G(z))) (Goodfellow et al. 2014)",
    zero_sum=True, sigmoid=True,
))
_register(Loss(
    "lsgan",
    lambda r, f: 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean(),
    lambda f: 0.5 * ((f - 1) ** 2).mean(),
    "least squares GAN, 0-1-1 coding (Mao et al. 2017)",
))
_register(Loss(
    "wgan", _wasserstein_d, _wasserstein_g,
    "Wasserstein GAN with weight clipping (Arjovsky et al. 2017); use optimizer rmsprop",
    clip=True,
))
_register(Loss(
    "wgan-gp", _wasserstein_d, _wasserstein_g,
    "Wasserstein GAN with gradient penalty (Gulrajani et al. 2017)",
    penalty=True,
))
_register(Loss(
    "hinge",
    lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(),
    _wasserstein_g,
    "hinge loss (Lim & Ye 2017; Miyato et al. 2018)",
))


def mixing_weights(n: int, like: Tensor, generator: torch.Generator) -> Tensor:
    """n interpolation weights ~ U[0, 1), one per sample, shaped to broadcast over ``like``'s other dimensions."""
    return torch.rand((n,) + (1,) * (like.dim() - 1), generator=generator, device=like.device)


def gradient_penalty(d: torch.nn.Module, real: Tensor, fake: Tensor, eps: Tensor) -> Tensor:
    """E[(||grad_x D(x)|| - 1)^2] at the interpolates x = eps real + (1 - eps) fake (``mixing_weights``)."""
    x = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@torch.no_grad()
def clip_weights(d: torch.nn.Module, bound: float) -> None:
    """The WGAN step hook: clamp every discriminator parameter to [-bound, bound]."""
    for p in d.parameters():
        p.clamp_(-bound, bound)
