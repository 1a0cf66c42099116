"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint holds the config, the step, both networks, both optimisers, the EMA, every random
state (the run's noise generator, the number of data batches drawn, and the global torch, CUDA,
numpy and Python states for code that uses them), the training history, and the caller's own
state (the evaluation rows so far). It is written atomically; the one before it is kept as
``checkpoint.prev.pt``, so a checkpoint damaged on disk falls back to the previous good one (said
aloud). Loading uses ``weights_only=True``.
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import numpy as np
import torch

from ganbench.config import config_diff
from ganbench.errors import UserError
from ganbench.io import atomic_write_bytes

FORMAT = "ganbench-checkpoint"
NAME, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"


def global_rng_state() -> dict:
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": repr(random.getstate()),
    }


def set_global_rng_state(state: dict) -> None:
    import ast

    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(ast.literal_eval(state["python"]))


def read(path: Path) -> dict:
    """The checkpoint at ``path``; an exception when it is unreadable, not a ganbench checkpoint,
    or lacks its config, step or random states."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError("not a ganbench checkpoint")
    if not all(key in state for key in ("config", "step", "rng")):
        raise ValueError("incomplete")
    return state


def newest(folder: Path) -> dict | None:
    """The newest readable checkpoint in ``folder`` as it is, config unchecked; None when there is none."""
    for name in (NAME, PREVIOUS):
        try:
            return read(Path(folder) / name)
        except Exception:
            continue
    return None


class Checkpointer:
    """Saves every ``every`` steps into ``folder``; ``load()`` returns the newest good checkpoint."""

    def __init__(self, folder: Path, every: int):
        self.folder = Path(folder)
        self.every = every
        self.loaded: Path | None = None  # the file ``load()`` returned

    def due(self, step: int, last: int) -> bool:
        return step == last or (self.every > 0 and step % self.every == 0)

    def save(self, state: dict) -> None:
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "version": 1, **state, "rng": global_rng_state()}, buf)
        current = self.folder / NAME
        if current.exists():
            current.replace(self.folder / PREVIOUS)
        atomic_write_bytes(current, buf.getvalue())

    def load(self, config: dict) -> dict | None:
        """The newest readable checkpoint, or None when there is none; a config change is refused."""
        errors = []
        for name in (NAME, PREVIOUS):
            path = self.folder / name
            if not path.exists():
                continue
            try:
                state = read(path)
            except Exception as e:
                errors.append(f"{path} ({type(e).__name__})")
                continue
            if errors:
                print(f"ganbench: {errors[0]} is unreadable; resuming from {path} (step {state['step']})", file=sys.stderr)
            diff = config_diff(state["config"], config)
            if diff:
                raise UserError(f"{path}: refusing to resume with a different config: {'; '.join(diff)}")
            self.loaded = path
            return state
        if errors:
            raise UserError(f"no readable checkpoint in {self.folder}: {', '.join(errors)}")
        return None


def mismatch(obj, state) -> str:
    """Why ``state`` does not load into ``obj`` (a module: its missing, unexpected and resized
    entries), for an error message; "" when nothing can be named."""
    if state is None:
        return "not in the checkpoint"
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a state dict"
    if not isinstance(obj, torch.nn.Module):
        return ""
    own = obj.state_dict()

    def names(keys: list) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    resized = [f"{k} {tuple(state[k].shape)} for {tuple(own[k].shape)}" for k in own
               if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape]
    found = [f"{what} {names(keys)}" for what, keys in
             (("missing", missing), ("unexpected", unexpected), ("shape", resized)) if keys]
    return "; ".join(found)

