"""Command line: argument parsing and printing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from ganbench import distributed
from ganbench.config import (
    available_suites,
    load_suite,
    parse_overrides,
    select_settings,
    single_setting_suite,
)
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.features import FEATURES
from ganbench.features.inception import ENV_WEIGHTS
from ganbench.features.weights import set_from_command_line
from ganbench.io import check_output_folder
from ganbench.losses import LOSSES
from ganbench.metrics import METRICS
from ganbench.metrics.base import TRAIN_SPLIT
from ganbench.models import MODELS
from ganbench.plugins import load_entry_points, load_plugin
from ganbench.results.check import check, load_baseline, write_baseline
from ganbench.results.formats import FORMATS
from ganbench.results.report import REPORT_FORMATS, write_report
from ganbench.results.significance import TESTS
from ganbench.results.progress import unfinished_runs
from ganbench.results.store import RESULTS, finished_run_ids, frame, load_results, load_rows
from ganbench.results.tables import render, render_published
from ganbench.runs.one import RunOptions, evaluate_samples
from ganbench.runs.pool import ENV_JOBS, Executor, auto_jobs
from ganbench.runs.ray import require_ray
from ganbench.runs.suite import run_suite, validate_suite, warn_names
from ganbench.runs.tensorboard import require as require_tensorboard
from ganbench.runs.torchrun import check_suite
from ganbench.samples import check_eval_overrides, load_source
from ganbench.seeding import resolve_device, set_deterministic
from ganbench.steps import STEPS

DEFAULT_OUT = "ganbench-results"
LISTS = ("models", "losses", "datasets", "metrics", "features", "steps", "formats", "tests", "reports", "suites")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seeds(text: str) -> list[int]:
    """``0,1,2`` or ``0-4`` (inclusive) or a mix."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
            if dash and int(hi) < int(lo):
                raise argparse.ArgumentTypeError(f"empty seed range {part.strip()!r} (write lo-hi with lo <= hi)")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2 or 0-4, got {text!r}") from None
    if twice := sorted(s for s, n in collections.Counter(seeds).items() if n > 1):
        raise argparse.ArgumentTypeError(f"seed {twice[0]} given twice in {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ganbench", description="Reproducible GAN baselines, metrics and comparison tables.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="train and evaluate a suite (default: quick) or one setting over seeds")
    r.add_argument("--suite", help="suite name (see `ganbench list suites`) or a .toml file; default: quick")
    r.add_argument("--model", help="single setting: model name")
    r.add_argument("--loss", help="single setting: loss name")
    r.add_argument("--dataset", help="single setting: dataset name")
    r.add_argument("--seeds", type=_seeds, help="seeds, e.g. 0,1,2 or 0-4 (overrides the suite's)")
    r.add_argument("--setting", action="append", default=[], metavar="LABEL",
                   help="run only the suite's settings of this label (repeatable), e.g. one part of a long suite")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field for every run, parsed by its type (repeatable)")
    r.add_argument("--out", default=DEFAULT_OUT, help=f"results folder (default: ./{DEFAULT_OUT})")
    r.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    r.add_argument("--no-progress", action="store_true", help="no progress bars or per-run lines")
    r.add_argument("--resume", action="store_true", help="continue unfinished runs of --out from their checkpoints")
    r.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local (default: this machine) or ray (one Ray task per run; pip install 'ganbench[ray]')")
    r.add_argument("--jobs", metavar="N|auto",
                   help=f"local executor: runs at once, each in its own process; 1: one after another in this "
                        f"process (default: ${ENV_JOBS}, else auto: on the CPU one thread, or --threads, per run and "
                        f"as many runs as the cores hold; on a GPU 1)")
    r.add_argument("--ray-address", metavar="HOST:PORT",
                   help="ray executor: an existing cluster (default: $RAY_ADDRESS, else a new local Ray)")
    r.add_argument("--threads", type=int, default=0, metavar="T",
                   help="torch threads per run (default: cores / jobs, all of them with --jobs 1; 1 per Ray task); "
                        "on the CPU the same T gives the same numbers on every executor")
    r.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="save a checkpoint every N steps (default: a tenth of each run)")
    r.add_argument("--tensorboard", action="store_true",
                   help="also log history, metrics and samples for TensorBoard under OUT/tensorboard/")
    r.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                   help="import a plug-in that registers models, losses, datasets or metrics (repeatable)")
    r.add_argument("--inception-weights", metavar="FILE",
                   help="InceptionV3 weights for fid/is/kid (default: $GANBENCH_INCEPTION_WEIGHTS, torch hub's cache)")
    r.add_argument("--weights", action="append", default=[], metavar="NET=FILE",
                   help="weights of a feature network: dinov2, clip or cmmd (repeatable; default: "
                        "$GANBENCH_<NET>_WEIGHTS, torch hub's cache)")

    e = sub.add_parser("eval", help="evaluate a generator or samples made elsewhere, without training")
    e.add_argument("--dataset", required=True, help="reference dataset (decides the metrics and the expected shape)")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--generator", metavar="CKPT|FILE.py:NAME",
                     help="a ganbench generator checkpoint, a TorchScript file, or a Python callable z -> samples "
                          "(on a translation dataset: NAME() returns a translator or a pair (A->B, B->A))")
    src.add_argument("--samples", metavar="DIR|FILE.npz",
                     help="a folder of images or an .npz array of samples (on a translation dataset: translations "
                          "in the order of the test split, arrays ab and ba)")
    e.add_argument("--z-dim", type=int, help="latent size, for TorchScript files and callables")
    e.add_argument("--metrics", help="comma-separated metrics (default: the dataset's)")
    e.add_argument("--name", help="label in tables (default: the file name)")
    e.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config fields that shape the data or the evaluation (resolution, channels, data_path, "
                        "eval_seed, eval_samples, eval_bn_batch, metrics, and those a metric reads: tail_ratio), "
                        "and seed, the training seed the rows record; other training fields are refused")
    e.add_argument("--out", default=DEFAULT_OUT, help=f"results folder (default: ./{DEFAULT_OUT})")
    e.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    e.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE", help="import a plug-in (repeatable)")
    e.add_argument("--inception-weights", metavar="FILE",
                   help="InceptionV3 weights for fid/is/kid (default: $GANBENCH_INCEPTION_WEIGHTS, torch hub's cache)")
    e.add_argument("--weights", action="append", default=[], metavar="NET=FILE",
                   help="weights of a feature network: dinov2, clip or cmmd (repeatable; default: "
                        "$GANBENCH_<NET>_WEIGHTS, torch hub's cache)")

    t = sub.add_parser("table", help="print the comparison table of a results folder")
    t.add_argument("dir", help="results folder")
    t.add_argument("--format", default="md",
                   help="md (default), csv (one line per setting x metric), latex, html, or a plug-in's "
                        "(`ganbench list formats`)")
    t.add_argument("--baseline", metavar="LABEL",
                   help="test every setting against this one over seeds (a label, or a model with one setting)")
    t.add_argument("--metric", action="append", default=[], metavar="NAME", help="only this metric (repeatable)")
    t.add_argument("--test",
                   help="significance test against --baseline: welch (default), mannwhitney, or a plug-in's "
                        "(`ganbench list tests`)")
    t.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                   help="import a plug-in (repeatable): its table formats and significance tests")
    t.add_argument("--published", action="store_true",
                   help="the published numbers of the folder's paper-... suites beside ganbench's, with verdicts")

    rp = sub.add_parser("report", help="write an HTML (or Markdown) report: tables, plots, samples, provenance")
    rp.add_argument("dir", help="results folder")
    rp.add_argument("-o", "--output", default="report.html", metavar="FILE",
                    help="report file (default: report.html); a .md file gives the Markdown variant")
    rp.add_argument("--format", help="html or md, or a plug-in's (default: from the file name)")
    rp.add_argument("--baseline", metavar="LABEL", help="test every setting against this one (see `table`)")
    rp.add_argument("--title", default="ganbench report", help="heading of the report")
    rp.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                    help="import a plug-in (repeatable): its report formats, table formats and tests")
    rp.add_argument("--note", action="append", default=[], metavar="TEXT",
                    help="a paragraph under the heading, e.g. the scale the suite ran at (repeatable)")

    c = sub.add_parser("check", help="compare a results folder with a baseline file (exit 1 on a regression)")
    c.add_argument("dir", help="results folder")
    cg = c.add_mutually_exclusive_group(required=True)
    cg.add_argument("--baseline", metavar="FILE.json", help="baseline to compare with")
    cg.add_argument("--update", metavar="FILE.json", help="write the folder's results as a new baseline")
    c.add_argument("--alpha", type=float, default=0.01,
                   help="family-wise false-alarm rate over all the comparisons (default 0.01)")

    ls = sub.add_parser("list", help="list registered models, losses, datasets, metrics or suites")
    ls.add_argument("what", choices=LISTS)
    ls.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE", help="import a plug-in (repeatable)")
    return p


def _suite_from_args(args):
    overrides = parse_overrides(args.overrides)
    single = {k: getattr(args, k) for k in ("model", "loss", "dataset") if getattr(args, k)}
    if single and args.suite:
        raise UserError("give either --suite or --model/--loss/--dataset, not both")
    if single:
        if args.setting:
            raise UserError("--setting selects settings of a suite; it takes no --model/--loss/--dataset")
        return single_setting_suite({**single, **overrides}, args.seeds or [0])
    suite = load_suite(args.suite or "quick", overrides, args.seeds)
    part = select_settings(suite, args.setting)
    warn_names(suite, part)  # a typo in a setting that --setting leaves out: a warning
    return part


@contextlib.contextmanager
def terminate_as_exit():
    """SIGTERM (``kill``, a batch scheduler's stop) raises SystemExit instead of ending the process on
    the spot, so a process pool or Ray stops its workers on the way out rather than leaving them
    training into the results folder; the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _jobs(args, device: torch.device, runs: int) -> tuple[int, int]:
    """(processes, torch threads per run; 0: the executor's default) from ``--jobs N``, else
    ``$GANBENCH_JOBS``, else auto.

    Auto on the CPU gives every run ``--threads`` threads, 1 by default, and as many processes as
    the cores hold, at most one per run (``pool.auto_jobs``): a run's thread count, and with it a
    convolution's last bits, then depends neither on the machine's cores nor on how many runs the
    command holds. On a GPU, under Ray and under torchrun auto is 1."""
    one_process = args.executor == "ray" or distributed.launched()  # Ray schedules its tasks; torchrun shares one run
    if args.jobs is None and one_process:
        return 1, args.threads  # the variable is for the local executor
    text, name = (args.jobs, "--jobs") if args.jobs is not None else (os.environ.get(ENV_JOBS) or "auto", ENV_JOBS)
    if text.strip().lower() == "auto":
        if one_process or device.type != "cpu":
            return 1, args.threads
        threads = args.threads or 1
        return auto_jobs(device, runs, threads), threads
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise UserError(f"{name} must be a number of processes (>= 1) or auto, got {text!r}")
    return jobs, args.threads


def cmd_run(args) -> int:
    suite = _suite_from_args(args)
    device = resolve_device(args.device)
    jobs, threads = _jobs(args, device, len(suite.runs()))
    executor = Executor(args.executor, jobs, args.ray_address, args.device, threads, tuple(args.plugin))
    if executor.kind == "ray":
        require_ray()
    validate_suite(suite)  # every name resolved before anything is printed or written
    if args.checkpoint_every < 0:
        raise UserError(f"--checkpoint-every must be >= 0 (0: a tenth of each run), got {args.checkpoint_every}")
    if args.tensorboard:
        require_tensorboard()
    out = Path(args.out)
    check_output_folder(out)
    if threads and not executor.parallel:  # a pool or Ray sets each worker's threads itself
        torch.set_num_threads(threads)
    if distributed.launched():  # under torchrun: one data-parallel run at a time over all processes
        if executor.parallel or args.resume:
            raise UserError("under torchrun every process trains the same run: --jobs, --executor ray and --resume "
                            "are not available")
        check_suite(suite)
        device = distributed.init(device)
        if not distributed.is_main():  # rank 0 writes the results; the others write to a scratch folder
            with tempfile.TemporaryDirectory(prefix=f"ganbench-rank{distributed.rank()}-") as scratch:
                set_deterministic(device)
                outcomes = run_suite(suite, Path(scratch), device, progress=False,
                                     options=RunOptions(checkpoint_every=args.checkpoint_every))
            return 1 if any(o.status == "failed" for o in outcomes) else 0
    set_deterministic(device)
    n = len(suite.runs())
    if executor.kind == "ray":
        where = "Ray"
    elif executor.parallel:  # the pool starts no more processes than this suite has runs left
        left = {c.run_id for _, c in suite.runs()} - finished_run_ids(out)
        procs, each = min(executor.jobs, max(1, len(left))), executor.threads_per_run
        where = f"{device}, {procs} process{'es' * (procs > 1)} ({each} torch thread{'s' * (each > 1)} each)"
    else:
        where = f"{device} ({torch.get_num_threads()} torch thread{'s' * (torch.get_num_threads() > 1)})"
    print(f"suite {suite.name}: {len(suite.settings)} settings x {len(suite.seeds)} seeds = {n} runs on {where} -> {out}")
    start = time.perf_counter()
    with terminate_as_exit():
        options = RunOptions(resume=args.resume, checkpoint_every=args.checkpoint_every, tensorboard=args.tensorboard)
        outcomes = run_suite(suite, out, device, progress=not args.no_progress, options=options, executor=executor)
    skipped = sum(o.status == "skipped" for o in outcomes)
    diverged = sum(o.status == "diverged" for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    print(f"done in {time.perf_counter() - start:.1f} s: {n - skipped} runs, {skipped} already in {out}, {diverged} diverged"
          + (f", {len(failed)} failed" if failed else "") + "\n")
    for o in failed:
        print(f"failed: {o.label} {o.config.dataset} seed {o.config.seed} ({o.config.run_id}): {o.reason}")
    df = load_results(out)
    mine = df[df["run_id"].isin({o.config.run_id for o in outcomes})] if len(df) else df
    if len(mine) and mine["final"].astype(bool).any():  # failed runs have no final rows
        print(("\n" if failed else "") + render(mine, "md"))
    return 1 if failed else 0


def cmd_eval(args) -> int:
    device = resolve_device(args.device)
    values = parse_overrides(args.overrides)
    check_eval_overrides(values)
    values["dataset"] = args.dataset
    if args.metrics is not None:
        values["metrics"] = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
        if not values["metrics"]:
            raise UserError(f"--metrics {args.metrics!r} names no metric (`ganbench list metrics`); "
                            f"leave it out for the dataset's")
    DATASETS[args.dataset]  # unknown dataset: error before any loading
    check_output_folder(Path(args.out))
    if (Path(args.out) / RESULTS).is_file():
        load_rows(Path(args.out))  # rows appended after a corrupt line would be unreadable too: refused first
    if args.name is not None and not args.name.strip():
        raise UserError("--name is empty; give the label the table should show")
    samples, cfg, label, source, step, labels = load_source(values, device, args.generator, args.samples, args.z_dim)
    o = evaluate_samples(samples, cfg, args.name or label, source, Path(args.out), device, step, labels)
    print(f"{o.label} on {cfg.dataset}: " + "  ".join(f"{k} {v:.6g}" for k, v in o.values.items()))
    print(f"rows appended to {Path(args.out) / 'results.jsonl'}")
    return 0


def cmd_table(args) -> int:
    folder = Path(args.dir)
    if folder.is_dir() and not (folder / RESULTS).is_file() and (pending := unfinished_runs(folder)):
        _say_unfinished(folder, pending)
        raise UserError(f"no run in {folder} has finished yet ({len(pending)} started: listed above)")
    rows = load_rows(folder)  # a missing folder or file: its one-line error
    df = frame(rows)
    if args.published:
        if args.baseline or args.metric or args.test is not None:
            raise UserError("--published shows every published number; it takes no --baseline, --metric or --test")
        print(render_published(df, args.format))
    else:
        if args.test is not None and not args.baseline:
            raise UserError(f"--test {args.test} chooses the test against --baseline; give --baseline LABEL too")
        print(render(df, args.format, args.baseline, args.metric, "welch" if args.test is None else args.test))
    _say_unfinished(folder, unfinished_runs(folder, rows))
    return 0


def _say_unfinished(folder: Path, pending: list) -> None:
    """The runs still under way in ``folder``, on stderr (the table on stdout stays a table)."""
    if not pending:
        return
    print(f"{folder}: {len(pending)} started run{'s' * (len(pending) > 1)} not in the table yet "
          f"(`ganbench run` with the same --out and --resume continues them from their checkpoints):", file=sys.stderr)
    for u in pending:
        print(f"  {u.describe()}", file=sys.stderr)


def cmd_report(args) -> int:
    path = write_report(Path(args.dir), Path(args.output), fmt=args.format, baseline=args.baseline,
                        title=args.title, notes=args.note)
    print(f"report written to {path}")
    return 0


def cmd_check(args) -> int:
    if not 0 < args.alpha < 1:  # also refuses nan
        raise UserError(f"--alpha must be a number in (0, 1), got {args.alpha}")
    df = load_results(Path(args.dir))
    if args.update:
        write_baseline(df, Path(args.update))
        print(f"baseline written to {args.update}")
        return 0
    text, regressed = check(df, load_baseline(Path(args.baseline)), alpha=args.alpha)
    print(text)
    return 1 if regressed else 0


def _first_line(obj) -> str:
    doc = (getattr(obj, "description", None) or getattr(obj, "__doc__", None) or "").strip().splitlines()
    return doc[0] if doc else ""


def cmd_list(args) -> int:
    what = args.what
    if what == "suites":
        suites = available_suites()
        width = max(map(len, suites), default=0)
        for name, path in suites.items():
            s = load_suite(str(path))
            print(f"{name:{width}s} {len(s.runs()):4d} runs  {s.description}")
        return 0
    if what == "metrics":
        width = max(map(len, METRICS), default=0)
        fwidth = max((len(m.features) for m in METRICS.values()), default=0)
        for name, m in sorted(METRICS.items()):
            n = "train" if m.num_fake == TRAIN_SPLIT else m.num_fake
            print(f"{name:{width}s} {m.arrow}  n={n:<6} {m.features:{fwidth}s} {m.description}")
        return 0
    registry = {"models": MODELS, "losses": LOSSES, "datasets": DATASETS, "features": FEATURES, "steps": STEPS,
                "formats": FORMATS, "tests": TESTS, "reports": REPORT_FORMATS}[what]
    width = max(map(len, registry), default=0)
    for name, entry in sorted(registry.items()):
        print(f"{name:{width}s} {_first_line(entry)}")
    return 0


def _load_plugins(args) -> None:
    load_entry_points()
    for spec in getattr(args, "plugin", []):
        load_plugin(spec)


def _weights(args) -> None:
    """--inception-weights FILE and --weights NET=FILE: checked here, then read by the extractors from
    the environment (which worker processes inherit)."""
    path = getattr(args, "inception_weights", None)
    if path:
        if not Path(path).is_file():
            raise UserError(f"--inception-weights: file not found: {path}")
        os.environ[ENV_WEIGHTS] = str(Path(path).resolve())
    set_from_command_line(getattr(args, "weights", []))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _weights(args)
        _load_plugins(args)
        commands = {"run": cmd_run, "eval": cmd_eval, "table": cmd_table, "report": cmd_report, "check": cmd_check,
                    "list": cmd_list}
        return commands[args.command](args)
    except UserError as e:
        print(f"ganbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ganbench table DIR | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
