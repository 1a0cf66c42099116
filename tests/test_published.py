"""Published protocols: the paper suites' data, the published-number parser, verdicts, and
`ganbench table --published` / `ganbench report` on a tiny paper suite trained end to end."""

import gzip
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ganbench.checkpoint import NAME
from ganbench.cli import main
from ganbench.config import RunConfig, load_suite, select_settings
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.evaluate import compute_metrics, resolve_metrics
from ganbench.features.mode2d import mode_assignment
from ganbench.metrics import METRICS
from ganbench.metrics.modes import modes_covered
from ganbench.papers import parse_published
from ganbench.results.published import display, untestable, verdict
from ganbench.results.store import append_rows, load_results
from ganbench.results.tables import published_table, render
from ganbench.runs.one import _rows
from ganbench.train import train

PAPERS = ("paper-gdpp-2d", "paper-pacgan-2d", "paper-pacgan-stacked-mnist")

TINY_PAPER = """
name = "{name}"
description = "a tiny stand-in for a paper suite"
citation = "Someone et al. 2099, Table 9"
seeds = [0, 1, 2]
deviations = ["trained for 40 steps instead of the paper's 25,000"]
[protocol]
evaluation = "2,500 points, 3 sigma"
[defaults]
model = "mlp"
loss = "ns"
dataset = "ring8"
steps = 40
batch_size = 64
width = 16
depth = 2
[[settings]]
label = "gan"
[[published]]
setting = "gan"
dataset = "ring8"
source = "Table 9, row GAN"
n = 10
spread = "se"
values = {{ modes = [{modes}, 0.1], kl = [{kl}, 0.01] }}
[[published]]
setting = "gan"
dataset = "ring8"
source = "Table 9, row GAN, no spread"
n = 5
values = {{ hq = 0.99 }}
"""


@pytest.mark.parametrize("name", PAPERS)
def test_paper_suites_carry_citation_protocol_deviations_and_published_rows(name):
    suite = load_suite(name)
    assert suite.name == name and suite.citation and suite.deviations
    assert all(cfg.divergence == "continue" for _, cfg in suite.settings)  # every run trains to the paper's length
    assert {"data", "generator", "discriminator", "optimiser", "evaluation"} <= dict(suite.protocol).keys()
    settings = {(label, cfg.dataset) for label, cfg in suite.settings}
    for pub in suite.published:
        assert (pub.setting, pub.dataset) in settings
        for metric, mean, spread in pub.values:
            assert metric in METRICS and math.isfinite(mean)
            assert math.isnan(spread) == (pub.spread == "none")


def test_gdpp_protocol_fields():
    s = dict(((label, cfg.dataset), cfg) for label, cfg in load_suite("paper-gdpp-2d").settings)
    gan = s[("gan", "ring8-linspace")]
    assert (gan.activation, gan.init, gan.init_gain, gan.z_dim, gan.width, gan.depth, gan.batch_size) == (
        "tanh", "orthogonal", 1.4, 256, 128, 2, 512)
    assert (gan.lr_g, gan.lr_d, gan.betas, gan.steps, gan.update) == (1e-3, 1e-4, (0.5, 0.999), 25000, "simultaneous")
    unrolled = s[("unrolled-gan", "grid25")]
    assert (unrolled.unroll_steps, unrolled.loss) == (5, "minimax")
    pac = dict(((label, cfg.dataset), cfg) for label, cfg in load_suite("paper-pacgan-2d").settings)
    p2 = pac[("pacgan2", "ring8")]
    assert (p2.pack, p2.batch_size, p2.maxout, p2.d_width, p2.d_depth, p2.width, p2.depth, p2.g_batch_norm) == (
        2, 200, 5, 200, 3, 400, 4, True)
    assert (p2.z_dim, p2.lr_g, p2.betas, p2.steps) == (2, 1e-4, (0.8, 0.999), 400000)
    sm = dict(load_suite("paper-pacgan-stacked-mnist").settings)
    for label, pack in (("dcgan", 1), ("pacdcgan2", 2)):  # 128 packs per batch; each pack slot is one batch of G
        cfg = sm[label]
        assert (cfg.model, cfg.width, cfg.d_width, cfg.z_dim, cfg.pack, cfg.batch_size // pack) == (
            "small-dcgan", 8, 2, 256, pack, 128)
        assert (cfg.lr_d, cfg.lr_g, cfg.betas, cfg.steps, cfg.update, cfg.eval_bn_batch, cfg.eval_samples) == (
            2e-4, 1e-4, (0.5, 0.99), 500000, "alternating-same-latents", 128, 25600)


def test_linspace_ring_has_seven_locations_and_counts_eight_modes_like_the_reference():
    ds = DATASETS["ring8-linspace"]()
    assert len(ds.means) == 8 and len(torch.unique(ds.means.round(decimals=9), dim=0)) == 7
    assert torch.equal(ds.means[0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert ds.means[7, 0] < 0  # sin(2 pi) = -2.4e-16: the top location's points split by the sign of x
    real = ds.sample(2500, torch.Generator().manual_seed(0))
    values = compute_metrics(real, ds, resolve_metrics(("modes", "hq"), ds))
    assert values["modes"] == 8.0 and values["hq"] > 0.98
    top = real[(real[:, 1] > 0.9)]  # one location: still two "modes"
    assert modes_covered(mode_assignment(top, ds)) == 2.0


@pytest.mark.parametrize("entry, message", [
    ({"setting": "a", "dataset": "ring8", "source": "T1", "values": {"modes": [1, 2]}}, "single mean when it is none"),
    ({"setting": "a", "dataset": "ring8", "source": "T1", "spread": "se", "values": {"modes": 1}}, "give \\[mean, spread\\]"),
    ({"setting": "a", "dataset": "ring8", "source": "T1", "spread": "sd", "values": {"modes": 1}}, "spread must be one of"),
    ({"setting": "a", "dataset": "ring8", "values": {"modes": 1}}, "missing key 'source'"),
    ({"setting": "a", "dataset": "ring8", "source": "T1", "n": -1, "values": {"modes": 1}}, "n must be an integer"),
    ({"setting": "a", "dataset": "ring8", "source": "T1", "values": {"modes": "x"}}, "must be a number"),
    ({"setting": "a", "dataset": "ring8", "source": "T1", "valeus": {}}, "unknown key 'valeus'"),
    ({"setting": "a", "dataset": "ring8", "source": "T1", "spread": "std", "values": {"modes": [1, 2]}}, "needs the number of runs"),
    ({"setting": "a", "dataset": "ring8", "source": "T1", "spread": "se", "values": {"modes": [1, -2]}}, "spread >= 0"),
    ({"setting": "a", "dataset": "ring8", "source": "T1", "spread": "se", "n": 1, "values": {"modes": [1, 2]}},
     "one run has no standard error"),
    ({"setting": "a", "dataset": "ring8", "source": "T1", "values": {"modes": float("nan")}}, "must be finite"),
])
def test_malformed_published_rows_are_one_line_errors(entry, message):
    with pytest.raises(UserError, match=message):
        parse_published([entry], "suite.toml")


def test_a_published_number_given_twice_is_refused():
    row = {"setting": "a", "dataset": "ring8", "source": "T1", "values": {"modes": 1}}
    assert len(parse_published([row, dict(row, source="T2"), dict(row, values={"hq": 0.5})], "s.toml")) == 3
    with pytest.raises(UserError, match=r"published\[1\]: values.modes: a second number for setting 'a' on 'ring8' from 'T1'"):
        parse_published([row, dict(row, values={"hq": 0.5, "modes": 2})], "s.toml")


def test_published_row_of_a_setting_the_suite_does_not_run_is_refused(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TINY_PAPER.format(name="s", modes=8, kl=0.1).replace('setting = "gan"\ndataset = "ring8"\nsource = "Table 9, row GAN"',
                                                                       'setting = "wgan"\ndataset = "ring8"\nsource = "x"'))
    with pytest.raises(UserError, match="names setting 'wgan' on 'ring8', which the suite does not run"):
        load_suite(str(path))


def test_verdicts_against_closed_forms():
    from scipy import stats

    ours = np.array([7.0, 8.0, 8.0, 7.0, 8.0])  # mean 7.6, sd 0.548
    m, s, n = ours.mean(), ours.std(ddof=1), len(ours)
    # Welch by hand: published 6.3 ± 1.0 se over 10 runs, i.e. sd 1.0 * sqrt(10)
    v1, v2 = s**2 / n, 1.0**2
    t = (m - 6.3) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (n - 1) + v2**2 / 9)
    verdict_, p, test = verdict(6.3, 1.0, 10, ours, True)
    assert (verdict_, test) == ("consistent", "Welch") and p == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
    assert verdict(6.3, 0.05, 10, ours, True)[0] == "better"
    assert verdict(9.5, 0.1, 10, ours, True)[0] == "worse"
    assert verdict(9.5, 0.1, 10, ours, False)[0] == "better"  # lower is better: 7.6 beats 9.5
    # no published spread: the paper's 5 runs taken to spread as ours do (the hypothesis tested),
    # Student's t on our 4 degrees of freedom; by hand, 7.6 against 7.0: t = 0.6 / (0.548 * sqrt(2/5))
    # = 1.732, p = 0.158 (a one-sample t-test, the published mean taken as exact, would give 0.070)
    _, p1, test1 = verdict(7.0, math.nan, 5, ours, True)
    assert test1 == "t, our spread" and p1 == pytest.approx(0.1583, abs=1e-4)
    t1 = (m - 7.0) / (s * math.sqrt(1 / n + 1 / 5))
    assert p1 == pytest.approx(2 * stats.t.sf(t1, n - 1), rel=1e-12)
    # a mean printed without its n is taken as one run: the widest interval
    t0 = (m - 7.0) / (s * math.sqrt(1 / n + 1))
    assert verdict(7.0, math.nan, 0, ours, True)[1] == pytest.approx(2 * stats.t.sf(t0, n - 1), rel=1e-12)
    assert verdict(5.0, math.nan, 5, ours, True)[0] == "better"  # t = 7.5, p = 0.0017
    # a published spread of 0 and none in ours: equal or not
    assert verdict(8.0, 0.0, 10, np.array([8.0, 8.0]), True) == ("consistent", 1.0, "exact")
    assert verdict(7.9, 0.0, 10, np.array([8.0, 8.0]), True) == ("better", 0.0, "exact")
    # an unknown published spread is not a spread of 0: a mean of 6.8 modes says the paper's runs
    # differed, so seeds that all found 8 leave nothing to test
    assert untestable(math.nan, np.array([8.0] * 5)).startswith("no spread on either side")
    with pytest.raises(ValueError, match="no spread on either side"):
        verdict(6.8, math.nan, 0, np.array([8.0] * 5), True)
    assert untestable(math.nan, np.array([8.0, 7.0])) == "" and untestable(0.1, np.array([8.0])) == ""
    assert untestable(math.nan, np.array([8.0])) == "1 finished seed, and no published spread to test it against"
    # one seed against a printed spread of 0 is compared exactly, as two equal seeds are
    assert verdict(8.0, 0.0, 10, np.array([8.0]), True) == ("consistent", 1.0, "exact")
    assert verdict(7.0, 0.0, 10, np.array([8.0]), True) == ("better", 0.0, "exact")
    assert untestable(0.1, np.array([0.2, math.inf])) == "a seed's value is not finite"  # (class_kl can be inf)
    # one seed: Student's t with the published runs' spread, 9 degrees of freedom. By hand: 18 against
    # 17.3 ± 0.8 se over 10 runs (sd 2.530): t = 0.7 / (2.530 * sqrt(1 + 1/10)) = 0.2638, p = 0.798
    one = verdict(17.3, 0.8, 10, np.array([18.0]), True)
    assert one[0] == "consistent" and one[2] == "t, published spread" and one[1] == pytest.approx(0.7978, abs=1e-4)
    assert verdict(0.948, 0.007, 10, np.array([0.84]), True)[:1] == ("worse",)  # t = -4.65, p = 0.0012
    with pytest.raises(ValueError, match="no published spread"):
        verdict(3.3, math.nan, 5, np.array([5.0]), True)  # (the table calls that one 'not comparable')


def test_published_metric_must_be_computed_by_its_setting(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TINY_PAPER.format(name="s", modes=8, kl=0.1).replace("[defaults]", '[defaults]\nmetrics = ["modes", "hq"]'))
    from ganbench.runs.suite import validate_suite
    with pytest.raises(UserError, match="gives metric 'kl', which setting 'gan' does not compute"):
        validate_suite(load_suite(str(path)))


@pytest.fixture
def paper_run(tmp_path, monkeypatch):
    """A tiny paper suite found by name (as the bundled ones are) and trained for 3 seeds."""
    import ganbench.config as config

    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "paper-tiny.toml").write_text(TINY_PAPER.format(name="paper-tiny", modes=8.0, kl=5.0))
    monkeypatch.setattr(config, "SUITE_DIRS", (*config.SUITE_DIRS, folder))
    out = tmp_path / "res"
    assert main(["run", "--suite", "paper-tiny", "--out", str(out), "--no-progress"]) == 0
    return out


def test_table_published_sets_papers_beside_ganbench_with_verdicts(paper_run, capsys):
    df = load_results(paper_run)
    c = published_table(df).set_index("metric")
    assert list(c.index) == ["modes", "kl", "hq"]
    final = df[df["final"].astype(bool)]
    for metric in ("modes", "kl", "hq"):
        values = final.loc[final["metric"] == metric, "value"].to_numpy(dtype=float)
        assert c.loc[metric, "mean"] == pytest.approx(values.mean())
        assert c.loc[metric, "se"] == pytest.approx(values.std(ddof=1) / math.sqrt(3))
        assert c.loc[metric, "n"] == 3
    assert c.loc["kl", "verdict"] == "better"  # ganbench's kl is far below the published 5.0 ± 0.01
    assert c.loc["kl", "published_se"] == 0.01
    capsys.readouterr()
    assert main(["table", str(paper_run), "--published"]) == 0
    md = capsys.readouterr().out
    assert "| dataset | setting | metric | published" in md
    assert "5.00 ± 0.01 se (n=10)" in md and "0.990 (n=5)" in md and "| better (p=" in md and ", Welch)" in md
    assert "paper-tiny: Someone et al. 2099, Table 9" in md
    assert "paper-tiny deviation: trained for 40 steps instead of the paper's 25,000" in md
    for fmt, marker in (("csv", "published_mean"), ("html", "<td>better (p="), ("latex", r"\toprule")):
        assert main(["table", str(paper_run), "--published", "--format", fmt]) == 0
        assert marker in capsys.readouterr().out
    # the ordinary table and the report print the suite's deviations too
    assert "paper-tiny deviation: trained for 40 steps" in render(df, "md")
    assert main(["report", str(paper_run), "-o", str(paper_run / "r.html")]) == 0
    page = (paper_run / "r.html").read_text()
    assert "Published results" in page and "trained for 40 steps instead of the paper&#x27;s 25,000" in page


def test_a_changed_config_or_missing_run_is_not_comparable(paper_run, tmp_path, capsys):
    other = tmp_path / "other"
    # the same suite with a changed step count: never set beside the published numbers
    assert main(["run", "--suite", "paper-tiny", "--out", str(other), "--set", "steps=30", "--seeds", "0,1",
                 "--no-progress"]) == 0
    c = published_table(load_results(other))
    assert set(c["verdict"]) == {"not comparable: config differs from the suite's (steps 30, suite 40)"}
    assert c["mean"].isna().all()
    single = tmp_path / "single"
    assert main(["run", "--suite", "paper-tiny", "--out", str(single), "--seeds", "0", "--no-progress"]) == 0
    one = published_table(load_results(single)).set_index("metric")
    assert one.loc["hq", "verdict"] == "not comparable: 1 finished seed, and no published spread to test it against"  # no published spread
    # against a published spread, one seed is tested as one more run of the paper's: kl far below 5.0 ± 0.01 se
    assert set(one.loc[["modes", "kl"], "test"]) == {"t, published spread"} and one.loc["kl", "verdict"] == "better"
    assert one.loc["kl", "n"] == 1 and math.isnan(one.loc["kl", "se"])
    assert display(published_table(load_results(single))).set_index("metric").loc["kl", "ganbench"].endswith("(n=1)")
    capsys.readouterr()
    plain = tmp_path / "plain"
    assert main(["run", "--dataset", "ring8", "--out", str(plain), "--set", "steps=5", "--no-progress"]) == 0
    assert main(["table", str(plain), "--published"]) == 2
    assert "no published numbers for these results" in capsys.readouterr().err


def test_seeds_of_two_protocols_are_never_pooled_and_diverged_seeds_are_counted_apart(paper_run):
    """Seed 2 evaluated under another protocol (say, another classifier's weights) gets a line of its
    own; a seed that diverged is not in n, mean or se, and the table says how many did."""
    df = load_results(paper_run)
    final = df["final"].astype(bool)
    kl = final & (df["metric"] == "kl")
    values = df.loc[kl].set_index("seed")["value"].astype(float)
    df.loc[kl & (df["seed"] == 2), "protocol_id"] = "0123456789ab"
    df.loc[kl & (df["seed"] == 1), ["status", "value"]] = ["diverged", math.nan]
    c = published_table(df)
    lines = c[c["metric"] == "kl"].set_index("protocol")
    assert len(lines) == 2 and set(lines.index) == {"0123456789ab", df.loc[kl & (df["seed"] == 0), "protocol_id"].iloc[0]}
    first, other = lines.drop("0123456789ab").iloc[0], lines.loc["0123456789ab"]
    assert (first["n"], first["diverged"], first["mean"]) == (1, 1, values[0])  # seed 1 diverged: not in the mean
    assert (other["n"], other["diverged"], other["mean"]) == (1, 0, values[2])
    shown = display(c).set_index(["setting", "metric"])
    pid = first.name
    assert shown.loc[(f"gan [protocol {pid}]", "kl"), "ganbench"].endswith("(n=1, 1 diverged)")
    assert shown.loc[("gan [protocol 0123456789ab]", "kl"), "ganbench"].endswith("(n=1)")
    assert shown.loc[("gan", "modes"), "ganbench"].endswith("se (n=3)")  # modes: one protocol, three seeds


def test_the_reason_names_every_differing_key_and_counts_predating_keys_at_their_default():
    from ganbench.config import RunConfig
    from ganbench.results.published import differing

    suite = RunConfig(steps=40, lr_g=1e-3, betas=(0.5, 0.9), eval_samples=25600)
    # rows written before eval_samples existed (no column: its default, 0), by three runs of two configs
    then = {f"config.{k}": v for k, v in suite.to_dict().items() if k != "eval_samples"}
    rows = pd.DataFrame([
        {**then, "group_id": "a", "config.steps": 20, "config.seed": 0},
        {**then, "group_id": "a", "config.steps": 20, "config.seed": 1},
        {**then, "group_id": "b", "config.steps": 10, "config.lr_g": 2e-3, "config.betas": [0.5, 0.99]},
    ])
    assert differing(rows, suite) == ("steps 20, 10, suite 40; lr_g 0.002, suite 0.001; betas [0.5, 0.99], suite [0.5, 0.9]; "
                                      "eval_samples 0, suite 25600")
    assert differing(rows, suite, most=2) == "steps 20, 10, suite 40; lr_g 0.002, suite 0.001; and 2 more"


def test_select_settings_runs_one_part_of_a_suite():
    suite = load_suite("paper-gdpp-2d")
    part = select_settings(suite, ["gan"])
    assert {label for label, _ in part.settings} == {"gan"} and len(part.runs()) == 10
    with pytest.raises(UserError, match="has no setting 'gna'; did you mean 'gan'"):
        select_settings(suite, ["gna"])


def test_simultaneous_update_takes_both_gradients_at_the_same_weights():
    """With simultaneous updates G's first step cannot see D's first step: D's learning rate does
    not change G after one step, while with alternating updates it does."""
    base = RunConfig(width=16, depth=2, batch_size=32, steps=1, z_dim=4, lr_d=1e-4)
    def g_after(cfg):
        return [p.detach().clone() for p in train(cfg, DATASETS["ring8"](), torch.device("cpu")).generator.parameters()]
    sim = base.replace(update="simultaneous")
    assert all(torch.equal(a, b) for a, b in zip(g_after(sim), g_after(sim.replace(lr_d=0.5))))
    assert not all(torch.equal(a, b) for a, b in zip(g_after(base), g_after(base.replace(lr_d=0.5))))
    with pytest.raises(UserError, match="one discriminator step per generator step"):
        train(sim.replace(n_dis=2), DATASETS["ring8"](), torch.device("cpu"))


def test_list_suites_names_the_paper_suites(capsys):
    assert main(["list", "suites"]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^{name}\s", out, re.M) for name in PAPERS)


def test_published_script_lists_the_runs_under_way(tmp_path):
    """scripts/published.sh --tables-only: a run of a paper suite still training in the work folder
    is named in published.md with the step of its checkpoint and its last evaluation."""
    suite = load_suite("paper-pacgan-2d")
    label, cfg = next((lb, c) for lb, c in suite.runs() if lb == "pacgan2" and c.dataset == "ring8" and c.seed == 0)
    run = tmp_path / "work" / suite.name / "runs" / cfg.run_id
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"run_id": cfg.run_id, "label": label, "suite": suite.name,
                                                 "config": cfg.to_dict()}))
    evaluations = [{"step": 40000, "metric": m, "value": v} for m, v in (("modes", 8.0), ("hq", 0.948), ("kl", 0.0648))]
    torch.save({"format": "ganbench-checkpoint", "version": 1, "config": cfg.to_dict(), "step": 50000, "rng": {},
                "extra": json.dumps(evaluations)}, run / NAME)
    md = _published_script(tmp_path / "work", tmp_path / "out")
    assert "Scale: 0 of 40 runs finished" in md
    assert (f"- pacgan2 ring8 seed 0 (run {cfg.run_id}): step 50,000 of 400,000; last evaluation (step 40,000): "
            "modes 8, hq 0.948, kl 0.0648\n") in md
    assert md.count("Under way") == 1  # the other suites have no run folders


@pytest.mark.parametrize("extra, forwarded", [([], []), (["--seeds", "2"], ["--seeds", "2"])])
def test_published_script_trains_the_parts_given_and_only_the_seeds_given(tmp_path, extra, forwarded):
    """scripts/published.sh SUITE:SETTING runs `ganbench run` once for that part, with --resume and
    the script's options; --seeds reaches it as given (the suite's own seeds otherwise), and the
    stretch is recorded in published-timings.csv with the part's finished and total runs."""
    log = tmp_path / "argv"
    fake = tmp_path / "ganbench"  # records its arguments instead of training
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\n')
    fake.chmod(0o755)
    script = Path(__file__).resolve().parents[1] / "scripts" / "published.sh"
    env = {**os.environ, "GANBENCH": str(fake), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(script), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
                           "--jobs", "2", "--checkpoint-every", "10000", *extra, "paper-pacgan-2d:pacgan2"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert log.read_text().split("\n")[:-1] == [
        "run", "--suite", "paper-pacgan-2d", "--setting", "pacgan2", "--out", str(tmp_path / "work" / "paper-pacgan-2d"),
        "--resume", "--no-progress", "--jobs", "2", "--threads", "1", "--checkpoint-every", "10000", *forwarded]
    timings = pd.read_csv(tmp_path / "out" / "published-timings.csv")
    assert timings[["suite", "setting", "runs_finished", "runs_total", "jobs"]].values.tolist() == [
        ["paper-pacgan-2d", "pacgan2", 0, 20, 2]]


@pytest.mark.parametrize("seeds, message", [
    ("10", "published.sh: --seeds '10': suite paper-pacgan-2d has no seed 10 (its seeds: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"),
    ("2-x", "published.sh: --seeds '2-x': expected seeds like 0,1,2 or 0-4, got '2-x'"),
])
def test_published_script_refuses_seeds_outside_the_suite(tmp_path, seeds, message):
    """--seeds outside a suite's seeds would train runs that no table shows: exit 2, nothing run or recorded."""
    log = tmp_path / "argv"
    fake = tmp_path / "ganbench"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\n')
    fake.chmod(0o755)
    script = Path(__file__).resolve().parents[1] / "scripts" / "published.sh"
    env = {**os.environ, "GANBENCH": str(fake), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(script), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
                           "--seeds", seeds, "paper-pacgan-2d:pacgan2"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [message]
    assert not log.exists() and not (tmp_path / "out" / "published-timings.csv").exists()


def _published_script(work: Path, out: Path) -> str:
    """scripts/published.sh --tables-only on a work folder; returns its published.md."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "published.sh"
    env = {**os.environ, "GANBENCH": str(Path(sys.executable).with_name("ganbench")), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(script), "--tables-only", "--work", str(work), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return (out / "published.md").read_text()


def test_published_script_keeps_every_evaluation_of_the_finished_runs(tmp_path):
    """published-rows/<suite>.jsonl.gz holds the finished runs' evaluations during training as well as
    their final rows, and nothing of a failed run or attempt, of a run outside the suite or of a row
    still being written; a new work folder made
    from it (another machine) gives the same tables, the same saved rows, and a report with the
    metric curves."""
    suite = load_suite("paper-pacgan-2d")
    runs = {c.seed: (lb, c) for lb, c in suite.runs() if lb == "pacgan2" and c.dataset == "ring8"}
    dataset = DATASETS["ring8"](runs[0][1])
    metrics = resolve_metrics(runs[0][1].metrics, dataset)
    env = {"device": "cpu", "torch": torch.__version__}
    finished = []
    for seed in (0, 1):
        label, cfg = runs[seed]
        for step in (40000, 80000, 400000):
            final = step == 400000
            values = {"modes": 8.0, "hq": 0.9 + seed / 100 + step / 1e7, "kl": 0.1 - step / 1e7}
            extra = {"timing": {"train_seconds": 9000.0 + seed, "samples_per_s": 3900.0, "peak_memory_mb": 840.0},
                     "stability": {"metric": "modes", "best": 8.0, "best_final_gap": 0.0, "best_step": 40000,
                                   "evaluations": 10, "last_spread": 0.0}} if final else None
            finished += _rows(label, suite.name, cfg, step, final, values, "ok", None, env, metrics, extra,
                              dataset=dataset)
    label, cfg = runs[2]
    failed = _rows(label, suite.name, cfg, 120000, False, {}, "failed", "killed", env, metrics, dataset=dataset)
    label, cfg = runs[0]  # an attempt of seed 0 that failed before the one that finished
    retried = _rows(label, suite.name, cfg, 0, False, {}, "failed", "worker died", env, metrics, dataset=dataset)
    other = [dict(r, run_id="0123456789ab") for r in finished if r["final"]]  # no run of the suite
    work = tmp_path / "work"
    append_rows(work / suite.name, retried + finished[:6] + failed + other + finished[6:])
    with open(work / suite.name / "results.jsonl", "a") as f:
        f.write('{"run_id": "still being wr')  # a row another process is writing

    md = _published_script(work, tmp_path / "out")
    saved = tmp_path / "out" / "published-rows" / f"{suite.name}.jsonl.gz"
    kept = [json.loads(line) for line in gzip.decompress(saved.read_bytes()).decode().splitlines()]
    assert kept == finished
    assert sorted({(r["seed"], r["step"], r["final"]) for r in kept}) == [
        (s, step, step == 400000) for s in (0, 1) for step in (40000, 80000, 400000)]
    assert "Scale: 2 of 40 runs finished" in md
    assert "metric curves on ring8" in (tmp_path / "out" / f"published-{suite.name}.html").read_text()

    moved = tmp_path / "moved"  # a clone on another machine: the committed results, no work folder
    (moved / "published-rows").mkdir(parents=True)
    for f in (tmp_path / "out" / "published-rows").iterdir():
        (moved / "published-rows" / f.name).write_bytes(f.read_bytes())
    assert _published_script(tmp_path / "work2", moved) == md
    assert (moved / "published-rows" / saved.name).read_bytes() == saved.read_bytes()
    assert "metric curves on ring8" in (moved / f"published-{suite.name}.html").read_text()
