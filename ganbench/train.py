"""The one training loop: alternating discriminator and generator updates under explicit seeds."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ganbench.config import RunConfig
from ganbench.losses import LOSSES, gradient_penalty
from ganbench.models import MODELS
from ganbench.seeding import make_generator, seeded_init, synchronize

EvalHook = Callable[[int, nn.Module], None]  # (step, generator in eval mode) -> None


@dataclass
class TrainResult:
    generator: nn.Module
    discriminator: nn.Module
    steps_done: int
    diverged: str | None  # reason the run stopped early, or None
    train_seconds: float  # wall time of the updates, evaluation during training excluded
    history: list[dict] = field(default_factory=list)  # one dict per logged step


def build_models(cfg: RunConfig, dataset, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator, initialised as a pure function of ``cfg.seed``."""
    factory = MODELS[cfg.model]
    with seeded_init(cfg.seed, device):
        g, d = factory(cfg, dataset)
    return g.to(device), d.to(device)


def make_optimizer(cfg: RunConfig, params, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=cfg.betas)


def log_interval(steps: int) -> int:
    """About 100 history points per run."""
    return max(1, steps // 100)


def train(
    cfg: RunConfig,
    dataset,
    device: torch.device,
    on_eval: EvalHook | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    loss = LOSSES[cfg.loss]
    g, d = build_models(cfg, dataset, device)
    opt_g = make_optimizer(cfg, g.parameters(), cfg.lr_g)
    opt_d = make_optimizer(cfg, d.parameters(), cfg.lr_d)
    data = dataset.batches(cfg.batch_size, make_generator(cfg.seed, "data", device), device)
    noise = make_generator(cfg.seed, "noise", device)
    every = log_interval(cfg.steps)
    history: list[dict] = []
    diverged = None
    B, zdim = cfg.batch_size, cfg.z_dim

    synchronize(device)
    start = time.perf_counter()
    eval_seconds = 0.0
    step = 0
    while step < cfg.steps:
        # Discriminator: minimise loss.d(D(x), D(G(z))) [+ gp_weight * gradient penalty]
        d.requires_grad_(True)
        for _ in range(cfg.n_dis):
            real = next(data)
            with torch.no_grad():
                fake = g(torch.randn(B, zdim, generator=noise, device=device))
            d_loss = loss.d(d(real), d(fake))
            if loss.penalty:
                d_loss = d_loss + cfg.gp_weight * gradient_penalty(d, real, fake, noise)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

        # Generator: minimise loss.g(D(G(z))); D's weights need no gradient here
        d.requires_grad_(False)
        g_loss = loss.g(d(g(torch.randn(B, zdim, generator=noise, device=device))))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        step += 1

        if step % every == 0 or step == cfg.steps:
            row = {"step": step, "d_loss": d_loss.item(), "g_loss": g_loss.item()}
            history.append(row)
            if not (math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"])):
                diverged = f"non-finite loss at step {step}"
                break
        if on_step is not None:
            on_step(step)
        if on_eval is not None and cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
            t0 = time.perf_counter()
            g.eval()
            on_eval(step, g)
            g.train()
            eval_seconds += time.perf_counter() - t0
    synchronize(device)
    seconds = time.perf_counter() - start - eval_seconds
    d.requires_grad_(True)
    g.eval()
    return TrainResult(g, d, step, diverged, seconds, history)
