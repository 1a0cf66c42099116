"""Runs on Ray (``--executor ray``): one task per run, on a private local Ray or an existing cluster.

The tasks run ``ganbench.runs.pool.execute``, the same job a local worker runs, and send each run's
rows and folder back to the driver, which alone writes ``results.jsonl``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Iterator

import torch

from ganbench.config import RunConfig
from ganbench.errors import UserError, one_line
from ganbench.runs import pool
from ganbench.runs.one import Outcome, RunOptions, failed
from ganbench.runs.pool import Executor

RAY_HINT = "pip install 'ganbench[ray]'"


def require_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


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
                     num_cpus=pool.cores(), **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"could not start or reach Ray{f' at {address}' if address else ''}: {one_line(e)}") from None
    return True


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A cluster address that does not answer is a one-line error at once (Ray itself retries for
    minutes). ``auto`` and ``ray://`` addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def run_ray(todo: list[tuple[str, RunConfig]], suite: str, out: Path, device: torch.device, ex: Executor,
            options: RunOptions = RunOptions()) -> Iterator[Outcome]:
    """Outcomes of ``todo``, one Ray task per run, in the order they finish; a UserError in any run
    stops them all. Each task sends its run folder's files back with its rows."""
    ray = require_ray()
    out = Path(out).resolve()
    driver = pool.driver_settings()
    started = start_ray(ex.ray_address)
    refs = {}
    try:
        gpus = ray.cluster_resources().get("GPU", 0) >= 1 and ex.device != "cpu"
        if ex.device.startswith("cuda") and not gpus:
            raise UserError(f"--device {ex.device}: the Ray cluster has no GPUs")
        task = ray.remote(max_retries=0)(pool.execute)
        # A GPU task sees only its own GPU (CUDA_VISIBLE_DEVICES), as cuda:0.
        threads = ex.threads or 1
        widest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        if threads > widest:  # such a task could never be scheduled: Ray would wait forever
            raise UserError(f"--threads {threads}: no node of the Ray cluster has that many CPUs (largest: {widest:g})")
        opts = dict(num_gpus=1, num_cpus=threads) if gpus else dict(num_cpus=threads)
        for label, cfg in todo:
            ref = task.options(**opts).remote(pool.make_job(label, cfg, suite, out, "cuda" if gpus else "cpu", threads, True,
                                                             ex, options, driver))
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
                    yield from pool.record_then_stop(result[1], _ray_results(ray, refs, done), out)
                yield pool.outcome(out, cfg, result)
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
