"""Checkpoints and exact resume: a run killed part-way and resumed ends bit-identical to one that
never stopped; damaged checkpoints fall back or fail clearly; a changed config is refused."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ganbench.checkpoint import NAME, PREVIOUS, Checkpointer
from ganbench.cli import main
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.results.store import load_rows
from ganbench.train import train


class Stop(Exception):
    pass


def _stop_at(n):
    def on_step(step):
        if step == n:
            raise Stop
    return on_step


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("overrides", [
    {},
    {"loss": "wgan-gp", "n_dis": 2, "ema": 0.9},
    {"loss": "hinge", "spectral_norm": True},
])
def test_interrupted_and_resumed_training_is_bit_identical(tmp_path, tiny_cfg, cpu, overrides):
    cfg = tiny_cfg.replace(steps=40, eval_every=10, **overrides)
    ds = DATASETS[cfg.dataset](cfg)
    whole = train(cfg, ds, cpu)

    ckpt = Checkpointer(tmp_path, every=10)
    with pytest.raises(Stop):
        train(cfg, ds, cpu, checkpoint=ckpt, on_step=_stop_at(27))  # dies between checkpoints
    assert torch.load(tmp_path / NAME, weights_only=True)["step"] == 20
    torch.manual_seed(999)  # the new process has other global random state
    resumed = train(cfg, ds, cpu, checkpoint=Checkpointer(tmp_path, every=10))

    assert resumed.steps_done == whole.steps_done == 40
    for a, b in ((whole.generator, resumed.generator), (whole.discriminator, resumed.discriminator)):
        sa, sb = _state(a), _state(b)
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    timeless = lambda h: [{k: v for k, v in r.items() if k != "step_time"} for r in h]  # noqa: E731
    assert timeless(resumed.history) == timeless(whole.history)


def test_a_run_that_continues_past_a_warning_keeps_checkpointing_and_resumes_with_it(tmp_path, tiny_cfg, cpu):
    """divergence = "continue" (the published protocols): a metric that got worse at 3 evaluations in
    a row (steps 5, 10, 15, 20: warned at 20) is a warning, and the run goes on; its checkpoints after
    the warning carry it, so a resumed run ends as the uninterrupted one, warning included."""
    cfg = tiny_cfg.replace(steps=40, eval_every=5, divergence="continue")
    ds = DATASETS[cfg.dataset](cfg)
    falling = lambda step, g: (1.0 / step, True)  # noqa: E731  (a quality that falls at every evaluation)
    whole = train(cfg, ds, cpu, on_eval=falling)
    assert whole.steps_done == 40 and whole.diverged == "metric-worse: got worse at 3 evaluations in a row to step 20"

    with pytest.raises(Stop):
        train(cfg, ds, cpu, on_eval=falling, checkpoint=Checkpointer(tmp_path, every=10), on_step=_stop_at(35))
    saved = torch.load(tmp_path / NAME, weights_only=True)
    assert saved["step"] == 30 and saved["diverged"] == whole.diverged  # written after the warning, with it
    resumed = train(cfg, ds, cpu, on_eval=falling, checkpoint=Checkpointer(tmp_path, every=10))
    assert resumed.diverged == whole.diverged and resumed.steps_done == 40
    for a, b in ((whole.generator, resumed.generator), (whole.discriminator, resumed.discriminator)):
        sa, sb = _state(a), _state(b)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_caller_state_travels_with_the_checkpoint(tmp_path, tiny_cfg, cpu):
    cfg = tiny_cfg.replace(steps=20)
    ds = DATASETS[cfg.dataset](cfg)
    seen = []
    with pytest.raises(Stop):
        train(cfg, ds, cpu, checkpoint=Checkpointer(tmp_path, 10), on_step=_stop_at(15),
              extra_state=(lambda: "rows at 10", seen.append))
    train(cfg, ds, cpu, checkpoint=Checkpointer(tmp_path, 10), extra_state=(lambda: "x", seen.append))
    assert seen == ["rows at 10"]


def _two_checkpoints(tmp_path, cfg, cpu):
    ds = DATASETS[cfg.dataset](cfg)
    with pytest.raises(Stop):
        train(cfg, ds, cpu, checkpoint=Checkpointer(tmp_path, 10), on_step=_stop_at(25))
    return ds


def test_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny_cfg, cpu, capsys):
    cfg = tiny_cfg.replace(steps=40)
    _two_checkpoints(tmp_path, cfg, cpu)
    data = (tmp_path / NAME).read_bytes()
    (tmp_path / NAME).write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    state = Checkpointer(tmp_path, 10).load(cfg.to_dict())
    assert state["step"] == 10
    err = capsys.readouterr().err
    assert "unreadable" in err and "step 10" in err


def test_no_readable_checkpoint_is_a_clear_error(tmp_path, tiny_cfg, cpu):
    cfg = tiny_cfg.replace(steps=40)
    _two_checkpoints(tmp_path, cfg, cpu)
    for name in (NAME, PREVIOUS):
        (tmp_path / name).write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="no readable checkpoint"):
        Checkpointer(tmp_path, 10).load(cfg.to_dict())


def _edit_both(tmp_path, edit):
    """Apply ``edit`` to the state of both checkpoints on disk."""
    for name in (NAME, PREVIOUS):
        state = torch.load(tmp_path / name, weights_only=True)
        edit(state)
        torch.save(state, tmp_path / name)


def test_checkpoint_without_its_config_counts_as_unreadable(tmp_path, tiny_cfg, cpu, capsys):
    cfg = tiny_cfg.replace(steps=40)
    _two_checkpoints(tmp_path, cfg, cpu)
    state = torch.load(tmp_path / NAME, weights_only=True)
    del state["config"]
    torch.save(state, tmp_path / NAME)
    assert Checkpointer(tmp_path, 10).load(cfg.to_dict())["step"] == 10  # the previous one
    assert "checkpoint.pt (ValueError) is unreadable" in capsys.readouterr().err


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["g"].__setitem__("net.0.weight_old", s["g"].pop("net.0.weight")),
     "its generator does not fit this run (missing net.0.weight; unexpected net.0.weight_old)"),
    (lambda s: s["d"].__setitem__("net.0.bias", torch.zeros(7)),
     "its discriminator does not fit this run (shape net.0.bias (7,) for (32,))"),
    (lambda s: s["opt_g"]["param_groups"].pop(),
     "its generator's optimiser does not fit this run (ValueError: loaded state dict has a different number of"),
    (lambda s: s.pop("opt_d"), "its discriminator's optimiser does not fit this run (not in the checkpoint)"),
    (lambda s: s.pop("monitor"), "its state does not fit this run (KeyError: 'monitor')"),
])
def test_checkpoint_that_does_not_fit_the_run_is_a_clear_error(tmp_path, tiny_cfg, cpu, edit, message):
    """A checkpoint of the same config written by a ganbench whose networks differ (or damaged
    inside a readable file) names what differs, in one line, and stays on disk."""
    cfg = tiny_cfg.replace(steps=40)
    ds = _two_checkpoints(tmp_path, cfg, cpu)
    _edit_both(tmp_path, edit)
    before = (tmp_path / NAME).read_bytes()
    with pytest.raises(UserError) as e:
        train(cfg, ds, cpu, checkpoint=Checkpointer(tmp_path, 10))
    text = str(e.value)
    assert text.startswith(f"{tmp_path / NAME}: ") and message in text and "\n" not in text
    assert f"delete {tmp_path / 'checkpoint*.pt'}" in text
    assert (tmp_path / NAME).read_bytes() == before


def test_cli_resume_from_a_checkpoint_that_does_not_fit_exits_2(tmp_path, capsys, monkeypatch):
    from ganbench.runs import one

    out = tmp_path / "res"
    args = ["run", "--model", "mlp", "--dataset", "ring8", "--out", str(out), "--no-progress", "--set", "width=16",
            "--set", "depth=1", "--set", "batch_size=32", "--set", "steps=20", "--checkpoint-every", "10"]
    real = one.train
    monkeypatch.setattr(one, "train", lambda *a, **k: real(*a, **{**k, "on_step": _stop_at(15)}))
    assert main(args) == 1  # stopped after its checkpoint at step 10: a failed run keeps it
    monkeypatch.undo()
    run = next((out / "runs").iterdir())
    state = torch.load(run / NAME, weights_only=True)
    state["g"].pop("net.0.bias")
    torch.save(state, run / NAME)
    results = (out / "results.jsonl").read_bytes()  # the failed run's row
    capsys.readouterr()
    assert main(args + ["--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "its generator does not fit this run (missing net.0.bias)" in err
    assert torch.load(run / NAME, weights_only=True)["step"] == 10 and (out / "results.jsonl").read_bytes() == results


def test_resuming_with_another_config_is_refused(tmp_path, tiny_cfg, cpu):
    cfg = tiny_cfg.replace(steps=40)
    _two_checkpoints(tmp_path, cfg, cpu)
    with pytest.raises(UserError, match="lr_g"):
        Checkpointer(tmp_path, 10).load(cfg.replace(lr_g=cfg.lr_g * 2).to_dict())


def _unfinished_cli_run(tmp_path, steps=20):
    """A finished 20-step CLI run made to look unfinished: a checkpoint file and no rows.
    -> (results folder, the run's folder, the command line without ``steps``)."""
    out = tmp_path / "res"
    base = ["run", "--model", "mlp", "--dataset", "ring8", "--out", str(out), "--no-progress",
            "--set", "width=16", "--set", "depth=1", "--set", "batch_size=32"]
    assert main(base + ["--set", f"steps={steps}"]) == 0
    run = next((out / "runs").iterdir())
    torch.save({"format": "ganbench-checkpoint"}, run / NAME)  # pretend it never finished
    (out / "results.jsonl").unlink()
    return out, run, base


def test_cli_resume_refuses_a_changed_setting(tmp_path, capsys):
    out, run, base = _unfinished_cli_run(tmp_path)
    capsys.readouterr()
    assert main(base + ["--set", "steps=30", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "steps" in err and "another config" in err


def test_cli_resume_with_a_corrupt_run_config_is_one_line_and_touches_nothing(tmp_path, capsys):
    out, run, base = _unfinished_cli_run(tmp_path)
    (run / "config.json").write_text('{"run_id": "')
    before = {p: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(base + ["--set", "steps=20", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{run / 'config.json'} is unreadable or corrupt (JSONDecodeError)" in err
    assert {p: p.read_bytes() for p in run.iterdir()} == before and not (out / "results.jsonl").exists()


def test_cli_resume_passes_an_unfinished_run_of_the_same_config_under_another_id(tmp_path, capsys):
    """A run folder whose id was hashed differently (an older scheme) but whose config is the one
    planned is no conflict: nothing differs, so nothing is refused."""
    out, run, base = _unfinished_cli_run(tmp_path)
    run.rename(run.with_name("0123456789ab"))  # rows are written under the id planned now, run.name
    assert main(base + ["--set", "steps=20", "--resume"]) == 0
    assert {r["run_id"] for r in load_rows(out)} == {run.name}


def _quality(out):
    rows = [r for r in load_rows(out) if r["final"]]
    return sorted((r["metric"], r["value"]) for r in rows)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    """A real process killed with SIGKILL mid-run, then ``--resume``: same metrics, same weights."""
    cmd = [sys.executable, "-m", "ganbench", "run", "--model", "mlp", "--dataset", "ring8", "--no-progress",
           "--set", "steps=3000", "--set", "width=32", "--set", "depth=2", "--set", "batch_size=64",
           "--set", "eval_every=1000", "--checkpoint-every", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref"
    subprocess.run(cmd + ["--out", str(ref)], check=True, capture_output=True, timeout=600, env=env)

    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    ckpt = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((out / "runs").glob(f"*/{PREVIOUS}")) if (out / "runs").exists() else []
        if found:
            ckpt = found[0]
            break
        time.sleep(0.05)
    assert ckpt is not None, "the run finished or stalled before its second checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.jsonl").exists() or _quality(out) == []

    subprocess.run(cmd + ["--out", str(out), "--resume"], check=True, capture_output=True, timeout=600, env=env)
    assert _quality(out) == _quality(ref)
    (run_id,) = [p.name for p in (ref / "runs").iterdir()]
    a = torch.load(ref / "runs" / run_id / "generator.pt", weights_only=True)
    b = torch.load(out / "runs" / run_id / "generator.pt", weights_only=True)
    sa, sb = a["state_dict"], b["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not (out / "runs" / run_id / NAME).exists()  # finished runs keep generator.pt only
    curve = sorted((r["step"], r["value"]) for r in load_rows(out) if r["metric"] == "modes")
    assert curve == sorted((r["step"], r["value"]) for r in load_rows(ref) if r["metric"] == "modes")
