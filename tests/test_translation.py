"""Unpaired translation: the pair datasets and their hidden truth, the CycleGAN model and step,
the translation metrics' closed forms, translators made elsewhere, and bad input."""

import json
import math

import numpy as np
import pytest
import torch

from ganbench.cli import main
from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.evaluate import compute_metrics, resolve_metrics, translate
from ganbench.features.translation import STEGO_SIGMA, classifier
from ganbench.metrics import METRICS
from ganbench.metrics.translation import ssim
from ganbench.models.cyclegan import PooledDiscriminators
from ganbench.results.store import load_rows
from ganbench.seeding import make_generator
from ganbench.train import lr_factor, train
from ganbench.checkpoint import Checkpointer

TINY = dict(model="cyclegan", loss="lsgan", dataset="digits-invert", width=4, depth=1, d_depth=2, batch_size=2,
            pool_size=3, steps=12, lr_g=2e-4, lr_d=2e-4, lr_decay=0.5)


@pytest.fixture(scope="module")
def pair():
    return DATASETS["digits-invert"](RunConfig(dataset="digits-invert"))


def test_digits_invert_splits_the_training_digits_into_disjoint_halves_and_keeps_the_truth(pair):
    digits = DATASETS["digits"](RunConfig(dataset="digits"))
    train_x, train_y = digits.real_images("train")
    test_x, test_y = digits.real_images("test")
    assert len(pair.a) + len(pair.b) == len(train_x) and abs(len(pair.a) - len(pair.b)) <= 10
    # every A image is a training digit, every B image the negative of one, and no digit is in both
    flat = {bytes(x.numpy().tobytes()): i for i, x in enumerate(train_x)}
    ia = {flat[bytes(x.numpy().tobytes())] for x in pair.a}
    ib = {flat[bytes((-x).numpy().tobytes())] for x in pair.b}
    assert len(ia) == len(pair.a) and len(ib) == len(pair.b) and not ia & ib
    # the test split in both directions: B_test = T(A_test), with its labels
    assert torch.equal(pair.test_a, test_x) and torch.equal(pair.test_b, -test_x)
    assert torch.equal(pair.test_labels, test_y) and pair.paired and pair.shape == (1, 28, 28)


def test_pair_batches_are_one_image_of_each_domain_and_repeat_under_the_seed(pair):
    def draw(seed):
        it = pair.batches(5, make_generator(seed, "data"), torch.device("cpu"))
        return [next(it) for _ in range(3)]

    first, again, other = draw(0), draw(0), draw(1)
    assert all(torch.equal(a1, a2) and torch.equal(b1, b2) for (a1, b1), (a2, b2) in zip(first, again))
    assert not all(torch.equal(a1, a2) for (a1, _), (a2, _) in zip(first, other))
    a, b = first[0]
    assert a.shape == b.shape == (5, 1, 28, 28)
    # background: dark in A, light in B
    assert a[:, :, 0, 0].eq(-1).all() and b[:, :, 0, 0].eq(1).all()


@pytest.mark.parametrize("name, T", [("mnist-invert", lambda x: -x), ("mnist-rotate", lambda x: torch.rot90(x, 1, (2, 3))),
                                     ("mnist-thick", lambda x: torch.nn.functional.max_pool2d(x, 3, 1, 1))])
def test_mnist_pairs_read_an_idx_folder(tmp_path, name, T):
    from ganbench.data.idx import write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    d = DATASETS[name](RunConfig(dataset=name, data_path=str(tmp_path)))
    assert len(d.a) == len(d.b) == 20 and len(d.test_a) == 20
    assert torch.equal(d.test_b, T(d.test_a)) and d.transform == name.split("-")[1]
    train_x, train_y = d.source_train
    in_a = (torch.arange(40) // 10) % 2 == 0  # image i is of class i % 10 and rank i // 10 within it
    assert torch.equal(d.a, train_x[in_a]) and torch.equal(d.b, T(train_x[~in_a]))


def test_mnist_pairs_apply_their_maps(tmp_path):
    from ganbench.data.pairs import rotate, thicken

    x = -torch.ones(1, 1, 28, 28)
    x[0, 0, 10, 3] = 1.0
    assert rotate(x)[0, 0, 24, 10] == 1.0  # a quarter turn counter-clockwise: (r, c) -> (W - 1 - c, r)
    thick = thicken(x)
    assert thick[0, 0, 9:12, 2:5].eq(1).all() and thick.eq(1).sum() == 9
    with pytest.raises(UserError, match="folder of MNIST IDX"):
        DATASETS["mnist-rotate"](RunConfig(dataset="mnist-rotate", data_path=str(tmp_path / "t10k-images-idx3-ubyte")))


# ----------------------------------------------------------------------------------------------
# metrics: closed forms


def test_ssim_closed_forms():
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert (ssim(x, -x) < 0).all()  # intensities, not signed values: an inverted image is anti-correlated
    # constant images: only the luminance term, (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) on intensities
    a, b = torch.full((1, 1, 12, 12), -0.5), torch.full((1, 1, 12, 12), 0.5)
    m1, m2, c1 = 0.25, 0.75, 0.01**2
    assert ssim(a, b).item() == pytest.approx((2 * m1 * m2 + c1) / (m1**2 + m2**2 + c1), rel=1e-12)


def test_translation_metrics_have_a_range_and_one_protocol():
    names = DATASETS["digits-invert"](RunConfig(dataset="digits-invert")).default_metrics
    for n in names:
        m = METRICS[n]
        assert m.num_fake == -1 and m.num_real == -1
        # pixel metrics record no classifier; metrics in classifier features record both
        assert m.features == ("translation-domain" if n.startswith(("fid", "kid", "label", "class_kl"))
                              else "translation")
    assert METRICS["ssim_ab"].range == (-1, 1) and METRICS["cycle_a"].range == (0, 2)


def _scores(pair, ab, ba, metrics=None):
    ms = resolve_metrics(tuple(metrics or ()), pair)
    t = translate(ab, ba, pair, 0, torch.device("cpu"))
    values = compute_metrics(t, pair, ms)
    assert all(METRICS[k].within(v) for k, v in values.items())
    return values


def test_the_true_map_scores_zero_error_and_the_classifiers_own_accuracy(pair):
    true = _scores(pair, lambda x: -x, lambda x: -x)
    assert true["mse_ab"] == true["mse_ba"] == 0.0
    assert true["ssim_ab"] == pytest.approx(1.0) and true["ssim_ba"] == pytest.approx(1.0)
    assert true["cycle_a"] == true["cycle_b"] == 0.0
    assert true["label_ab"] == classifier(pair, "b").test_accuracy > 0.8
    assert true["label_ba"] == classifier(pair, "a").test_accuracy > 0.8
    assert true["fid_ab"] == pytest.approx(0.0, abs=1e-6) and true["class_kl_ab"] == pytest.approx(
        np.sum([0]), abs=0.05)
    # the probe's noise comes straight back: E|n| for n ~ N(0, sigma^2), less what clamping to [-1, 1] removes
    assert 0.3 * STEGO_SIGMA < true["stego_a"] < STEGO_SIGMA * math.sqrt(2 / math.pi) + 1e-3

    same = _scores(pair, lambda x: x, lambda x: x)
    assert same["mse_ab"] > 1.0 and same["ssim_ab"] < 0 and same["fid_ab"] > 100 * (true["fid_ab"] + 1)
    assert same["cycle_a"] == 0.0


def _class_shift(pair):
    """A translator that looks each test digit up and returns the truth of a digit of the next class."""
    x, y = pair.test_a, pair.test_labels
    index = {bytes(img.numpy().tobytes()): i for i, img in enumerate(x)}
    by_class = {c: (y == c).nonzero().squeeze(1) for c in range(10)}

    def ab(batch):
        out = []
        for img in batch:
            i = index[bytes(img.numpy().tobytes())]
            c = int(y[i])
            rank = int((by_class[c] == i).nonzero()) % len(by_class[(c + 1) % 10])
            out.append(-x[by_class[(c + 1) % 10][rank]])
        return torch.stack(out)

    return ab


def test_a_class_swapping_translator_keeps_its_fid_and_loses_label_preservation(pair):
    true = _scores(pair, lambda x: -x, None, ["fid_ab", "label_ab", "mse_ab"])
    swapped = _scores(pair, _class_shift(pair), None, ["fid_ab", "label_ab", "mse_ab"])
    same = _scores(pair, lambda x: x, None, ["fid_ab"])
    assert swapped["fid_ab"] < 0.05 * same["fid_ab"]  # the images are real inverted digits
    assert swapped["label_ab"] < 0.1 and true["label_ab"] > 0.8
    assert swapped["mse_ab"] > 0.3


def test_the_stego_probe_separates_a_translator_that_hides_its_input(pair):
    c = -pair.test_b[:1] * 0.98  # every translation is the same digit ...
    delta = 0.01  # ... carrying a copy of the input at 1 % amplitude

    def hide(x):
        return c.expand_as(x) + delta * x

    def reveal(y):
        return ((y - c) / delta).clamp(-1, 1)

    hiding = _scores(pair, hide, reveal, ["cycle_a", "stego_a", "label_ab"])
    honest = _scores(pair, lambda x: -x, lambda x: -x, ["cycle_a", "stego_a"])
    assert hiding["cycle_a"] < 1e-5  # a perfect cycle ...
    assert hiding["stego_a"] > 20 * honest["stego_a"] > 0  # ... that the noise breaks
    assert hiding["label_ab"] < 0.2


# ----------------------------------------------------------------------------------------------
# the model and its step


def test_cyclegan_trains_deterministically_and_resumes_bit_for_bit(tmp_path, pair):
    cfg = RunConfig(**TINY)
    cpu = torch.device("cpu")
    whole = train(cfg, pair, cpu)
    again = train(cfg, pair, cpu)

    class Stop(Exception):
        pass

    def stop(step):
        if step == 9:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, pair, cpu, checkpoint=Checkpointer(tmp_path, 5), on_step=stop)
    torch.manual_seed(123)
    resumed = train(cfg, pair, cpu, checkpoint=Checkpointer(tmp_path, 5))
    for other in (again, resumed):
        for a, b in ((whole.generator, other.generator), (whole.discriminator, other.discriminator)):
            sa, sb = a.state_dict(), b.state_dict()
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # the history pools are part of the discriminators' state: full after 12 steps of 2 images
    assert int(whole.discriminator.pool_a_count) == 3 and whole.discriminator.pool_a.abs().sum() > 0
    assert whole.history[-1]["lr_g"] == pytest.approx(2e-4 * lr_factor(cfg, 11)) == pytest.approx(2e-4 / 6)


def test_the_learning_rate_is_constant_then_falls_linearly():
    cfg = RunConfig(steps=10, lr_decay=0.4)
    assert [lr_factor(cfg, s) for s in range(10)] == [1, 1, 1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25]
    assert lr_factor(RunConfig(steps=10), 9) == 1.0


def test_the_pool_returns_its_first_images_then_swaps_half_of_them():
    d = PooledDiscriminators(torch.nn.Identity(), torch.nn.Identity(), (1, 2, 2), pool_size=4)
    noise = torch.Generator().manual_seed(0)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    assert torch.equal(d.query("a", first, noise), first) and int(d.pool_a_count) == 4
    later = 10 + first
    out = d.query("a", later, noise)
    swapped = (out != later).flatten(1).any(1)
    assert 0 < int(swapped.sum()) < 4  # seeded: some drawn from the pool, the rest passed through
    assert all(float(o[0, 0, 0]) in range(4) for o in out[swapped])
    assert {"pool_a", "pool_b", "pool_a_count", "pool_b_count"} <= set(d.state_dict())


def test_the_cycle_loss_weight_zero_is_a_plain_pair_of_gans(pair):
    cpu = torch.device("cpu")
    plain = train(RunConfig(**{**TINY, "cycle_weight": 0.0}), pair, cpu)
    cycled = train(RunConfig(**TINY), pair, cpu)
    assert plain.history[-1]["g_loss"] != cycled.history[-1]["g_loss"]
    assert plain.history[-1]["g_loss"] < cycled.history[-1]["g_loss"]  # no L1 terms added


def test_the_identity_translator_is_not_trained(pair):
    result = train(RunConfig(**{**TINY, "model": "identity"}), pair, torch.device("cpu"))
    assert result.steps_done == 0 and torch.equal(result.generator(pair.test_a[:2]), pair.test_a[:2])


@pytest.mark.parametrize("overrides, message", [
    ({"model": "mlp", "loss": "ns"}, "translation pair"),
    ({"loss": "ns"}, "lsgan"),
    ({"dataset": "digits"}, "not a translation pair"),
    ({"model": "dcgan", "loss": "ns", "dataset": "digits", "d_depth": 0, "cycle_weight": 5.0}, "cycle_weight"),
])
def test_mismatched_settings_are_one_line_errors(tmp_path, capsys, overrides, message):
    settings = {**TINY, **overrides}
    args = ["run", "--model", settings.pop("model"), "--loss", settings.pop("loss"), "--dataset",
            settings.pop("dataset"), "--seeds", "0", "--out", str(tmp_path / "res"), "--no-progress"]
    for k, v in settings.items():
        args += ["--set", f"{k}={v}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "res" / "results.jsonl").exists()


# ----------------------------------------------------------------------------------------------
# translators made elsewhere


PLUGIN = '''
import torch

def inverter():
    return (lambda x: -x, lambda x: -x)

def one_way():
    return lambda x: -x

def wrong_shape():
    return lambda x: x[:, :, :14]

def too_bright():
    return lambda x: 3 * x

def too_few():
    return lambda x: x[1:]
'''


def test_eval_scores_a_translator_from_a_file_and_stored_translations(tmp_path, pair, capsys):
    plugin = tmp_path / "translators.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "res"
    assert main(["eval", "--dataset", "digits-invert", "--generator", f"{plugin}:inverter", "--out", str(out)]) == 0
    rows = {r["metric"]: r for r in load_rows(out)}
    assert rows["mse_ab"]["value"] == 0.0 and rows["cycle_b"]["value"] == 0.0
    assert rows["label_ab"]["protocol"]["transform"] == "invert"
    assert "classifier_b" in rows["label_ab"]["protocol"] and "classifier_b" not in rows["mse_ab"]["protocol"]

    np.savez(tmp_path / "t.npz", ab=(-pair.test_a).numpy())  # one direction, in the test split's order
    assert main(["eval", "--dataset", "digits-invert", "--samples", str(tmp_path / "t.npz"), "--out", str(out)]) == 0
    stored = [r for r in load_rows(out) if r["source"]["kind"] == "npz"]
    assert {r["metric"] for r in stored} == {"fid_ab", "fid_ab_ci", "kid_ab", "mse_ab", "ssim_ab", "label_ab",
                                             "class_kl_ab"}
    assert {r["metric"]: r["value"] for r in stored}["label_ab"] == rows["label_ab"]["value"]
    assert (out / "runs" / stored[0]["run_id"] / "samples.png").is_file()


@pytest.mark.parametrize("name, message", [
    ("wrong_shape", "shape"), ("too_bright", "[-1, 1]"), ("too_few", "images in"),
])
def test_a_bad_translator_is_a_one_line_error(tmp_path, capsys, name, message):
    plugin = tmp_path / "translators.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "res"
    assert main(["eval", "--dataset", "digits-invert", "--generator", f"{plugin}:{name}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (out / "results.jsonl").exists()


def test_stored_translations_of_the_wrong_count_are_refused(tmp_path, pair, capsys):
    np.savez(tmp_path / "t.npz", ab=(-pair.test_a[:-1]).numpy())
    assert main(["eval", "--dataset", "digits-invert", "--samples", str(tmp_path / "t.npz"), "--out",
                 str(tmp_path / "res")]) == 2
    assert "test split" in capsys.readouterr().err


@pytest.mark.parametrize("arrays, message", [
    ({"ba": "test_b"}, "holds arrays ['ba']; name the A -> B translations 'ab'"),  # not to be scored as A -> B
    ({"x": "test_a", "y": "test_b"}, "holds arrays ['x', 'y']; name the A -> B translations 'ab'"),
])
def test_stored_translations_that_do_not_say_their_direction_are_refused(tmp_path, pair, capsys, arrays, message):
    np.savez(tmp_path / "t.npz", **{k: (-getattr(pair, v)).numpy() for k, v in arrays.items()})
    assert main(["eval", "--dataset", "digits-invert", "--samples", str(tmp_path / "t.npz"), "--out",
                 str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_translator_takes_no_z_dim(tmp_path, pair, capsys):
    plugin = tmp_path / "translators.py"
    plugin.write_text(PLUGIN)
    assert main(["eval", "--dataset", "digits-invert", "--generator", f"{plugin}:inverter", "--z-dim", "8",
                 "--out", str(tmp_path / "res")]) == 2
    assert "a translator takes no latent" in capsys.readouterr().err and not (tmp_path / "res").exists()


# ----------------------------------------------------------------------------------------------
# folder-pair


def _images(folder, n, size):
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((size, size), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")


def test_folder_pair_reads_both_domains_and_has_no_truth(tmp_path, capsys):
    _images(tmp_path / "A", 3, 16)
    _images(tmp_path / "B", 4, 16)
    d = DATASETS["folder-pair"](RunConfig(dataset="folder-pair", data_path=str(tmp_path)))
    assert d.a.shape == (3, 1, 16, 16) and d.b.shape == (4, 1, 16, 16) and not d.paired
    assert set(d.default_metrics) == {"cycle_a", "cycle_b", "stego_a", "stego_b"}
    values = _scores(d, lambda x: x, lambda x: x)
    assert values["cycle_a"] == values["cycle_b"] == 0.0
    with pytest.raises(UserError, match="no ground truth"):
        _scores(d, lambda x: x, lambda x: x, ["mse_ab"])
    # a run on it: the table says which metrics it cannot have
    out = tmp_path / "res"
    args = ["run", "--model", "cyclegan", "--loss", "lsgan", "--dataset", "folder-pair", "--seeds", "0", "--out",
            str(out), "--no-progress", "--set", f"data_path={tmp_path}", "--set", "steps=3", "--set", "width=4",
            "--set", "depth=1", "--set", "d_depth=2", "--set", "batch_size=2"]
    assert main(args) == 0
    assert main(["table", str(out)]) == 0
    assert "folder-pair: no ground truth and no labels" in capsys.readouterr().out


@pytest.mark.parametrize("layout, message", [
    ({"A": 16}, "no B/ subfolder"),
    ({"B": 16}, "no A/ subfolder"),
    ({"A": (16, 20), "B": 16}, "different sizes"),
])
def test_a_broken_folder_pair_is_a_one_line_error_naming_the_folder(tmp_path, capsys, layout, message):
    for side, size in layout.items():
        if isinstance(size, tuple):
            _images(tmp_path / side, 1, size[0])
            from PIL import Image

            Image.fromarray(np.zeros((size[1], size[1]), dtype=np.uint8)).save(tmp_path / side / "z.png")
        else:
            _images(tmp_path / side, 2, size)
    code = main(["run", "--model", "cyclegan", "--loss", "lsgan", "--dataset", "folder-pair", "--set",
                 f"data_path={tmp_path}", "--seeds", "0", "--out", str(tmp_path / "res"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and str(tmp_path) in err and len(err.splitlines()) == 1


def test_a_run_writes_the_translation_grid_and_rows(tmp_path):
    out = tmp_path / "res"
    args = ["run", "--model", "cyclegan", "--loss", "lsgan", "--dataset", "digits-invert", "--seeds", "0",
            "--out", str(out), "--no-progress", "--set", "metrics=mse_ab,cycle_a,label_ab"]
    for k, v in TINY.items():
        if k not in ("model", "loss", "dataset"):
            args += ["--set", f"{k}={v}"]
    assert main(args) == 0
    rows = [r for r in load_rows(out) if r["final"]]
    assert {r["metric"] for r in rows} == {"mse_ab", "cycle_a", "label_ab"} and all(r["status"] == "ok" for r in rows)
    run_dir = out / "runs" / rows[0]["run_id"]
    from PIL import Image

    with Image.open(run_dir / "samples.png") as im:  # 6 rows of 8 digits: A, A->B, A->B->A, B, B->A, B->A->B
        assert im.size[1] > 5 * im.size[0] / 8
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "ok"
    # the saved translator pair evaluates again to the same numbers
    again = tmp_path / "again"
    assert main(["eval", "--dataset", "digits-invert", "--generator", str(run_dir / "generator.pt"), "--metrics",
                 "mse_ab,cycle_a,label_ab", "--out", str(again)]) == 0
    assert {r["metric"]: r["value"] for r in load_rows(again)} == {r["metric"]: r["value"] for r in rows}


def test_a_translation_suite_runs_in_parallel_and_tabulates_reports_and_checks(tmp_path, capsys):
    """The suite machinery, unchanged: two worker processes, TensorBoard, the table, the report
    with the translation grids, a baseline written from the folder, and the check's refusal to
    compare two seeds with two (a comparison that could never fail)."""
    suite = tmp_path / "tiny-translate.toml"
    settings = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items() if k != "model")
    suite.write_text(f'name = "tiny-translate"\nseeds = [0, 1]\n\n[defaults]\n{settings}\n'
                     f'metrics = ["mse_ab", "label_ab", "cycle_a", "stego_a"]\n\n'
                     f'[[settings]]\nlabel = "identity"\nmodel = "identity"\n\n'
                     f'[[settings]]\nlabel = "cyclegan"\nmodel = "cyclegan"\n')
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--jobs", "2", "--threads", "1",
                 "--tensorboard", "--no-progress"]) == 0
    final = [r for r in load_rows(out) if r["final"]]
    assert len(final) == 4 * 4 and all(r["status"] == "ok" for r in final)
    identity = {r["seed"]: r["value"] for r in final if r["label"] == "identity" and r["metric"] == "mse_ab"}
    assert identity[0] == identity[1] > 1.0  # a fixed map: the same on every seed
    capsys.readouterr()
    assert main(["table", str(out)]) == 0
    table = capsys.readouterr().out
    assert "mse_ab ↓" in table and "cyclegan" in table and "identity" in table
    assert main(["report", str(out), "-o", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "digits-invert" in html and html.count("data:image/png") >= 2
    assert main(["check", str(out), "--update", str(tmp_path / "base.json")]) == 0
    capsys.readouterr()
    # two seeds against two: no permutation p-value can fall below alpha / 8, so the check is refused
    assert main(["check", str(out), "--baseline", str(tmp_path / "base.json")]) == 2
    err = capsys.readouterr().err
    assert "could never fail" in err and "smallest possible p-value is 0.167" in err and err.count("\n") == 1
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))
