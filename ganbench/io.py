"""Files that are either absent or whole: written to a temporary file beside the target, flushed
and renamed over it, so a crash or a full disk never leaves half a file behind; and output folders
checked before any work is done for them."""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path

from ganbench.errors import UserError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file stands where a folder of the path would be: name it
        blocker = next(p for p in [path.parent, *path.parent.parents] if p.exists())
        raise NotADirectoryError(errno.ENOTDIR, f"{blocker} is a file, not a folder", str(path.parent)) from None
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with_suppressed(os.unlink, tmp)
        raise


def _temporary(path: Path) -> tuple[int, str]:
    """A new hidden file beside ``path``, with the mode ``open()`` would give it (0666 minus the
    umask, applied by the kernel; ``mkstemp`` would make it 0600)."""
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def with_suppressed(fn, *args) -> None:
    try:
        fn(*args)
    except OSError:
        pass


def check_output_folder(path: Path, flag: str = "--out") -> None:
    """A UserError, before any work, when folder ``path`` could not be created or written to: it is a
    file, or a file or a read-only folder stands where it would be created. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} exists and is not a folder")
    where = path if path.exists() else next(p for p in path.absolute().parents if p.exists())
    if not where.is_dir():
        raise UserError(f"{flag} {path}: {where} is a file, so the folder cannot be made")
    if not os.access(where, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {where} is not writable")
