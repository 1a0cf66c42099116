"""Many runs at once: a local pool of processes (``--jobs N``); ``ganbench.runs.ray`` sends the same
jobs to Ray (``--executor ray``), one task per run.

A worker trains and evaluates whole runs and returns each run's rows to the driver (the
``ganbench run`` process), which alone appends them to ``results.jsonl``, one run per write, as the
runs finish. So the results file needs no shared file system and no cross-machine locking, and a
worker that dies takes no half-written row with it. Workers still write each run's folder
(checkpoints, history, figures, generator) under the same absolute ``OUT`` path; on Ray those
files also travel back with the rows and the driver writes the ones it does not already have,
so ``OUT/runs/`` is complete on the driver's machine even when the workers' disks are not shared.

Same rows on every executor, given the same torch thread count (``--threads T``; the defaults
differ: all cores when sequential, cores / N with ``--jobs N``, one per Ray task, and on the CPU
convolutions round differently with another count): a run is a pure function of its config and
its thread count. Each worker is started with the 'spawn' method (no forked torch state),
re-imports the plug-ins, switches on deterministic algorithms and sets its thread counts; runs
draw every random number from generators seeded by their own config.

Checkpoints of a failed run stay where the run ran: on a Ray cluster without a shared ``OUT``,
``--resume`` continues it only from that node's disk; elsewhere it starts again.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ganbench.checkpoint import NAME, PREVIOUS
from ganbench.config import RunConfig
from ganbench.errors import UserError, one_line
from ganbench.io import atomic_write_bytes
from ganbench.plugins import load_entry_points, load_plugin
from ganbench.runs.one import Outcome, RunOptions, failed, run_guarded
from ganbench.seeding import resolve_device, set_deterministic

EXECUTORS = ("local", "ray")
ENV_JOBS = "GANBENCH_JOBS"  # the default of `ganbench run --jobs`


@dataclass(frozen=True)
class Executor:
    """Where the runs of a suite go."""

    kind: str = "local"  # "local" (this machine) or "ray"
    jobs: int = 1  # local: runs at once, each in its own process (1: one after another, in this process)
    ray_address: str | None = None  # ray: an existing cluster (None: $RAY_ADDRESS, else a new local Ray)
    device: str = "auto"  # as the user gave it; a Ray task resolves it where it runs
    threads: int = 0  # torch threads per run (0: all cores when sequential, cores / jobs, 1 per Ray task)
    plugins: tuple[str, ...] = ()  # plug-ins every worker imports before its first run

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise UserError(f"unknown executor {self.kind!r} (use local or ray)")
        if self.jobs < 1:
            raise UserError(f"--jobs must be a number of processes (>= 1), got {self.jobs}")
        if self.threads < 0:
            raise UserError(f"--threads must be >= 0 (0: decided by the executor), got {self.threads}")
        if self.kind == "ray" and self.jobs != 1:
            raise UserError("--jobs is for --executor local; Ray runs one run per free CPU (or GPU) of the cluster")
        if self.kind == "local" and self.ray_address:
            raise UserError("--ray-address needs --executor ray")

    @property
    def parallel(self) -> bool:
        return self.kind == "ray" or self.jobs > 1

    @property
    def threads_per_run(self) -> int:
        """Torch threads of each local worker: ``threads``, else the cores shared between the jobs."""
        return self.threads or max(1, cores() // self.jobs)


def auto_jobs(device: torch.device, runs: int, threads: int = 1) -> int:
    """``--jobs auto``: on the CPU as many processes of ``threads`` torch threads as the cores hold,
    and no more than the suite has runs; on a GPU one (the runs would share it).

    It counts the suite's runs, not those left, so a resumed suite keeps its number of processes."""
    return max(1, min(cores() // max(threads, 1), runs)) if device.type == "cpu" else 1


@dataclass(frozen=True)
class Job:
    """One run, as sent to a worker (plain data: it crosses process and machine boundaries)."""

    label: str
    config: dict
    suite: str
    out: str  # absolute path of the results folder
    device: str  # resolved by the worker
    threads: int  # torch threads in the worker (0: leave as it is)
    blas_threads: int  # numpy/scipy BLAS threads: the driver's, since they change the last bits of FID (0: leave)
    plugins: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # the driver's GANBENCH_* variables (weights files, data roots)
    collect: bool  # send the run folder's files back with the rows
    options: RunOptions


def execute(job: Job) -> tuple[str, object, dict[str, bytes]]:
    """Run one job in a worker: ("done", Outcome, files) or ("user", message, {}) for a UserError.

    Any other exception is caught by ``run_guarded`` and comes back as a failed Outcome.
    """
    try:
        os.environ.update(dict(job.env))
        if job.threads:
            torch.set_num_threads(job.threads)
        if job.blas_threads:
            _set_blas_threads(job.blas_threads)
        load_entry_points()
        for spec in job.plugins:
            load_plugin(spec)
        device = resolve_device(job.device)
        set_deterministic(device)
        cfg = RunConfig.from_dict(job.config)
        o = run_guarded(job.label, cfg, job.suite, Path(job.out), device, job.options, progress=False)
    except UserError as e:
        return "user", str(e), {}
    collect = job.collect and (Path(job.out) / "runs" / cfg.run_id).is_dir()  # a run may fail before its folder
    return "done", o, (_run_files(Path(job.out), cfg.run_id) if collect else {})


def blas_threads() -> int:
    """Threads of the BLAS that numpy and scipy use in this process (0 when unknown)."""
    import scipy.linalg  # noqa: F401 - loads the BLAS, so that it can be seen
    from threadpoolctl import threadpool_info

    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=0)


def _set_blas_threads(n: int) -> None:
    """Use ``n`` BLAS threads for the metric math (eigenvalues and products in FID and friends): a
    sum split over another number of threads rounds differently in the last bits. Ray starts its
    workers with one thread (OMP_NUM_THREADS=1); a worker takes the driver's count instead, so its
    rows equal those of a sequential run."""
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(n, user_api="blas")


def _run_files(out: Path, run_id: str) -> dict[str, bytes]:
    """The finished run's folder (checkpoints excluded: the run is done)."""
    folder = out / "runs" / run_id
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and p.name not in (NAME, PREVIOUS) and not p.name.startswith(".")}


def _write_missing(out: Path, run_id: str, files: dict[str, bytes]) -> None:
    """Write the run files the driver does not already have (a worker on another machine)."""
    folder = out / "runs" / run_id
    for name, data in files.items():
        path = folder / name
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write_bytes(path, data)


def driver_settings() -> tuple[tuple[tuple[str, str], ...], int]:
    """What the driver passes on to every job, read once per suite: its GANBENCH_* variables and its
    BLAS thread count."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("GANBENCH_")))
    return env, blas_threads()


def make_job(label: str, cfg: RunConfig, suite: str, out: Path, device_name: str, threads: int, collect: bool,
             ex: Executor, options: RunOptions, driver: tuple) -> Job:
    """The job of one run; ``driver`` is ``driver_settings()``."""
    env, blas = driver
    return Job(label, cfg.to_dict(), suite, str(out), device_name, threads, blas, ex.plugins, env, collect, options)


def outcome(out: Path, cfg: RunConfig, result) -> Outcome:
    """A worker's result as an Outcome (its run folder's files written where missing); a UserError
    in the run raises here."""
    kind, payload, files = result
    if kind == "user":
        raise UserError(payload)
    if files:
        _write_missing(out, cfg.run_id, files)
    return payload


def run_parallel(todo: list[tuple[str, RunConfig]], suite: str, out: Path, device: torch.device, ex: Executor,
                 options: RunOptions = RunOptions()) -> Iterator[Outcome]:
    """Outcomes of ``todo`` in the order the runs finish; a UserError in any run stops them all."""
    out = Path(out).resolve()
    driver = driver_settings()
    threads = ex.threads_per_run
    spawn = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(ex.jobs, max(len(todo), 1)), mp_context=spawn)
    pending: dict = {}
    solo: list = []  # runs to try again, one at a time, after a worker died
    broken = False

    def submit(label, cfg):
        job = make_job(label, cfg, suite, out, str(device), threads, False, ex, options, driver)
        pending[pool.submit(execute, job)] = (label, cfg, not broken_once)

    broken_once = False
    try:
        for label, cfg in todo:
            submit(label, cfg)
        while pending or solo:
            if not pending:  # a worker died earlier: the runs it took down go one by one in a fresh process
                if broken:
                    pool.shutdown(wait=True)
                    pool, broken = ProcessPoolExecutor(max_workers=1, mp_context=spawn), False
                submit(*solo.pop(0))
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            mistake = None
            for fut in finished:
                label, cfg, first_try = pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool as e:
                    # A worker died (killed, out of memory, os._exit) and took the pool down with every
                    # run not finished. Those are tried again alone; a run that kills its worker when
                    # it runs alone is recorded as failed.
                    broken = broken_once = True
                    if first_try:
                        solo.append((label, cfg))
                        continue
                    result = ("done", failed(label, cfg, suite, device, f"worker died: {one_line(e)}"), {})
                except Exception as e:  # noqa: BLE001 - the job could not be sent or its result returned
                    result = ("done", failed(label, cfg, suite, device, f"worker died: {one_line(e)}"), {})
                if result[0] == "user":  # stops the suite, once the runs already finished are recorded
                    mistake = mistake or result[1]
                    continue
                yield outcome(out, cfg, result)
            if mistake is not None:
                done = [f for f in pending if f.done() and not f.cancelled() and f.exception() is None]
                yield from record_then_stop(mistake, [(*pending.pop(f)[:2], f.result()) for f in done], out)
    except BaseException:  # a mistake in a run (UserError), Ctrl-C, or the caller stopped: stop the workers now
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def record_then_stop(mistake: str, finished, out: Path) -> Iterator[Outcome]:
    """The outcomes of the runs that finished, ``(label, cfg, result)``, while a run's mistake was
    being handled; then the mistake, which stops the suite."""
    for label, cfg, result in finished:
        if result[0] == "done":
            yield outcome(out, cfg, result)
    raise UserError(mistake)


def cores() -> int:
    """The CPUs this process may use: its affinity mask (taskset, cpusets), within a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return min(n, cpu_quota() or n)


def cpu_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """CPUs a cgroup v2 quota allows (``docker run --cpus``, a Kubernetes CPU limit), rounded up;
    None without a quota or without cgroup v2."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None
