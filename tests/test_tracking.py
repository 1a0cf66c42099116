"""Throughput and stability summaries of a run, and TensorBoard logging."""

import csv
import json
import math

import pytest

from ganbench.cli import main
from ganbench.monitor import COLUMNS, stability
from ganbench.results.store import load_rows


def test_stability_of_a_curve_higher_is_better():
    s = stability([(100, 3.0), (200, 8.0), (300, 8.0), (400, 6.0)], higher_is_better=True)
    assert s["best"] == 8.0 and s["best_step"] == 200  # the earliest step at the best value
    assert s["best_final_gap"] == 2.0
    mean = (3 + 8 + 8 + 6) / 4
    assert s["last_spread"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in (3, 8, 8, 6)) / 3))
    assert s["evaluations"] == 4


def test_stability_of_a_curve_lower_is_better_uses_the_last_evaluations():
    curve = [(i, float(v)) for i, v in enumerate([9, 1, 5, 5, 5, 5, 5], 1)]
    s = stability(curve, higher_is_better=False, last=5)
    assert (s["best"], s["best_step"], s["best_final_gap"], s["last_spread"]) == (1.0, 2, 4.0, 0.0)
    assert stability([(1, None), (2, float("nan"))], True) == {}
    assert stability([(5, 2.0)], True)["last_spread"] == 0.0


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tracked")
    assert main(["run", "--model", "mlp", "--dataset", "ring8", "--out", str(out), "--no-progress", "--tensorboard",
                 "--set", "steps=200", "--set", "eval_every=50", "--set", "width=32", "--set", "batch_size=64",
                 "--checkpoint-every", "50"]) == 0
    return out


def test_final_rows_carry_throughput_and_stability(tracked_run):
    rows = load_rows(tracked_run)
    final = [r for r in rows if r["final"]]
    t = final[0]["timing"]
    assert t["steps_done"] == 200
    assert t["samples_per_s"] == pytest.approx(200 * 64 / t["train_seconds"])
    assert 0 < t["step_time_median"] <= t["step_time_p90"]
    # MLP 2 -> 32 -> 32 -> 2 generator with z_dim inputs; discriminator 2 -> 32 -> 32 -> 1
    cfg = final[0]["config"]
    w, z, depth = cfg["width"], cfg["z_dim"], cfg["depth"]
    assert t["g_params"] == (z * w + w) + (depth - 1) * (w * w + w) + (w * 2 + 2)
    assert t["d_params"] == (2 * w + w) + (depth - 1) * (w * w + w) + (w + 1)
    assert t["peak_memory_mb"] > 0 and t["eval_seconds"] > 0 and t["checkpoint_seconds"] > 0
    s = final[0]["stability"]
    curve = sorted((r["step"], r["value"]) for r in rows if r["metric"] == s["metric"])
    assert s["evaluations"] == len(curve) == 4  # steps 50, 100, 150 and the final 200
    assert s == {"metric": s["metric"], **stability(curve, final[0]["higher_is_better"])}
    run_dir = tracked_run / "runs" / final[0]["run_id"]
    assert json.loads((run_dir / "summary.json").read_text())["stability"] == s
    with open(run_dir / "history.csv") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS


def test_tensorboard_has_history_metrics_and_samples(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (folder,) = (tracked_run / "tensorboard").glob("*/ring8/seed0")
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {f"train/{c}" for c in COLUMNS[1:]} <= set(tags["scalars"])
    rows = load_rows(tracked_run)
    (run_id,) = {r["run_id"] for r in rows}
    with open(tracked_run / "runs" / run_id / "history.csv") as f:
        history = list(csv.DictReader(f))
    logged = events.Scalars("train/d_loss")
    assert [e.step for e in logged] == [int(r["step"]) for r in history]
    assert [e.value for e in logged] == pytest.approx([float(r["d_loss"]) for r in history], rel=1e-6)
    for metric in {r["metric"] for r in rows}:
        curve = sorted((r["step"], r["value"]) for r in rows if r["metric"] == metric)
        logged = events.Scalars(f"metrics/{metric}")
        assert [e.step for e in logged] == [step for step, _ in curve]
        assert [e.value for e in logged] == pytest.approx([value for _, value in curve], rel=1e-6)
    assert [e.step for e in events.Images("samples")] == [50, 100, 150, 200]


def test_negative_checkpoint_interval_is_refused(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["run", "--model", "mlp", "--dataset", "ring8", "--out", str(out), "--checkpoint-every", "-1"]) == 2
    assert "--checkpoint-every" in capsys.readouterr().err and not out.exists()
