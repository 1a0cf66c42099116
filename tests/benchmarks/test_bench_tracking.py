"""The cost of tracking: MLP training on ring8 (width 128, batch 256) without history rows, with
them (the default, about 100 a run), and with history plus checkpoints every tenth of the run.

    pytest tests/benchmarks/test_bench_tracking.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean,ops

Each variant trains the same config from the same seed; the tracking changes no weight (asserted).
With benchmarks disabled (the default run) each variant runs once at a few steps.
"""

import pytest
import torch

import ganbench.train as train_module
from ganbench.checkpoint import Checkpointer
from ganbench.config import RunConfig
from ganbench.data import DATASETS


def _cfg(benchmark) -> RunConfig:
    steps = 20 if benchmark.disabled else 1000
    return RunConfig(dataset="ring8", width=128, batch_size=256, steps=steps)


@pytest.mark.parametrize("tracking", ["none", "history", "history+checkpoints"])
def test_training_with_tracking(benchmark, tmp_path, tracking):
    cfg = _cfg(benchmark)
    ds, cpu = DATASETS[cfg.dataset](cfg), torch.device("cpu")
    reference = train_module.train(cfg, ds, cpu)  # default tracking: history rows, no checkpoints
    every = cfg.steps if tracking == "none" else 0  # none: one row, at the end

    def once():
        for f in tmp_path.glob("*.pt"):
            f.unlink()
        ckpt = Checkpointer(tmp_path, cfg.steps // 10) if "checkpoints" in tracking else None
        return train_module.train(cfg, ds, cpu, checkpoint=ckpt, log_every=every)

    result = benchmark.pedantic(once, rounds=3, iterations=1, warmup_rounds=0)
    ref_state, state = reference.generator.state_dict(), result.generator.state_dict()
    assert all(torch.equal(ref_state[k], state[k]) for k in state)
