"""The standard adversarial step: ``n_dis`` discriminator updates, then one generator update.

Three update orders are registered:

- ``alternating``: D's updates first, each on a fresh real batch and fresh latents; then G's, on
  fresh latents, against the updated D.
- ``alternating-same-latents``: as ``alternating``, but G's update reuses the latents of D's last
  update (DCGAN-tensorflow and the code built on it, PacGAN's Stacked MNIST code among them).
- ``simultaneous``: one batch per step; both gradients are taken at the same weights, then both
  networks move (the TensorFlow and Theano reference code of the 2-D protocols).

``adversarial_step`` is shared with the Unrolled-GAN step, which changes only the generator's loss.
"""

from __future__ import annotations

from typing import Callable

import torch

from ganbench import distributed
from ganbench.errors import UserError
from ganbench.losses import clip_weights, gradient_penalty, mixing_weights
from ganbench.monitor import grad_norm
from ganbench.steps.base import Step, StepContext, StepOutput, register
from ganbench.steps.cycle import check_not_cycle

# (ctx, generated batch with its graph, its labels, last real batch, its labels) -> G's loss
GeneratorLoss = Callable[[StepContext, torch.Tensor, object, torch.Tensor, object], torch.Tensor]


def plain_generator_loss(ctx: StepContext, fake, y_fake, real, y_real) -> torch.Tensor:
    """``loss.g`` of D's logits on the generated batch."""
    return ctx.loss.g(ctx.D(fake, y_fake).float())


def _step_d(ctx: StepContext) -> None:
    ctx.opt_d.step()
    if ctx.loss.clip:
        clip_weights(ctx.d, ctx.cfg.weight_clip)


def adversarial_step(ctx: StepContext, log: bool, simultaneous: bool,
                     generator_loss: GeneratorLoss = plain_generator_loss, same_latents: bool = False) -> StepOutput:
    """D minimises loss.d(D(x), D(G(z))) [+ gp_weight * gradient penalty] ``n_dis`` times, then G
    minimises ``generator_loss``; with ``simultaneous``, G's step reuses D's last batch and D's
    update waits until both gradients are taken; with ``same_latents``, G's step runs G again on D's
    last latents, against the updated D."""
    cfg, loss, d, g = ctx.cfg, ctx.loss, ctx.d, ctx.g
    d.requires_grad_(True)
    for _ in range(cfg.n_dis):
        batch = next(ctx.data)
        real, y_real = map(distributed.shard, batch)
        z, y_fake = ctx.latents()
        with ctx.amp():
            if simultaneous:  # G's step below reuses this batch, with its graph
                fake_g = ctx.G(z, y_fake)
                fake = fake_g.detach()
            else:
                with torch.no_grad():
                    fake = ctx.G(z, y_fake)
            d_real, d_fake = ctx.D(real, y_real).float(), ctx.D(fake, y_fake).float()
            d_loss = loss.d(d_real, d_fake)
            if loss.penalty:
                # conditional critics are penalised at the real labels
                critic = lambda x: ctx.D(x, y_real).float()  # noqa: E731
                # the full batch's weights, then this rank's slice: the same draws as one process
                eps = distributed.shard(mixing_weights(len(batch[0]), real, ctx.noise))
                d_loss = d_loss + cfg.gp_weight * gradient_penalty(critic, real, fake.float(), eps)
        ctx.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        distributed.average_gradients(d)  # under torchrun: the full batch's gradient on every rank
        if not simultaneous:
            _step_d(ctx)
    grad_d = grad_norm(d.parameters()) if log else 0.0

    # Generator: D's weights need no gradient here
    d.requires_grad_(False)
    if not (simultaneous or same_latents):
        z, y_fake = ctx.latents()
    with ctx.amp():
        fake_g = fake_g if simultaneous else ctx.G(z, y_fake)
        g_loss = generator_loss(ctx, fake_g, y_fake, real, y_real)
    ctx.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    distributed.average_gradients(g)
    grad_g = grad_norm(g.parameters()) if log else 0.0
    ctx.opt_g.step()
    if simultaneous:  # both gradients were taken at the same weights; now D moves too
        _step_d(ctx)
    return StepOutput(d_loss, g_loss, d_real, d_fake, grad_d, grad_g)


def check_common(cfg, loss, cond: bool) -> None:
    """Options no adversarial step combines."""
    check_not_cycle(cfg)
    if cfg.pack > 1 and loss.penalty:
        raise UserError(f"pack = {cfg.pack} with loss {loss.name!r}: the gradient penalty is not defined on packs")
    if cfg.pack > 1 and cond:
        raise UserError(f"pack = {cfg.pack} with the class-conditional model {cfg.model!r}: packs have no single label")


def check_simultaneous(cfg) -> None:
    if cfg.update == "simultaneous" and cfg.n_dis != 1:
        raise UserError(f"update 'simultaneous' takes one discriminator step per generator step, not n_dis = {cfg.n_dis}")


def _check_named(cfg, name: str) -> None:
    """A step chosen by name (``cfg.step``) must agree with the options that name a built-in step."""
    if cfg.update != name:
        raise UserError(f"step {name!r} with update {cfg.update!r}: set update = {name!r} or leave step empty")
    if cfg.unroll_steps:
        raise UserError(f"step {name!r} with unroll_steps = {cfg.unroll_steps}: the look-ahead is step 'unrolled'")


def _check_alternating(cfg, loss, cond: bool) -> None:
    _check_named(cfg, "alternating")
    check_common(cfg, loss, cond)


def _check_same_latents(cfg, loss, cond: bool) -> None:
    _check_named(cfg, "alternating-same-latents")
    check_common(cfg, loss, cond)


def _check_simultaneous(cfg, loss, cond: bool) -> None:
    check_simultaneous(cfg)
    _check_named(cfg, "simultaneous")
    check_common(cfg, loss, cond)


register(Step(
    name="alternating", run=lambda ctx, log: adversarial_step(ctx, log, simultaneous=False), check=_check_alternating,
    options=("n_dis", "gp_weight", "weight_clip"),
    description="n_dis discriminator updates on fresh batches, then one generator update on fresh latents",
))
register(Step(
    name="alternating-same-latents",
    run=lambda ctx, log: adversarial_step(ctx, log, simultaneous=False, same_latents=True),
    check=_check_same_latents, options=("n_dis", "gp_weight", "weight_clip"),
    description="as alternating, but the generator update reuses the latents of the last discriminator update "
                "(DCGAN-tensorflow, PacGAN's Stacked MNIST code)",
))
register(Step(
    name="simultaneous", run=lambda ctx, log: adversarial_step(ctx, log, simultaneous=True),
    check=_check_simultaneous, options=("gp_weight", "weight_clip"),
    description="one batch per step: both gradients at the same weights, then both updates (2-D reference code)",
))
