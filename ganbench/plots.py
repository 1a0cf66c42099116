"""Figures written into run folders (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ganbench.features import HQ_RADIUS  # noqa: E402
from ganbench.store import atomic_write_bytes  # noqa: E402


def scatter_2d(samples: torch.Tensor, dataset, path: Path, title: str = "") -> None:
    """Save ``scatter_figure`` as a PNG file."""
    fig = scatter_figure(samples, dataset, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def scatter_figure(samples: torch.Tensor, dataset, title: str = ""):
    """Generated points over the mode centres, each centre ringed at the high-quality radius."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    pts = samples.detach().cpu().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color="tab:blue", label="generated", rasterized=True)
    means = dataset.means.numpy()
    ax.scatter(means[:, 0], means[:, 1], s=25, marker="x", color="tab:red", label="mode centre")
    for cx, cy in means:
        ax.add_patch(plt.Circle((cx, cy), HQ_RADIUS * dataset.sigma, fill=False, color="tab:red", lw=0.5))
    pad = 0.5 + 0.1 * abs(means).max()
    lim = abs(means).max() + pad
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, markerscale=2)
    return fig
