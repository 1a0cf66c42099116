"""PacGAN's generator batch norm: ganbench's ``StdevBatchNorm1d`` (Blocks' batch norm: one fused
``native_batch_norm`` call, whose batch mean and 1 / sqrt(var + eps) feed the population mean and
standard deviation) paired in one run with PyTorch's ``BatchNorm1d`` (same eps and momentum,
population variance), in 40 training steps of PacGAN's 2-D GAN (paper-pacgan-2d, setting gan: G
4 x 400 with batch norm, D 3 x 200 maxout units of 5 pieces, batch 100) on one thread, logging at the
full run's rate.

    pytest tests/benchmarks/test_bench_batch_norm.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean --benchmark-group-by=func

With benchmarks disabled (the default run) each runs once, for 2 steps.
"""

import pytest
import torch
from torch import nn

from ganbench.config import load_suite
from ganbench.data import DATASETS
from ganbench.models import mlp
from ganbench.train import log_interval, train

CPU = torch.device("cpu")
PACGAN = dict(load_suite("paper-pacgan-2d").settings)["gan"]


@pytest.mark.parametrize("norm", ["ganbench-stdev", "torch-batchnorm1d"])
def test_pacgan_step(benchmark, monkeypatch, one_thread, norm):
    cfg = PACGAN.replace(steps=40 if not benchmark.disabled else 2, eval_every=0, bn_refresh=0)
    if norm == "torch-batchnorm1d":
        monkeypatch.setattr(mlp, "StdevBatchNorm1d", lambda width: nn.BatchNorm1d(width, eps=1e-4, momentum=0.05))
    benchmark.extra_info["steps"] = cfg.steps
    result = benchmark.pedantic(train, args=(cfg, DATASETS[cfg.dataset](cfg), CPU),
                                kwargs={"log_every": log_interval(PACGAN.steps)}, rounds=7, iterations=1, warmup_rounds=1)
    assert result.steps_done == cfg.steps and result.diverged is None
    kinds = {type(m).__name__ for m in result.generator.modules() if "BatchNorm" in type(m).__name__}
    assert kinds == ({"StdevBatchNorm1d"} if norm == "ganbench-stdev" else {"BatchNorm1d"})
