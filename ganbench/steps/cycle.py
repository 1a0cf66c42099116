"""The CycleGAN step (Zhu et al. 2017), as in the authors' PyTorch code, one (a, b) batch per step.

Generators first, the discriminators not updated: with G: A -> B and F: B -> A,

    L_G = ||D_B(G(a)) - 1||^2 + ||D_A(F(b)) - 1||^2                       (least squares)
        + lambda (|F(G(a)) - a| + |G(F(b)) - b|)                           (cycle, L1)
        + lambda * identity_weight (|G(b) - b| + |F(a) - a|)               (identity, L1)

(means over pixels and patches; lambda = ``cycle_weight``). Then each discriminator on the real
batch of its domain and on an image drawn from its history pool of generated images
(``pool_size``): L_D = (||D(real) - 1||^2 + ||D(pooled fake)||^2) / 2. The identity terms are
skipped when their weight is 0 (as the code does). The learning-rate decay (``lr_decay``) is the
loop's. Needs a translation dataset and a translator model (``cyclegan``).
"""

from __future__ import annotations

import torch

from ganbench.errors import UserError
from ganbench.monitor import grad_norm
from ganbench.steps.base import Step, StepContext, StepOutput, register

CYCLE_FIELDS = {"cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 50}  # read by this step only


def _ls(logits: torch.Tensor, target: float) -> torch.Tensor:
    return ((logits.float() - target) ** 2).mean()


def cycle_step(ctx: StepContext, log: bool) -> StepOutput:
    cfg, g, d = ctx.cfg, ctx.g, ctx.d
    a, b = next(ctx.data)
    lam, lam_idt = cfg.cycle_weight, cfg.cycle_weight * cfg.identity_weight

    d.requires_grad_(False)
    with ctx.amp():
        fake_b, fake_a = g.ab(a), g.ba(b)
        rec_a, rec_b = g.ba(fake_b), g.ab(fake_a)
        g_loss = _ls(d.b(fake_b), 1.0) + _ls(d.a(fake_a), 1.0)
        g_loss = g_loss + lam * ((rec_a.float() - a).abs().mean() + (rec_b.float() - b).abs().mean())
        if lam_idt > 0:
            g_loss = g_loss + lam_idt * ((g.ab(b).float() - b).abs().mean() + (g.ba(a).float() - a).abs().mean())
    ctx.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    grad_g = grad_norm(g.parameters()) if log else 0.0
    ctx.opt_g.step()

    d.requires_grad_(True)
    pooled_b = d.query("b", fake_b.detach().to(d.pool_b.dtype), ctx.noise)
    pooled_a = d.query("a", fake_a.detach().to(d.pool_a.dtype), ctx.noise)
    with ctx.amp():
        d_real, d_fake = d.b(b), d.b(pooled_b)
        d_loss = 0.5 * (_ls(d_real, 1.0) + _ls(d_fake, 0.0)) + 0.5 * (_ls(d.a(a), 1.0) + _ls(d.a(pooled_a), 0.0))
    ctx.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    grad_d = grad_norm(d.parameters()) if log else 0.0
    ctx.opt_d.step()
    return StepOutput(d_loss.detach(), g_loss.detach(), d_real.detach().float(), d_fake.detach().float(), grad_d, grad_g)


def _check(cfg, loss, cond: bool) -> None:
    if cfg.loss != "lsgan":
        raise UserError(f"step 'cycle' trains with the least-squares loss of the paper: set loss = 'lsgan', not {cfg.loss!r}")
    if cfg.n_dis != 1 or cfg.unroll_steps or cfg.pack != 1:
        raise UserError("step 'cycle' takes n_dis = 1, unroll_steps = 0 and pack = 1")
    if cfg.ema:
        raise UserError("step 'cycle' does not average the translators' weights: set ema = 0")


def check_not_cycle(cfg) -> None:
    """The cycle step's fields set for another step: a UserError (they would change the run id and nothing else)."""
    for name, default in CYCLE_FIELDS.items():
        if getattr(cfg, name) != default:
            raise UserError(f"config key {name!r} is read by step 'cycle' only (this run's step: "
                            f"{cfg.step or cfg.update!r}); leave it at {default}")


register(Step(
    name="cycle", run=cycle_step, check=_check, options=tuple(CYCLE_FIELDS),
    description="CycleGAN: both translators on least-squares, cycle and identity losses, then both "
                "discriminators on real images and their history pools",
))
