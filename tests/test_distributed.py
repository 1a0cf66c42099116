"""Data parallelism under torch.distributed: 2 gloo processes on the CPU against 1 process."""

import json
import os
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
from ganbench.features import stats as fstats
from ganbench.features.stats import StreamingStats
from ganbench.losses import LOSSES
from ganbench.models import batch_statistics
from ganbench.models.mlp import StdevBatchNorm1d
from ganbench.runs import torchrun
from ganbench.train import build_models, train

CFG = dict(model="mlp", loss="ns", dataset="ring8", steps=20, batch_size=32, width=16, depth=2)
GP = dict(loss="wgan-gp", n_dis=2, steps=10)


def _join(rank: int, out: str) -> None:
    """Two gloo processes meeting through a file in the test's folder (no port to collide on)."""
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(out, 'rendezvous')}", rank=rank, world_size=2)


def _leave() -> None:
    """End a worker whose results are on disk without the interpreter's teardown: in a spawned gloo
    worker that has trained, a C++ destructor at exit sometimes calls std::terminate (SIGABRT),
    which would fail the test after everything it checks has been computed and saved."""
    os._exit(0)


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


def _worker(rank: int, out: str) -> None:
    torch.set_num_threads(1)
    _join(rank, out)
    try:
        x = _features()
        # strided extraction through an (identity) feature extractor, then reduced statistics
        s = fstats.feature_statistics(lambda b: b * 1.0, x, batch=100)
        # unequal contiguous shards (rank 0: 700 rows, rank 1: 301) reduced directly
        part = x[:700] if rank == 0 else x[700:]
        u = fstats.reduce_stats(StreamingStats.from_features(part))
        cfg = RunConfig(**CFG)
        grads = _full_batch_d_gradient(cfg)
        dataset = DATASETS[cfg.dataset](cfg)
        result = train(cfg, dataset, torch.device("cpu"))
        gp = train(cfg.replace(**GP), dataset, torch.device("cpu"))
        torch.save({"n": s.n, "mean": torch.from_numpy(s.mean), "cov": torch.from_numpy(s.cov),
                    "n2": u.n, "mean2": torch.from_numpy(u.mean), "cov2": torch.from_numpy(u.cov),
                    "grads": grads, "g": [p.detach().clone() for p in result.generator.parameters()],
                    "history": result.history, "steps": result.steps_done,
                    "gp_d": [p.detach().clone() for p in gp.discriminator.parameters()], "gp_history": gp.history},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()
    _leave()


def test_two_gloo_processes_equal_one(tmp_path):
    torch.set_num_threads(1)
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
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

    # the gradient penalty: each rank takes its slice of the full batch's interpolation weights
    gp = train(cfg.replace(**GP), DATASETS[cfg.dataset](cfg), torch.device("cpu"))
    for a, b, c in zip(ranks[0]["gp_d"], ranks[1]["gp_d"], gp.discriminator.parameters()):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c.detach(), rtol=1e-4, atol=1e-5)
    assert len(ranks[0]["gp_history"]) == len(gp.history) == GP["steps"]
    for mine, one in zip(ranks[0]["gp_history"], gp.history):
        assert mine["d_loss"] == pytest.approx(one["d_loss"], rel=1e-4, abs=1e-5)


def test_outside_a_group_everything_is_a_no_op():
    x = torch.arange(6.0)
    assert not distributed.active() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.shard(x) is x and distributed.broadcast_object({"a": 1}) == {"a": 1}
    s = StreamingStats.from_features(_features())
    assert fstats.reduce_stats(s) is s
    assert distributed.mean_over_ranks({"d_loss": 1.5}, ("d_loss",)) == {"d_loss": 1.5}


def test_torchrun_cli_writes_rows_once_from_rank_0(tmp_path):
    out = tmp_path / "res"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: the rendezvous binds a free port itself, so no port is picked (and raced for) beforehand
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ganbench", "run", "--model", "mlp", "--dataset", "ring8",
           "--seeds", "0", "--set", "steps=20", "--set", "width=16", "--set", "depth=1", "--set", "batch_size=32",
           "--out", str(out), "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("suite adhoc") == 1  # only rank 0 prints
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["metric"] for r in rows] == ["modes", "hq", "kl"]  # one run, written once
    assert all(r["status"] == "ok" and r["final"] and r["config"]["steps"] == 20 for r in rows)
    assert np.isfinite([r["value"] for r in rows]).all()


# ----------------------------------------------------------------------------------------------
# batch norm over the whole batch: SyncBatchNorm


DCGAN = dict(model="dcgan", loss="ns", dataset="digits", steps=3, batch_size=16, width=8, z_dim=8)
# trained on two processes and on one: DCGAN (SyncBatchNorm), and PacGAN's 2-D networks with packs of 2
# (G once per pack slot, its StdevBatchNorm1d over every rank's share of the slot), renewed before evaluation
TRAINED = (("ns", DCGAN), ("wgan-gp", {**DCGAN, "loss": "wgan-gp", "n_dis": 2}),
           ("pacgan", dict(model="mlp", loss="ns", dataset="ring8", steps=3, batch_size=16, width=16, depth=2, z_dim=2,
                           g_batch_norm=True, maxout=3, d_width=8, d_depth=2, pack=2, update="simultaneous",
                           bn_refresh=2)))


def _bn_batch():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, 4, 4, generator=g) * 2 + 1
    w = torch.randn(8, 3, 4, 4, generator=g)  # a loss that weighs every output differently
    return x, w


def _bn_step(bn, x, w):
    """Forward in training mode, a weighted-sum loss, backward; (output, input grad, weight grad)."""
    x = x.clone().requires_grad_(True)
    y = bn(x)
    (y * w).sum().backward()
    return y.detach(), x.grad, bn.weight.grad.clone()


def _stdev_bn() -> StdevBatchNorm1d:
    bn = StdevBatchNorm1d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
    return bn


def _bn_worker(rank: int, out: str) -> None:
    torch.set_num_threads(1)
    _join(rank, out)
    try:
        x, w = _bn_batch()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            bn = distributed.sync_batch_norm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)))[0]
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
        y, gx, gw = _bn_step(bn, distributed.shard(x), distributed.shard(w))
        stdev_bn = _stdev_bn()
        stdev = _bn_step(stdev_bn, distributed.shard(x[:, :, 0, 0]), distributed.shard(w[:, :, 0, 0]))
        stdev += (stdev_bn.running_mean.clone(), stdev_bn.running_std.clone())
        with torch.no_grad():  # sampling with batch statistics: every rank the whole batch, by itself
            with batch_statistics(bn):
                local = bn(x)
            with batch_statistics(stdev_bn):
                local_stdev = stdev_bn(x[:, :, 0, 0])
        results = {}
        for name, values in TRAINED:
            cfg = RunConfig(**values)
            r = train(cfg, DATASETS[cfg.dataset](cfg), torch.device("cpu"))
            results[name] = ({k: v.clone() for k, v in r.generator.state_dict().items()},
                             {k: v.clone() for k, v in r.discriminator.state_dict().items()},
                             [h["d_loss"] for h in r.history])
        torch.save({"y": y, "gx": gx, "gw": gw, "mean": bn.running_mean.clone(), "var": bn.running_var.clone(),
                    "stdev": stdev, "local": local, "local_stdev": local_stdev, "train": results},
                   os.path.join(out, f"bn{rank}.pt"))
    finally:
        dist.destroy_process_group()
    _leave()


def test_batch_norm_over_two_processes_is_batch_norm_over_the_full_batch(tmp_path):
    """Each process normalises its half of the batch with the statistics of the whole batch, and
    the gradients flow through them: outputs, input gradients, the summed weight gradient and the
    running statistics equal one process's batch norm on the full batch; DCGAN and PacGAN's packed 2-D
    networks train as on one."""
    torch.set_num_threads(1)
    mp.spawn(_bn_worker, args=(str(tmp_path),), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"bn{r}.pt", weights_only=True) for r in (0, 1)]

    x, w = _bn_batch()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
    y, gx, gw = _bn_step(bn, x, w)
    close = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y, **close)
    torch.testing.assert_close(torch.cat([r["gx"] for r in ranks]), gx, **close)
    torch.testing.assert_close(ranks[0]["gw"] + ranks[1]["gw"], gw, **close)  # summed, then averaged in training
    for r in ranks:
        torch.testing.assert_close(r["mean"], bn.running_mean, **close)
        torch.testing.assert_close(r["var"], bn.running_var, **close)
    # PacGAN's batch norm (the MLP generator's) likewise
    stdev_bn = _stdev_bn()
    single = _bn_step(stdev_bn, x[:, :, 0, 0], w[:, :, 0, 0]) + (stdev_bn.running_mean, stdev_bn.running_std)
    torch.testing.assert_close(torch.cat([r["stdev"][0] for r in ranks]), single[0], **close)
    torch.testing.assert_close(torch.cat([r["stdev"][1] for r in ranks]), single[1], **close)
    torch.testing.assert_close(ranks[0]["stdev"][2] + ranks[1]["stdev"][2], single[2], **close)
    for r in ranks:
        torch.testing.assert_close(r["stdev"][3], single[3], **close)
        torch.testing.assert_close(r["stdev"][4], single[4], **close)
    # sampling with batch statistics (eval_bn_batch) is one process's, bit for bit, on every rank
    with torch.no_grad():
        for r in ranks:
            assert torch.equal(r["local"], bn(x)) and torch.equal(r["local_stdev"], stdev_bn(x[:, :, 0, 0]))

    for name, values in TRAINED:
        cfg = RunConfig(**values)
        one = train(cfg, DATASETS[cfg.dataset](cfg), torch.device("cpu"))
        (g0, d0, losses0), (g1, d1, losses1) = ranks[0]["train"][name], ranks[1]["train"][name]
        assert all(torch.equal(g0[k], g1[k]) for k in g0) and all(torch.equal(d0[k], d1[k]) for k in d0)
        for mine, single in ((g0, one.generator.state_dict()), (d0, one.discriminator.state_dict())):
            assert mine.keys() == single.keys()  # batch norm's parameters and buffers, by the same names
            for k in mine:  # weights and running statistics, up to the order of float sums
                torch.testing.assert_close(mine[k], single[k], rtol=1e-3, atol=1e-4, msg=f"{name} {k}")
        assert losses0 == pytest.approx([h["d_loss"] for h in one.history], rel=1e-4, abs=1e-5)


def test_sync_batch_norm_outside_a_group_is_batch_norm():
    x, w = _bn_batch()
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3), torch.nn.BatchNorm1d(3))
    plain[1].weight.data.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    synced = distributed.sync_batch_norm(torch.nn.Sequential(*plain))
    assert isinstance(synced[1], distributed.SyncBatchNorm) and isinstance(synced[2], distributed.SyncBatchNorm)
    assert synced[1].weight is plain[1].weight and synced[1].running_var is plain[1].running_var  # shared
    assert all(torch.equal(before[k], v) for k, v in synced.state_dict().items())  # same names, same values
    reference = torch.nn.BatchNorm2d(3)
    reference.load_state_dict({k[2:]: v for k, v in before.items() if k.startswith("1.")})
    for bn in (synced[1], reference):
        bn.train()
    torch.testing.assert_close(_bn_step(synced[1], x, w)[:2], _bn_step(reference, x, w)[:2], rtol=0, atol=0)
    assert torch.equal(synced[1].running_mean, reference.running_mean)
    top = distributed.sync_batch_norm(torch.nn.BatchNorm1d(3))  # a batch norm by itself is converted too
    assert isinstance(top, distributed.SyncBatchNorm)
    with pytest.raises(ValueError, match="expected 2D or 3D input"):  # and keeps its own input checks
        top(torch.zeros(2, 3, 4, 4))


class ConditionalBatchNorm(torch.nn.BatchNorm2d):
    def forward(self, x, y):
        return super().forward(x) * (1 + y.view(-1, 1, 1, 1))


def test_a_batch_norm_of_its_own_is_refused_before_torchrun_starts():
    from ganbench.config import suite_from_dict
    from ganbench.errors import UserError
    from ganbench.models import MODELS
    from ganbench.models.dcgan import dcgan

    with pytest.raises(UserError, match="ConditionalBatchNorm is a batch norm of its own"):
        distributed.sync_batch_norm(torch.nn.Sequential(torch.nn.Conv2d(1, 3, 1), ConditionalBatchNorm(3)))

    def suite(model):
        return suite_from_dict({"name": "t", "settings": [{"label": "x", "model": model, "dataset": "digits",
                                                           "width": 8}]}, "t.toml", {}, [0])

    torchrun.check_suite(suite("dcgan"))  # plain batch norm: converted

    def conditional(cfg, dataset):
        g, d = dcgan(cfg, dataset)
        return g, torch.nn.Sequential(d, ConditionalBatchNorm(1))

    MODELS.register("cbn-test", conditional)
    try:
        with pytest.raises(UserError, match="x: model 'cbn-test': ConditionalBatchNorm is a batch norm of its own"):
            torchrun.check_suite(suite("cbn-test"))
    finally:
        MODELS.pop("cbn-test", None)


# ----------------------------------------------------------------------------------------------
# evaluation: feature extraction split over the processes


N_DIGITS, N_INCEPTION = 1297, 70  # batches of 500 (500, 500, 297) and of 64 (64, 6): uneven shares


def _eval_worker(rank: int, out: str) -> None:
    from ganbench.features import domain, inception
    from ganbench.metrics import METRICS
    from ganbench import io
    from ganbench.features import cache, classifier

    torch.set_num_threads(1)
    _join(rank, out)
    calls = {"get_classifier": 0, "write": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    domain.get_classifier = counted("get_classifier", domain.get_classifier)
    write = counted("write", io.atomic_write_bytes)  # every file write goes through it, whoever imported it
    io.atomic_write_bytes = cache.atomic_write_bytes = classifier.atomic_write_bytes = write
    try:
        digits = DATASETS["digits"](RunConfig(dataset="digits"))
        samples, _ = digits.real_images("train", n=N_DIGITS)
        # classifier read by process 0 and shared; reference features computed by both, written by 0
        f = domain.domain_features(samples, digits)
        values = {m: METRICS[m].fn(f) for m in ("fid_domain", "cs", "precision", "recall", "density", "coverage")}
        net = inception.extractor()
        pool = net(samples[:N_INCEPTION])
        shared = distributed.main_then_share(lambda: {"rank": distributed.rank()})  # computed by process 0 only
        try:
            distributed.main_then_share(lambda: 1 / 0)
            failure = ""
        except Exception as e:  # process 0 raises its own error; the others learn of it, none hangs
            failure = f"{type(e).__name__}: {e}"
        # statistics over each process's own rows, through an extractor that would split by itself
        clf = domain.classifier_for(digits)
        stats = fstats.feature_statistics(lambda b: domain.features_and_probs(clf, b)[0], samples, batch=216)
        sizes = []  # the batches this process extracted itself
        doubled = distributed.map_batches(lambda c: sizes.append(len(c)) or (c * 2, c + 1), torch.arange(10.0), 3)
        torch.save({"fake": torch.from_numpy(f.fake), "probs": torch.from_numpy(f.fake_probs),
                    "real": torch.from_numpy(f.real), "values": values, "pool": pool,
                    "sizes": sizes, "doubled": doubled, "shared": shared, "failure": failure, "calls": dict(calls),
                    "stats": (stats.n, torch.from_numpy(stats.mean), torch.from_numpy(stats.cov))},
                   os.path.join(out, f"eval{rank}.pt"))
    finally:
        dist.destroy_process_group()
    _leave()


def test_evaluation_split_over_two_processes_equals_one_bit_for_bit(tmp_path, monkeypatch, inception_weights):
    """Every process gets all the features of every sample, computed in the batches one process
    uses, so features and metric values equal the single-process ones exactly."""
    from ganbench.features import domain, inception
    from ganbench.metrics import METRICS

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(inception_weights))
    monkeypatch.setenv(inception.ENV_ALLOW_OTHER, "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        digits = DATASETS["digits"](RunConfig(dataset="digits"))
        clf = domain.classifier_for(digits)  # trained here once; the processes read it from the cache
        reference = tmp_path / "cache" / "reference"
        assert not reference.exists()  # ... and compute the reference features themselves
        mp.spawn(_eval_worker, args=(str(tmp_path),), nprocs=2, join=True)
        ranks = [torch.load(tmp_path / f"eval{r}.pt", weights_only=True) for r in (0, 1)]
        assert len(list(reference.glob("*.npz"))) == 1  # written once, by process 0

        samples, _ = digits.real_images("train", n=N_DIGITS)
        feats, probs = clf(samples)
        test_images, _ = digits.real_images()
        real, _ = clf(test_images)
        one = domain.domain_features(samples, digits)
        values = {m: METRICS[m].fn(one) for m in ranks[0]["values"]}
        pool = inception.extractor()(samples[:N_INCEPTION])
    finally:
        torch.set_num_threads(threads)
    assert ranks[0]["shared"] == ranks[1]["shared"] == {"rank": 0}
    assert ranks[0]["failure"] == "ZeroDivisionError: division by zero"
    assert ranks[1]["failure"] == "RuntimeError: on process 0: division by zero"
    # process 0 alone reads the classifier and writes the reference entry (its .npz and .json)
    assert ranks[0]["calls"] == {"get_classifier": 1, "write": 2} and ranks[1]["calls"] == {"get_classifier": 0, "write": 0}
    assert ranks[0]["sizes"] == [3, 3] and ranks[1]["sizes"] == [3, 1]  # batches 0, 2 and 1, 3 of 10 rows
    for r in ranks:
        assert torch.equal(r["doubled"][0], torch.arange(10.0) * 2) and torch.equal(r["doubled"][1], torch.arange(1.0, 11))
        assert r["fake"].shape == (N_DIGITS, 128) and r["pool"]["2048"].shape == (N_INCEPTION, 2048)
        assert torch.equal(r["fake"], feats) and torch.equal(r["probs"], probs) and torch.equal(r["real"], real)
        assert r["values"] == values and all(np.isfinite(list(values.values())))
        assert all(torch.equal(r["pool"][k], pool[k]) for k in pool)
        n, mean, cov = r["stats"]  # ranks' shares of 649 and 648 rows: 4 and 3 batches of up to 216
        whole = StreamingStats.from_features(feats.numpy())
        assert n == N_DIGITS
        # other batches than one process's (strided rows): float32 features differ in their last bits
        np.testing.assert_allclose(mean.numpy(), whole.mean, rtol=1e-6)
        np.testing.assert_allclose(cov.numpy(), whole.cov, rtol=1e-5, atol=1e-6 * np.abs(whole.cov).max())


@pytest.mark.slow  # 20 s; test_torchrun_cli_writes_rows_once_from_rank_0 runs torchrun by default
def test_torchrun_run_on_digits_evaluates_over_both_processes(tmp_path):
    """The whole path under torchrun on images, a batch-norm DCGAN with the gradient penalty:
    process 0 trains the digits classifier for both, both extract features, process 0 writes the
    reference cache entry and the rows, once."""
    out, cache = tmp_path / "res", tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANBENCH_CACHE": str(cache)}
    # --standalone: the rendezvous binds a free port itself, so no port is picked (and raced for) beforehand
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ganbench", "run", "--model", "dcgan", "--loss", "wgan-gp",
           "--dataset", "digits", "--seeds", "0", "--set", "steps=4", "--set", "width=8",
           "--set", "batch_size=32", "--set", "z_dim=8", "--out", str(out), "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["metric"] for r in rows) == sorted(
        ["fid_domain", "cs", "classes", "class_kl", "precision", "recall", "density", "coverage"])
    assert all(r["status"] == "ok" and r["final"] for r in rows) and np.isfinite([r["value"] for r in rows]).all()
    assert len(list((cache / "classifiers").glob("*.pt"))) == 1 and len(list((cache / "reference").glob("*.npz"))) == 1
