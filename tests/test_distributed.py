"""Data parallelism under torch.distributed: 2 gloo processes on the CPU against 1 process."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ganbench import distributed
from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.losses import LOSSES
from ganbench.metrics.frechet import StreamingStats
from ganbench.train import build_models, train

CFG = dict(model="mlp", loss="ns", dataset="ring8", steps=20, batch_size=32, width=16, depth=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _features() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    # an offset mean makes a naive sum-of-squares covariance lose digits; the reduction must not
    return torch.randn(1001, 12, generator=g, dtype=torch.float64) * 0.5 + 30.0


def _full_batch_d_gradient(cfg: RunConfig):
    """Discriminator loss on one batch (this rank's slice of it under a group) and its averaged gradient."""
    dataset = DATASETS[cfg.dataset](cfg)
    g, d = build_models(cfg, dataset, torch.device("cpu"))
    real = torch.randn(cfg.batch_size, 2, generator=torch.Generator().manual_seed(1))
    z = torch.randn(cfg.batch_size, cfg.z_dim, generator=torch.Generator().manual_seed(2))
    real, z = distributed.shard(real), distributed.shard(z)
    loss = LOSSES[cfg.loss].d(d(real), d(g(z).detach()))
    loss.backward()
    distributed.average_gradients(d)
    return [p.grad.clone() for p in d.parameters()]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        x = _features()
        # strided extraction through an (identity) feature extractor, then reduced statistics
        s = distributed.feature_statistics(lambda b: b * 1.0, x, batch=100)
        # unequal contiguous shards (rank 0: 700 rows, rank 1: 301) reduced directly
        part = x[:700] if rank == 0 else x[700:]
        u = distributed.reduce_stats(StreamingStats.from_features(part))
        cfg = RunConfig(**CFG)
        grads = _full_batch_d_gradient(cfg)
        dataset = DATASETS[cfg.dataset](cfg)
        result = train(cfg, dataset, torch.device("cpu"))
        torch.save({"n": s.n, "mean": torch.from_numpy(s.mean), "cov": torch.from_numpy(s.cov),
                    "n2": u.n, "mean2": torch.from_numpy(u.mean), "cov2": torch.from_numpy(u.cov),
                    "grads": grads, "g": [p.detach().clone() for p in result.generator.parameters()],
                    "history": result.history, "steps": result.steps_done},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path):
    torch.set_num_threads(1)
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    one = StreamingStats.from_features(_features())
    for r in ranks:  # feature statistics: every rank holds those of all 1001 rows
        for n, mean, cov in ((r["n"], r["mean"], r["cov"]), (r["n2"], r["mean2"], r["cov2"])):
            assert n == 1001
            np.testing.assert_allclose(mean.numpy(), one.mean, rtol=1e-12)
            np.testing.assert_allclose(cov.numpy(), one.cov, rtol=1e-10, atol=1e-12 * np.abs(one.cov).max())

    cfg = RunConfig(**CFG)
    full = _full_batch_d_gradient(cfg)  # this process is not in a group: the whole batch
    for r in ranks:  # the mean of the two half-batch gradients is the full-batch gradient
        for a, b in zip(r["grads"], full):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)

    # a short data-parallel training: both ranks hold the same weights, finite, and equal to the
    # single-process run up to the order of floating-point sums
    single = train(cfg, DATASETS[cfg.dataset](cfg), torch.device("cpu"))
    assert ranks[0]["steps"] == ranks[1]["steps"] == cfg.steps
    for a, b, c in zip(ranks[0]["g"], ranks[1]["g"], single.generator.parameters()):
        assert torch.isfinite(a).all()
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c.detach(), rtol=1e-4, atol=1e-5)
    assert ranks[0]["history"][-1]["d_loss"] == ranks[1]["history"][-1]["d_loss"]
    assert abs(ranks[0]["history"][-1]["d_loss"] - single.history[-1]["d_loss"]) < 1e-4


def test_outside_a_group_everything_is_a_no_op():
    x = torch.arange(6.0)
    assert not distributed.active() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.shard(x) is x and distributed.broadcast_object({"a": 1}) == {"a": 1}
    s = StreamingStats.from_features(_features())
    assert distributed.reduce_stats(s) is s
    assert distributed.mean_over_ranks({"d_loss": 1.5}, ("d_loss",)) == {"d_loss": 1.5}


def test_torchrun_cli_writes_rows_once_from_rank_0(tmp_path):
    out = tmp_path / "res"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "ganbench", "run", "--model", "mlp", "--dataset", "ring8",
           "--seeds", "0", "--set", "steps=20", "--set", "width=16", "--set", "depth=1", "--set", "batch_size=32",
           "--out", str(out), "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("suite adhoc") == 1  # only rank 0 prints
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["metric"] for r in rows] == ["modes", "hq", "kl"]  # one run, written once
    assert all(r["status"] == "ok" and r["final"] and r["config"]["steps"] == 20 for r in rows)
    assert np.isfinite([r["value"] for r in rows]).all()


def test_settings_that_would_differ_data_parallel_are_refused():
    """Batch norm (per-rank batch statistics) and the gradient penalty (per-slice interpolation
    weights) would make a torchrun run differ from the single-process run of the same run id."""
    from ganbench.config import suite_from_dict
    from ganbench.distributed import check_suite
    from ganbench.errors import UserError

    def suite(**setting):
        return suite_from_dict({"name": "t", "settings": [{"label": "x", **setting}]}, "t.toml", {}, [0])

    check_suite(suite(model="mlp", loss="ns", dataset="ring8"))  # what data parallelism computes exactly
    check_suite(suite(model="mlp", loss="hinge", dataset="ring8", spectral_norm=True))
    with pytest.raises(UserError, match="x: model .sngan. uses batch norm"):  # in its generator
        check_suite(suite(model="sngan", loss="hinge", dataset="digits", width=8))
    with pytest.raises(UserError, match="x: loss 'wgan-gp' .gradient penalty. cannot run data-parallel"):
        check_suite(suite(model="mlp", loss="wgan-gp", dataset="ring8"))
    with pytest.raises(UserError, match="x: model 'dcgan' uses batch norm"):
        check_suite(suite(model="dcgan", loss="ns", dataset="digits", width=8))
