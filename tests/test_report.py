"""Reports: every table and figure is in the HTML, user strings are escaped, protocols stay apart."""

import base64
import re

import numpy as np
import pandas as pd
import pytest
import torch

from ganbench.config import suite_from_dict
from ganbench.errors import UserError
from ganbench.results.report import build_report, write_report
from ganbench.results.store import append_rows, load_rows
from ganbench.runs.suite import run_suite

EVIL = "<script>alert(1)</script>"
SUITE = {
    "name": "report-test",
    "defaults": {"model": "mlp", "dataset": "ring8", "width": 16, "depth": 2, "batch_size": 64, "steps": 40,
                 "eval_every": 20},
    "settings": [{"label": EVIL, "loss": "ns"}, {"label": "mlp/hinge", "loss": "hinge"}],
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "results"
    run_suite(suite_from_dict(SUITE, "report-test", {}, [0, 1]), out, torch.device("cpu"), progress=False)
    return out


def _pngs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def test_html_has_every_table_and_image_and_escapes_labels(results, tmp_path):
    path = write_report(results, tmp_path / "report.html", baseline="mlp/hinge", notes=["scale: 2 seeds, 40 steps"])
    text = path.read_text()
    report = build_report(results, baseline="mlp/hinge")
    tables = [b for b in report.blocks if b.kind == "table"]
    images = [b for b in report.blocks if b.kind == "img"]
    # comparison, per metric, runs, provenance, protocols
    assert len(tables) == 5 and text.count("<table") == 5
    # bars, metric curves, loss curves (one dataset), then one scatter per setting
    kinds = [i.name.split("-")[0] for i in images]
    assert len(images) == 5 and kinds == ["bars", "metrics", "losses", "samples", "samples"]
    pngs = _pngs(text)
    assert len(pngs) == 5 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text.lower()
    assert "scale: 2 seeds, 40 steps" in text and "Provenance" in text and torch.__version__ in text
    # the comparison table: two settings, a test column against mlp/hinge, seeds 0-1 in the runs table
    assert "kl vs baseline" in text and "against mlp/hinge" in text and text.count("<td>baseline</td>") == 3 and "<td>0-1</td>" in text
    assert "src=\"http" not in text and "href=" not in text  # self-contained


def test_markdown_variant_writes_images_beside_it(results, tmp_path):
    path = write_report(results, tmp_path / "out" / "report.md")
    text = path.read_text()
    links = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+\.png)\)", text)
    assert len(links) == 5 and all((path.parent / link).read_bytes().startswith(b"\x89PNG") for link in links)
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.count("\n|---") >= 5


def test_rows_under_another_protocol_are_kept_apart(results, tmp_path):
    out = tmp_path / "mixed"
    rows = load_rows(results)
    moved = [dict(r, protocol_id="other", run_id=r["run_id"] + "x", protocol={**r["protocol"], "num_fake": 1000})
             for r in rows if r["label"] == "mlp/hinge" and r["metric"] == "hq"]
    append_rows(out, rows + moved)
    report = build_report(out)
    table = next(b.table for b in report.blocks if b.kind == "table")
    hinge = table[table["setting"].str.startswith("mlp/hinge")]
    assert sorted(hinge["setting"]) == ["mlp/hinge", "mlp/hinge [protocol other]"]
    notes = [b.text for b in report.blocks if b.kind == "p" and b.text.startswith("Note:")]
    assert len(notes) == 1 and "hq" in notes[0] and "num_fake" in notes[0]
    detail = [b.table for b in report.blocks if b.kind == "table"][1]
    hq = detail[detail["metric"] == "hq ↑"]
    assert sorted(hq["protocol"].unique()) == sorted({"other", rows[0]["protocol_id"]})


def test_final_rows_alone_draw_no_curves_and_the_report_says_why(results, tmp_path):
    """Rows copied without the evaluations during training and without the run folders (results moved
    to another machine) have nothing to draw over training; the report says so instead of an empty
    section."""
    out = tmp_path / "moved"
    append_rows(out, [r for r in load_rows(results) if r["final"]])
    report = build_report(out)
    kinds = [b.name.split("-")[0] for b in report.blocks if b.kind == "img"]
    assert kinds == ["bars"]
    said = [b.text for b in report.blocks if b.kind == "p" and b.text.startswith("No curves")]
    assert len(said) == 1 and "only each run's final evaluation" in said[0]
    assert not any(b.kind == "p" and b.text.startswith("No curves") for b in build_report(results).blocks)


def test_a_run_without_its_evaluations_during_training_stays_out_of_the_curve(results):
    """A run whose rows were kept without its evaluations during training would move only the last
    point of its setting's curve; the curve is drawn from the runs that have the whole history."""
    from ganbench.results.report import _band, _with_history

    rows = pd.DataFrame(load_rows(results))
    curve = rows[(rows["label"] == "mlp/hinge") & (rows["metric"] == "hq")]
    assert curve["step"].nunique() == 2 and curve["run_id"].nunique() == 2  # steps 20 and 40 in both
    seed1 = curve["seed"] == 1
    cut = curve[~seed1 | curve["final"].astype(bool)]  # seed 1 kept its final value only
    kept = _with_history(cut)
    assert set(kept["seed"]) == {0} and kept.equals(curve[~seed1])
    assert _band(kept, "value")["mean"].tolist() == curve.loc[~seed1, "value"].tolist()
    only_final = curve[curve["final"].astype(bool)]
    assert _with_history(only_final).equals(only_final)  # nobody has more: the final values stay


def test_the_report_draws_the_curve_from_the_runs_with_a_history(results, tmp_path, monkeypatch):
    import ganbench.results.report as report

    drawn = []
    monkeypatch.setattr(report, "curves_figure",
                        lambda curves, *a, _draw=report.curves_figure: drawn.append(curves) or _draw(curves, *a))
    out = tmp_path / "cut"
    append_rows(out, [r for r in load_rows(results) if r["seed"] == 0 or r["final"]])
    build_report(out)
    seed0 = pd.DataFrame([r for r in load_rows(results) if r["seed"] == 0 and r["label"] == "mlp/hinge"
                          and r["metric"] == "hq"])
    hq = drawn[0]["hq ↑"]["mlp/hinge"]
    assert hq["step"].tolist() == seed0["step"].tolist() and hq["mean"].tolist() == seed0["value"].tolist()


def test_report_errors(results, tmp_path):
    with pytest.raises(UserError, match="not found"):
        write_report(tmp_path / "absent", tmp_path / "r.html")
    with pytest.raises(UserError, match="unknown report format"):
        write_report(results, tmp_path / "r.html", fmt="pdf")
    (tmp_path / "afile").write_text("kept")  # a file where the report's folder would be made
    with pytest.raises(UserError, match=f"^cannot write report {tmp_path}/afile/sub/r.html: {tmp_path}/afile is a file, "
                                        "not a folder$"):
        write_report(results, tmp_path / "afile" / "sub" / "r.html")
    with pytest.raises(UserError, match=f"^cannot write report {tmp_path}/afile/r.html: {tmp_path}/afile is a file, "
                                        "not a folder$"):
        write_report(results, tmp_path / "afile" / "r.html")
    assert (tmp_path / "afile").read_text() == "kept"


def test_labels_with_dollar_signs_are_plain_text(tmp_path):
    """A `$` in a setting's name must not start matplotlib's mathtext (which fails on `\\badcmd`)."""
    from ganbench.results.plots import bars_figure, curves_figure

    name = r"$\badcmd$ a_b"
    summary = pd.DataFrame({"setting": [name, "other"], "column": ["kl ↓"] * 2, "mean": [0.5, 0.7], "ci95": [0.1, 0.2]})
    curve = pd.DataFrame({"step": [1, 2], "mean": [1.0, 0.5], "low": [0.9, 0.4], "high": [1.1, 0.6]})
    for i, fig in enumerate([bars_figure(summary, name, {}), curves_figure({"kl": {name: curve}}, name, ["kl"], {})]):
        fig.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").read_bytes().startswith(b"\x89PNG")


def test_intervals_are_read_within_the_metric_range():
    """A 2-seed t-interval of a fraction can reach past [0, 1] (hq 0.40 ± 12.7 s / sqrt(2)); summaries
    cut it to the values the metric can take on the dataset (mode counts up to the mixture's K),
    asymmetric where cut, and the report prints that interval."""
    import math

    from scipy import stats

    from ganbench.results.report import _interval_text
    from ganbench.results.tables import summarize, value_range

    def rows(dataset, metric, values):
        return pd.DataFrame([{"dataset": dataset, "label": "a", "model": "mlp", "loss": "ns", "group_id": "g",
                              "run_id": f"r{i}", "seed": i, "metric": metric, "value": v, "higher_is_better": True,
                              "status": "ok", "final": True, "step": 1, "protocol_id": "p"}
                             for i, v in enumerate(values)])

    half = lambda v: stats.t.ppf(0.975, len(v) - 1) * np.std(v, ddof=1) / math.sqrt(len(v))  # noqa: E731
    s = summarize(rows("ring8", "hq", [0.2, 0.6])).iloc[0]
    assert (s["ci_low"], s["ci_high"]) == (0.0, 1.0) and s["ci95"] == pytest.approx(half([0.2, 0.6]))
    s = summarize(rows("ring8", "hq", [0.38, 0.40, 0.42, 0.40])).iloc[0]   # inside: the plain t-interval
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((0.4 - half([0.38, 0.4, 0.42, 0.4]), 0.4 + half([0.38, 0.4, 0.42, 0.4])))
    s = summarize(rows("ring8", "modes", [8, 6])).iloc[0]                  # 7 ± 63.5: [0, 8] on the ring of 8
    assert (s["ci_low"], s["ci_high"]) == (0.0, 8.0)
    assert summarize(rows("grid25", "modes", [20, 24])).iloc[0]["ci_high"] == 25.0
    assert value_range("modes", "not-a-dataset") == (0.0, math.inf) and value_range("kid", "cifar10")[0] == -math.inf
    assert value_range("not-a-metric", "ring8") == (-math.inf, math.inf)
    s = summarize(rows("ring8", "hq", [0.5])).iloc[0]                     # one seed: no interval
    assert math.isnan(s["ci_low"]) and math.isnan(s["ci_high"])
    assert _interval_text(0.0, 1.0) == "[0, 1]" and _interval_text(float("nan"), float("nan")) == "—"