"""Figures written into run folders (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ganbench.features.mode2d import HQ_RADIUS  # noqa: E402
from ganbench.io import atomic_write_bytes  # noqa: E402


def scatter_2d(samples: torch.Tensor, dataset, path: Path, title: str = "") -> None:
    """Save ``scatter_figure`` as a PNG file."""
    atomic_write_bytes(path, png_bytes(scatter_figure(samples, dataset, title)))


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


# ----------------------------------------------------------------------------------------------
# Report figures: pandas in, a matplotlib figure out (the caller saves and closes it)

COLORS = plt.get_cmap("tab10").colors


def _no_math(fig) -> None:
    """User labels are plain text: a ``$`` in a label must not start mathtext."""
    for text in fig.findobj(matplotlib.text.Text):
        text.set_parse_math(False)


def curves_figure(curves: dict, title: str, ylabels: list[str], colors: dict):
    """One panel per y label; ``curves[ylabel][name] = DataFrame(step, mean, low, high)``: a line for
    the mean over seeds and a band from the lowest to the highest seed."""
    fig, axes = _panels(len(ylabels), 4.2, 3.2)
    for ax, ylabel in zip(axes, ylabels):
        for name, c in curves.get(ylabel, {}).items():
            color = colors.get(name, "tab:gray")
            ax.plot(c["step"], c["mean"], color=color, lw=1.4, label=name, marker="o" if len(c) < 12 else None, ms=3)
            if (c["high"] > c["low"]).any():
                ax.fill_between(c["step"], c["low"], c["high"], color=color, alpha=0.2, lw=0)
        ax.set_xlabel("step")
        ax.set_title(ylabel, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=11)
    _no_math(fig)  # before the layout, which draws (and would parse) every text
    fig.tight_layout()
    return fig


def bars_figure(summary, title: str, colors: dict):
    """One panel per metric column of ``summary`` (setting, column, mean, ci95, and optionally the
    interval's ends low and high): bars with 95% intervals."""
    columns = list(dict.fromkeys(summary["column"]))
    width = max(3.0, 0.55 * summary["setting"].nunique() + 1.5)  # inches per panel
    fig, axes = _panels(len(columns), width, 3.4)
    for ax, col in zip(axes, columns):
        s = summary[summary["column"] == col]
        x = range(len(s))
        mean = s["mean"].to_numpy(dtype=float)
        if "low" in s:  # an interval within the metric's range: asymmetric where it was cut
            err = np.vstack([mean - s["low"].to_numpy(dtype=float), s["high"].to_numpy(dtype=float) - mean])
            err = np.nan_to_num(err)
        else:
            err = s["ci95"].fillna(0.0).to_numpy()
        ax.bar(x, s["mean"].fillna(0.0), yerr=err, capsize=4, color=[colors.get(n, "tab:gray") for n in s["setting"]],
               alpha=0.85)
        ax.set_xticks(list(x), [_short(n) for n in s["setting"]], rotation=30, ha="right", fontsize=8)
        ax.set_title(col, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    _no_math(fig)  # before the layout, which draws (and would parse) every text
    fig.tight_layout()
    return fig


def _panels(n: int, width: float, height: float, per_row: int = 4):
    """A figure of n panels, at most ``per_row`` a row (so many metrics stay legible); unused axes hidden."""
    cols = min(n, per_row)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), dpi=100, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


GRID = 64  # images in a run's sample grid


def translation_grid(translations, dataset, n: int = 8) -> torch.Tensor:
    """Rows of ``n`` test images: A inputs, their translations and (when the pair is known) their
    reconstructions; then the same from B when B -> A is known: (rows * n, C, H, W) for ``grid_png``."""
    t = translations
    n = min(n, len(dataset.test_a), len(dataset.test_b))
    rows = [dataset.test_a[:n], t.ab[:n]] + ([t.cycle_a[:n]] if t.cycle_a is not None else [])
    if t.ba is not None:
        rows += [dataset.test_b[:n], t.ba[:n]] + ([t.cycle_b[:n]] if t.cycle_b is not None else [])
    return torch.cat(rows)


def grid_png(images: torch.Tensor, per_row: int = 8) -> bytes:
    """PNG of a grid of images in [-1, 1] (N, C, H, W); small images are enlarged 2x without smoothing."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images.clamp(-1, 1), nrow=per_row, normalize=True, value_range=(-1, 1), padding=2)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    if img.width < 400:  # small images: enlarge without smoothing so pixels stay visible
        img = img.resize((img.width * 2, img.height * 2), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
