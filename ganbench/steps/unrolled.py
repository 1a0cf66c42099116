"""Unrolled GAN (Metz et al. 2017): the generator's loss goes through k look-ahead updates of D.

The surrogate objective is f_K(θ_G, θ_D) = f(θ_G, θ_D^K(θ_G, θ_D)), where θ_D^0 = θ_D and
θ_D^{k+1} = θ_D^k - Adam step on D's loss at θ_D^k (eq. 9-12 of the paper). The generator is updated
with the gradient of its loss at θ_D^K, taken *through* the K updates (the second-order terms that
make the method: the generator sees how D would react to it). The discriminator itself is then
updated as usual, from θ_D, not from θ_D^K.

As in the authors' code (poolio/unrolled_gan), the look-ahead updates are copies of D's own Adam
update, starting from its current moment estimates and step count, and all K of them use the same
real batch and the same generated batch; the generated batch keeps its graph to θ_G. The registered
step ``unrolled`` is the standard adversarial step (either update order, ``cfg.update``) with this
generator loss; ``unroll_steps = 0`` never enters this module.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize

from ganbench import distributed
from ganbench.errors import UserError
from ganbench.steps.alternating import (
    adversarial_step,
    check_common,
    check_simultaneous,
)
from ganbench.steps.base import Step, StepContext, StepOutput, register

Tensor = torch.Tensor


def _sqrt(v: Tensor) -> Tensor:
    """sqrt(v) with a finite derivative where v = 0 (a weight that has had no gradient yet: a dead
    ReLU, a maxout piece that never wins), where sqrt's derivative is infinite and 0 * inf would
    turn every generator gradient into NaN. The values are sqrt(v) exactly."""
    return torch.where(v > 0, v.clamp_min(1e-30).sqrt(), torch.zeros_like(v))


def check_unrolled(cfg, loss) -> None:
    """The settings the look-ahead supports, checked before training: a UserError otherwise."""
    if not cfg.unroll_steps:
        raise UserError("step 'unrolled' needs unroll_steps >= 1")
    why = None
    if cfg.optimizer != "adam":
        why = "the look-ahead copies D's Adam update; use optimizer adam"
    elif loss.penalty or loss.clip:
        why = f"loss {loss.name!r} changes D outside its gradient step (penalty or clipping)"
    elif cfg.spectral_norm:
        why = "spectral norm's power iteration is not unrolled"
    elif cfg.precision != "fp32":
        why = "the look-ahead runs in fp32 only"
    elif distributed.active():
        why = "the look-ahead is not split over torchrun processes"
    if why:
        raise UserError(f"unroll_steps = {cfg.unroll_steps} is not supported here: {why}")


def check_discriminator(cfg, d: nn.Module) -> None:
    """A discriminator with parametrized weights (spectral norm built into the model, as sngan's) is
    refused with unroll_steps: its power iteration is not unrolled."""
    if cfg.unroll_steps and any(parametrize.is_parametrized(m) for m in d.modules()):
        raise UserError(f"unroll_steps = {cfg.unroll_steps} is not supported with model {cfg.model!r}: its "
                        "discriminator has parametrized (spectrally normalised) weights, whose power iteration "
                        "is not unrolled")


def lookahead(d: nn.Module, opt: torch.optim.Adam, d_loss, k: int) -> dict[str, Tensor]:
    """D's parameters and buffers after ``k`` differentiable copies of its Adam step on ``d_loss``.

    ``d_loss(params)`` is D's loss with D evaluated at ``params`` (by ``functional_call``); the
    returned tensors depend on whatever ``d_loss`` depends on besides D (the generated batch), so a
    loss computed at them back-propagates through every update. D and its optimiser are unchanged.
    """
    group = opt.param_groups[0]
    lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
    names = [name for name, _ in d.named_parameters()]
    start = [p.detach().requires_grad_(True) for _, p in d.named_parameters()]
    # buffers are cloned: batch norm's running statistics in the look-ahead must not reach D
    buffers = {name: b.clone() for name, b in d.named_buffers()}
    moments = []
    for _, p in d.named_parameters():
        state = opt.state.get(p, {})
        m = state.get("exp_avg", torch.zeros_like(p)).detach()
        v = state.get("exp_avg_sq", torch.zeros_like(p)).detach()
        moments.append((m, v))
    t0 = int(opt.state.get(next(d.parameters()), {}).get("step", 0))
    params = start
    for i in range(k):
        loss = d_loss({**dict(zip(names, params)), **buffers})
        grads = torch.autograd.grad(loss, params, create_graph=True)
        t = t0 + i + 1
        step_size = lr / (1 - beta1**t)
        root_bc2 = math.sqrt(1 - beta2**t)
        new_params, new_moments = [], []
        for p, grad, (m, v) in zip(params, grads, moments):
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            new_params.append(p - step_size * m / (_sqrt(v) / root_bc2 + eps))
            new_moments.append((m, v))
        params, moments = new_params, new_moments
    return {**dict(zip(names, params)), **buffers}


def unrolled_generator_loss(d: nn.Module, opt_d: torch.optim.Adam, loss, k: int,
                            real: Tensor, y_real: Tensor | None, fake: Tensor, y_fake: Tensor | None) -> Tensor:
    """G's loss at D after ``k`` look-ahead updates on (real, fake); ``fake`` carries G's graph.

    For a zero-sum loss (``minimax``) that is the paper's f_K = -loss.d(D_K(x), D_K(G(z))): the real
    term counts too, because D_K depends on G through the updates (the notebook's ``-unrolled_loss``).
    Other losses use ``loss.g`` at D_K."""
    def D(params, x, y):
        return functional_call(d, params, (x,) if y is None else (x, y)).float()

    params = lookahead(d, opt_d, lambda p: loss.d(D(p, real, y_real), D(p, fake, y_fake)), k)
    if loss.zero_sum:
        return -loss.d(D(params, real, y_real), D(params, fake, y_fake))
    return loss.g(D(params, fake, y_fake))


def _generator_loss(ctx: StepContext, fake, y_fake, real, y_real) -> Tensor:
    """G's loss through ``unroll_steps`` look-ahead updates of D on the last real batch."""
    return unrolled_generator_loss(ctx.d, ctx.opt_d, ctx.loss, ctx.cfg.unroll_steps, real, y_real, fake, y_fake)


def _run(ctx: StepContext, log: bool) -> StepOutput:
    return adversarial_step(ctx, log, simultaneous=ctx.cfg.update == "simultaneous", generator_loss=_generator_loss,
                            same_latents=ctx.cfg.update == "alternating-same-latents")


def _check(cfg, loss, cond: bool) -> None:
    check_simultaneous(cfg)
    check_common(cfg, loss, cond)
    check_unrolled(cfg, loss)


register(Step(
    name="unrolled", run=_run, check=_check, options=("unroll_steps", "update", "n_dis"),
    description="Unrolled GAN (Metz et al. 2017): G's loss through unroll_steps look-ahead Adam updates of D",
))
