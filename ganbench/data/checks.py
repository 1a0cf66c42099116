"""Checks every sample passes: shape, dtype and range, with one-line errors naming what was expected."""

from __future__ import annotations

import numpy as np
import torch

from ganbench.errors import UserError


def to_model_range(x: np.ndarray | torch.Tensor, shape: tuple[int, ...], where: str) -> torch.Tensor:
    """uint8 or float samples -> float32 in the dataset's layout; images NHWC -> NCHW if needed."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
    else:
        x = np.asarray(x)
        if x.dtype.kind not in "biufc":  # strings, objects, dates: no tensor dtype
            raise UserError(f"{where}: samples must be uint8 or float, got {x.dtype}")
        t = torch.as_tensor(x)
    if t.dtype == torch.uint8:
        t = t.float() / 127.5 - 1
    elif t.is_floating_point():
        t = t.float()
    else:
        raise UserError(f"{where}: samples must be uint8 or float, got {t.dtype}")
    if len(shape) == 3 and t.dim() == 4 and t.shape[1:] != shape and t.shape[1:] == (shape[1], shape[2], shape[0]):
        t = t.permute(0, 3, 1, 2)  # NHWC -> NCHW
    if len(shape) == 3 and t.dim() == 3 and shape[0] == 1:
        t = t.unsqueeze(1)  # (N, H, W) grayscale
    check_output(t, shape, bounded=len(shape) == 3, where=where)
    return t.contiguous()


def check_output(x: torch.Tensor, shape: tuple[int, ...], bounded: bool, where: str = "generator") -> None:
    """Shape, dtype and range of samples; a clear one-line error naming what was expected."""
    want = "(N, " + ", ".join(map(str, shape)) + ")"
    if not x.is_floating_point():
        raise UserError(f"{where}: output must be floating point, got {x.dtype}")
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        got = tuple(x.shape)
        hint = ""
        if x.dim() == len(shape) + 1 and len(shape) == 3 and x.shape[2:] == shape[1:]:
            hint = f" ({x.shape[1]} channels instead of {shape[0]})"
        raise UserError(f"{where}: output has shape {got}, expected {want}{hint}")
    if bounded and x.numel():
        finite = x[torch.isfinite(x)]
        if finite.numel() and (finite.min() < -1.0 - 1e-5 or finite.max() > 1.0 + 1e-5):
            raise UserError(f"{where}: values must lie in [-1, 1] (end the generator with tanh), "
                            f"got [{finite.min().item():.3g}, {finite.max().item():.3g}]")
