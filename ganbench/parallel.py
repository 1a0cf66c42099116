"""Many runs at once: a local pool of processes (``--jobs N``) or one Ray task per run (``--executor ray``).

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

import logging
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

EXECUTORS = ("local", "ray")
RAY_HINT = "pip install 'ganbench[ray]'"


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
            raise UserError(f"--jobs must be >= 1, got {self.jobs}")
        if self.threads < 0:
            raise UserError(f"--threads must be >= 0 (0: decided by the executor), got {self.threads}")
        if self.kind == "ray" and self.jobs != 1:
            raise UserError("--jobs is for --executor local; Ray runs one run per free CPU (or GPU) of the cluster")
        if self.kind == "local" and self.ray_address:
            raise UserError("--ray-address needs --executor ray")

    @property
    def parallel(self) -> bool:
        return self.kind == "ray" or self.jobs > 1


def require_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


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
    resume: bool
    checkpoint_every: int
    tensorboard: bool


def execute(job: Job) -> tuple[str, object, dict[str, bytes]]:
    """Run one job in a worker: ("done", Outcome, files) or ("user", message, {}) for a UserError.

    Any other exception is caught by ``run_guarded`` and comes back as a failed Outcome.
    """
    from ganbench.executors import run_guarded
    from ganbench.plugins import load_entry_points, load_plugin
    from ganbench.seeding import resolve_device, set_deterministic

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
        o = run_guarded(job.label, cfg, job.suite, Path(job.out), device, progress=False, resume=job.resume,
                        checkpoint_every=job.checkpoint_every, tensorboard=job.tensorboard)
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
    from ganbench.store import atomic_write_bytes

    folder = out / "runs" / run_id
    for name, data in files.items():
        path = folder / name
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write_bytes(path, data)


def run_parallel(todo: list[tuple[str, RunConfig]], suite: str, out: Path, device: torch.device, ex: Executor,
                 resume: bool = False, checkpoint_every: int = 0, tensorboard: bool = False) -> Iterator:
    """Outcomes of ``todo`` in the order the runs finish; a UserError in any run stops them all."""
    from ganbench.executors import failed

    out = Path(out).resolve()
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("GANBENCH_")))
    blas = blas_threads()

    def job(label, cfg, device_name, threads, collect):
        return Job(label, cfg.to_dict(), suite, str(out), device_name, threads, blas, ex.plugins, env, collect,
                   resume, checkpoint_every, tensorboard)

    def outcome(label, cfg, result):
        kind, payload, files = result
        if kind == "user":
            raise UserError(payload)
        if files:
            _write_missing(out, cfg.run_id, files)
        return payload

    if ex.kind == "ray":
        yield from _ray(todo, job, outcome, failed, one_line, suite, device, ex)
        return
    threads = ex.threads or max(1, _cores() // ex.jobs)
    spawn = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(ex.jobs, max(len(todo), 1)), mp_context=spawn)
    pending: dict = {}
    solo: list = []  # runs to try again, one at a time, after a worker died
    broken = False

    def submit(label, cfg):
        pending[pool.submit(execute, job(label, cfg, str(device), threads, False))] = (label, cfg, not broken_once)

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
                yield outcome(label, cfg, result)
            if mistake is not None:
                done = [f for f in pending if f.done() and not f.cancelled() and f.exception() is None]
                yield from _record_then_stop(mistake, [(*pending.pop(f)[:2], f.result()) for f in done], outcome)
    except BaseException:  # a mistake in a run (UserError), Ctrl-C, or the caller stopped: stop the workers now
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _record_then_stop(mistake: str, finished, outcome) -> Iterator:
    """The outcomes of the runs that finished, ``(label, cfg, result)``, while a run's mistake was
    being handled; then the mistake, which stops the suite."""
    for label, cfg, result in finished:
        if result[0] == "done":
            yield outcome(label, cfg, result)
    raise UserError(mistake)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def start_ray(address: str | None = None) -> bool:
    """Connect to ``address`` (or $RAY_ADDRESS), else start a private Ray on the loopback interface.

    Returns whether this call started (or connected) Ray, i.e. whether the caller should shut it down.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-report prompt or upload
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    try:
        if address:
            _reachable(address)
            ray.init(address=address, **quiet)
        else:
            # Ray starts its workers at niceness 15; a private Ray's runs get the priority a
            # sequential run would have, or any other busy process on the machine starves them.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
                     num_cpus=_cores(), **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"could not start or reach Ray{f' at {address}' if address else ''}: {one_line(e)}") from None
    return True


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A cluster address that does not answer is a one-line error at once (Ray itself retries for
    minutes). ``auto`` and ``ray://`` addresses are left to Ray."""
    import socket

    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def _ray(todo, job, outcome, failed, one_line, suite, device, ex: Executor) -> Iterator:
    ray = require_ray()
    started = start_ray(ex.ray_address)
    refs = {}
    try:
        gpus = ray.cluster_resources().get("GPU", 0) >= 1 and ex.device != "cpu"
        if ex.device.startswith("cuda") and not gpus:
            raise UserError(f"--device {ex.device}: the Ray cluster has no GPUs")
        task = ray.remote(max_retries=0)(execute)
        # A GPU task sees only its own GPU (CUDA_VISIBLE_DEVICES), as cuda:0.
        threads = ex.threads or 1
        widest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        if threads > widest:  # such a task could never be scheduled: Ray would wait forever
            raise UserError(f"--threads {threads}: no node of the Ray cluster has that many CPUs (largest: {widest:g})")
        opts = dict(num_gpus=1, num_cpus=threads) if gpus else dict(num_cpus=threads)
        for label, cfg in todo:
            ref = task.options(**opts).remote(job(label, cfg, "cuda" if gpus else "cpu", threads, True))
            refs[ref] = (label, cfg)
        while refs:
            finished, _ = ray.wait(list(refs), num_returns=1)
            for ref in finished:
                label, cfg = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - the task's process or node died
                    result = ("done", failed(label, cfg, suite, device, f"Ray task died: {one_line(e)}"), {})
                if result[0] == "user":  # stops the suite, once the tasks already finished are recorded
                    done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0) if refs else ([], [])
                    yield from _record_then_stop(result[1], _ray_results(ray, refs, done), outcome)
                yield outcome(label, cfg, result)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _ray_results(ray, refs: dict, done: list) -> Iterator:
    """(label, cfg, result) of the finished tasks ``done``; a task that died has nothing to record."""
    for ref in done:
        label, cfg = refs.pop(ref)
        try:
            yield label, cfg, ray.get(ref)
        except Exception:  # noqa: BLE001 - its process or node died
            continue
