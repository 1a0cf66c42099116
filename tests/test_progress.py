"""Runs still under way: ``unfinished_runs`` reads their checkpoints (step, evaluations so far) and
``ganbench table`` lists them on stderr beside the table of the finished ones."""

import json

import torch

from ganbench.checkpoint import NAME, PREVIOUS
from ganbench.cli import main
from ganbench.results.formats import md_escape
from ganbench.results.progress import unfinished_runs
from ganbench.results.store import RESULTS, load_rows

ARGS = ["run", "--model", "mlp", "--dataset", "ring8", "--no-progress", "--set", "width=16", "--set", "depth=1",
        "--set", "batch_size=32", "--set", "steps=30", "--set", "eval_every=10", "--checkpoint-every", "10"]


class Stop(Exception):
    pass


def _stopped_run(out, monkeypatch, seed: int, at: int = 25) -> dict:
    """Run ``seed`` until just after step ``at`` as a killed process leaves it: checkpoints and
    config.json, no rows of its own. Returns its config.json."""
    from ganbench.runs import one

    real = one.train
    before = (out / RESULTS).read_text() if (out / RESULTS).exists() else None
    monkeypatch.setattr(one, "train", lambda *a, **k: real(*a, **{**k, "on_step": _raise_at(at, Stop)}))
    assert main(ARGS + ["--out", str(out), "--seeds", str(seed)]) == 1  # the stopped run is recorded as failed
    monkeypatch.undo()
    if before is None:
        (out / RESULTS).unlink()
    else:
        (out / RESULTS).write_text(before)
    (config,) = [c for c in (json.loads(p.read_text()) for p in out.glob("runs/*/config.json"))
                 if c["config"]["seed"] == seed]
    return config


def test_an_unfinished_run_shows_its_step_and_its_last_evaluation(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    assert main(ARGS + ["--out", str(ref), "--seeds", "0"]) == 0  # the same run, never stopped
    at_20 = {r["metric"]: r["value"] for r in load_rows(ref) if r["step"] == 20 and not r["final"]}
    assert set(at_20) == {"modes", "hq", "kl"}

    out = tmp_path / "res"
    config = _stopped_run(out, monkeypatch, seed=0)
    (u,) = unfinished_runs(out)
    assert (u.run_id, u.label, u.dataset, u.seed, u.steps) == (config["run_id"], config["label"], "ring8", 0, 30)
    assert u.step == 20 and u.evaluated_at == 20 and u.evaluated == at_20 and u.failed is None
    assert u.describe() == (f"{config['label']} ring8 seed 0 (run {config['run_id']}): step 20 of 30; last evaluation "
                            f"(step 20): " + ", ".join(f"{k} {v:.4g}" for k, v in at_20.items()))


def test_finished_failed_unreadable_and_unsaved_runs(tmp_path, monkeypatch):
    out = tmp_path / "res"
    assert main(ARGS + ["--out", str(out), "--seeds", "0"]) == 0
    assert unfinished_runs(out) == []  # a finished run keeps no checkpoint and is in the table

    _stopped_run(out, monkeypatch, seed=1, at=5)  # stopped before its first checkpoint
    (u,) = unfinished_runs(out)
    assert (u.seed, u.step, u.evaluated_at, u.evaluated) == (1, None, None, {})
    assert u.describe().endswith("no checkpoint yet")

    third = _stopped_run(out, monkeypatch, seed=2)
    run = out / "runs" / third["run_id"]
    for name in (NAME, PREVIOUS):
        (run / name).write_bytes(b"damaged")
    u = unfinished_runs(out)[-1]
    assert u.seed == 2 and u.step is None and u.unreadable
    assert "no readable checkpoint (--resume refuses it" in u.describe()

    # a run with a failed attempt keeps its checkpoint and says why
    from ganbench.runs import one

    real = one.train
    monkeypatch.setattr(one, "train", lambda *a, **k: real(*a, **{**k, "on_step": _raise_at(15)}))
    assert main(ARGS + ["--out", str(out), "--seeds", "3"]) == 1
    monkeypatch.undo()
    u = unfinished_runs(out)[-1]
    assert (u.seed, u.step, u.evaluated_at) == (3, 10, 10)
    assert "RuntimeError: out of luck at step 15" in u.failed and u.describe().endswith(u.failed)


def _raise_at(n, error=RuntimeError):
    def on_step(step):
        if step == n:
            raise error(f"out of luck at step {n}")
    return on_step


def test_table_lists_unfinished_runs_on_stderr_and_keeps_stdout_a_table(tmp_path, monkeypatch, capsys):
    out = tmp_path / "res"
    assert main(ARGS + ["--out", str(out), "--seeds", "0"]) == 0
    config = _stopped_run(out, monkeypatch, seed=1)
    capsys.readouterr()
    assert main(["table", str(out), "--format", "csv"]) == 0
    got = capsys.readouterr()
    assert got.out.startswith("dataset,") and config["run_id"] not in got.out
    err = got.err.splitlines()
    assert err[0] == (f"{out}: 1 started run not in the table yet (`ganbench run` with the same --out and --resume "
                      f"continues them from their checkpoints):")
    assert err[1].startswith(f"  {config['label']} ring8 seed 1 (run {config['run_id']}): step 20 of 30; last evaluation")


def test_table_of_a_folder_where_nothing_has_finished_lists_the_runs_and_exits_2(tmp_path, monkeypatch, capsys):
    out = tmp_path / "res"
    config = _stopped_run(out, monkeypatch, seed=0)
    assert not (out / RESULTS).exists()
    capsys.readouterr()
    assert main(["table", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert f"(run {config['run_id']}): step 20 of 30" in err[1]
    assert err[-1] == f"ganbench table: error: no run in {out} has finished yet (1 started: listed above)"
    assert torch.load(out / "runs" / config["run_id"] / NAME, weights_only=True)["step"] == 20  # left as it was


def test_report_names_the_runs_under_way(tmp_path, monkeypatch):
    from ganbench.results.report import write_report

    out = tmp_path / "res"
    assert main(ARGS + ["--out", str(out), "--seeds", "0"]) == 0
    config = _stopped_run(out, monkeypatch, seed=1)
    (u,) = unfinished_runs(out)
    text = write_report(out, tmp_path / "report.md").read_text()
    assert f"Under way, not in this report: {md_escape(u.describe())}." in text
    assert "Results folder res: 1 runs of 1 settings" in text and config["run_id"] == u.run_id
