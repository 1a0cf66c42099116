"""The training-step record and its registry.

A training step is one generator update and the discriminator updates that come before it: the
part of a GAN's training that differs between methods. The loop (``ganbench.train``) owns
everything around it: seeds, the data and noise streams, EMA, logging, divergence, evaluation,
checkpoints. ``STEPS`` maps a name to a ``Step``; a run uses ``cfg.step``, or when that is empty
the built-in step its options name (``step_name``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ganbench.registry import Registry



@dataclass
class StepContext:
    """What a step reads and updates: built once per run by the loop.

    ``data`` yields (real, labels) batches already split for this process; ``latents()`` draws a
    batch of latents (and labels for a conditional generator) from the run's noise stream;
    ``G(z, y)`` and ``D(x, y)`` call the networks with or without labels; ``amp()`` is the
    mixed-precision context of the forward passes. Steps draw random numbers only from these
    streams, so a run stays a pure function of its config.
    """

    cfg: Any  # RunConfig
    loss: Any  # losses.Loss
    g: nn.Module
    d: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    data: Iterator
    noise: torch.Generator
    latents: Callable[[], tuple]
    G: Callable
    D: Callable
    amp: Callable
    step: int = 0  # generator steps done before this one (set by the loop)


@dataclass
class StepOutput:
    """What the loop logs of a step (tensors; read only on logging steps)."""

    d_loss: torch.Tensor
    g_loss: torch.Tensor
    d_real: torch.Tensor  # D's logits on the last real batch
    d_fake: torch.Tensor  # D's logits on the last generated batch
    grad_d: float  # gradient norms (0.0 when ``log`` was False)
    grad_g: float


def _no_check(cfg, loss, cond: bool) -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class Step:
    """One registered training step.

    ``run(ctx, log)`` performs the updates of one generator step and returns a ``StepOutput``
    (``log``: this step is logged, so gradient norms are measured). ``check(cfg, loss, cond)``
    raises a ``UserError`` before any training for options the step cannot honour (``cond``: the
    model is class-conditional). ``options`` names the config fields the step reads beyond the
    common ones, for ``ganbench list steps``.
    """

    name: str
    run: Callable[[StepContext, bool], StepOutput]
    description: str
    check: Callable[[Any, Any, bool], None] = _no_check
    options: tuple[str, ...] = ()


STEPS = Registry("training step", Step)


def register(step: Step) -> Step:
    """Add ``step`` to ``STEPS`` under its name."""
    return STEPS.register(step.name, step)


# models whose pairs only one step trains: their default step
MODEL_STEPS = {"cyclegan": "cycle", "identity": "cycle"}


def step_name(cfg) -> str:
    """The step a config runs: ``cfg.step`` when set, else its model's own step (``MODEL_STEPS``),
    else the Unrolled-GAN step when ``unroll_steps`` > 0, else the update order ``cfg.update`` names."""
    if cfg.step:
        return cfg.step
    if cfg.model in MODEL_STEPS:
        return MODEL_STEPS[cfg.model]
    return "unrolled" if cfg.unroll_steps else cfg.update


def step_of(cfg) -> Step:
    return STEPS[step_name(cfg)]


