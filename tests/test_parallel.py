"""One suite through every executor: sequential, a local pool (--jobs 2) and Ray give the same rows;
a run that raises is recorded as failed while the others finish; --resume skips finished runs."""

import json
import os
import shutil
import signal
import sys

import pytest
import torch

from ganbench.cli import main
from ganbench.results.store import load_rows

# A plug-in model whose discriminator raises once training starts (its forward in eval mode, used
# by the checks before training, works).
PLUGIN = '''
from torch import nn
from ganbench.models import MODELS
from ganbench.models.mlp import mlp


class Flaky(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.d = d

    def forward(self, x):
        if self.training:
            raise RuntimeError("boom in forward")
        return self.d(x)


@MODELS.register("flaky")
def flaky(cfg, dataset):
    """an MLP whose discriminator raises in training"""
    g, d = mlp(cfg, dataset)
    return g, Flaky(d)
'''

SUITE = """
name = "par"
seeds = [0, 1]
[defaults]
model = "mlp"
dataset = "ring8"
steps = 30
width = 16
depth = 1
batch_size = 32
[[settings]]
loss = "ns"
[[settings]]
loss = "hinge"
spectral_norm = true
[[settings]]
label = "flaky"
model = "flaky"
loss = "ns"
"""

VOLATILE = ("time", "timing", "env")  # wall-clock times, host, threads, process ids


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("par")
    (d / "par.toml").write_text(SUITE)
    (d / "flaky_plugin.py").write_text(PLUGIN)
    return d


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (starting it costs seconds); run_suite leaves it running."""
    import ray

    from ganbench.runs.ray import start_ray

    start_ray()
    yield ray
    ray.shutdown()


def _run(files, out, *extra):
    return main(["run", "--suite", str(files / "par.toml"), "--plugin", str(files / "flaky_plugin.py"),
                 "--out", str(out), "--no-progress", *extra])


def _stable(out):
    rows = load_rows(out)
    for r in rows:
        for k in VOLATILE:
            r.pop(k, None)
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


@pytest.fixture(scope="module")
def sequential(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "res"
    code = _run(files, out)
    return code, out


def test_sequential_records_the_failed_runs_and_finishes_the_others(sequential, capsys):
    code, out = sequential
    assert code == 1  # some runs failed
    rows = load_rows(out)
    final = [r for r in rows if r["final"]]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(final) == 4 * 3 and all(r["status"] == "ok" and r["value"] is not None for r in final)
    assert {(r["label"], r["seed"]) for r in final} == {(lab, s) for lab in ("mlp/ns", "mlp/hinge+sn") for s in (0, 1)}
    assert len(failed) == 2 * 3 and {r["label"] for r in failed} == {"flaky"} and {r["seed"] for r in failed} == {0, 1}
    assert all(r["reason"] == "RuntimeError: boom in forward" and r["value"] is None and not r["final"] for r in failed)


def test_runs_start_breadth_first_and_started_runs_resume_first(sequential, files, tmp_path, monkeypatch):
    """Every setting's first seed runs before any setting's second (a long suite stopped part way has
    covered every setting), in the order the suite lists its seeds; with --resume, a run that has a
    checkpoint goes before them all, without it the checkpoint changes nothing (it is discarded)."""
    from ganbench.checkpoint import PREVIOUS
    from ganbench.config import load_suite
    from ganbench.runs.one import RunOptions
    from ganbench.runs.suite import run_order

    order = list(dict.fromkeys((r["label"], r["seed"]) for r in load_rows(sequential[1])))
    assert order == [(label, seed) for seed in (0, 1) for label in ("mlp/ns", "mlp/hinge+sn", "flaky")]
    suite = load_suite(str(files / "par.toml"), seeds=[2, 0, 1])
    runs = suite.runs()
    assert [(lb, c.seed) for lb, c in runs][:2] == [("mlp/ns", 2), ("mlp/ns", 0)]  # the file's order
    breadth = [r for seed in (2, 0, 1) for r in runs if r[1].seed == seed]
    assert [(lb, c.seed) for lb, c in breadth][:4] == [("mlp/ns", 2), ("mlp/hinge+sn", 2), ("flaky", 2), ("mlp/ns", 0)]
    assert run_order(runs, suite, tmp_path) == run_order(runs, suite, tmp_path, resume=True) == breadth
    started = runs[4]  # hinge+sn, seed 0: only its older checkpoint is left
    assert started[0] == "mlp/hinge+sn" and started[1].seed == 0
    (tmp_path / "runs" / started[1].run_id).mkdir(parents=True)
    (tmp_path / "runs" / started[1].run_id / PREVIOUS).write_bytes(b"")
    assert run_order(runs, suite, tmp_path, resume=True) == [started] + [r for r in breadth if r is not started]
    assert run_order(runs, suite, tmp_path) == breadth

    import ganbench.runs.suite as suite_module

    class Seen(Exception):
        pass

    def seen(todo, suite, out, resume=False):
        raise Seen(resume)

    monkeypatch.setattr(suite_module, "run_order", seen)
    for resume in (False, True):  # run_suite orders its runs with the --resume it was given
        with pytest.raises(Seen) as caught:
            suite_module.run_suite(suite, tmp_path / "fresh", torch.device("cpu"), progress=False,
                                   options=RunOptions(resume=resume))
        assert caught.value.args == (resume,)


@pytest.fixture(scope="module")
def executed(files, tmp_path_factory, request):
    """Outputs of the suite through each executor, run once for the module."""
    done = {}

    def get(name):
        if name not in done:
            if name == "ray":
                request.getfixturevalue("ray_session")
            out = tmp_path_factory.mktemp(name) / "res"
            extra = {"jobs2": ["--jobs", "2"], "ray": ["--executor", "ray"]}[name]
            code = _run(files, out, *extra)
            done[name] = code, out
        return done[name]

    return get


@pytest.mark.parametrize("name", ["jobs2", "ray"])
def test_every_executor_gives_the_same_rows(sequential, executed, capsys, name):
    capsys.readouterr()
    code, out = executed(name)
    printed = capsys.readouterr().out
    assert code == 1
    assert "6 runs" in printed and "2 failed" in printed
    assert printed.count("failed: flaky ring8 seed") == 2 and "RuntimeError: boom in forward" in printed
    assert "| ring8   | mlp/ns" in printed  # the table of the runs that finished
    assert _stable(out) == _stable(sequential[1])
    # the run folders are complete too: same files, same configs
    seq_runs = sorted(p.name for p in (sequential[1] / "runs").iterdir())
    assert sorted(p.name for p in (out / "runs").iterdir()) == seq_runs
    for run_id in seq_runs:
        a, b = sequential[1] / "runs" / run_id, out / "runs" / run_id
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        assert (a / "config.json").read_text() == (b / "config.json").read_text()


def test_resume_skips_finished_runs_and_retries_failed_ones(files, executed, tmp_path, capsys):
    out = tmp_path / "res"
    shutil.copytree(executed("ray")[1], out)
    before = load_rows(out)
    capsys.readouterr()
    assert _run(files, out, "--executor", "ray", "--resume") == 1
    printed = capsys.readouterr().out
    assert "4 already in" in printed and "2 failed" in printed
    after = load_rows(out)
    assert after[:len(before)] == before  # nothing rewritten
    new = after[len(before):]
    assert len(new) == 2 * 3 and all(r["label"] == "flaky" and r["status"] == "failed" for r in new)


def test_ray_workers_use_the_drivers_blas_threads(ray_session):
    """Ray starts workers with one BLAS thread; FID's last bits depend on it, so tasks take the driver's."""
    from ganbench.runs.pool import _set_blas_threads, blas_threads

    n = blas_threads()
    probe = ray_session.remote(lambda k: (_set_blas_threads(1), blas_threads(), _set_blas_threads(k), blas_threads()))
    _, one, _, after = ray_session.get(probe.remote(n))
    assert n >= 1 and one == 1 and after == n


@pytest.mark.parametrize("argv, message", [
    (["--jobs", "0"], "--jobs must be a number of processes (>= 1) or auto, got '0'"),
    (["--jobs", "many"], "--jobs must be a number of processes (>= 1) or auto, got 'many'"),
    (["--executor", "ray", "--jobs", "2"], "--jobs is for --executor local"),
    (["--ray-address", "127.0.0.1:6379"], "--ray-address needs --executor ray"),
])
def test_executor_mistakes_exit_2_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "res"
    assert main(["run", "--model", "mlp", "--out", str(out), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_jobs_auto_is_one_process_per_core_and_no_more_than_runs(monkeypatch, tmp_path):
    from ganbench.runs import pool

    monkeypatch.setattr(pool, "cores", lambda: 4)
    cpu = torch.device("cpu")
    assert [pool.auto_jobs(cpu, n) for n in (1, 3, 4, 24)] == [1, 3, 4, 4]
    assert [pool.auto_jobs(cpu, n, threads=2) for n in (1, 24)] == [1, 2]  # --threads 2: two cores a process
    assert pool.auto_jobs(cpu, 24, threads=8) == 1
    assert pool.auto_jobs(torch.device("cuda"), 24) == pool.auto_jobs(torch.device("cuda:1"), 24) == 1
    assert pool.Executor(jobs=4).threads_per_run == 1 and pool.Executor(jobs=3).threads_per_run == 1
    assert pool.Executor(jobs=2).threads_per_run == 2 and pool.Executor(jobs=2, threads=3).threads_per_run == 3


@pytest.mark.parametrize("text, cpus", [("150000 100000\n", 2), ("100000 100000", 1), ("max 100000\n", None),
                                        ("", None), ("garbage", None)])
def test_cpu_quota_of_a_cgroup_rounds_up(tmp_path, text, cpus):
    from ganbench.runs.pool import cpu_quota

    (tmp_path / "cpu.max").write_text(text)
    assert cpu_quota(tmp_path / "cpu.max") == cpus
    assert cpu_quota(tmp_path / "missing") is None


def _auto_run(tmp_path, capsys, monkeypatch, name, seeds, *extra, empty=False):
    """`ganbench run` of a tiny 2-D suite with no --jobs and no GANBENCH_JOBS (or an empty one), on 2
    cores: (run line, rows)."""
    from ganbench.runs import pool

    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.split("[[settings]]")[0].replace("seeds = [0, 1]", f"seeds = {seeds}") + '[[settings]]\nloss = "ns"\n')
    monkeypatch.setattr(pool, "cores", lambda: 2)
    monkeypatch.setenv("GANBENCH_JOBS", "") if empty else monkeypatch.delenv("GANBENCH_JOBS", raising=False)
    threads = torch.get_num_threads()
    try:
        assert main(["run", "--suite", str(suite), "--out", str(tmp_path / name), "--no-progress", *extra]) == 0
    finally:
        torch.set_num_threads(threads)  # a run in this process sets the thread count
    line = capsys.readouterr().out.splitlines()[0]
    return line, [r for r in load_rows(tmp_path / name) if r["final"]]


def test_default_jobs_run_one_process_per_core_of_one_thread(tmp_path, capsys, monkeypatch):
    """No --jobs and no GANBENCH_JOBS: on 2 cores a 2-run suite goes to 2 workers of one thread
    each, and one run trains in this process, also on one thread (an empty GANBENCH_JOBS is no
    variable): the thread count of a run does not depend on the command's number of runs."""
    line, rows = _auto_run(tmp_path, capsys, monkeypatch, "two", [0, 1])
    assert "= 2 runs on cpu, 2 processes (1 torch thread each) ->" in line
    assert {r["env"]["threads"] for r in rows} == {1} and {r["seed"] for r in rows} == {0, 1}
    line, alone = _auto_run(tmp_path, capsys, monkeypatch, "one", [1], empty=True)
    assert "= 1 runs on cpu (1 torch thread) ->" in line
    assert {r["env"]["threads"] for r in alone} == {1}
    values = lambda rs: sorted((r["metric"], r["value"]) for r in rs)  # noqa: E731
    assert values(alone) == values([r for r in rows if r["seed"] == 1])
    line, _ = _auto_run(tmp_path, capsys, monkeypatch, "wide", [0, 1], "--threads", "2")
    assert "= 2 runs on cpu (2 torch threads) ->" in line  # 2 cores hold one process of 2 threads


def test_run_line_counts_the_processes_of_this_suite_only(tmp_path, capsys, monkeypatch):
    """The run line's process count leaves out only this suite's finished runs: two new seeds in a
    folder that already holds two finished runs still go to 2 processes, as the pool starts them."""
    _auto_run(tmp_path, capsys, monkeypatch, "same", [0, 1])
    line, rows = _auto_run(tmp_path, capsys, monkeypatch, "same", [2, 3])
    assert "= 2 runs on cpu, 2 processes (1 torch thread each) ->" in line
    assert {r["seed"] for r in rows} == {0, 1, 2, 3}
    line, _ = _auto_run(tmp_path, capsys, monkeypatch, "same", [3, 4])  # seed 3 is done: 1 left
    assert "= 2 runs on cpu, 1 process (1 torch thread each) ->" in line


@pytest.mark.parametrize("value, message", [
    ("0", "GANBENCH_JOBS must be a number of processes (>= 1) or auto, got '0'"),
    (" ", "GANBENCH_JOBS must be a number of processes (>= 1) or auto, got ' '"),
    ("two", "GANBENCH_JOBS must be a number of processes (>= 1) or auto, got 'two'"),
])
def test_bad_jobs_from_the_variable_exit_2_in_one_line(tmp_path, capsys, monkeypatch, value, message):
    """A value that is not a count or auto is refused; an empty variable counts as unset."""
    monkeypatch.setenv("GANBENCH_JOBS", value)
    out = tmp_path / "res"
    assert main(["run", "--model", "mlp", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_ray_missing_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "res"
    assert main(["run", "--model", "mlp", "--executor", "ray", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'ganbench[ray]'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_impossible_ray_tasks_and_unreachable_clusters_are_one_line(ray_session, tmp_path, capsys):
    from ganbench.errors import UserError
    from ganbench.runs.ray import _reachable

    out = tmp_path / "res"
    argv = ["run", "--model", "mlp", "--executor", "ray", "--threads", "64", "--out", str(out), "--no-progress"]
    assert main(argv) == 2  # a task that needs 64 CPUs would wait forever for a node
    err = capsys.readouterr().err
    assert "--threads 64: no node of the Ray cluster has that many CPUs" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UserError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        _reachable("127.0.0.1:1")  # nothing listens on port 1: refused at once, not retried for minutes


DYING = '''
import os

from ganbench.models import MODELS
from ganbench.models.mlp import mlp


@MODELS.register("dying")
def dying(cfg, dataset):
    """an MLP whose process exits while the model is built for seed 1"""
    if cfg.seed == 1:
        os._exit(3)
    return mlp(cfg, dataset)
'''


def test_a_worker_that_dies_fails_its_own_run_only(tmp_path, capsys):
    """A dead worker takes the whole process pool down; the runs it took with it are tried again
    alone, so only the run that kills its worker is recorded as failed."""
    plugin = tmp_path / "dying_plugin.py"
    plugin.write_text(DYING)
    out = tmp_path / "res"
    code = main(["run", "--model", "dying", "--loss", "ns", "--dataset", "ring8", "--seeds", "0,1,2",
                 "--set", "steps=20", "--set", "width=16", "--set", "batch_size=32", "--plugin", str(plugin),
                 "--out", str(out), "--no-progress", "--jobs", "2"])
    assert code == 1
    rows = load_rows(out)
    status = {r["seed"]: r["status"] for r in rows if r["final"] or r["status"] == "failed"}
    assert status == {0: "ok", 1: "failed", 2: "ok"}
    assert all("worker died" in r["reason"] for r in rows if r["status"] == "failed")


class _DonePool:
    """A stand-in process pool whose futures are complete when submitted: the driver then sees several
    finished runs at once, one of them a mistake, as it can when runs end close together."""

    def __init__(self, *args, **kwargs):
        pass

    def submit(self, fn, job):
        from concurrent.futures import Future

        from ganbench.config import RunConfig
        from ganbench.runs.one import Outcome

        fut = Future()
        cfg = RunConfig.from_dict(job.config)
        fut.set_result(("user", f"{job.label}: bad data", {}) if job.label == "bad"
                       else ("done", Outcome(job.label, cfg, "ok", {}, None), {}))
        return fut

    def shutdown(self, *args, **kwargs):
        pass


@pytest.mark.parametrize("seen", ["all", "mistake only"])
def test_a_mistake_in_one_run_keeps_the_runs_already_finished(tmp_path, monkeypatch, seen):
    """A UserError from one run stops the suite, but the runs that finished before it is handled are
    still handed over (and so recorded) first: those the driver sees finished in the same wake-up
    after the mistake ("all") and those that finish while it handles the mistake ("mistake only")."""
    from ganbench.config import RunConfig
    from ganbench.errors import UserError
    from ganbench.runs import pool as parallel

    def wait_mistake_first(pending, return_when):
        done = sorted((f for f in pending if f.done()), key=lambda f: f.result()[0] != "user")
        return (done if seen == "all" else done[:1]), set()

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", _DonePool)
    monkeypatch.setattr(parallel, "wait", wait_mistake_first)
    runs = [(label, RunConfig(seed=i)) for i, label in enumerate(["good", "bad", "also good", "third"])]
    got = []
    with pytest.raises(UserError, match="bad: bad data"):
        for o in parallel.run_parallel(runs, "t", tmp_path, torch.device("cpu"), parallel.Executor(jobs=4)):
            got.append(o.label)
    assert sorted(got) == ["also good", "good", "third"]


def test_ray_mistake_in_one_task_keeps_the_tasks_already_finished(ray_session, tmp_path, monkeypatch):
    """The same on Ray: the driver learns of the mistake first, while the other tasks have finished."""
    from ganbench.config import RunConfig
    from ganbench.errors import UserError
    from ganbench.runs import pool as parallel
    from ganbench.runs import ray as ray_runs

    real_wait = ray_session.wait

    def wait_mistake_first(refs, num_returns=1, timeout=None):
        if num_returns != 1:
            return real_wait(refs, num_returns=num_returns, timeout=timeout)
        ready, _ = real_wait(refs, num_returns=len(refs))  # every task has finished
        first = sorted(ready, key=lambda r: ray_session.get(r)[0] != "user")[:1]
        return first, [r for r in refs if r != first[0]]

    monkeypatch.setattr(ray_session, "wait", wait_mistake_first)
    good = RunConfig(dataset="ring8", steps=5, width=8, depth=1, batch_size=16)
    runs = [("good", good), ("bad", good.replace(model="no-such-model")), ("also good", good.replace(seed=1))]
    got = []
    with pytest.raises(UserError, match="unknown model 'no-such-model'"):
        for o in ray_runs.run_ray(runs, "t", tmp_path, torch.device("cpu"), parallel.Executor(kind="ray")):
            got.append((o.label, o.status))
    assert sorted(got) == [("also good", "ok"), ("good", "ok")]


def _children(pid):
    try:
        text = open(f"/proc/{pid}/task/{pid}/children").read()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_sigterm_stops_the_pool_workers_too(tmp_path):
    """`kill` of `ganbench run --jobs 2` must not leave its workers training into the results folder."""
    import subprocess
    import time

    cmd = [sys.executable, "-m", "ganbench", "run", "--dataset", "ring8", "--seeds", "0,1", "--jobs", "2",
           "--threads", "1", "--no-progress", "--out", str(tmp_path / "res"), "--set", "steps=1000000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < 2:  # the two workers (and the resource tracker)
            time.sleep(0.5)
            workers = {p for p in _children(proc.pid) if "spawn_main" in open(f"/proc/{p}/cmdline").read()}
        assert len(workers) == 2, "the pool's workers did not start"
        time.sleep(3)  # inside training
        proc.terminate()
        assert proc.wait(timeout=60) == 128 + 15
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.5)
        assert not any(_alive(p) for p in workers)
    finally:  # never leave a million-step run behind, whatever failed above
        proc.kill()
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_a_translation_suite_under_ray_equals_the_sequential_run(ray_session, tmp_path):
    """Translator runs go through the executors unchanged: the same rows one after another and as Ray tasks
    (with one thread each: the thread count changes a convolution's rounding, see docs/reproducibility.md)."""
    suite = tmp_path / "tr.toml"
    suite.write_text('name = "tr"\nseeds = [0]\n\n[defaults]\nmodel = "cyclegan"\nloss = "lsgan"\n'
                     'dataset = "digits-invert"\nwidth = 4\ndepth = 1\nd_depth = 2\nbatch_size = 2\nsteps = 6\n'
                     'pool_size = 3\nmetrics = ["mse_ab", "cycle_a", "stego_b"]\n\n'
                     '[[settings]]\nlabel = "cyclegan"\n\n[[settings]]\nlabel = "identity"\nmodel = "identity"\n')
    outs = {}
    for name, extra in (("seq", []), ("ray", ["--executor", "ray"])):
        outs[name] = tmp_path / name
        assert main(["run", "--suite", str(suite), "--out", str(outs[name]), "--no-progress", "--threads", "1",
                     *extra]) == 0
    assert _stable(outs["seq"]) == _stable(outs["ray"]) and len(_stable(outs["seq"])) == 2 * 3
