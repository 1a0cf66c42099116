"""PacGAN's maxout discriminator: ganbench's ``Maxout`` (``max`` over the pieces, whose backward pass
sends each unit's gradient to the index it returns) paired in one run with ``amax`` (whose backward
pass builds a mask of the maximal pieces, counts them and divides), in 40 training steps of
PacGAN's 2-D GAN (paper-pacgan-2d, setting gan: G 4 x 400 with batch norm, D 3 x 200 maxout units
of 5 pieces, batch 100) on one thread, logging at the full run's rate.

    pytest tests/benchmarks/test_bench_maxout.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean --benchmark-group-by=func

With benchmarks disabled (the default run) each runs once, for 2 steps.
"""

import pytest
import torch

from ganbench.config import load_suite
from ganbench.data import DATASETS
from ganbench.models.mlp import Maxout
from ganbench.train import log_interval, train

CPU = torch.device("cpu")
PACGAN = dict(load_suite("paper-pacgan-2d").settings)["gan"]


def amax(self, x: torch.Tensor) -> torch.Tensor:
    return x.view(len(x), -1, self.pieces).amax(dim=2)


@pytest.mark.parametrize("reduce", ["ganbench-max", "amax"])
def test_pacgan_step(benchmark, monkeypatch, one_thread, reduce):
    cfg = PACGAN.replace(steps=40 if not benchmark.disabled else 2, eval_every=0)
    if reduce == "amax":
        monkeypatch.setattr(Maxout, "forward", amax)
    benchmark.extra_info["steps"] = cfg.steps
    result = benchmark.pedantic(train, args=(cfg, DATASETS[cfg.dataset](cfg), CPU),
                                kwargs={"log_every": log_interval(PACGAN.steps)}, rounds=7, iterations=1, warmup_rounds=1)
    assert result.steps_done == cfg.steps and result.diverged is None

