"""Where the time of one 2-D GAN step goes, on the GDPP protocol's networks (paper-gdpp-2d, setting
gan: MLP 2 x 128 tanh, orthogonal init, z 256, batch 512, non-saturating loss, Adam, simultaneous
updates). Four loops, paired in one run, each 100 steps on one thread (as every run of the suite
under ``--jobs 2`` on 2 cores):

- ``ganbench``: ganbench's own training loop (``train``), logging at the rate of the protocol's
  25,000-step run (a history row every 250 steps, so none in these 100; left alone, a 100-step
  run would log every step);
- ``plain``: the same networks from the same weights, batches and latents, in a plain loop written
  the way the reference code's session call runs it: one generator forward, D on the real and the
  generated batch, D's loss backward, G's loss backward through D's frozen weights, both Adam steps;
- ``plain-linear``: the plain loop with every tanh taken out (``nn.Identity``): the difference from
  ``plain`` is what the activations and their gradients cost;
- ``gemm``: only the step's matrix products, replayed with the shapes, layouts and order recorded
  from one ganbench step, on fixed tensors, without autograd: the arithmetic floor of the step.

    pytest tests/benchmarks/test_bench_mlp_step.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean --benchmark-group-by=func

``scripts/step_cost.py`` gives the same floor for every setting of a suite (the Unrolled GAN and
WGAN-GP included) from the counted FLOPs. With benchmarks disabled (the default run) each loop runs
once for a few steps.
"""

import math

import pytest
import torch
from torch import nn

from ganbench.config import load_suite
from ganbench.data import DATASETS
from ganbench.flops import step_products
from ganbench.losses import LOSSES
from ganbench.seeding import make_generator
from ganbench.train import build_models, log_interval, train

CPU = torch.device("cpu")
PROTOCOL = dict(load_suite("paper-gdpp-2d").settings)["gan"]
CFG = PROTOCOL.replace(steps=100, eval_every=0)

# multiply-adds per sample of one step (the docstring's loops): G forward; D forward on the real, the
# generated and (for G's loss) the generated batch again; D's weight and hidden-input gradients on
# both batches; the input gradients through D for G's loss; G's weight and hidden-input gradients
G_FWD = 256 * 128 + 128 * 128 + 128 * 2
D_FWD = 2 * 128 + 128 * 128 + 128 * 1
MACS = G_FWD + 3 * D_FWD + 2 * (D_FWD + 128 * 128 + 128) + D_FWD + G_FWD + 128 * 128 + 128 * 2


def plain_loop(cfg, dataset, linear: bool = False) -> list[float]:
    """The step as the reference's session call runs it; returns D's losses."""
    g, d = build_models(cfg, dataset, CPU)
    if linear:
        for net in (g, d):
            net.net = nn.Sequential(*(nn.Identity() if isinstance(m, nn.Tanh) else m for m in net.net))
    loss = LOSSES[cfg.loss]
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    data = dataset.batches(cfg.batch_size, make_generator(cfg.seed, "data", CPU), CPU)
    noise = make_generator(cfg.seed, "noise", CPU)
    d_losses = []
    for _ in range(cfg.steps):
        real, _ = next(data)
        fake = g(torch.randn(cfg.batch_size, cfg.z_dim, generator=noise))
        d_loss = loss.d(d(real), d(fake.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        d.requires_grad_(False)
        g_loss = loss.g(d(fake))
        opt_g.zero_grad()
        g_loss.backward()
        d.requires_grad_(True)
        opt_g.step()
        opt_d.step()
        d_losses.append(d_loss.item())
    return d_losses


def recorded_products(cfg, dataset):
    """The matrix products of one ganbench step (the second step of a run: the first has no Adam
    state yet) as (operator, argument tensors of the recorded shapes and strides)."""
    step = step_products(cfg, dataset, CPU)
    gen = torch.Generator().manual_seed(0)
    ops = {"aten.mm": torch.mm, "aten.addmm": torch.addmm}
    replay = []
    for name, shapes in step.calls:
        if name == "aten.addmm":  # bias, input, transposed weight: the layout of nn.Linear
            bias, x, w = shapes
            args = (torch.randn(bias, generator=gen), torch.randn(x, generator=gen), torch.randn(w[::-1], generator=gen).t())
        else:
            args = tuple(torch.randn(s, generator=gen) for s in shapes)
        replay.append((ops[name], args))
    return replay, step.total


def gemm_loop(replay, steps: int) -> None:
    for _ in range(steps):
        for op, args in replay:
            op(*args)


def test_the_step_does_the_closed_form_arithmetic_and_nothing_more():
    """ganbench's step runs exactly the products the step needs: 2 x 512 x MACS FLOPs."""
    cfg = CFG.replace(steps=1)
    replay, flops = recorded_products(cfg, DATASETS[cfg.dataset](cfg))
    assert flops == 2 * cfg.batch_size * MACS == 255_066_112
    assert len(replay) == 3 + 9 + 2 * 5 + 3 + 5  # G fwd, 3 D fwd, D bwd x 2 batches, G's pass through D, G bwd


def test_plain_loop_starts_from_ganbench_objective():
    cfg = CFG.replace(steps=1)
    dataset = DATASETS[cfg.dataset](cfg)
    ours = train(cfg, dataset, CPU).history[0]["d_loss"]
    assert plain_loop(cfg, dataset)[0] == pytest.approx(ours, rel=1e-6) and 1.0 < ours < 2.0


@pytest.mark.parametrize("loop", ["ganbench", "plain", "plain-linear", "gemm"])
def test_gdpp_gan_step(benchmark, one_thread, loop):
    cfg = CFG if not benchmark.disabled else CFG.replace(steps=3)
    dataset = DATASETS[cfg.dataset](cfg)
    benchmark.extra_info["steps"] = cfg.steps
    if loop == "ganbench":
        result = benchmark.pedantic(train, args=(cfg, dataset, CPU), kwargs={"log_every": log_interval(PROTOCOL.steps)},
                                    rounds=7, iterations=1, warmup_rounds=1)
        assert result.steps_done == cfg.steps and all(math.isfinite(r["d_loss"]) for r in result.history)
    elif loop.startswith("plain"):
        losses = benchmark.pedantic(plain_loop, args=(cfg, dataset, loop == "plain-linear"), rounds=7,
                                    iterations=1, warmup_rounds=1)
        assert len(losses) == cfg.steps and all(math.isfinite(v) for v in losses)
    else:
        replay, flops = recorded_products(cfg, dataset)
        benchmark.extra_info["gflop_per_step"] = flops / 1e9
        benchmark.pedantic(gemm_loop, args=(replay, cfg.steps), rounds=7, iterations=1, warmup_rounds=1)
