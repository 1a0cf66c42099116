"""Evaluation without training, and plug-ins: checkpoints, TorchScript, callables, .npz, bad input."""

import textwrap

import numpy as np
import pytest
import torch

from ganbench.cli import main
from ganbench.data import DATASETS
from ganbench.results.store import load_rows

TINY = ["--set", "steps=30", "--set", "width=16", "--set", "depth=1", "--set", "batch_size=32", "--no-progress"]


@pytest.fixture
def trained(tmp_path):
    out = tmp_path / "res"
    assert main(["run", "--dataset", "ring8", "--out", str(out)] + TINY) == 0
    (row,) = [r for r in load_rows(out) if r["metric"] == "hq"]
    return out, row


def test_checkpoint_eval_reproduces_the_run_exactly(trained, capsys):
    out, row = trained
    ckpt = out / "runs" / row["run_id"] / "generator.pt"
    assert main(["eval", "--dataset", "ring8", "--generator", str(ckpt), "--out", str(out)]) == 0
    rows = load_rows(out)
    evals = [r for r in rows if r["suite"] == "eval"]
    runs = {r["metric"]: r["value"] for r in rows if r["suite"] != "eval"}
    assert {r["metric"]: r["value"] for r in evals} == runs
    assert evals[0]["source"]["kind"] == "checkpoint" and evals[0]["config"] == row["config"]
    assert evals[0]["label"] == "mlp/ns"


def test_npz_of_a_perfect_sampler(tmp_path, capsys):
    pts = DATASETS["ring8"]().sample(2500, torch.Generator().manual_seed(0)).numpy()
    np.savez(tmp_path / "perfect.npz", samples=pts)
    out = tmp_path / "res"
    assert main(["eval", "--dataset", "ring8", "--samples", str(tmp_path / "perfect.npz"), "--out", str(out)]) == 0
    values = {r["metric"]: r["value"] for r in load_rows(out)}
    assert values["modes"] == 8 and values["hq"] > 0.97
    assert "perfect on ring8: modes 8" in capsys.readouterr().out


def test_eval_samples_sets_the_count_every_fixed_count_metric_reads(tmp_path, capsys):
    """The first eval_samples samples, and the count in each row's protocol: 100 points on one mode
    followed by 2,400 on all 8 give 1 mode at eval_samples = 100, 8 at the metric's own 2,500."""
    ring = DATASETS["ring8"]()
    spread = ring.sample(2400, torch.Generator().manual_seed(0))
    one_mode = ring.means[:1].repeat(100, 1) + 0.001 * torch.randn(100, 2, generator=torch.Generator().manual_seed(1))
    np.savez(tmp_path / "s.npz", samples=torch.cat([one_mode, spread]).numpy())
    out = tmp_path / "res"
    for extra in ([], ["--set", "eval_samples=100"]):
        assert main(["eval", "--dataset", "ring8", "--samples", str(tmp_path / "s.npz"), "--out", str(out)] + extra) == 0
    rows = load_rows(out)
    by_count = {(r["protocol"]["num_fake"], r["metric"]): r["value"] for r in rows}
    assert by_count[(2500, "modes")] == 8 and by_count[(100, "modes")] == 1 and by_count[(100, "hq")] == 1.0
    assert len({r["protocol_id"] for r in rows if r["metric"] == "modes"}) == 2  # never one table cell
    assert main(["eval", "--dataset", "ring8", "--samples", str(tmp_path / "s.npz"), "--out", str(out),
                 "--set", "eval_samples=3000"]) == 2
    assert "needs 3000 samples, got 2500" in capsys.readouterr().err
    assert main(["eval", "--dataset", "ring8", "--samples", str(tmp_path / "s.npz"), "--out", str(out),
                 "--set", "eval_samples=-5"]) == 2
    assert "eval_samples" in capsys.readouterr().err


def test_eval_bn_batch_is_in_the_protocol_and_refused_for_stored_samples(tmp_path, capsys):
    from ganbench.config import RunConfig
    from ganbench.evaluate import protocol
    from ganbench.metrics import METRICS

    plain = protocol(METRICS["modes"], 0, cfg=RunConfig())
    assert "eval_bn_batch" not in plain  # protocols written before the field keep their ids
    assert protocol(METRICS["modes"], 0, cfg=RunConfig(g_batch_norm=True, eval_bn_batch=64)) == {**plain, "eval_bn_batch": 64}
    np.savez(tmp_path / "s.npz", samples=DATASETS["ring8"]().sample(2500, torch.Generator().manual_seed(0)).numpy())
    out = tmp_path / "res"
    assert main(["eval", "--dataset", "ring8", "--samples", str(tmp_path / "s.npz"), "--out", str(out),
                 "--set", "eval_bn_batch=64"]) == 2
    err = capsys.readouterr().err
    assert "eval_bn_batch = 64 sets how a generator samples" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_bn_refresh_checkpoint_is_evaluated_with_batch_statistics_given_bn_refresh_0(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["run", "--dataset", "ring8", "--out", str(out), "--set", "g_batch_norm=true", "--set", "bn_refresh=2",
                 "--set", "metrics=modes"] + TINY) == 0
    (row,) = load_rows(out)
    ckpt = str(out / "runs" / row["run_id"] / "generator.pt")
    capsys.readouterr()
    assert main(["eval", "--dataset", "ring8", "--generator", ckpt, "--set", "eval_bn_batch=64", "--out", str(out)]) == 2
    assert "set one of them to 0" in capsys.readouterr().err
    assert main(["eval", "--dataset", "ring8", "--generator", ckpt, "--set", "eval_bn_batch=64", "--set", "bn_refresh=0",
                 "--name", "batch-stats", "--out", str(out)]) == 0
    (evaluated,) = [r for r in load_rows(out) if r["label"] == "batch-stats"]
    assert evaluated["protocol"]["eval_bn_batch"] == 64 and evaluated["config"]["bn_refresh"] == 0


def test_a_run_evaluates_the_first_eval_samples_of_its_generator(tmp_path):
    out = tmp_path / "res"
    assert main(["run", "--dataset", "ring8", "--out", str(out), "--set", "eval_samples=300"] + TINY) == 0
    rows = [r for r in load_rows(out) if r["final"]]
    assert {r["protocol"]["num_fake"] for r in rows} == {300}
    from ganbench.evaluate import compute_metrics, generate, resolve_metrics
    from ganbench.samples import load_generator
    g, cfg, _ = load_generator(out / "runs" / rows[0]["run_id"] / "generator.pt")
    ring = DATASETS["ring8"]()
    values = compute_metrics(generate(g, 300, cfg.z_dim, cfg.eval_seed, torch.device("cpu")), ring,
                             resolve_metrics((), ring), cfg=cfg)
    assert {r["metric"]: r["value"] for r in rows} == values


def test_eval_samples_below_a_metric_s_minimum_is_refused_before_training(tmp_path, capsys):
    """The k-NN metrics need more generated points than recall's k = 3 neighbours: a run asking for 3
    fails at once, with exit 2 and nothing written, not after training. Only the metrics that need
    more are named."""
    out = tmp_path / "res"
    args = ["run", "--dataset", "digits", "--model", "dcgan", "--out", str(out), "--no-progress", "--set", "steps=1"]
    assert main(args + ["--set", "metrics=classes,fid_domain,precision", "--set", "eval_samples=3"]) == 2
    err = capsys.readouterr().err
    assert "config key 'eval_samples' (3) is too few for precision (at least 4); set it to at least 4" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    conditional = ["run", "--dataset", "digits", "--model", "cdcgan", "--out", str(out), "--no-progress"]
    assert main(conditional + ["--set", "metrics=fid_intra", "--set", "eval_samples=19"]) == 2  # 2 of each of 10 classes
    assert "too few for fid_intra (at least 20)" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("array, message", [
    (np.full((2500, 2), np.nan, dtype=np.float32), "2500 of 2500 samples contain NaN or Inf"),
    (np.zeros((2500, 3), dtype=np.float32), "output has shape (2500, 3), expected (N, 2)"),
    (np.zeros((2500, 2), dtype=np.int64), "samples must be uint8 or float, got torch.int64"),
    (np.zeros((10, 2), dtype=np.float32), "needs 2500 samples, got 10"),
    ({"a": np.zeros((2500, 2)), "b": np.zeros((2500, 2))}, "holds arrays ['a', 'b']; name the samples array 'samples'"),
    ({}, "holds no arrays"),
    (np.full((2500, 2), "0.5"), "samples must be uint8 or float, got <U3"),
])
def test_bad_npz_is_a_clear_error(tmp_path, capsys, array, message):
    np.savez(tmp_path / "bad.npz", **(array if isinstance(array, dict) else {"samples": array}))  # dict: named arrays
    out = tmp_path / "res"
    assert main(["eval", "--dataset", "ring8", "--samples", str(tmp_path / "bad.npz"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_damaged_npz_and_a_generator_that_is_no_callable_are_clear_errors(tmp_path, capsys):
    """A truncated .npz (a copy cut short) and a FILE.py:NAME that names a number are refused in one
    line, exit 2, with nothing written."""
    np.savez(tmp_path / "good.npz", samples=np.zeros((2500, 2), dtype=np.float32))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:500])
    (tmp_path / "gens.py").write_text("X = 3\n")
    out = tmp_path / "res"
    for argv, message in [
        (["--samples", str(tmp_path / "cut.npz")], f"{tmp_path / 'cut.npz'}: not a readable .npz file (BadZipFile)"),
        (["--generator", f"{tmp_path / 'gens.py'}:X", "--z-dim", "2"],
         f"{tmp_path / 'gens.py'}:X: X is not callable (int); name an nn.Module, a class or a function"),
    ]:
        assert main(["eval", "--dataset", "ring8", *argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
        assert not out.exists()
    out.mkdir()  # a results folder with a corrupt line: refused before anything is appended after it
    (out / "results.jsonl").write_text("not json\n")
    assert main(["eval", "--dataset", "ring8", "--samples", str(tmp_path / "good.npz"), "--out", str(out)]) == 2
    assert "results.jsonl:1: not a JSON row" in capsys.readouterr().err
    assert (out / "results.jsonl").read_text() == "not json\n"


def test_every_damage_to_an_npz_is_a_user_error(tmp_path):
    """Each byte of a compressed .npz flipped, and the file cut at each length: it loads (a byte that
    does not matter) or is refused as unreadable, naming the damage, and never raises anything else
    (a damaged array header trips numpy's tokenizer, a damaged member zlib)."""
    from ganbench.errors import UserError
    from ganbench.samples import load_npz_labelled

    np.savez_compressed(tmp_path / "good.npz", samples=np.zeros((2500, 2), dtype=np.float32))
    good, bad = (tmp_path / "good.npz").read_bytes(), tmp_path / "bad.npz"
    kinds = set()
    for pos in range(len(good)):
        for damaged in (good[:pos], good[:pos] + bytes([good[pos] ^ 0xFF]) + good[pos + 1:]):
            bad.write_bytes(damaged)
            try:
                load_npz_labelled(bad, (2,))
            except UserError as e:
                assert str(e).startswith(f"{bad}: not a readable .npz file (")
                kinds.add(str(e).rsplit("(", 1)[1])
    assert {"BadZipFile)", "damaged compressed data)", "TokenError)"} <= kinds


def test_callable_and_torchscript_generators(tmp_path):
    ring = DATASETS["ring8"]().means.float()
    plugin = tmp_path / "my_sampler.py"
    plugin.write_text(textwrap.dedent("""
        import torch
        MEANS = torch.tensor(%s)
        def sample(z):
            # every latent to the mode picked by its first coordinate's sign and size
            idx = (z[:, 0].abs() * 8).long() %% 8
            return MEANS[idx]
    """ % ring.tolist()))
    out = tmp_path / "res"
    assert main(["eval", "--dataset", "ring8", "--generator", f"{plugin}:sample", "--z-dim", "4", "--out", str(out)]) == 0
    (modes,) = [r for r in load_rows(out) if r["metric"] == "modes"]
    assert modes["value"] == 8 and modes["source"]["kind"] == "callable" and len(modes["source"]["sha256"]) == 64

    net = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2)))
    net.save(str(tmp_path / "g.pt"))
    assert main(["eval", "--dataset", "ring8", "--generator", str(tmp_path / "g.pt"), "--z-dim", "3", "--out", str(out)]) == 0
    assert {r["source"]["kind"] for r in load_rows(out)} == {"callable", "torchscript"}


def test_eval_refuses_what_it_would_ignore_or_mislabel(tmp_path, trained, capsys):
    out, row = trained
    ckpt = str(out / "runs" / row["run_id"] / "generator.pt")
    np.savez(tmp_path / "s.npz", samples=np.zeros((2500, 2), dtype=np.float32))
    before = (out / "results.jsonl").read_bytes()
    for argv, message in [
        (["--generator", ckpt, "--set", "steps=5"], "--set steps: ganbench eval does not use it"),  # would mislabel the row
        (["--samples", str(tmp_path / "s.npz"), "--set", "width=8"], "--set width: ganbench eval does not use it"),
        (["--samples", str(tmp_path / "s.npz"), "--z-dim", "4"], "--z-dim is for TorchScript files and callables"),
        (["--generator", ckpt, "--z-dim", "7"], f"--z-dim 7: checkpoint {ckpt} has z_dim 2"),
        (["--generator", ckpt, "--z-dim", "0"], "--z-dim must be >= 1, got 0"),
        (["--generator", ckpt, "--set", "seed=3"], f"--set seed=3: checkpoint {ckpt} was trained with seed 0"),
        (["--samples", str(tmp_path / "s.npz"), "--set", "dataset=grid25"], "--set dataset: give it with --dataset"),
        (["--samples", str(tmp_path / "s.npz"), "--set", "z_dim=4"], "--set z_dim: give it with --z-dim"),
        (["--samples", str(tmp_path / "s.npz"), "--set", "bn_refresh=5"], "--set bn_refresh: ganbench eval does not"),
        (["--samples", str(tmp_path / "s.npz"), "--set", "tail_ratio=0.5", "--set", "lr_g=1"], "--set lr_g:"),
        (["--samples", str(tmp_path / "s.npz"), "--metrics", ""], "--metrics '' names no metric"),
        (["--samples", str(tmp_path / "s.npz"), "--metrics", " , "], "--metrics ' , ' names no metric"),
    ]:
        assert main(["eval", "--dataset", "ring8", "--out", str(out)] + argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert (out / "results.jsonl").read_bytes() == before
    # the fields that do shape an evaluation are taken, and the checkpoint's own z_dim is accepted
    assert main(["eval", "--dataset", "ring8", "--generator", ckpt, "--z-dim", "2", "--set", "eval_seed=1",
                 "--name", "other-noise", "--out", str(out)]) == 0
    assert {r["protocol"]["eval_seed"] for r in load_rows(out) if r["label"] == "other-noise"} == {1}


def test_eval_records_the_training_seed_it_is_given_so_tables_count_seeds(tmp_path, capsys):
    """Samples of two training seeds under one --name are n = 2 in the table, not one seed twice."""
    out = tmp_path / "res"
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        np.savez(tmp_path / f"s{seed}.npz", samples=rng.normal(size=(2500, 2)).astype(np.float32))
        assert main(["eval", "--dataset", "ring8", "--samples", str(tmp_path / f"s{seed}.npz"), "--name", "mine",
                     "--set", f"seed={seed}", "--metrics", "modes", "--out", str(out)]) == 0
    assert sorted(r["seed"] for r in load_rows(out)) == [0, 1]
    capsys.readouterr()
    assert main(["table", str(out), "--format", "csv"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ",mine," in ln]
    assert ",2,0," in line  # n = 2, diverged = 0


def test_eval_takes_the_config_fields_its_metrics_declare():
    import dataclasses

    from ganbench.errors import UserError
    from ganbench.metrics import METRICS
    from ganbench.samples import check_eval_overrides, eval_fields

    assert "tail_ratio" in eval_fields()  # rebalance_gain's
    check_eval_overrides({"tail_ratio": 0.5, "seed": 3, "eval_seed": 1, "bn_refresh": 0})
    with pytest.raises(UserError, match="--set lr_decay: ganbench eval does not use it"):
        check_eval_overrides({"lr_decay": 0.5})
    METRICS.register("hq_reads_lr_decay", dataclasses.replace(METRICS["hq"], name="hq_reads_lr_decay",
                                                              config=("lr_decay",)))
    try:  # a plug-in metric that reads a field makes it an evaluation field
        check_eval_overrides({"lr_decay": 0.5})
    finally:
        dict.pop(METRICS, "hq_reads_lr_decay")


def test_missing_z_dim_and_corrupt_checkpoint(tmp_path, trained, capsys):
    out, row = trained
    net = torch.jit.script(torch.nn.Linear(3, 2))
    net.save(str(tmp_path / "g.pt"))
    assert main(["eval", "--dataset", "ring8", "--generator", str(tmp_path / "g.pt"), "--out", str(out)]) == 2
    assert "--z-dim is required" in capsys.readouterr().err
    ckpt = out / "runs" / row["run_id"] / "generator.pt"
    broken = tmp_path / "broken.pt"
    broken.write_bytes(ckpt.read_bytes()[:200])
    assert main(["eval", "--dataset", "ring8", "--generator", str(broken), "--out", str(out)]) == 2
    assert "unreadable or corrupt checkpoint" in capsys.readouterr().err
    assert main(["eval", "--dataset", "ring8", "--generator", str(tmp_path / "nope.pt"), "--out", str(out)]) == 2
    assert "file not found" in capsys.readouterr().err


PLUGIN = '''
from torch import nn
from ganbench.models import MODELS

class Gen(nn.Module):
    def __init__(self, z_dim):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, z):
        return self.net(z)

@MODELS.register("mine")
def mine(cfg, dataset):
    """a plug-in model"""
    return Gen(cfg.z_dim), nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1), nn.Flatten(0))
'''


def test_plugin_model_runs_like_a_builtin(tmp_path, capsys):
    plugin = tmp_path / "my_gan.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "res"
    assert main(["run", "--plugin", str(plugin), "--model", "mine", "--seeds", "0,1", "--out", str(out)] + TINY) == 0
    rows = load_rows(out)
    assert {r["model"] for r in rows} == {"mine"} and len(rows) == 2 * 3
    assert rows[0]["env"]["plugins"][str(plugin)] == __import__("hashlib").sha256(plugin.read_bytes()).hexdigest()
    assert "| ring8   | mine/ns" in capsys.readouterr().out
    assert main(["list", "models", "--plugin", str(plugin)]) == 0
    assert "mine" in capsys.readouterr().out


@pytest.mark.parametrize("source, message", [
    ("def broken(:\n", "failed to import: SyntaxError"),
    ("raise RuntimeError('boom')\n", "failed to import: RuntimeError: boom"),
])
def test_broken_plugin_is_one_line(tmp_path, capsys, source, message):
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text(source)
    assert main(["run", "--plugin", str(plugin), "--out", str(tmp_path / "res")] + TINY) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert main(["run", "--plugin", str(tmp_path / "missing.py")] + TINY) == 2
    assert "plug-in file not found" in capsys.readouterr().err


def test_generator_with_wrong_output_is_refused_before_training(tmp_path, capsys):
    plugin = tmp_path / "wrong.py"
    plugin.write_text(PLUGIN.replace('"mine"', '"wrong"').replace("nn.Linear(32, 2))", "nn.Linear(32, 3))"))
    out = tmp_path / "res"
    assert main(["run", "--plugin", str(plugin), "--model", "wrong", "--out", str(out)] + TINY) == 2
    err = capsys.readouterr().err
    assert "model 'wrong' generator: output has shape (2, 3), expected (N, 2)" in err
    assert not (out / "results.jsonl").exists()
