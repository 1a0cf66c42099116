"""TensorBoard logging of a run (optional: ``pip install ganbench[tensorboard]``, flag ``--tensorboard``).

Each run writes an event file under ``DIR/tensorboard/<label>/<dataset>/seed<N>``, so TensorBoard
groups seeds of a setting together: the history rows as ``train/<column>`` scalars, each
evaluation as ``metrics/<name>``, and the generated samples at each evaluation (an image grid, or
the scatter plot over the mode centres for 2-D data).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ganbench.errors import UserError
from ganbench.results.plots import scatter_figure

GRID = 64  # samples in an image grid


def log_dir(out: Path, label: str, dataset: str, seed: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.+=-]+", "_", label)
    return Path(out) / "tensorboard" / safe / dataset / f"seed{seed}"


def require() -> None:
    """Fail before any work when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install 'ganbench[tensorboard]'") from None


class TensorBoardLogger:
    def __init__(self, folder: Path):
        require()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def history(self, row: dict) -> None:
        step = row["step"]
        for key, value in row.items():
            if key != "step":
                self.writer.add_scalar(f"train/{key}", value, step)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"metrics/{name}", value, step)

    def samples(self, step: int, samples: torch.Tensor, dataset) -> None:
        """An image grid in [0, 1], or for 2-D points the scatter plot over the mode centres."""
        if samples.dim() == 4:
            from torchvision.utils import make_grid

            grid = make_grid(samples[:GRID].clamp(-1, 1), nrow=8, normalize=True, value_range=(-1, 1))
            self.writer.add_image("samples", grid, step)
        elif samples.dim() == 2 and samples.shape[1] == 2 and hasattr(dataset, "means"):
            self.writer.add_figure("samples", scatter_figure(samples[:2500], dataset, f"step {step}"), step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
