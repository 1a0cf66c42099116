"""The one training loop: seeds, the registered training step, history, divergence, evaluation and checkpoints."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ganbench import distributed
from ganbench.checkpoint import Checkpointer, mismatch, set_global_rng_state
from ganbench.config import RunConfig
from ganbench.data.checks import check_output
from ganbench.errors import UserError, one_line
from ganbench.losses import LOSSES
from ganbench.models import MODELS, batch_norms, check_pairing, is_conditional, is_translator
from ganbench.monitor import Monitor
from ganbench.seeding import derive_seed, make_generator, seeded_init, synchronize
from ganbench.steps import StepContext, StepOutput, step_of
from ganbench.steps.unrolled import check_discriminator

# (step, generator in eval mode) -> (first metric value, higher_is_better) or None
EvalHook = Callable[[int, nn.Module], Optional[tuple]]


@dataclass
class TrainResult:
    generator: nn.Module  # the EMA of the generator's weights when cfg.ema > 0
    discriminator: nn.Module
    steps_done: int
    diverged: str | None  # reason the run stopped early (divergence "stop"), or the first warning ("continue"), or None
    train_seconds: float  # wall time of the updates; evaluation and checkpoints excluded
    history: list[dict] = field(default_factory=list)  # one dict per logged step
    checkpoint_seconds: float = 0.0  # wall time spent writing checkpoints (this process)


def build_models(cfg: RunConfig, dataset, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator, initialised as a pure function of ``cfg.seed``."""
    factory = MODELS[cfg.model]
    with seeded_init(cfg.seed, device):
        g, d = factory(cfg, dataset)
    if distributed.active():  # under torchrun: batch norm over the whole batch, not each rank's slice
        g, d = distributed.sync_batch_norm(g), distributed.sync_batch_norm(d)
    return g.to(device), d.to(device)


def make_optimizer(cfg: RunConfig, params, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=cfg.betas)


def make_ema(cfg: RunConfig, g: nn.Module) -> torch.optim.swa_utils.AveragedModel | None:
    if not cfg.ema:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(g, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)


@torch.no_grad()
def check_generator(g: nn.Module, cfg: RunConfig, dataset, device: torch.device, cond: bool) -> None:
    """Fail before training when the generator's output does not fit the dataset."""
    g.eval()  # no batch-norm statistics are updated by this probe
    if is_translator(g):  # translators map images to images, both ways
        x = torch.zeros(2, *dataset.shape, device=device)
        for name, net in (("A -> B", g.ab), ("B -> A", g.ba)):
            check_output(net(x), tuple(dataset.shape), dataset.bounded, where=f"model {cfg.model!r} translator {name}")
        g.train()
        return
    z = torch.zeros(2, cfg.z_dim, device=device)
    out = g(z, torch.zeros(2, dtype=torch.long, device=device)) if cond else g(z)
    g.train()
    check_output(out, tuple(dataset.shape), dataset.bounded, where=f"model {cfg.model!r} generator")


def mixed_precision(cfg: RunConfig, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A context factory for the training forward passes: bf16 autocast, or autocast off for fp32.

    Under bf16 the convolutions and matrix products run in bfloat16 while the weights, gradients,
    optimiser state, losses and everything evaluated stay float32.
    """
    if cfg.precision == "fp32":  # off even inside a caller's autocast
        if device.type in ("cpu", "cuda"):
            return lambda: torch.autocast(device.type, enabled=False)
        return contextlib.nullcontext
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"precision 'bf16' is not supported by {torch.cuda.get_device_name(device)}; use fp32")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"precision 'bf16' runs on cpu and cuda, not {device.type}; use fp32")
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def lr_factor(cfg: RunConfig, step: int) -> float:
    """The learning rates' multiplier at generator step ``step`` (0-based): 1, then over the last
    ``lr_decay`` of the steps a linear fall, (steps - step) / decay_steps, which reaches
    1 / decay_steps at the last step (the CycleGAN code's schedule, counted in steps)."""
    decay_steps = round(cfg.lr_decay * cfg.steps)
    if decay_steps <= 0:
        return 1.0
    return min(1.0, (cfg.steps - step) / decay_steps)


def shard_latents(z: torch.Tensor, y: torch.Tensor | None, pack: int) -> tuple:
    """This rank's part of a batch of latents (and labels). With ``pack`` > 1, every rank holds its
    share of each pack slot, so that ``generate_packed`` on the ranks (batch norm over the ranks)
    makes the slots and packs of one process; outside a group the batch is returned as it is."""
    if pack > 1 and distributed.active():
        w = distributed.world_size()
        if len(z) % (pack * w):
            raise UserError(f"a batch of {len(z)} in packs of {pack} does not split evenly over {w} processes; "
                            f"use a batch_size divisible by {pack * w}")
        # (slot, rank, i) -> (rank, slot, i): rank r's slice is slot 0's r-th share, slot 1's, ...
        z = z.view(pack, w, len(z) // (pack * w), *z.shape[1:]).transpose(0, 1).flatten(0, 2)
    return distributed.shard(z), distributed.shard(y)


def draw_latents(cfg: RunConfig, num_classes: int, noise: torch.Generator, device: torch.device) -> tuple:
    """A batch of ``cfg.batch_size`` latents, and labels when ``num_classes`` (a conditional G), from
    ``noise``; this rank's share of it under torchrun (``shard_latents``)."""
    z = torch.randn(cfg.batch_size, cfg.z_dim, generator=noise, device=device)
    y = torch.randint(num_classes, (cfg.batch_size,), generator=noise, device=device) if num_classes else None
    return shard_latents(z, y, cfg.pack)


def generate(g: nn.Module, z: torch.Tensor, y: torch.Tensor | None, pack: int) -> torch.Tensor:
    """G's batch: with labels a conditional call, with packs one call per slot, else one call."""
    if y is not None:  # (conditional models take no packs)
        return g(z, y)
    return generate_packed(g, z, pack) if pack > 1 else g(z)


def generate_packed(g: nn.Module, z: torch.Tensor, pack: int) -> torch.Tensor:
    """G's batch for a discriminator that judges packs of ``pack``, as PacGAN's code makes it: one
    call of G per pack slot, each on B / pack latents (so batch norm normalises each slot by its own
    statistics), and pack i made of the i-th sample of every slot. (B, z_dim) -> (B, *shape), in the
    order ``Packed`` groups: consecutive samples."""
    slots = [g(chunk) for chunk in z.chunk(pack)]
    return torch.stack(slots, dim=1).flatten(0, 1)


def check_batch_norm_options(cfg: RunConfig, g: nn.Module) -> None:
    """``bn_refresh`` and ``eval_bn_batch`` act on a generator's batch norms: a UserError when it
    translates images or has none."""
    for key, what in (("bn_refresh", "renews batch-norm statistics"),
                      ("eval_bn_batch", "evaluates the generator with batch statistics")):
        value = getattr(cfg, key)
        if value and is_translator(g):
            raise UserError(f"config key {key!r} ({value}) feeds latents to the generator; {cfg.model!r} translates images")
        if value and not batch_norms(g):
            raise UserError(f"config key {key!r} ({value}) {what}, but the {cfg.model!r} generator has no batch norm")


@torch.no_grad()
def refresh_batch_norm(g: nn.Module, cfg: RunConfig, step: int, device: torch.device, num_classes: int) -> None:
    """Renew the population statistics of G's batch norms at its current weights, as PacGAN's code
    does before each evaluation (its training-set monitor, 50 batches, applies the population
    updates): ``cfg.bn_refresh`` batches of ``cfg.batch_size`` fresh latents (split into pack slots
    as in training) through G with only its batch norms in training mode, each moving the statistics
    by the layer's momentum. The latents come from a stream of their own (one per evaluation step),
    so training is unchanged and a resumed run refreshes exactly as an unbroken one."""
    norms = batch_norms(g)
    noise = torch.Generator(device=device)
    noise.manual_seed((derive_seed(cfg.seed, "bn_refresh") + step) % 2**63)
    for m in norms:
        m.train()
    try:
        for _ in range(cfg.bn_refresh):  # in the batches training uses: one per pack slot, this rank's share
            generate(g, *draw_latents(cfg, num_classes, noise, device), cfg.pack)
    finally:
        for m in norms:
            m.eval()


def log_interval(steps: int) -> int:
    """About 100 history points per run."""
    return max(1, steps // 100)


def train(
    cfg: RunConfig,
    dataset,
    device: torch.device,
    on_eval: EvalHook | None = None,
    on_step: Callable[[int], None] | None = None,
    checkpoint: Checkpointer | None = None,
    extra_state: tuple[Callable[[], str], Callable[[str], None]] | None = None,
    on_log: Callable[[dict], None] | None = None,
    log_every: int = 0,
) -> TrainResult:
    """Train ``cfg`` on ``dataset``; ``on_eval(step, g)`` runs every ``cfg.eval_every`` steps and may
    return (first metric value, higher_is_better) so that a run that keeps getting worse is caught.

    With ``checkpoint``, the run saves on its schedule and first continues from the newest
    checkpoint if there is one; ``extra_state`` = (get, set) carries the caller's own state in it.
    ``on_log(row)`` sees each history row as it is recorded (progress bars, TensorBoard).
    ``log_every``: a history row every that many steps (0: ``log_interval(cfg.steps)``); a timed
    part of a longer run passes the full run's rate.
    """
    loss = LOSSES[cfg.loss]
    step_fn = step_of(cfg)
    g, d = build_models(cfg, dataset, device)
    check_pairing(g, cfg, dataset)
    if distributed.active() and is_translator(g):
        raise UserError(f"model {cfg.model!r} trains in one process (its history pools are per process); run "
                        f"seeds in parallel with --jobs or Ray instead of torchrun")
    if not any(p.requires_grad for p in g.parameters()):  # a fixed map (the identity translator): nothing to train
        check_generator(g, cfg, dataset, device, False)
        g.eval()
        return TrainResult(g, d, 0, None, 0.0)
    opt_g = make_optimizer(cfg, g.parameters(), cfg.lr_g)
    opt_d = make_optimizer(cfg, d.parameters(), cfg.lr_d)
    ema = make_ema(cfg, g)
    data = Counted(dataset.batches(cfg.batch_size, make_generator(cfg.seed, "data", device), device))
    noise = make_generator(cfg.seed, "noise", device)
    every = log_every or log_interval(cfg.steps)
    monitor = Monitor(sigmoid_outputs=loss.sigmoid)
    cond = is_conditional(g)
    if cond and not dataset.num_classes:
        raise UserError(f"model {cfg.model!r} is conditional but dataset {cfg.dataset!r} has no labels")
    step_fn.check(cfg, loss, cond)
    check_batch_norm_options(cfg, g)
    check_discriminator(cfg, d)
    check_generator(g, cfg, dataset, device, cond)
    ctx = _context(cfg, dataset, device, loss, g, d, opt_g, opt_d, data, noise, cond)
    nets = {"g": g, "d": d, "opt_g": opt_g, "opt_d": opt_d, **({"ema": ema} if ema is not None else {})}
    saved = checkpoint.load(cfg.to_dict()) if checkpoint is not None else None
    step, done_seconds = (_restore(saved, checkpoint.loaded, nets, noise, data, monitor, extra_state)
                          if saved is not None else (0, 0.0))
    # a warning recorded before the checkpoint (divergence "continue") stays the run's
    diverged = saved.get("diverged") if saved is not None else None

    synchronize(device)
    start = time.perf_counter() - done_seconds
    interval_start, eval_seconds, ckpt_seconds = time.perf_counter(), 0.0, 0.0
    refreshed = -1
    while step < cfg.steps:
        log_now = (step + 1) % every == 0 or step + 1 == cfg.steps
        if cfg.lr_decay:
            for opt, lr in ((opt_g, cfg.lr_g), (opt_d, cfg.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr * lr_factor(cfg, step)
        ctx.step = step
        out = step_fn.run(ctx, log_now)
        if ema is not None:
            ema.update_parameters(g)
        step += 1

        if log_now:
            synchronize(device)
            now = time.perf_counter()
            since = step - (monitor.history[-1]["step"] if monitor.history else 0)
            reason = _log(monitor, out, step, opt_g, opt_d, (now - interval_start) / since, on_log) \
                or _nonfinite_weights(g, d, step)
            interval_start = time.perf_counter()
            if reason and cfg.divergence == "stop":
                diverged = reason
                break
            diverged = diverged or reason
        if on_step is not None:
            on_step(step)
        if on_eval is not None and cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
            t0 = time.perf_counter()
            current = g if ema is None else ema.module
            current.eval()
            if cfg.bn_refresh:
                refresh_batch_norm(current, cfg, step, device, dataset.num_classes if cond else 0)
                refreshed = step
            result = on_eval(step, current)
            current.train()
            reason = monitor.evaluation(step, *result) if result else None
            eval_seconds += time.perf_counter() - t0
            interval_start += time.perf_counter() - t0
            if reason and cfg.divergence == "stop":
                diverged = reason
                break
            diverged = diverged or reason
        # (a run that stops on divergence has left the loop; one that continues keeps checkpointing)
        if checkpoint is not None and checkpoint.due(step, cfg.steps):
            synchronize(device)
            t0 = time.perf_counter()
            checkpoint.save({
                "config": cfg.to_dict(), "step": step, "noise": noise.get_state(), "batches": data.count,
                "monitor": monitor.state_dict(), "train_seconds": t0 - start - eval_seconds - ckpt_seconds,
                "diverged": diverged,
                "extra": extra_state[0]() if extra_state is not None else "",
                **{key: obj.state_dict() for key, obj in nets.items()},
            })  # the global RNG state is added by the Checkpointer
            ckpt_seconds += time.perf_counter() - t0
            interval_start += time.perf_counter() - t0
    synchronize(device)
    seconds = time.perf_counter() - start - eval_seconds - ckpt_seconds
    d.requires_grad_(True)
    final_g = g if ema is None else ema.module
    final_g.eval()
    if cfg.bn_refresh and refreshed != step:  # (an evaluation that stopped the run has refreshed)
        refresh_batch_norm(final_g, cfg, step, device, dataset.num_classes if cond else 0)
    return TrainResult(final_g, d, step, diverged, seconds, monitor.history, ckpt_seconds)


def _restore(saved: dict, path, nets: dict, noise: torch.Generator, data: Counted, monitor: Monitor,
             extra_state) -> tuple[int, float]:
    """Continue exactly where a checkpoint left off: weights, optimisers, noise and data streams,
    monitor, global RNG and the caller's state. Returns (steps done, training seconds so far).

    A checkpoint of this config whose contents do not fit the run (written by a ganbench whose
    networks or state differ, or damaged) is a one-line error that names what differs."""
    for key, obj in nets.items():
        with _fits(path, key, obj, saved.get(key)):
            obj.load_state_dict(saved[key])
    with _fits(path, "state"):
        noise.set_state(saved["noise"].to(noise.get_state().device))
        batches = saved["batches"]
    data.skip(batches)  # (before the global RNG is set: a dataset may draw from it)
    with _fits(path, "state"):
        monitor.load_state_dict(saved["monitor"])
        set_global_rng_state(saved["rng"])
        if extra_state is not None:
            extra_state[1](saved["extra"])
        return saved["step"], saved["train_seconds"]


_PARTS = {"g": "generator", "d": "discriminator", "opt_g": "generator's optimiser",
          "opt_d": "discriminator's optimiser", "ema": "EMA generator"}


@contextlib.contextmanager
def _fits(path, part: str, obj=None, state=None):
    """Turn a failure to load ``part`` of the checkpoint at ``path`` into a one-line UserError."""
    try:
        yield
    except UserError:
        raise
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        why = (mismatch(obj, state) if obj is not None else "") or one_line(e)
        raise UserError(f"{path}: its {_PARTS.get(part, part)} does not fit this run ({why}); written by another "
                        f"ganbench version, or damaged: delete {Path(path).parent / 'checkpoint*.pt'} to train "
                        f"the run from the start") from None


def _context(cfg: RunConfig, dataset, device: torch.device, loss, g, d, opt_g, opt_d, data, noise,
             cond: bool) -> StepContext:
    """What the step reads: networks, optimisers, the data and noise streams, and the forward calls."""

    def latents():  # (z, labels for a conditional generator), this rank's share under torchrun
        return draw_latents(cfg, dataset.num_classes if cond else 0, noise, device)

    def G(z, y):
        return generate(g, z, y, cfg.pack)

    def D(x, y):
        return d(x, y) if cond else d(x)

    return StepContext(cfg=cfg, loss=loss, g=g, d=d, opt_g=opt_g, opt_d=opt_d, data=data, noise=noise,
                       latents=latents, G=G, D=D, amp=mixed_precision(cfg, device))


def _log(monitor: Monitor, out: StepOutput, step: int, opt_g, opt_d, step_time: float, on_log) -> str | None:
    """Record one history row (losses averaged over torchrun processes); the divergence it shows, if any."""
    row = {"step": step, "d_loss": out.d_loss.item(), "g_loss": out.g_loss.item(),
           "d_real": out.d_real.mean().item(), "d_fake": out.d_fake.mean().item(),
           "grad_d": out.grad_d, "grad_g": out.grad_g,
           "lr_d": opt_d.param_groups[0]["lr"], "lr_g": opt_g.param_groups[0]["lr"], "step_time": step_time}
    row = distributed.mean_over_ranks(row, ("d_loss", "g_loss", "d_real", "d_fake"))
    reason = monitor.record(row)
    if on_log is not None:
        on_log(row)
    return reason


class Counted:
    """An iterator that counts what it yields, so a resumed run can skip the batches already drawn."""

    def __init__(self, it):
        self.it, self.count = it, 0

    def __next__(self):
        self.count += 1
        return next(self.it)

    def skip(self, n: int) -> None:
        for _ in range(n):
            next(self)


def _nonfinite_weights(g: nn.Module, d: nn.Module, step: int) -> str | None:
    for name, net in (("generator", g), ("discriminator", d)):
        if not all(torch.isfinite(p).all() for p in net.parameters()):
            return f"non-finite: {name} weights are NaN/Inf at step {step}"
    return None
