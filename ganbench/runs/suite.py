"""A suite: validate every run before any work starts, then run them (here, on a process pool or on
Ray) and append each run's rows as it finishes; runs already in the results folder are skipped.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ganbench import distributed
from ganbench.checkpoint import NAME, PREVIOUS
from ganbench.config import RunConfig, Suite, config_diff
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.evaluate import preflight, resolve_metrics
from ganbench.features import FEATURES
from ganbench.losses import LOSSES
from ganbench.metrics import METRICS
from ganbench.models import MODELS
from ganbench.results.store import finished_run_ids
from ganbench.runs import pool, ray
from ganbench.runs.one import Outcome, RunOptions, check_models, record, run_guarded
from ganbench.runs.pool import Executor
from ganbench.runs.tensorboard import require as require_tensorboard


def _named_parts(cfg: RunConfig):
    """The registered model, loss and dataset class a config names, in that order: a UserError
    naming the first unknown one. Looks at no data or weights."""
    return MODELS[cfg.model], LOSSES[cfg.loss], DATASETS[cfg.dataset]


def warn_names(suite: Suite, part: Suite) -> None:
    """The model, loss, dataset and metric names of the settings of ``suite`` that ``part`` (its
    ``--setting`` selection) leaves out: an unknown one is a warning on stderr, one line per setting
    (``validate_suite`` refuses bad names in the part itself). A typo elsewhere in the file shows up
    before that part is run, while a part that needs no plug-in still runs without it."""
    chosen = {label for label, _ in part.settings}
    warned = set()
    for label, cfg in suite.settings:
        if label in chosen or label in warned:
            continue
        try:
            _named_parts(cfg), [METRICS[m] for m in cfg.metrics]
        except UserError as e:
            warned.add(label)
            print(f"ganbench: warning: {suite.path or suite.name}: setting {label!r}, which --setting leaves out: {e}; "
                  "a plug-in's names need its --plugin", file=sys.stderr)


def validate_suite(suite: Suite) -> None:
    """Resolve every name of every run and check that each model fits its dataset before any work
    starts: any mistake raises a UserError while nothing has been trained or written."""
    computed = {}  # (label, dataset) -> names of the metrics the setting computes
    for label, cfg in suite.settings:
        dataset = _named_parts(cfg)[2](cfg)
        check_models(cfg, dataset)
        metrics = resolve_metrics(cfg.metrics, dataset)
        for m in metrics:
            FEATURES[m.features]
        preflight(metrics, dataset, cfg)
        computed[(label, cfg.dataset)] = {m.name for m in metrics}
    for pub in suite.published:  # a paper's numbers name metrics the setting computes
        names = computed.get((pub.setting, pub.dataset))
        if names is None:  # a part of the suite (--setting) without this setting
            continue
        for metric, _, _ in pub.values:
            if metric not in names:
                raise UserError(f"{suite.path or suite.name}: published row {pub.source!r} gives metric {metric!r}, "
                                f"which setting {pub.setting!r} does not compute ({', '.join(sorted(names))})")


def _describe(o: Outcome) -> str:
    if o.status != "ok":
        return f"{o.status}: {o.reason}"
    return " ".join(f"{k} {v:.4g}" for k, v in o.values.items()) + f"  ({o.seconds:.1f} s)"


def check_resume(suite: Suite, out: Path, done: set[str]) -> None:
    """Refuse to resume when an unfinished run of the same setting and seed has another config."""
    planned = {(label, cfg.dataset, cfg.seed): cfg for label, cfg in suite.runs()}
    for path in sorted((Path(out) / "runs").glob("*/config.json")):
        if path.parent.name in done or not (path.parent / NAME).exists():
            continue
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            key = (old.get("label"), old["config"].get("dataset"), old["config"].get("seed"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"--resume: {path} is unreadable or corrupt ({type(e).__name__}), so its checkpoint "
                            f"cannot be checked against the suite; move {path.parent} away to start that run "
                            f"afresh") from None
        new = planned.get(key)
        if old.get("suite") != suite.name or new is None or new.run_id == path.parent.name:
            continue
        diff = config_diff(old["config"], new.to_dict())
        if diff:  # the same config under another id (an older scheme) is no conflict
            raise UserError(f"--resume: run {path.parent.name} ({key[0]}, {key[1]}, seed {key[2]}) was started "
                            f"with another config: {'; '.join(diff)}")


def run_order(todo: list[tuple[str, RunConfig]], suite: Suite, out: Path,
              resume: bool = False) -> list[tuple[str, RunConfig]]:
    """The order runs start in: breadth first, every setting's first seed before any setting's
    second (settings in the suite's order within a seed), so a long suite stopped part way has
    covered every setting it reached. With ``resume``, runs that have a checkpoint in ``out`` go
    before them all: a resumed suite finishes what it started before it starts anything new.
    (Without it those checkpoints are discarded, and the order depends on the suite alone, the same
    on every torchrun rank.)"""
    rank = {s: i for i, s in enumerate(suite.seeds)}
    runs = Path(out) / "runs"

    def fresh(cfg: RunConfig) -> bool:
        return not (resume and any((runs / cfg.run_id / name).is_file() for name in (NAME, PREVIOUS)))

    return sorted(todo, key=lambda run: (fresh(run[1]), rank.get(run[1].seed, len(rank))))


def run_suite(suite: Suite, out: Path, device: torch.device, progress: bool = True,
              options: RunOptions = RunOptions(), executor: Executor | None = None) -> list[Outcome]:
    """Run every (setting, seed) of ``suite`` into ``out``: one after another, or on ``executor``
    (a ``ganbench.runs.pool.Executor``: a local process pool or Ray).

    Whatever runs them, this process alone appends the rows, each run's in one write as it
    finishes; a run that raises is recorded as failed and the others go on.
    """
    validate_suite(suite)
    if options.tensorboard:
        require_tensorboard()
    done = distributed.broadcast_object(finished_run_ids(out))  # under torchrun every rank skips the same runs
    if options.resume:
        check_resume(suite, out, done)
    runs = suite.runs()
    outcomes = [Outcome(label, cfg, "skipped", {}, "already in results") for label, cfg in runs if cfg.run_id in done]
    todo = run_order([(label, cfg) for label, cfg in runs if cfg.run_id not in done], suite, out, options.resume)
    if executor is not None and executor.kind == "ray":
        results = ray.run_ray(todo, suite.name, out, device, executor, options)
    elif executor is not None and executor.parallel:
        results = pool.run_parallel(todo, suite.name, out, device, executor, options)
    else:
        results = (run_guarded(label, cfg, suite.name, out, device, options, progress=progress)
                   for label, cfg in todo)
    bar = tqdm(total=len(runs), initial=len(outcomes), desc=f"suite {suite.name}", unit="run",
               disable=None if progress else True)
    with contextlib.closing(iter(results)) as it:  # closing stops the workers if this loop raises
        for o in it:
            record(out, o)
            outcomes.append(o)
            bar.update()
            if progress:
                tqdm.write(f"[{len(outcomes)}/{len(runs)}] {o.label} {o.config.dataset} seed {o.config.seed}: "
                           f"{_describe(o)}")
    bar.close()
    return outcomes


