"""The results folder: append-only JSON rows, per-run folders, atomic writes.

Layout of ``DIR``::

    results.jsonl          one JSON object per line: run x metric x step, with full provenance
    runs/<run_id>/         config.json, summary.json, history.csv and the run's figures

Guarantees: a file is either absent or whole (written to a temporary file, flushed, renamed);
rows are appended under an exclusive lock in one write, and a failed write (full disk) is rolled
back, so ``results.jsonl`` never holds a torn line even with several writers at once; a torn last
line that a killed writer left behind is ignored by readers and cut by the next append.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

import ganbench
from ganbench.errors import UserError
from ganbench.plugins import loaded_plugins

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: appends rely on O_APPEND alone
    fcntl = None

RESULTS = "results.jsonl"


def append_rows(out: Path, rows: list[dict]) -> None:
    """Append rows to ``out/results.jsonl`` as whole lines, all or nothing."""
    if not rows:
        return
    data = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in rows).encode()
    Path(out).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(out) / RESULTS, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # read: a torn tail
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        # only under the lock may a line without its newline be taken for a dead writer's
        start = _drop_torn_tail(fd, Path(out) / RESULTS) if fcntl is not None else os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, start)  # roll back a partial append (e.g. disk full)
            raise
    finally:
        os.close(fd)  # also releases the lock


def _drop_torn_tail(fd: int, path: Path) -> int:
    """Under the append lock: cut a last line that has no newline, left by a writer killed mid-write
    (a SIGKILL or a power cut, which the rollback cannot catch), so the rows appended next do not
    turn it into a corrupt line in the middle of the file. Returns the file's size after the cut."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = os.pread(fd, size, 0).rfind(b"\n") + 1  # after the last whole line (0: none)
    os.ftruncate(fd, end)
    print(f"ganbench: {path} ended in a torn line ({size - end} bytes) from a writer that was killed; "
          f"removed it", file=sys.stderr)
    return end


ROW_KEYS = ("run_id", "metric")  # what every reader of a row looks up


def load_rows(out: Path) -> list[dict]:
    """Every row of a results folder. A missing folder or file is a user error."""
    path = Path(out) / RESULTS
    if not Path(out).is_dir():
        raise UserError(f"results folder not found: {out}")
    if not path.is_file():
        raise UserError(f"no {RESULTS} in {out} (run `ganbench run --out {out}` first)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.endswith("\n"):
                break  # a line still being written by another process
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{path}:{lineno}: not a JSON row") from None
            if not (isinstance(row, dict) and all(isinstance(row.get(k), str) for k in ROW_KEYS)):
                raise UserError(f"{path}:{lineno}: not a result row (a JSON object with string fields "
                                f"{', '.join(ROW_KEYS)})")
            rows.append(row)
    return rows


def load_results(out: Path) -> pd.DataFrame:
    """A results folder as a DataFrame, one row per result; nested fields become dotted columns
    (``config.lr_g``, ``protocol.num_fake``, ``env.torch``)."""
    return frame(load_rows(out))


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows of a results folder as ``load_results`` gives them."""
    return pd.json_normalize(rows) if rows else pd.DataFrame()


def finished_run_ids(out: Path) -> set[str]:
    """Runs whose final results are already in the folder."""
    if not (Path(out) / RESULTS).is_file():
        return set()
    return {r["run_id"] for r in load_rows(out) if r.get("final")}


@functools.lru_cache(maxsize=None)
def _git_commit() -> str | None:
    """Commit of the ganbench source tree (with ``+dirty`` for local changes), if it is a checkout."""
    root = Path(ganbench.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment(device: torch.device) -> dict:
    """Versions and hardware that produced a result."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "ganbench": ganbench.__version__,
        "git_commit": _git_commit(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "plugins": loaded_plugins(),
    }
