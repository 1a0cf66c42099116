"""Seeds and devices. Every random draw takes an explicit generator; none reads global state.

A run's seed is split into independent streams by purpose (initialisation, data order, training
noise), and evaluation noise comes from the separate ``eval_seed``, so changing how often a run is
evaluated, or how its data are drawn, never shifts any other stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

import torch

from ganbench.errors import UserError

# stego-*: the translation probe's noise; subset, tail: the classification metrics' real subsets;
# bn_refresh: the latents that renew batch-norm statistics before an evaluation
PURPOSES = ("init", "data", "noise", "eval", "stego-a", "stego-b", "subset", "tail", "bn_refresh")


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one purpose, stable across versions and platforms."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}")
    digest = hashlib.sha256(f"ganbench:{purpose}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def make_generator(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, purpose))
    return g


@contextlib.contextmanager
def seeded_init(seed: int, device: torch.device):
    """Seed the global generators for model construction only, then restore them.

    PyTorch's layer constructors (and spectral norm's power-iteration vectors) draw from the global
    generator; forking it makes initialisation a pure function of ``seed`` and leaves the caller's
    random state untouched.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(seed, "init"))
        yield


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an unavailable CUDA is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
        return torch.device(name)
    raise UserError(f"unknown device {name!r} (use auto, cpu or cuda)")


def set_deterministic(device: torch.device) -> None:
    """Deterministic kernels everywhere; on CUDA also the cuBLAS workspace and cuDNN flags."""
    if device.type == "cuda":
        # Must be set before the first cuBLAS call; setdefault keeps a user's own choice.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so that wall-clock timings are real (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
