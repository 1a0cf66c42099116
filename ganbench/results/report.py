"""Reports of a results folder: one self-contained HTML file, or Markdown with its images beside it.

A report is a list of blocks (headings, paragraphs, tables, PNG figures) built from the rows and the
run folders only, then rendered. Every string that comes from the user (labels, notes, config
values) is escaped on the way out: ``html.escape`` for HTML, and for Markdown as well (Markdown
passes raw HTML through).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

import ganbench
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.evaluate import generate
from ganbench.io import atomic_write_bytes, atomic_write_text
from ganbench.models import is_conditional
from ganbench.registry import Registry
from ganbench.results import published
from ganbench.results.formats import md_escape, to_html, to_markdown
from ganbench.results.plots import (
    COLORS,
    GRID,
    bars_figure,
    curves_figure,
    grid_png,
    png_bytes,
)
from ganbench.results.progress import unfinished_runs
from ganbench.results.store import load_results
from ganbench.results.tables import (
    comparison_tables,
    final_rows,
    legend_lines,
    metric_column,
    published_table,
    suites_of,
    summarize,
)
from ganbench.samples import load_generator

LOSSES = ["d_loss", "g_loss"]


@dataclass
class Block:
    kind: str  # "h2", "h3", "p", "table", "img"
    text: str = ""  # heading or paragraph text; alt text of an image
    table: pd.DataFrame | None = None
    png: bytes = b""
    name: str = ""  # file name of an image in the Markdown variant


@dataclass
class Report:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, kind: str, text: str = "", **kw) -> None:
        self.blocks.append(Block(kind, text, **kw))


def write_report(out: Path, path: Path, fmt: str | None = None, baseline: str | None = None,
                 title: str = "ganbench report", notes: list[str] | tuple = (),
                 rows: pd.DataFrame | None = None) -> Path:
    """Build the report of results folder ``out`` and write it to ``path`` (HTML or Markdown).
    ``rows``: a selection of the folder's rows to report on (default: all of them)."""
    if Path(path).is_dir():
        raise UserError(f"-o {path} is a folder; give a file name")
    suffix = Path(path).suffix.lower()
    known: dict[str, str] = {}
    for f in REPORT_FORMATS.values():  # the first format to claim a suffix keeps it (built-ins first)
        for sfx in f.suffixes:
            known.setdefault(sfx, f.name)
    if fmt is None and suffix and suffix not in known:
        raise UserError(f"-o {path}: no report format writes {suffix} files (known: {', '.join(sorted(known))}; "
                        f"or choose one with --format)")
    fmt = fmt or known.get(suffix, "html")
    if fmt not in REPORT_FORMATS:
        raise UserError(f"unknown report format {fmt!r} (use {' or '.join(REPORT_FORMATS)})")
    report = build_report(out, baseline, title, notes, rows)
    try:
        atomic_write_text(Path(path), REPORT_FORMATS[fmt].render(report, Path(path)))
    except OSError as e:
        raise UserError(f"cannot write report {path}: {e.strerror or e}") from None
    return Path(path)


def build_report(out: Path, baseline: str | None = None, title: str = "ganbench report",
                 notes: list[str] | tuple = (), rows: pd.DataFrame | None = None) -> Report:
    import matplotlib

    matplotlib.use("Agg")
    df = load_results(Path(out)) if rows is None else rows
    final = final_rows(df)
    if final.empty:
        raise UserError(f"no final results in {out}")
    r = Report(title)
    for note in notes:
        r.add("p", note)
    r.add("p", f"Results folder {Path(out).name}: {final['run_id'].nunique()} runs of "
               f"{final.groupby(['dataset', 'label']).ngroups} settings. Generated "
               f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by ganbench {ganbench.__version__}.")
    for u in unfinished_runs(Path(out)):  # started, not finished: named, never counted
        r.add("p", f"Under way, not in this report: {u.describe()}.")
    tables = comparison_tables(df, baseline)
    colors = _colors(final)
    r.add("h2", "Comparison")
    for table in tables:
        r.add("table", table=table)
    papers = suites_of(df)
    for line in legend_lines(tables) + published.legend(papers)[1:]:
        r.add("p", line)
    _published(r, df, papers)
    r.add("h3", "Per metric: mean, 95% interval and rank")
    r.add("p", "95% interval: Student-t interval of the mean over seeds, within the metric's range (e.g. [0, 1] "
               "for a fraction). Rank: 1 + the number of settings whose "
               "interval lies entirely on the better side of this one's (overlapping intervals are never ordered by each other).")
    s = summarize(df)
    r.add("table", table=_detail(s))
    _bars(r, s, colors)
    _curves(r, df, final, Path(out), colors)
    _samples(r, final, Path(out))
    _classification(r, final, Path(out))
    r.add("h2", "Runs")
    r.add("p", "The scale each setting ran at: seeds, generator steps and suite.")
    r.add("table", table=_runs(final))
    _provenance(r, df, final)
    return r


def _published(r: Report, df: pd.DataFrame, papers: list) -> None:
    """Published numbers beside ganbench's, with verdicts, for the folder's paper suites (``papers``)."""
    suites = [s for s in papers if s.published]
    if not suites:
        return
    r.add("h2", "Published results")
    c = published_table(df, suites)
    r.add("table", table=published.display(c))
    for line in published.legend(suites):
        r.add("p", line)


def _colors(final: pd.DataFrame) -> dict:
    return {label: COLORS[i % len(COLORS)] for i, label in enumerate(dict.fromkeys(final["label"]))}


def _num(v, digits: int = 4) -> str:
    return "—" if pd.isna(v) else f"{v:.{digits}g}"


def _detail(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": s["dataset"], "setting": s["label"],
        "metric": metric_column(s["metric"], s["higher_is_better"]),
        "protocol": s["protocol_id"], "mean": s["mean"].map(_num), "std": s["std"].map(_num),
        "95% interval": [_interval_text(lo, hi) for lo, hi in zip(s["ci_low"], s["ci_high"])],
        "n": s["n"], "diverged": s["diverged"], "rank": s["rank"].map(lambda v: "—" if pd.isna(v) else str(int(v))),
    }).reset_index(drop=True)


def _interval_text(low: float, high: float) -> str:
    return "—" if pd.isna(low) else f"[{low:.4g}, {high:.4g}]"


def _figure(r: Report, fig, alt: str, name: str) -> None:
    r.add("img", alt, png=png_bytes(fig), name=name)


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(str(p) for p in parts)).strip("-").lower()[:80] or "figure"


def _bars(r: Report, s: pd.DataFrame, colors: dict) -> None:
    r.add("h2", "Main metrics with 95% intervals")
    s = s.assign(column=metric_column(s["metric"], s["higher_is_better"]))
    multi = s.groupby(["dataset", "metric"])["protocol_id"].transform("nunique") > 1
    s["setting"] = s["label"] + s["protocol_id"].where(multi, "").map(lambda p: f" [{p}]" if p else "")
    s["low"], s["high"] = s["ci_low"].fillna(s["mean"]), s["ci_high"].fillna(s["mean"])
    for dataset, g in s.groupby("dataset", sort=False):
        fig = bars_figure(g, f"{dataset}: mean over seeds, 95% interval within the metric's range", colors)
        _figure(r, fig, f"bar chart of the metrics on {dataset}", _slug("bars", dataset))


def _band(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    v = frame.groupby("step")[column]
    return pd.DataFrame({"mean": v.mean(), "low": v.min(), "high": v.max()}).reset_index()


def _with_history(curve: pd.DataFrame) -> pd.DataFrame:
    """One curve's rows without the runs that have only their final value when others have more (rows
    kept without their evaluations during training): such a run would change the mean and band at
    the last step alone."""
    steps = curve.groupby("run_id")["step"].transform("nunique")
    return curve[steps > 1] if (steps > 1).any() else curve


def _curves(r: Report, df: pd.DataFrame, final: pd.DataFrame, out: Path, colors: dict) -> None:
    r.add("h2", "Training curves")
    r.add("p", "Lines: mean over seeds; bands: from the lowest to the highest seed. Metric curves come from the "
               "evaluations during training (eval_every) and the final one; losses from each run's history.csv.")
    ok = df[df["status"] == "ok"].copy()
    ok["value"] = pd.to_numeric(ok["value"], errors="coerce")
    ok["metric"] = metric_column(ok["metric"], ok["higher_is_better"])
    drawn = 0
    for dataset, g in ok.groupby("dataset", sort=False):
        metrics = list(dict.fromkeys(g["metric"]))
        curves: dict = {}
        for (label, metric, pid), c in g.groupby(["label", "metric", "protocol_id"], sort=False):
            multi = g.loc[g["metric"] == metric, "protocol_id"].nunique() > 1
            name = f"{label} [{pid}]" if multi else label
            curves.setdefault(metric, {})[name] = _band(_with_history(c.drop_duplicates(["run_id", "step"], keep="last")),
                                                        "value")
        if any(len(c) > 1 for m in curves.values() for c in m.values()):
            fig = curves_figure(curves, f"{dataset}: metrics over training", metrics, colors)
            _figure(r, fig, f"metric curves on {dataset}", _slug("metrics", dataset))
            drawn += 1
        losses: dict = {}
        for label, runs in final[final["dataset"] == dataset].groupby("label", sort=False):
            frames = [_history(out / "runs" / rid / "history.csv") for rid in dict.fromkeys(runs["run_id"])]
            frames = [f for f in frames if f is not None]
            if frames:
                h = pd.concat(frames)
                for loss in LOSSES:
                    losses.setdefault(loss, {})[label] = _band(h, loss)
        if losses:
            fig = curves_figure(losses, f"{dataset}: losses over training", LOSSES, colors)
            _figure(r, fig, f"loss curves on {dataset}", _slug("losses", dataset))
            drawn += 1
    if not drawn:
        r.add("p", "No curves: these rows hold only each run's final evaluation (eval_every 0, or rows copied "
                   "without the evaluations during training), and no run folder here has its history.csv.")


def _history(path: Path) -> pd.DataFrame | None:
    try:
        h = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    return h if {"step", *LOSSES} <= set(h.columns) and len(h) else None


def _samples(r: Report, final: pd.DataFrame, out: Path) -> None:
    r.add("h2", "Samples")
    r.add("p", "One run per setting (the lowest finished seed), evaluation noise as in the metrics. 2-D data: "
               "generated points over the mode centres, ringed at the high-quality radius.")
    ok = final[final["status"] == "ok"].sort_values("seed", kind="stable").drop_duplicates(["dataset", "label"])
    for _, row in ok.iterrows():
        run = out / "runs" / row["run_id"]
        caption = f"{row['label']} · {row['dataset']} · seed {row['seed']}"
        try:
            png = (run / "samples.png").read_bytes() if (run / "samples.png").is_file() else _grid(run / "generator.pt")
        except (UserError, OSError, RuntimeError, ValueError, KeyError) as e:
            r.add("p", f"No samples for {caption}: {e}")
            continue
        if png:
            r.add("img", caption, png=png, name=_slug("samples", row["dataset"], row["label"], row["run_id"]))
        else:
            r.add("p", f"No samples for {caption}: the run folder has neither samples.png nor generator.pt")


PER_CLASS = ("cas", "cas_real", "gan_test")  # per-class accuracies of the classification metrics
GAINS = ("aug_gain", "aug_gain_1pct", "rebalance_gain")


def _classification(r: Report, final: pd.DataFrame, out: Path) -> None:
    """Per-class accuracy and the gains' intervals of the classification metrics, from the run
    folders' ``classification.json`` (nothing when no run has one)."""
    found = []
    for _, row in final.drop_duplicates("run_id").iterrows():
        path = out / "runs" / row["run_id"] / "classification.json"
        try:
            found.append((row, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    if not found:
        return
    r.add("h2", "Per-class accuracy")
    r.add("p", "Real test accuracy of each class, mean over the setting's runs (each run: the mean over its "
               "classifier seeds). cas: trained on samples; cas_real: the same recipe on the real training split; "
               "gan_test: the real-trained classifier on samples.")
    settings: dict = {}
    for row, d in found:
        settings.setdefault((row["dataset"], row["label"]), []).append((row, d))
    for (dataset, label), runs in settings.items():
        table = {}
        for name in PER_CLASS:
            per = [d[name]["per_class"] for _, d in runs if name in d]
            if per:
                table[name] = np.mean(per, axis=0)
        if table:
            frame = pd.DataFrame({f"class {c}": [f"{table[name][c]:.3f}" for name in table]
                                  for c in range(len(next(iter(table.values()))))}, index=list(table))
            r.add("h3", f"{label} · {dataset}")
            r.add("table", table=frame.rename_axis("metric").reset_index())
        seeds = []
        for row, d in runs:
            for name in PER_CLASS[:2] + GAINS:
                if name not in d:
                    continue
                e = d[name]
                line = {"seed": row["seed"], "metric": name, "value": _num(e["mean"]),
                        "95% interval": f"[{_num(e['ci_low'])}, {_num(e['ci_high'])}]"}
                if name in GAINS:
                    line.update({"baseline": _num(e["baseline"]["mean"]), "with samples": _num(e["with_synthetic"]["mean"]),
                                 "p": _num(e["p_value"], 2), "significant": "yes" if e["significant"] else "no"})
                seeds.append(line)
        if seeds:
            r.add("p", f"{label} · {dataset}: each run's value over its classifier seeds (mean, 95% t-interval; "
                       f"the gains: both arms and a paired t-test).")
            r.add("table", table=pd.DataFrame(seeds).fillna(""))


def _grid(path: Path, n: int = GRID) -> bytes:
    """A grid of ``n`` images from a saved generator, for run folders written before runs saved their
    own ``samples.png`` (empty when there is none)."""
    if not path.is_file():
        return b""

    g, cfg, _ = load_generator(path)
    num_classes = 0
    if is_conditional(g):  # balanced class labels, as in the evaluation
        num_classes = DATASETS[cfg.dataset](cfg).num_classes
    x = generate(g, n, cfg.z_dim, cfg.eval_seed, torch.device("cpu"), num_classes=num_classes, bn_batch=cfg.eval_bn_batch)
    return grid_png(x) if x.dim() == 4 else b""


def _seed_ranges(seeds) -> str:
    seeds = sorted(set(int(s) for s in seeds))
    parts, start = [], None
    for i, s in enumerate(seeds):
        start = s if start is None else start
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(str(s) if s == start else f"{start}-{s}")
            start = None
    return ",".join(parts)


def _runs(final: pd.DataFrame) -> pd.DataFrame:
    runs = final.drop_duplicates("run_id")
    steps = "config.steps" if "config.steps" in runs.columns else "step"
    out = []
    for (dataset, label), g in runs.groupby(["dataset", "label"], sort=False):
        out.append({"dataset": dataset, "setting": label,
                    "suite": ", ".join(str(v) for v in dict.fromkeys(g["suite"])) if "suite" in g else "—",
                    "seeds": _seed_ranges(g["seed"]), "runs": len(g),
                    "steps": ", ".join(str(int(v)) for v in dict.fromkeys(g[steps].dropna())),
                    "diverged": int((g["status"] != "ok").sum())})
    return pd.DataFrame(out)


def _provenance(r: Report, df: pd.DataFrame, final: pd.DataFrame) -> None:
    r.add("h2", "Provenance")
    fields = [("ganbench", "env.ganbench"), ("git commit", "env.git_commit"), ("torch", "env.torch"),
              ("python", "env.python"), ("platform", "env.platform"), ("device", "env.device"),
              ("device name", "env.device_name"), ("threads", "env.threads"), ("plug-ins", "env.plugins")]
    rows = [{"field": name, "values": ", ".join(_text(v) for v in dict.fromkeys(map(_text, df[col].dropna())))}
            for name, col in fields if col in df.columns]
    if "time" in df.columns:
        t = df["time"].dropna().astype(str)
        rows.append({"field": "results written", "values": f"{t.min()} to {t.max()}" if len(t) else "—"})
    r.add("table", table=pd.DataFrame(rows, columns=["field", "values"]))
    r.add("h3", "Protocols")
    r.add("p", "Values are compared only within one protocol (same metric version, features, sample counts, "
               "evaluation seed and extractor weights).")
    pcols = [c for c in final.columns if c.startswith("protocol.")]
    prot = final.drop_duplicates(["dataset", "metric", "protocol_id"])
    r.add("table", table=pd.DataFrame([{
        "dataset": p["dataset"], "metric": p["metric"], "protocol": p["protocol_id"],
        "definition": "; ".join(f"{c.removeprefix('protocol.')}={_text(p[c])}" for c in pcols if _present(p[c])),
    } for _, p in prot.iterrows()], columns=["dataset", "metric", "protocol", "definition"]))


def _present(v) -> bool:
    return not (v is None or (isinstance(v, float) and pd.isna(v)))


def _text(v) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1400px;
padding:1.5em 2em;color:#1f2328;line-height:1.45}
h1{font-size:1.7em;border-bottom:2px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
h3{font-size:1.05em;margin-top:1.3em}
p{margin:.4em 0;font-size:.92em}
.scroll{overflow-x:auto;margin:.6em 0}
table{border-collapse:collapse;font-size:.86em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}
tbody tr:nth-child(even){background:#fbfcfd}
figure{display:inline-block;margin:.5em 1em .8em 0;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.82em;color:#57606a;text-align:center}
"""


def render_html(report: Report) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{e(report.title)}</title><style>{CSS}</style></head><body>", f"<h1>{e(report.title)}</h1>"]
    for b in report.blocks:
        if b.kind in ("h2", "h3", "p"):
            parts.append(f"<{b.kind}>{e(b.text)}</{b.kind}>")
        elif b.kind == "table":
            parts.append(f'<div class="scroll">{to_html(b.table)}</div>')
        elif b.kind == "img":
            data = base64.b64encode(b.png).decode()
            parts.append(f'<figure><img alt="{e(b.text)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{e(b.text)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(report: Report, path: Path) -> str:
    """Markdown text; images go to ``<stem>_files/`` beside ``path`` and are linked relatively."""
    folder = Path(path).parent / f"{Path(path).stem}_files"
    e = lambda t: html.escape(t, quote=False).replace("|", "\\|")  # noqa: E731
    parts = [f"# {e(report.title)}", ""]
    for b in report.blocks:
        if b.kind == "h2":
            parts += [f"## {e(b.text)}", ""]
        elif b.kind == "h3":
            parts += [f"### {e(b.text)}", ""]
        elif b.kind == "p":
            parts += [_md_text(b.text), ""]
        elif b.kind == "table":
            parts += [to_markdown(b.table, escape_html=True), ""]
        elif b.kind == "img":
            atomic_write_bytes(folder / f"{b.name}.png", b.png)
            parts += [f"![{_md_text(b.text)}]({folder.name}/{b.name}.png)", "", f"*{_md_text(b.text)}*", ""]
    return "\n".join(parts)


def _md_text(text: str) -> str:
    """Paragraph text with HTML and Markdown's own markup characters neutralised."""
    text = md_escape(text, quote=False)
    return "\\" + text if text.startswith(("#", "-", "+", ">")) else text


@dataclass(frozen=True, kw_only=True)
class ReportFormat:
    """How a ``Report`` becomes a file: ``render(report, path)`` -> text (``path``: where it goes, for
    files written beside it); ``suffixes``: file names that choose this format by default."""

    name: str
    render: Callable[[Report, Path], str]
    suffixes: tuple[str, ...]
    description: str


REPORT_FORMATS = Registry("report format", ReportFormat)


def register(fmt: ReportFormat) -> ReportFormat:
    """Add ``fmt`` to ``REPORT_FORMATS`` under its name."""
    return REPORT_FORMATS.register(fmt.name, fmt)


register(ReportFormat(name="html", render=lambda report, path: render_html(report), suffixes=(".html", ".htm"),
                      description="one self-contained HTML page (figures inlined)"))
register(ReportFormat(name="md", render=render_markdown, suffixes=(".md", ".markdown"),
                      description="Markdown, with the figures as PNG files in a folder beside it"))
