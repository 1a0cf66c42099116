"""The command line end to end: runs, tables, listings and user mistakes (exit 2, nothing written)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ganbench.cli import main
from ganbench.results.store import load_rows

TINY = ["--set", "steps=20", "--set", "width=16", "--set", "depth=1", "--set", "batch_size=32", "--no-progress"]

SUITE = """
name = "mini"
seeds = [0, 1]
[defaults]
steps = 20
width = 16
depth = 1
batch_size = 32
[matrix]
dataset = ["ring8", "grid25"]
[[settings]]
loss = "ns"
[[settings]]
loss = "hinge"
spectral_norm = true
"""


@pytest.fixture
def suite_file(tmp_path):
    p = tmp_path / "mini.toml"
    p.write_text(SUITE)
    return p


def test_suite_run_writes_rows_with_provenance(tmp_path, suite_file, capsys):
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite_file), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "8 runs" in printed and "| ring8   | mlp/ns" in printed and "modes ↑" in printed
    rows = load_rows(out)
    assert len(rows) == 8 * 3  # runs x metrics, final only
    r = rows[0]
    for key in ("run_id", "group_id", "model", "loss", "dataset", "seed", "step", "metric", "value",
                "higher_is_better", "protocol", "protocol_id", "config", "env", "status", "suite", "label", "timing"):
        assert key in r, key
    assert r["protocol"] == {"metric_version": 1, "features": "mode2d", "num_fake": 2500, "num_real": 0, "eval_seed": 0}
    assert r["env"]["device"] == "cpu" and r["config"]["steps"] == 20 and r["step"] == 20
    run_dir = out / "runs" / r["run_id"]
    assert json.loads((run_dir / "config.json").read_text())["config"] == r["config"]
    assert (run_dir / "samples.png").read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "history.csv").read_text().startswith("step,d_loss,g_loss,d_real,d_fake,grad_d,grad_g,lr_d,lr_g,step_time")
    assert {r["seed"] for r in rows} == {0, 1}


def test_rerun_skips_finished_runs_and_is_identical(tmp_path, suite_file, capsys):
    out = tmp_path / "res"
    main(["run", "--suite", str(suite_file), "--out", str(out), "--no-progress"])
    before = (out / "results.jsonl").read_text()
    capsys.readouterr()
    assert main(["run", "--suite", str(suite_file), "--out", str(out), "--no-progress"]) == 0
    assert "0 runs, 8 already in" in capsys.readouterr().out
    assert (out / "results.jsonl").read_text() == before
    # a fresh folder reproduces every value exactly
    main(["run", "--suite", str(suite_file), "--out", str(tmp_path / "again"), "--no-progress"])
    key = lambda r: (r["run_id"], r["metric"])  # noqa: E731
    a = {key(r): r["value"] for r in load_rows(out)}
    b = {key(r): r["value"] for r in load_rows(tmp_path / "again")}
    assert a == b


def test_single_setting_with_seeds_and_table(tmp_path, capsys):
    out = tmp_path / "res"
    code = main(["run", "--model", "mlp", "--loss", "lsgan", "--dataset", "grid25", "--seeds", "0-2", "--out", str(out)] + TINY)
    assert code == 0
    rows = load_rows(out)
    assert {r["seed"] for r in rows} == {0, 1, 2} and {r["loss"] for r in rows} == {"lsgan"}
    capsys.readouterr()
    assert main(["table", str(out)]) == 0
    md = capsys.readouterr().out
    assert "| grid25  | mlp/lsgan | 3 | 0        |" in md
    assert main(["table", str(out), "--format", "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("dataset,label") and len(csv) == 1 + 3  # header + one line per metric


@pytest.mark.parametrize("argv, message", [
    (["run", "--model", "mpl"], "unknown model 'mpl'; did you mean 'mlp'"),
    (["run", "--loss", "hinje"], "unknown loss 'hinje'; did you mean 'hinge'"),
    (["run", "--dataset", "ring9"], "did you mean 'ring8'"),
    (["run", "--set", "steps=-5"], "'steps' must be > 0"),
    (["run", "--set", "lr_g=0"], "'lr_g' must be > 0"),
    (["run", "--set", "stpes=5"], "did you mean 'steps'"),
    (["run", "--set", "metrics=modes,fid9"], "unknown metric 'fid9'"),
    (["run", "--suite", "quik"], "did you mean 'quick'"),
    (["run", "--suite", "quick", "--model", "mlp"], "not both"),
    (["run", "--device", "tpu"], "unknown device 'tpu'"),
    (["run", "--dataset", "ring8", "--set", "metrics=fid"], "metric 'fid' reads images (inception features); dataset 'ring8'"),
    (["run", "--dataset", "digits", "--model", "dcgan", "--set", "metrics=modes"], "metric 'modes' applies to 2-D Gaussian mixtures"),
    (["run", "--suite", "paper-gdpp-2d", "--setting", "gna"], "has no setting 'gna'; did you mean 'gan'"),
])
def test_user_mistakes_exit_2_and_write_nothing(tmp_path, argv, message, capsys):
    out = tmp_path / "res"
    assert main(argv + ["--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("argv", [["run", "--seeds", "a,b"], ["run", "--seeds", "3-1"], ["run", "--seeds", "0-2,2"],
                                  ["list", "gizmos"], ["frobnicate"], ["table"]])
def test_argument_errors_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error:" in err


@pytest.mark.parametrize("setting, message", [
    ('steps = "many"', "bad.toml: settings[0]: config key 'steps' must be int, got 'many'"),
    ("betas = [0.5]", "bad.toml: settings[0]: config key 'betas' needs 2 values, got 1"),
])
def test_a_bad_value_in_a_suite_file_names_the_file_and_setting(tmp_path, capsys, setting, message):
    suite = tmp_path / "bad.toml"
    suite.write_text(f'name = "bad"\nseeds = [0]\n[[settings]]\nloss = "ns"\n{setting}\n')
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "res").exists()


def test_a_bad_value_is_blamed_on_set_only_when_set_gave_it(tmp_path, suite_file, capsys):
    assert main(["run", "--suite", str(suite_file), "--set", "steps=-1", "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert "mini.toml: settings[0] (dataset = 'ring8') with --set steps: config key 'steps' must be > 0, got -1" in err
    bad = tmp_path / "bad.toml"  # the file's own bad value, with an unrelated --set
    bad.write_text('name = "bad"\nseeds = [0]\n[[settings]]\nloss = "ns"\n[[settings]]\nloss = "ns"\nbetas = [0.5]\n')
    assert main(["run", "--suite", str(bad), "--set", "lr_g=1e-4", "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert "bad.toml: settings[1]: config key 'betas' needs 2 values" in err and "--set" not in err


def test_a_bad_value_in_a_matrix_only_suite_names_its_combination(tmp_path, capsys):
    suite = tmp_path / "m.toml"
    suite.write_text('name = "m"\nseeds = [0]\n[matrix]\nloss = ["ns"]\nsteps = [10, -1]\n')
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert "m.toml: matrix (loss = 'ns', steps = -1): config key 'steps' must be > 0" in err


def test_test_without_baseline_and_report_of_unknown_suffix_are_refused(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["run", "--dataset", "ring8", "--seeds", "0", "--out", str(out)] + TINY) == 0
    capsys.readouterr()
    assert main(["table", str(out), "--test", "mannwhitney"]) == 2  # it would be ignored without --baseline
    assert "give --baseline LABEL too" in capsys.readouterr().err
    assert main(["table", str(out), "--test", "mannwhitney", "--baseline", "mlp/ns"]) == 0
    assert main(["table", str(out), "--test", "nope", "--baseline", "mlp/ns"]) == 2
    assert "unknown significance test 'nope'" in capsys.readouterr().err
    assert main(["report", str(out), "-o", str(tmp_path / "r.pdf")]) == 2  # not HTML in a file named .pdf
    err = capsys.readouterr().err
    assert "no report format writes .pdf files" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.pdf").exists()
    assert main(["report", str(out), "-o", str(tmp_path / "r.pdf"), "--format", "md"]) == 0
    assert (tmp_path / "r.pdf").read_text().startswith("# ")
    (tmp_path / "out.v2").mkdir()  # a folder is named as one, whatever its name looks like
    assert main(["report", str(out), "-o", str(tmp_path / "out.v2")]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
    assert main(["table", str(out), "--published", "--test", "welch"]) == 2
    assert "takes no --baseline, --metric or --test" in capsys.readouterr().err


def test_an_out_folder_that_cannot_be_made_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file\n")
    np_file = tmp_path / "s.npz"
    np.savez(np_file, samples=np.zeros((2500, 2), dtype=np.float32))
    for argv, message in [
        (["run", "--dataset", "ring8", "--out", str(blocker / "sub")] + TINY, f"{blocker} is a file, so the folder"),
        (["run", "--dataset", "ring8", "--out", str(blocker)] + TINY, "exists and is not a folder"),
        (["eval", "--dataset", "ring8", "--samples", str(np_file), "--out", str(blocker / "sub")], "is a file, so the"),
        (["eval", "--dataset", "ring8", "--samples", str(np_file), "--out", str(blocker)], "exists and is not a folder"),
        (["eval", "--dataset", "ring8", "--samples", str(np_file), "--name", " ", "--out", str(tmp_path / "r")],
         "--name is empty"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert blocker.read_text() == "a file\n" and sorted(p.name for p in tmp_path.iterdir()) == ["results.txt", "s.npz"]


def test_suite_without_settings_is_refused(tmp_path, capsys):
    suite = tmp_path / "empty.toml"
    suite.write_text('name = "empty"\n')
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "res")]) == 2
    assert "the suite has no settings" in capsys.readouterr().err and not (tmp_path / "res").exists()


def test_table_of_a_folder_whose_only_line_is_torn(tmp_path, capsys):
    (tmp_path / "results.jsonl").write_text('{"config": {"batch_size": 512, "betas"')  # a killed writer's half line
    for argv in (["table", str(tmp_path)], ["table", str(tmp_path), "--format", "csv"], ["report", str(tmp_path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "no final results" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_table_of_missing_folder(tmp_path, capsys):
    assert main(["table", str(tmp_path / "nope")]) == 2
    assert "results folder not found" in capsys.readouterr().err


@pytest.mark.parametrize("what, expected", [
    ("models", "mlp"), ("losses", "wgan-gp"), ("datasets", "grid25"), ("metrics", "kl"), ("suites", "quick"),
])
def test_list(what, expected, capsys):
    assert main(["list", what]) == 0
    assert expected in capsys.readouterr().out


@pytest.mark.slow  # 20 s; test_install runs the installed package from another folder by default
def test_console_script_from_another_folder(tmp_path, suite_file):
    """As a user runs it: the installed `ganbench` command, default output folder, then `table`."""
    exe = Path(sys.executable).with_name("ganbench")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ganbench"]
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning:ganbench"}
    run = subprocess.run(cmd + ["run", "--suite", str(suite_file), "--no-progress"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "ganbench-results" / "results.jsonl").is_file()
    table = subprocess.run(cmd + ["table", "ganbench-results"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "mlp/hinge+sn" in table.stdout
    # a reader that leaves before the table is printed (`| head`, here `| true`, which reads
    # nothing and exits while ganbench still imports torch) is no error: no traceback, exit 0
    piped = subprocess.run(["bash", "-o", "pipefail", "-c", " ".join(cmd) + " table ganbench-results | true"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""
    bad = subprocess.run(cmd + ["run", "--model", "nope"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_a_diverging_run_is_recorded_and_the_suite_goes_on(tmp_path, capsys):
    suite = tmp_path / "div.toml"
    suite.write_text(SUITE.replace('[[settings]]\nloss = "hinge"\nspectral_norm = true',
                                   '[[settings]]\nlabel = "absurd"\nloss = "wgan-gp"\nlr_g = 1e12\nlr_d = 1e12\nbetas = [0.0, 0.0]\nsteps = 200'))
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--no-progress"]) == 0
    rows = load_rows(out)
    bad = [r for r in rows if r["label"] == "absurd"]
    good = [r for r in rows if r["label"] == "mlp/ns"]
    assert len(bad) == 4 * 3 and all(r["status"] == "diverged" and r["value"] is None for r in bad)
    assert all(r["reason"].startswith("non-finite:") for r in bad)
    assert len(good) == 4 * 3 and all(r["status"] == "ok" and r["value"] is not None for r in good)
    assert "| ring8   | absurd  | 2 | 2        | —" in capsys.readouterr().out


def test_evaluation_during_training_gives_a_curve(tmp_path):
    out = tmp_path / "res"
    assert main(["run", "--dataset", "ring8", "--out", str(out), "--set", "eval_every=10"] + TINY) == 0
    steps = sorted({(r["step"], r["final"]) for r in load_rows(out)})
    assert steps == [(10, False), (20, True)]


def test_readme_documents_every_config_field():
    import dataclasses

    from ganbench.config import RunConfig

    root = Path(__file__).parents[1]
    assert "docs/configuration.md" in (root / "README.md").read_text()  # the README links the field table
    page = (root / "docs" / "configuration.md").read_text()
    missing = [f.name for f in dataclasses.fields(RunConfig) if f"`{f.name}`" not in page]
    assert missing == []
