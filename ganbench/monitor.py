"""Training history and divergence detection.

Every ``every`` steps the loop hands the monitor one row (losses, mean discriminator outputs,
gradient norms, learning rates, step time); the monitor keeps it and says whether the run has
diverged, with a reason code:

- ``non-finite``: a loss, a gradient norm or a weight is NaN or Inf;
- ``exploding-gradient``: a gradient norm above ``GRAD_LIMIT``;
- ``saturated``: for sigmoid losses, D(x) > 0.99 and D(G(z)) < 0.01 for ``PATIENCE`` rows in a row;
- ``frozen``: both losses unchanged (to 1e-12) for ``PATIENCE`` rows in a row;
- ``metric-worse``: the run's first metric got worse at ``WORSE_EVALS`` evaluations in a row
  (mode dropping), reported through ``evaluation``.
"""

from __future__ import annotations

import math

GRAD_LIMIT = 1e6
PATIENCE = 10  # consecutive history rows (about 10 % of a run)
WORSE_EVALS = 3

COLUMNS = ("step", "d_loss", "g_loss", "d_real", "d_fake", "grad_d", "grad_g", "lr_d", "lr_g", "step_time")


class Monitor:
    def __init__(self, sigmoid_outputs: bool):
        self.sigmoid_outputs = sigmoid_outputs  # D's logits are probabilities through a sigmoid
        self.history: list[dict] = []
        self._saturated = 0
        self._frozen = 0
        self._evals: list[float] = []
        self._worse = 0

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items()}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)

    def record(self, row: dict) -> str | None:
        """Keep one history row; return a divergence reason, or None."""
        prev = self.history[-1] if self.history else None
        self.history.append(row)
        values = [row[k] for k in COLUMNS[1:7]]
        if not all(math.isfinite(v) for v in values):
            return f"non-finite: loss or gradient is NaN/Inf at step {row['step']}"
        if max(row["grad_d"], row["grad_g"]) > GRAD_LIMIT:
            return f"exploding-gradient: norm {max(row['grad_d'], row['grad_g']):.3g} at step {row['step']}"
        if self.sigmoid_outputs:
            sat = _sigmoid(row["d_real"]) > 0.99 and _sigmoid(row["d_fake"]) < 0.01
            self._saturated = self._saturated + 1 if sat else 0
            if self._saturated >= PATIENCE:
                return f"saturated: D(x) > 0.99 and D(G(z)) < 0.01 for {PATIENCE} rows to step {row['step']}"
        if prev is not None:
            same = abs(row["d_loss"] - prev["d_loss"]) < 1e-12 and abs(row["g_loss"] - prev["g_loss"]) < 1e-12
            self._frozen = self._frozen + 1 if same else 0
            if self._frozen >= PATIENCE:
                return f"frozen: losses unchanged for {PATIENCE} rows to step {row['step']}"
        return None

    def evaluation(self, step: int, value: float | None, higher_is_better: bool) -> str | None:
        """Track the first metric over evaluations; a run that keeps getting worse is mode dropping."""
        if value is None or not math.isfinite(value):
            return None
        if self._evals:
            worse = value < self._evals[-1] if higher_is_better else value > self._evals[-1]
            self._worse = self._worse + 1 if worse else 0
        self._evals.append(value)
        if self._worse >= WORSE_EVALS:
            return f"metric-worse: got worse at {WORSE_EVALS} evaluations in a row to step {step}"
        return None


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x > -700 else 0.0


def grad_norm(params) -> float:
    """Euclidean norm of all gradients together (0 when there are none)."""
    import torch

    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def stability(curve: list[tuple[int, float]], higher_is_better: bool, last: int = 5) -> dict:
    """Summary of one run's metric curve [(step, value), ...], the final evaluation last.

    ``best`` and ``best_step``: the best value and where it was reached; ``best_final_gap``: how much
    worse the final value is than the best (0 when the run ended at its best; always >= 0);
    ``last_spread``: the standard deviation of the last ``last`` evaluations (how much the metric
    still moves at the end of training; 0 with a single evaluation).
    """
    points = [(s, v) for s, v in curve if v is not None and math.isfinite(v)]
    if not points:
        return {}
    best_step, best = _best(points, higher_is_better)
    final = points[-1][1]
    tail = [v for _, v in points[-last:]]
    mean = sum(tail) / len(tail)
    spread = math.sqrt(sum((v - mean) ** 2 for v in tail) / (len(tail) - 1)) if len(tail) > 1 else 0.0
    return {"best": best, "best_step": best_step, "best_final_gap": abs(final - best), "last_spread": spread,
            "evaluations": len(points)}


def _best(points: list[tuple[int, float]], higher_is_better: bool) -> tuple[int, float]:
    """The earliest (step, value) with the best value."""
    best = points[0]
    for s, v in points[1:]:
        if (v > best[1]) if higher_is_better else (v < best[1]):
            best = (s, v)
    return best
