"""IDX files (the MNIST format), plain or gzipped: a small numpy reader and writer.

Layout: two zero bytes, a type code, the number of dimensions n; then n big-endian uint32 sizes;
then the values, big-endian, row-major. A file whose length does not match its header is corrupt.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ganbench.errors import UserError

# type code -> big-endian numpy dtype
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CODES = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise UserError(f"{path}: corrupt or unreadable IDX file ({type(e).__name__}: {e})") from None


def parse_idx(raw: bytes, where: str = "IDX data") -> np.ndarray:
    """Bytes of an IDX file -> numpy array in native byte order (dtype from the header)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in DTYPES:
        magic = raw[:4].hex() if raw else "empty file"
        raise UserError(f"{where}: not an IDX file (magic number {magic})")
    dtype, ndim = DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{where}: corrupt IDX file (header cut short)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise UserError(f"{where}: corrupt IDX file (dims {dims} need {expected} bytes, file has {len(raw)})")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))  # a writable copy in native order


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (``.gz`` is decompressed) -> numpy array; a corrupt file is a UserError."""
    path = Path(path)
    return parse_idx(_read_bytes(path), where=str(path))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped when the name ends in ``.gz``."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    code = CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    raw = header + np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)
