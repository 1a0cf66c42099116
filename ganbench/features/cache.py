"""The cache: reference statistics and trained classifiers, keyed by a hash of every input.

It lives outside the package, in ``$GANBENCH_CACHE`` or ``~/.cache/ganbench``. Entries are written
atomically and named by the hash of everything that changes their value, so a stale entry can
never be returned: changing any input changes the name. A corrupt entry is recomputed.

Under torchrun, process 0 alone reads and writes the cache and tells the others what it found, so
every process takes the same branch (a computation may be split over the processes and must then
run on all of them) even while another process is writing the entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ganbench import distributed
from ganbench.io import atomic_write_bytes, atomic_write_json


def cache_dir() -> Path:
    return Path(os.environ.get("GANBENCH_CACHE") or Path.home() / ".cache" / "ganbench")


def key_of(doc: dict) -> str:
    """sha256 (first 20 hex digits) of a canonical JSON dump of everything that changes a value."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:20]


def tensor_digest(*tensors) -> str:
    """sha256 of tensors' dtypes, shapes and contents: the key of data a cache entry was computed from."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def cached_arrays(kind: str, doc: dict, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``compute()`` once per distinct ``doc``; later calls read ``cache_dir()/kind/<hash>.npz``."""
    path = cache_dir() / kind / f"{key_of(doc)}.npz"
    found = _read(path) if distributed.is_main() else None
    found = distributed.broadcast_object(found)
    if found is not None:
        return found
    arrays = compute()
    if not distributed.is_main():
        return arrays
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_json(path.with_suffix(".json"), doc)  # what the entry was computed from, for people
    return arrays


def _read(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception:  # noqa: BLE001 - truncated, empty or not an npz: recomputed, never trusted
        path.unlink(missing_ok=True)
        return None
