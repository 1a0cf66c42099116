"""One run: train and evaluate a config, write its folder, and return (or append) its rows.

Each run's rows are appended in one write after the run ends, so ``results.jsonl`` only ever holds
complete runs. ``evaluate_samples`` does the same for samples made elsewhere.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ganbench import distributed
from ganbench.checkpoint import NAME, PREVIOUS, Checkpointer
from ganbench.config import RunConfig, digest
from ganbench.data import DATASETS
from ganbench.data.checks import check_output
from ganbench.errors import UserError, one_line
from ganbench.evaluate import (
    NonFiniteSamples,
    compute_metrics,
    generate,
    generated_labels,
    needs_labels,
    protocol,
    protocol_id,
    resolve_metrics,
    samples_needed,
    translate,
)
from ganbench.features import FEATURES
from ganbench.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ganbench.losses import LOSSES
from ganbench.models import MODELS, check_options, check_pairing, is_conditional, is_translator
from ganbench.monitor import stability
from ganbench.results.plots import GRID, grid_png, scatter_2d, translation_grid
from ganbench.results.rows import SCHEMA, Row
from ganbench.results.store import append_rows, environment
from ganbench.runs.tensorboard import TensorBoardLogger
from ganbench.runs.tensorboard import log_dir as tb_dir
from ganbench.samples import save_generator
from ganbench.steps import step_of
from ganbench.steps.unrolled import check_discriminator
from ganbench.train import check_batch_norm_options, train


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out, beyond its config (none of it changes a result)."""

    resume: bool = False  # continue from the run folder's checkpoint if it has one
    checkpoint_every: int = 0  # steps between checkpoints (0: a tenth of the run)
    tensorboard: bool = False  # also log history, metrics and samples under OUT/tensorboard/


@dataclass
class Outcome:
    label: str
    config: RunConfig
    status: str  # "ok", "diverged", "failed" (the run raised) or "skipped" (already in the results folder)
    values: dict[str, float | None]
    reason: str | None = None
    seconds: float = 0.0
    rows: list[dict] = field(default_factory=list, repr=False)  # what goes to results.jsonl


def check_models(cfg: RunConfig, dataset) -> None:
    """Build the setting's generator and discriminator and pass a batch of two through them.

    The pair is built on the meta device (shapes only: no memory, no arithmetic, no random numbers
    drawn), so a full-width model costs milliseconds. A model that cannot run on the meta device
    (say, one that reads values in its forward) is probed on the CPU instead.
    """
    where = f"model {cfg.model!r} on dataset {cfg.dataset!r}"
    check_options(cfg)
    try:
        _probe(cfg, dataset, torch.device("meta"))
    except UserError:
        raise
    except Exception as meta_error:
        if _parameters_on_meta(cfg, dataset) > CPU_PROBE_LIMIT:  # too big to try for real: report as is
            raise UserError(f"{where}: the model fails on this data ({one_line(meta_error)})") from None
        try:
            with torch.random.fork_rng(devices=[]):  # the probe leaves the global generator alone
                _probe(cfg, dataset, torch.device("cpu"))
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{where}: the model fails on this data ({one_line(e)})") from None


CPU_PROBE_LIMIT = 50_000_000  # parameters; larger models are only probed on the meta device


def _parameters_on_meta(cfg: RunConfig, dataset) -> int:
    """Parameters of the setting's two networks, counted without allocating them (0 if they cannot be built)."""
    try:
        with torch.device("meta"):
            g, d = MODELS[cfg.model](cfg, dataset)
        return sum(p.numel() for m in (g, d) for p in m.parameters())
    except Exception:  # noqa: BLE001 - the probe's own error is what gets reported
        return 0


def _probe(cfg: RunConfig, dataset, device: torch.device) -> None:
    with device:
        g, d = MODELS[cfg.model](cfg, dataset)
        check_pairing(g, cfg, dataset)
        cond = is_conditional(g)
        if cond and not dataset.num_classes:
            raise UserError(f"model {cfg.model!r} is class-conditional but dataset {cfg.dataset!r} has no labels")
        wanting = [m for m in needs_labels(resolve_metrics(cfg.metrics, dataset))
                   if FEATURES[m.features].mismatch(dataset) is None]  # (the others fail on the dataset itself)
        if wanting and not cond:
            raise UserError(f"metric {wanting[0].name!r} needs class-labelled samples; model {cfg.model!r} is not "
                            f"class-conditional (use a conditional model such as cdcgan)")
        step_of(cfg).check(cfg, LOSSES[cfg.loss], cond)
        check_discriminator(cfg, d)
        check_batch_norm_options(cfg, g)
        g.eval()
        d.eval()
        with torch.no_grad():
            n = 2 * cfg.pack  # a packed discriminator judges 2 packs
            z = torch.zeros(n, *dataset.shape) if is_translator(g) else torch.zeros(n, cfg.z_dim)
            y = torch.zeros(n, dtype=torch.long) if cond else None
            x = g(z, y) if cond else g(z)
            if is_translator(g):
                g.ba(z)
            # the value range is checked on real numbers when training starts
            check_output(x, tuple(dataset.shape), bounded=False, where=f"model {cfg.model!r} generator")
            logits = d(x, y) if cond else d(x)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2,):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise UserError(f"model {cfg.model!r} discriminator: output has shape {got}, expected (N,) logits")


def _rows(label: str, suite: str, cfg: RunConfig, step: int, final: bool, values: dict, status: str,
          reason: str | None, env: dict, metrics, extra: dict | None = None, run_id: str | None = None,
          dataset=None) -> list[dict]:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = []
    for m in metrics:
        p = protocol(m, cfg.eval_seed, dataset, cfg)
        rows.append(Row(
            schema=SCHEMA, suite=suite, label=label, run_id=run_id or cfg.run_id, group_id=cfg.group_id,
            model=cfg.model, loss=cfg.loss, dataset=cfg.dataset, seed=cfg.seed, step=step, final=final,
            metric=m.name, value=values.get(m.name), higher_is_better=m.higher_is_better, status=status,
            reason=reason, protocol=p, protocol_id=protocol_id(p), config=cfg.to_dict(), env=env, time=now,
            **(extra or {}),
        ).to_dict())
    return rows


def _history_csv(history: list[dict]) -> str:
    buf = io.StringIO()
    if history:
        w = csv.DictWriter(buf, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    return buf.getvalue()


def run_one(label: str, cfg: RunConfig, suite: str, out: Path, device: torch.device,
            options: RunOptions = RunOptions(), progress: bool = True, append: bool = True) -> Outcome:
    """Train and evaluate one run, as ``options`` say (resume, checkpoints, TensorBoard).

    Without ``append`` the rows are only returned (in ``Outcome.rows``), for the caller to ``record``.
    """
    run_dir = Path(out) / "runs" / cfg.run_id
    if not options.resume:  # a fresh start: an unfinished earlier attempt is not continued
        for name in (NAME, PREVIOUS):
            (run_dir / name).unlink(missing_ok=True)
    atomic_write_json(run_dir / "config.json", {
        "run_id": cfg.run_id, "group_id": cfg.group_id, "label": label, "suite": suite, "config": cfg.to_dict(),
    })
    dataset = DATASETS[cfg.dataset](cfg)
    metrics = resolve_metrics(cfg.metrics, dataset)
    translating = bool(getattr(dataset, "translation", False))
    n_eval = len(dataset.test_a) + len(dataset.test_b) if translating else samples_needed(metrics, dataset, cfg)
    env = environment(device)
    rows: list[dict] = []
    tb = TensorBoardLogger(tb_dir(out, label, cfg.dataset, cfg.seed)) if options.tensorboard else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    details: dict = {}
    during = [m for m in metrics if not m.final_only]  # what the evaluations during training compute
    first = (during or metrics)[0]  # the metric whose curve the stability summary and the monitor read

    def evaluate_at(step: int, g, which=metrics) -> tuple[dict, str, str | None, torch.Tensor]:
        labels = None
        if translating:
            samples = translate(g.ab, g.ba, dataset, cfg.eval_seed, device)
        else:
            n = n_eval if which is metrics else samples_needed(which, dataset, cfg)
            samples = generate(g, n, cfg.z_dim, cfg.eval_seed, device, num_classes=dataset.num_classes,
                               bn_batch=cfg.eval_bn_batch)
            labels = generated_labels(n, dataset.num_classes) if is_conditional(g) else None
        details.clear()
        try:
            return compute_metrics(samples, dataset, which, labels, cfg, details), "ok", None, samples
        except NonFiniteSamples as e:
            return {}, "diverged", f"non-finite samples at step {step}: {e}", samples

    def on_eval(step: int, g) -> tuple[float | None, bool] | None:
        if not during:  # every metric is computed at the end only
            return None
        values, status, reason, samples = evaluate_at(step, g, during)
        rows.extend(_rows(label, suite, cfg, step, False, values, status, reason, env, during, dataset=dataset))
        if tb is not None:
            tb.metrics(step, values)
            tb.samples(step, translation_grid(samples, dataset) if translating else samples, dataset)
        return values.get(first.name), first.higher_is_better

    def on_log(row: dict) -> None:
        bar.set_postfix(d_loss=f"{row['d_loss']:.3g}", g_loss=f"{row['g_loss']:.3g}", refresh=False)
        if tb is not None:
            tb.history(row)

    def set_rows(text: str) -> None:
        rows[:] = json.loads(text) if text else []

    every = options.checkpoint_every or max(cfg.steps // 10, 1)
    bar = tqdm(total=cfg.steps, desc=f"{label} {cfg.dataset} seed {cfg.seed}", leave=False, disable=None if progress else True)
    result = train(cfg, dataset, device, on_eval=on_eval, on_step=lambda s: bar.update(s - bar.n),
                   checkpoint=Checkpointer(run_dir, every), extra_state=(lambda: json.dumps(rows), set_rows),
                   on_log=on_log)
    bar.close()

    t0 = time.perf_counter()
    if result.diverged and cfg.divergence == "stop":
        values, status, reason = {}, "diverged", result.diverged
    else:  # finished, or went on past a detected divergence (recorded as a warning)
        values, status, reason, samples = evaluate_at(result.steps_done, result.generator)
        reason = reason or (f"warning: {result.diverged}" if result.diverged else None)
        if translating:
            samples = translation_grid(samples, dataset)  # input -> translation -> reconstruction, both ways
            if status == "ok":
                atomic_write_bytes(run_dir / "samples.png", grid_png(samples))
        elif hasattr(dataset, "means") and status == "ok":
            scatter_2d(samples[:2500], dataset, run_dir / "samples.png", f"{label} · {cfg.dataset} · seed {cfg.seed}")
        elif status == "ok" and samples.dim() == 4:  # the report shows this grid (the evaluation's first latents)
            atomic_write_bytes(run_dir / "samples.png", grid_png(samples[:GRID]))
    eval_seconds = time.perf_counter() - t0
    timing = throughput(result, cfg, device, eval_seconds, n_eval if status == "ok" else 0)
    curve = [(r["step"], r["value"]) for r in rows if r["metric"] == first.name] + [(result.steps_done, values.get(first.name))]
    stable = {"metric": first.name, **stability(curve, first.higher_is_better)}
    if tb is not None:
        tb.metrics(result.steps_done, values)
        if status == "ok":
            tb.samples(result.steps_done, samples, dataset)
        tb.close()
    rows.extend(_rows(label, suite, cfg, result.steps_done, True, values, status, reason, env, metrics,
                      {"timing": timing, "stability": stable}, dataset=dataset))
    if status == "ok":
        save_generator(run_dir / "generator.pt", result.generator, cfg, result.steps_done)
        write_details(run_dir, details)
    atomic_write_text(run_dir / "history.csv", _history_csv(result.history))
    atomic_write_json(run_dir / "summary.json", {"status": status, "reason": reason, "values": values, **timing,
                                                  "stability": stable})
    outcome = Outcome(label, cfg, status, values, reason, result.train_seconds + eval_seconds, rows)
    if append:
        record(out, outcome)
    return outcome


DETAILS = "classification.json"  # per-seed and per-class results of the classification metrics


def write_details(run_dir: Path, details: dict) -> None:
    """The final evaluation's per-seed and per-class results (``compute_metrics``' ``details``)."""
    if details.get("labelled"):
        atomic_write_json(run_dir / DETAILS, details["labelled"])


def record(out: Path, o: Outcome) -> None:
    """Append a run's rows in one write; a run that is in the results needs no checkpoint any more
    (``generator.pt`` stays). A failed run keeps its checkpoints, so ``--resume`` can continue it."""
    append_rows(out, o.rows)
    if o.status != "failed":
        for name in (NAME, PREVIOUS):
            (Path(out) / "runs" / o.config.run_id / name).unlink(missing_ok=True)


def failed(label: str, cfg: RunConfig, suite: str, device: torch.device, reason: str) -> Outcome:
    """A run that raised: one non-final row per metric with status "failed" and the reason.

    Non-final, so tables ignore it and a later run of the suite (or ``--resume``) tries it again.
    """
    try:
        metrics = resolve_metrics(cfg.metrics, DATASETS[cfg.dataset](cfg))
    except Exception:  # noqa: BLE001 - the failure itself is what gets reported
        metrics = []
    rows = _rows(label, suite, cfg, 0, False, {}, "failed", reason, environment(device), metrics)
    return Outcome(label, cfg, "failed", {}, reason, 0.0, rows)


def run_guarded(label: str, cfg: RunConfig, suite: str, out: Path, device: torch.device,
                options: RunOptions = RunOptions(), progress: bool = True) -> Outcome:
    """``run_one`` without appending; an exception other than a UserError becomes a failed outcome.

    A UserError is a mistake in the suite or its inputs and stops the whole suite (exit code 2).
    """
    try:
        return run_one(label, cfg, suite, out, device, options, progress=progress, append=False)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any bug in a model or plug-in fails this run only
        if distributed.active():  # the other ranks are inside this run's collectives: stop them all
            raise
        return failed(label, cfg, suite, device, one_line(e))


def throughput(result, cfg: RunConfig, device: torch.device, eval_seconds: float, n_eval: int) -> dict:
    """Speed and memory of one run: images/s, step-time percentiles, evaluation, peak memory, sizes.

    Step times are the per-step means of the history's logging intervals (about 100 per run).
    Peak memory is CUDA's maximum allocated memory on a GPU, else the process's peak resident set
    (a high-water mark since the process started).
    """
    import numpy as np

    steps = np.array([r["step_time"] for r in result.history], dtype=np.float64)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "steps_done": result.steps_done,
        "train_seconds": result.train_seconds,
        "samples_per_s": result.steps_done * cfg.batch_size / max(result.train_seconds, 1e-9),
        "step_time_median": float(np.median(steps)) if len(steps) else None,
        "step_time_p90": float(np.percentile(steps, 90)) if len(steps) else None,
        "checkpoint_seconds": result.checkpoint_seconds,
        "eval_seconds": eval_seconds,
        "eval_samples_per_s": n_eval / eval_seconds if n_eval and eval_seconds > 0 else None,
        "peak_memory_mb": peak,
        "g_params": count(result.generator),
        "d_params": count(result.discriminator),
    }


def evaluate_samples(samples: torch.Tensor, cfg: RunConfig, label: str, source: dict, out: Path, device: torch.device,
                     step: int = 0, labels: torch.Tensor | None = None) -> Outcome:
    """Evaluate samples made elsewhere (or by a loaded generator) and append the same rows as a run.

    The run id hashes the config with the source's content hash, so re-evaluating the same file
    under the same protocol is recognised, and a changed file is a new run.
    """
    dataset = DATASETS[cfg.dataset](cfg)
    metrics = resolve_metrics(cfg.metrics, dataset)
    run_id = digest({"config": cfg.identity(), "source": source.get("sha256", "")})
    t0 = time.perf_counter()
    details: dict = {}
    try:
        values, status, reason = compute_metrics(samples, dataset, metrics, labels, cfg, details), "ok", None
    except NonFiniteSamples as e:
        raise UserError(f"{source.get('path', label)}: {e}") from None
    seconds = time.perf_counter() - t0
    env = environment(device)
    rows = _rows(label, "eval", cfg, step, True, values, status, reason, env, metrics,
                 {"source": source, "timing": {"eval_seconds": seconds}}, run_id=run_id, dataset=dataset)
    run_dir = Path(out) / "runs" / run_id
    atomic_write_json(run_dir / "config.json", {"run_id": run_id, "label": label, "source": source, "config": cfg.to_dict()})
    write_details(run_dir, details)
    if getattr(dataset, "translation", False):
        atomic_write_bytes(run_dir / "samples.png", grid_png(translation_grid(samples, dataset)))
    elif hasattr(dataset, "means"):
        scatter_2d(samples[:2500], dataset, run_dir / "samples.png", f"{label} · {cfg.dataset}")
    elif samples.dim() == 4:
        atomic_write_bytes(run_dir / "samples.png", grid_png(samples[:GRID]))
    append_rows(out, rows)
    return Outcome(label, cfg, status, values, reason, seconds)
