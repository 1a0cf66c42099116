"""Where the weights of a feature network come from, and what is recorded about them.

Every network beyond InceptionV3 (DINOv2, CLIP) reads its weights from a file, found in this
order: ``--weights KEY=FILE`` on the command line, the environment variable
``GANBENCH_<KEY>_WEIGHTS``, or the file's usual name in torch hub's checkpoint folder (where torch
hub, torch-fidelity and OpenAI's ``clip`` package put their downloads). Nothing is downloaded: a
missing file is a one-line error that names the file, the address it comes from and where to put
it, raised before any training. The file's sha256 goes into every result row computed with it.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ganbench.errors import UserError, suggest


@dataclass(frozen=True)
class WeightsSource:
    """One network's weights: the key users name it by, and its default file and address."""

    key: str  # --weights KEY=FILE
    what: str  # "DINOv2 ViT-L/14 weights", for messages
    file_name: str  # its name in torch hub's checkpoint folder
    url: str  # where the published file comes from

    @property
    def env(self) -> str:
        return env_name(self.key)

    def default_path(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    def resolve(self) -> Path:
        """The file to read: ``--weights``/the environment variable, else the hub cache; a UserError
        naming the file, its address and where to put it when there is none."""
        given = os.environ.get(self.env)
        if given:
            if not Path(given).is_file():
                raise UserError(f"{self.what}: file not found: {given} (from {self.env})")
            return Path(given)
        target = self.default_path()
        if target.is_file():
            return target
        raise UserError(f"{self.what} are missing: download {self.url} and put it at {target} "
                        f"(or pass --weights {self.key}=FILE, or set {self.env})")


SOURCES: dict[str, WeightsSource] = {}  # key -> the source an extractor registered


def env_name(key: str) -> str:
    return f"GANBENCH_{key.upper().replace('-', '_')}_WEIGHTS"


def add_source(source: WeightsSource) -> WeightsSource:
    SOURCES[source.key] = source
    return source


def set_from_command_line(pairs: list[str]) -> None:
    """``--weights KEY=FILE`` (repeatable): each file is checked to exist, then exported as
    ``GANBENCH_<KEY>_WEIGHTS`` so that extractors (and worker processes) find it."""
    for pair in pairs:
        key, eq, path = pair.partition("=")
        key = key.strip().lower()
        if not eq or not key or not path:
            raise UserError(f"--weights: expected KEY=FILE, got {pair!r}")
        if key not in SOURCES:
            raise UserError(f"--weights: unknown network {suggest(key, SOURCES)}")
        if not Path(path).is_file():
            raise UserError(f"--weights {key}: file not found: {path}")
        os.environ[env_name(key)] = str(Path(path).resolve())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A dict of tensors from a checkpoint: a state dict saved by ``torch.save`` (read with
    ``weights_only=True``; a ``{"model": ...}`` or ``{"state_dict": ...}`` wrapper is unwrapped) or
    a TorchScript archive (OpenAI's CLIP files), whose ``state_dict()`` is taken."""
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as e:  # noqa: BLE001
            raise UserError(f"{path}: unreadable {what} file ({type(e).__name__})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - truncated, not a checkpoint, or holding code
            raise UserError(f"{path}: unreadable {what} file ({type(e).__name__})") from None
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: not a state dict of tensors ({what})")
    return dict(state)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/__torch__" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
