"""Runs of a results folder that have started but whose final rows are not in it yet.

A run writes its rows to ``results.jsonl`` only when it ends; until then its folder
``runs/<run_id>/`` holds its ``config.json`` and, once one is written, its checkpoints, which carry
the step reached and the evaluations made so far. ``unfinished_runs`` reads them, so a table of a
suite still training can say what is under way (``ganbench table``, ``scripts/published.sh``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ganbench.checkpoint import NAME, PREVIOUS, newest
from ganbench.results.store import RESULTS, load_rows


@dataclass(frozen=True)
class Unfinished:
    run_id: str
    label: str
    dataset: str
    seed: int
    steps: int  # the run's length
    step: int | None  # step of its newest readable checkpoint; None: none written yet
    evaluated_at: int | None = None  # step of its last evaluation so far
    evaluated: dict[str, float | None] = field(default_factory=dict)  # metric -> value there (None: no value)
    failed: str | None = None  # the reason, when an attempt failed (it is tried again by --resume)
    unreadable: bool = False  # it has checkpoint files, none of them readable

    def describe(self) -> str:
        """One line: which run, how far, its last evaluation; e.g. ``pacgan2 ring8 seed 0 (run 26ab4a948666):
        step 40,000 of 400,000; last evaluation (step 40,000): modes 8, hq 0.948, kl 0.0648``."""
        where = (f"step {self.step:,} of {self.steps:,}" if self.step is not None else
                 "no readable checkpoint (--resume refuses it; delete its checkpoint*.pt to start it again)"
                 if self.unreadable else "no checkpoint yet")
        text = f"{self.label} {self.dataset} seed {self.seed} (run {self.run_id}): {where}"
        if self.evaluated_at is not None:
            values = ", ".join(f"{k} {'n/a' if v is None else f'{v:.4g}'}" for k, v in self.evaluated.items())
            text += f"; last evaluation (step {self.evaluated_at:,}): {values}"
        if self.failed:
            text += f"; an attempt failed: {self.failed}"
        return text


def unfinished_runs(out: Path, rows: list[dict] | None = None) -> list[Unfinished]:
    """The runs started in ``out`` without final rows there, by label, dataset and seed; ``rows``:
    the folder's rows when the caller has read them already."""
    runs = Path(out) / "runs"
    if not runs.is_dir():
        return []
    if rows is None:
        rows = load_rows(out) if (Path(out) / RESULTS).is_file() else []
    finished = {r["run_id"] for r in rows if r.get("final")}
    failed = {r["run_id"]: r.get("reason") or "no reason recorded" for r in rows
              if r.get("status") == "failed" and not r.get("final")}
    found = []
    for folder in sorted(p for p in runs.iterdir() if (p / "config.json").is_file()):
        try:
            meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            cfg = meta["config"]
            run = dict(run_id=meta.get("run_id", folder.name), label=meta.get("label", ""),
                       dataset=cfg["dataset"], seed=int(cfg["seed"]), steps=int(cfg["steps"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a run folder this version wrote
        if run["run_id"] in finished:
            continue
        state = newest(folder)
        unreadable = state is None and any((folder / name).exists() for name in (NAME, PREVIOUS))
        evaluations = _evaluations(state.get("extra", "")) if state else {}
        last = max(evaluations, default=None)
        found.append(Unfinished(**run, step=int(state["step"]) if state else None, evaluated_at=last,
                                evaluated=evaluations.get(last, {}), failed=failed.get(run["run_id"]),
                                unreadable=unreadable))
    return sorted(found, key=lambda u: (u.label, u.dataset, u.seed, u.run_id))


def _evaluations(extra: str) -> dict[int, dict[str, float | None]]:
    """step -> {metric: value} from the evaluation rows a run keeps in its checkpoint ({} if none)."""
    try:
        rows = json.loads(extra) if extra else []
    except ValueError:
        return {}
    steps: dict[int, dict[str, float | None]] = {}
    for r in rows if isinstance(rows, list) else []:
        if isinstance(r, dict) and "step" in r and "metric" in r:
            steps.setdefault(int(r["step"]), {})[r["metric"]] = r.get("value")
    return steps
