"""Training throughput: ganbench's training loop against the same networks trained by a plain loop
written the way pytorch/examples' dcgan/main.py writes it, paired in one run.

- dcgan: width 64, 32x32 (digits resized; 1 channel), batch 64, z 100, non-saturating loss,
  Adam 2e-4 (0.5, 0.999): the DCGAN reference settings.
- mlp: ring8, width 128, depth 3, batch 256, z 2, non-saturating loss, Adam 1e-3 (0.5, 0.999).

    pytest tests/benchmarks/test_bench_training.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean,ops --benchmark-group-by=param:model

Both loops start from the same weights (``build_models`` under the run's seed), read the same
batches (the dataset's iterator with the run's data-order generator) and draw latents from the
same noise generator, so their first discriminator loss is the same number (asserted). The plain
loop keeps the reference's idioms: sigmoid + BCELoss with label tensors filled per step, two
discriminator backward passes, one generator forward whose output serves both updates, and
``.item()`` of the losses and mean outputs each step. ganbench's loop draws fresh latents for the
generator update, skips the discriminator's weight gradients during it, and logs about 100 rows per
run. ``ganbench-bf16`` is the same loop with ``precision = "bf16"``: the forward passes under bfloat16
autocast, weights and optimiser state in float32. Seven rounds of one call of each loop, model
construction included. With benchmarks disabled (the default run) each loop runs once for a few steps.
"""

import math

import pytest
import torch
from torch import nn

from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.seeding import make_generator
from ganbench.train import build_models, train

CPU = torch.device("cpu")
CONFIGS = {
    "dcgan": RunConfig(model="dcgan", dataset="digits", resolution=32, width=64, z_dim=100, batch_size=64,
                       lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), steps=10),
    "mlp": RunConfig(model="mlp", dataset="ring8", width=128, depth=3, z_dim=2, batch_size=256,
                     lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.999), steps=200),
}


def plain_loop(cfg: RunConfig, dataset) -> tuple[nn.Module, list[float]]:
    """pytorch/examples dcgan/main.py's loop on ganbench's networks; returns G and the D losses."""
    netG, d = build_models(cfg, dataset, CPU)
    netD = nn.Sequential(d, nn.Sigmoid())  # the reference's D ends in a sigmoid, scored by BCELoss
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    optimizerG = torch.optim.Adam(netG.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    data = dataset.batches(cfg.batch_size, make_generator(cfg.seed, "data", CPU), CPU)
    noise_gen = make_generator(cfg.seed, "noise", CPU)
    real_label, fake_label = 1.0, 0.0
    d_losses = []
    for _ in range(cfg.steps):
        ############################
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        ###########################
        # train with real
        netD.zero_grad()
        real_cpu, _ = next(data)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=CPU)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        # train with fake
        noise = torch.randn(batch_size, cfg.z_dim, generator=noise_gen, device=CPU)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()
        ############################
        # (2) Update G network: maximize log(D(G(z)))
        ###########################
        netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        d_losses.append(errD.item())
        del D_x, D_G_z1, D_G_z2, errG  # printed by the reference; computed here for the same syncs
    return netG, d_losses


@pytest.mark.parametrize("loop", ["ganbench", "ganbench-bf16", "plain"])
@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_training_steps_per_second(benchmark, model, loop):
    cfg = CONFIGS[model]
    if benchmark.disabled:
        cfg = cfg.replace(steps=3)
    dataset = DATASETS[cfg.dataset](cfg)
    benchmark.extra_info["steps"] = cfg.steps
    if loop.startswith("ganbench"):
        cfg = cfg.replace(precision="bf16") if loop == "ganbench-bf16" else cfg
        result = benchmark.pedantic(train, args=(cfg, dataset, CPU), rounds=7, iterations=1, warmup_rounds=1)
        assert result.steps_done == cfg.steps and result.diverged is None
        assert all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in result.history)
    else:
        _, d_losses = benchmark.pedantic(plain_loop, args=(cfg, dataset), rounds=7, iterations=1, warmup_rounds=1)
        assert len(d_losses) == cfg.steps and all(math.isfinite(v) for v in d_losses)


@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_both_loops_start_from_the_same_objective(model):
    """Same initial weights, batch and latents, same loss: the first D loss agrees across the loops
    (sigmoid + BCELoss against ganbench's softplus of logits: equal up to float rounding)."""
    cfg = CONFIGS[model].replace(steps=1)
    dataset = DATASETS[cfg.dataset](cfg)
    ours = train(cfg, dataset, CPU).history[0]["d_loss"]
    theirs = plain_loop(cfg, dataset)[1][0]
    assert ours == pytest.approx(theirs, rel=1e-5) and 0.1 < ours < 10
