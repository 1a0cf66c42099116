"""The CycleGAN step: ganbench's training loop against the CycleGAN code's ``optimize_parameters``
written out as a plain loop, on the same networks, batches and pool draws, paired in one run.

The suite's size (``translate``): digits <-> inverted digits at 28x28, width 8, 2 residual blocks,
a 2-layer PatchGAN, batch 4, pool 50, lambda 10, Adam 2e-4 (0.5, 0.999), 100 steps.

    pytest tests/benchmarks/test_bench_cyclegan.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean,ops

The plain loop follows the authors' ``CycleGANModel``: forward (G(a), F(G(a)), F(b), G(F(b))),
the generators' loss with the discriminators frozen (MSELoss against label tensors, identity terms
when their weight is set), then each discriminator on its real batch and a pooled fake, each loss
halved and backpropagated on its own, one optimiser step for both. Its pool is the code's
``ImagePool.query``, drawing from the same generator as ganbench's. In float64 both end 6 steps
with the same weights to 1e-7 (asserted; they sum the same losses in another order, and Adam turns
rounding in near-zero gradients into steps of the learning rate's size, so float32 runs drift
apart by about 1e-5 within a few steps). With benchmarks disabled (the default run) each loop runs
a few steps.
"""

import dataclasses

import pytest
import torch
from torch import nn

from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.seeding import make_generator
from ganbench.train import build_models, train

CPU = torch.device("cpu")
CFG = RunConfig(model="cyclegan", loss="lsgan", dataset="digits-invert", width=8, depth=2, d_depth=2, batch_size=4,
                lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), identity_weight=0.5, steps=100)


class ImagePool:
    """The CycleGAN code's pool, with its draws taken from ``noise`` (one u and one slot per image)."""

    def __init__(self, size: int, noise: torch.Generator):
        self.size, self.images, self.noise = size, [], noise

    def query(self, images):
        u = torch.rand(len(images), generator=self.noise)
        slot = torch.randint(self.size, (len(images),), generator=self.noise)
        out = []
        for i, image in enumerate(images):
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif u[i] > 0.5:
                k = int(slot[i])
                out.append(self.images[k].clone())
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


def plain_loop(cfg: RunConfig, dataset) -> tuple[nn.Module, nn.Module]:
    g, d = build_models(cfg, dataset, CPU)
    netG_A, netG_B, netD_A, netD_B = g.ab, g.ba, d.b, d.a  # the code's D_A judges G_A's outputs (domain B)
    opt_G = torch.optim.Adam(list(netG_A.parameters()) + list(netG_B.parameters()), lr=cfg.lr_g, betas=cfg.betas)
    opt_D = torch.optim.Adam(list(netD_A.parameters()) + list(netD_B.parameters()), lr=cfg.lr_d, betas=cfg.betas)
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    noise = make_generator(cfg.seed, "noise", CPU)
    fake_B_pool, fake_A_pool = ImagePool(cfg.pool_size, noise), ImagePool(cfg.pool_size, noise)
    data = dataset.batches(cfg.batch_size, make_generator(cfg.seed, "data", CPU), CPU)
    lam, lam_idt = cfg.cycle_weight, cfg.identity_weight
    for _ in range(cfg.steps):
        real_A, real_B = next(data)
        fake_B = netG_A(real_A)
        rec_A = netG_B(fake_B)
        fake_A = netG_B(real_B)
        rec_B = netG_A(fake_A)
        for net in (netD_A, netD_B):
            net.requires_grad_(False)
        opt_G.zero_grad()
        pred_a, pred_b = netD_A(fake_B), netD_B(fake_A)
        loss_G = (mse(pred_a, torch.ones_like(pred_a)) + mse(pred_b, torch.ones_like(pred_b))
                  + l1(rec_A, real_A) * lam + l1(rec_B, real_B) * lam
                  + l1(netG_A(real_B), real_B) * lam * lam_idt + l1(netG_B(real_A), real_A) * lam * lam_idt)
        loss_G.backward()
        opt_G.step()
        for net in (netD_A, netD_B):
            net.requires_grad_(True)
        opt_D.zero_grad()
        for net, real, pool, fake in ((netD_A, real_B, fake_B_pool, fake_B), (netD_B, real_A, fake_A_pool, fake_A)):
            pr, pf = net(real), net(pool.query(fake.detach()))
            ((mse(pr, torch.ones_like(pr)) + mse(pf, torch.zeros_like(pf))) * 0.5).backward()
        opt_D.step()
    return g, d


@pytest.fixture(scope="module")
def dataset():
    return DATASETS[CFG.dataset](CFG)


def _steps(benchmark) -> RunConfig:
    return CFG.replace(steps=6) if benchmark.disabled else CFG


def test_the_cycle_step_is_the_codes_optimize_parameters(dataset):
    cfg = CFG.replace(steps=6)
    double = dataclasses.replace(dataset, a=dataset.a.double(), b=dataset.b.double())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        result = train(cfg, double, CPU)
        g_ref, d_ref = plain_loop(cfg, double)
    finally:
        torch.set_default_dtype(previous)
    for mine, ref in ((result.generator, g_ref), (result.discriminator, d_ref)):
        a, b = mine.state_dict(), ref.state_dict()
        assert [k for k in a if "pool" not in k] == [k for k in b if "pool" not in k]
        for k in a:
            if "pool" not in k:  # the plain loop keeps its pool in lists
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)
    assert result.steps_done == 6 and any((a != b).any() for a, b in zip(result.generator.parameters(),
                                                                         build_models(cfg, double, CPU)[0].parameters()))


def test_cycle_step_ganbench(benchmark, dataset):
    cfg = _steps(benchmark)
    result = benchmark.pedantic(lambda: train(cfg, dataset, CPU), rounds=5, iterations=1)
    benchmark.extra_info["steps_per_s"] = cfg.steps / result.train_seconds
    assert result.steps_done == cfg.steps and all(torch.isfinite(p).all() for p in result.generator.parameters())


def test_cycle_step_plain_loop(benchmark, dataset):
    cfg = _steps(benchmark)
    g, _ = benchmark.pedantic(lambda: plain_loop(cfg, dataset), rounds=5, iterations=1)
    assert all(torch.isfinite(p).all() for p in g.parameters())
