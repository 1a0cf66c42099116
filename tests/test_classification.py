"""Classification metrics (cas, cas_real, gan_test, aug_gain, rebalance_gain) on scikit-learn's digits.

The classifiers train with the real architecture and a shortened recipe (3,000 images seen instead
of 20,000; the properties tested do not depend on the length), so that a fit costs about 2 s.
"""

import json

import numpy as np
import pytest
import torch
from torch import nn

from ganbench.cli import main
from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.evaluate import compute_metrics, generate, generated_labels, protocol, resolve_metrics
from ganbench.features import classifier as classifier_mod
from ganbench.features import domain, labelled
from ganbench.metrics import METRICS, classification
from ganbench.metrics.base import TRAIN_SPLIT
from ganbench.train import train

ALL = ("cas", "cas_real", "cas_ratio", "gan_test", "aug_gain", "aug_gain_1pct", "rebalance_gain")


@pytest.fixture(scope="module")
def short_recipe(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GANBENCH_CACHE", str(tmp_path_factory.mktemp("classification-cache")))
    mp.setitem(classifier_mod.RECIPE, "min_samples", 3000)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def digits(short_recipe):
    return DATASETS["digits"](RunConfig(dataset="digits"))


@pytest.fixture(scope="module")
def real(digits):
    return digits.real_images("train")


def values(samples, labels, digits, names, cfg=None, details=None):
    return compute_metrics(samples, digits, [METRICS[n] for n in names], labels, cfg, details)


def test_real_training_images_reproduce_cas_real_and_the_classifier_training_accuracy(digits, real):
    x, y = real
    details = {}
    v = values(x, y, digits, ("cas", "cas_real", "cas_ratio", "gan_test"), details=details)
    # the synthetic set is the real training split itself, in its order: the same fits, bit for bit
    assert v["cas"] == v["cas_real"] and v["cas_ratio"] == 1.0
    assert v["cas_real"] > 0.9
    clf = domain.classifier_for(digits)
    assert v["gan_test"] == classifier_mod.accuracy(clf, x, y)  # the real classifier's training accuracy
    d = details["labelled"]
    assert d["cas"]["per_seed"] == d["cas_real"]["per_seed"] and len(d["cas"]["per_seed"]) == len(labelled.SEEDS)
    assert d["cas"]["mean"] == pytest.approx(np.mean(d["cas"]["per_seed"]))
    assert 0.0 <= d["cas"]["ci_low"] <= d["cas"]["mean"] <= d["cas"]["ci_high"] <= 1.0
    assert len(d["cas"]["per_class"]) == 10 and len(d["gan_test"]["per_class"]) == 10
    # per-class accuracy weighted by the test split's class counts gives the accuracy back
    counts = np.bincount(digits.real_images("test")[1].numpy(), minlength=10)
    assert np.dot(d["cas"]["per_class"], counts) / counts.sum() == pytest.approx(v["cas"])


def test_permuted_labels_score_near_chance(digits, real):
    x, y = real
    perm = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    v = values(x, perm, digits, ("cas", "gan_test", "aug_gain_1pct"))
    assert v["cas"] < 0.2 and v["gan_test"] < 0.2  # chance: 0.1
    assert v["aug_gain_1pct"] < -0.1  # wrong labels hurt the classifier trained on 1 % of the real ones


def test_real_samples_help_a_small_or_long_tailed_subset(digits, real):
    x, y = real
    details = {}
    v = values(x, y, digits, ("aug_gain_1pct", "rebalance_gain"), RunConfig(dataset="digits", tail_ratio=0.05), details)
    d = details["labelled"]
    # 1 % of each class (1 or 2 images) against the whole real split added: a large, significant gain
    assert v["aug_gain_1pct"] > 0.1 and d["aug_gain_1pct"]["real_per_class"] == [1] * 10
    assert d["aug_gain_1pct"]["significant"] and d["aug_gain_1pct"]["p_value"] < 0.05
    assert d["aug_gain_1pct"]["mean"] == pytest.approx(
        d["aug_gain_1pct"]["with_synthetic"]["mean"] - d["aug_gain_1pct"]["baseline"]["mean"])
    assert v["rebalance_gain"] > 0.0 and d["rebalance_gain"]["tail_ratio"] == 0.05
    n = min(np.bincount(y.numpy()))
    kept = d["rebalance_gain"]["real_per_class"]
    assert kept[0] == n and kept[-1] == round(n * 0.05)
    assert [a + b for a, b in zip(kept, d["rebalance_gain"]["synthetic_per_class"])] == [n] * 10


def test_tail_counts_and_subsets_closed_forms():
    n, counts = classification.tail_counts([120, 100, 130, 110], 0.01)
    assert n == 100 and counts == [100, round(100 * 0.01 ** (1 / 3)), round(100 * 0.01 ** (2 / 3)), 1]
    assert classification.tail_counts([7] * 10, 0.001)[1][-1] == 1  # never an empty class
    y = torch.arange(40) % 4
    a = classification.subset_per_class(y, [3, 1, 2, 0], 5, "subset")
    assert torch.equal(a, classification.subset_per_class(y, [3, 1, 2, 0], 5, "subset"))  # seeded
    assert torch.bincount(y[a], minlength=4).tolist() == [3, 1, 2, 0] and torch.equal(a, a.sort().values)
    assert not torch.equal(a, classification.subset_per_class(y, [3, 1, 2, 0], 6, "subset"))
    s = classification.summary([0.2, 0.3, 0.4])
    assert s["mean"] == pytest.approx(0.3) and s["std"] == pytest.approx(0.1)
    assert s["ci_high"] - s["mean"] == pytest.approx(4.302652729911275 * 0.1 / 3 ** 0.5)  # t(0.975, 2)
    assert s["mean"] - s["ci_low"] == pytest.approx(s["ci_high"] - s["mean"])
    assert classification.summary([0.98, 0.99, 1.0])["ci_high"] == 1.0  # clipped to the range


def test_matching_subset_keeps_order_and_names_the_short_class():
    y = torch.tensor([2, 0, 1, 0, 2, 1, 0])
    idx = labelled.matching_subset(y, [2, 1, 1])
    assert idx.tolist() == [0, 1, 2, 3]
    with pytest.raises(UserError, match="class 1 has 2 samples; the classification metrics need 3"):
        labelled.matching_subset(y, [1, 3, 1])
    with pytest.raises(UserError, match="labels outside 0..9"):
        labelled.check_labels(np.array([0, 3, 10]), 3, 10)
    with pytest.raises(UserError, match="integers"):
        labelled.check_labels(np.array([0.5, 1.0]), 2, 10)
    with pytest.raises(UserError, match="integers"):
        labelled.check_labels(np.array(["3", "1"]), 2, 10)
    with pytest.raises(UserError, match="integers"):
        labelled.check_labels(np.array([1e30, 1.0]), 2, 10)
    assert labelled.check_labels(np.array([1.0, 2.0]), 2, 10).dtype == torch.int64


class Memorizer(nn.Module):
    """A class-conditional 'generator' that returns real training images of the asked class (a
    perfect sampler of the training split), optionally collapsed to one image per class or blind to
    its label."""

    conditional = True

    def __init__(self, x, y, mode="ok"):
        super().__init__()
        self.x, self.y, self.mode = x, y, mode
        self.by_class = [x[y == c] for c in range(10)]

    def forward(self, z, labels):
        if self.mode == "blind":  # ignores its label: an unconditional sampler behind a conditional interface
            labels = (z[:, 1] * 1000).long().remainder(10)
        idx = (z[:, 0].abs() * 1e4).long()
        return torch.stack([self.by_class[c][0 if self.mode == "collapsed" else i % len(self.by_class[c])]
                            for c, i in zip(labels.tolist(), idx.tolist())])


def test_collapsed_and_label_blind_generators_score_clearly_below_cdcgan(digits, real, cpu):
    cfg = RunConfig(model="cdcgan", dataset="digits", loss="hinge", width=16, z_dim=64, batch_size=64,
                    lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.999), steps=300)
    g = train(cfg, digits, cpu).generator.eval()
    n = labelled.synthetic_size(digits)
    scores = {}
    for name, gen, z_dim in (("cdcgan", g, 64), ("collapsed", Memorizer(*real, "collapsed"), 2),
                             ("blind", Memorizer(*real, "blind"), 2)):
        samples = generate(gen, n, z_dim, 0, cpu, num_classes=10)
        scores[name] = values(samples, generated_labels(n, 10), digits, ("cas", "gan_test"))
    assert scores["cdcgan"]["cas"] > 0.6 and scores["cdcgan"]["gan_test"] > 0.6
    assert scores["collapsed"]["cas"] < scores["cdcgan"]["cas"] - 0.1  # one image per class
    assert scores["collapsed"]["gan_test"] > 0.8  # ... which GAN-test barely sees: it measures precision only
    assert scores["blind"]["cas"] < 0.25 and scores["blind"]["gan_test"] < 0.25


def test_same_numbers_twice_and_the_protocol_names_the_recipe(digits, real, tmp_path, monkeypatch):
    x, y = real
    v1 = values(x, y, digits, ("cas", "cas_real"))
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "fresh"))  # cas_real trained again, not read back
    v2 = values(x, y, digits, ("cas", "cas_real"))
    assert v1 == v2
    cfg = RunConfig(dataset="digits", tail_ratio=0.2)
    p = protocol(METRICS["rebalance_gain"], 0, digits, cfg)
    assert p["tail_ratio"] == 0.2 and p["classifier_recipe"] == classifier_mod.recipe_digest()
    assert p["num_synthetic"] == p["num_train_real"] == 1442 and p["num_test"] == 355
    assert p["classifier_seeds"] == list(labelled.SEEDS) and p["num_fake"] == TRAIN_SPLIT
    assert protocol(METRICS["aug_gain_1pct"], 0, digits)["real_fraction"] == 0.01
    assert protocol(METRICS["aug_gain"], 0, digits)["real_fraction"] == 0.1
    monkeypatch.setitem(classifier_mod.RECIPE, "lr", 1e-3)
    assert classifier_mod.recipe_digest() != p["classifier_recipe"]  # any change to the recipe renames it


def _write_folder(root, x, y, classes):
    from PIL import Image

    for i, (img, c) in enumerate(zip(x, y.tolist())):
        if c in classes:
            d = root / str(c)
            d.mkdir(parents=True, exist_ok=True)
            a = ((img[0].numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
            Image.fromarray(a).save(d / f"{i:05d}.png")


def test_eval_reads_labelled_folders_and_npz(digits, real, tmp_path, capsys):
    x, y = real
    _write_folder(tmp_path / "folder", x, y, range(10))
    out = tmp_path / "out"
    assert main(["eval", "--dataset", "digits", "--samples", str(tmp_path / "folder"), "--metrics", "gan_test",
                 "--out", str(out)]) == 0
    folder_value = float(capsys.readouterr().out.split("gan_test ")[1].split()[0])
    u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    np.savez(tmp_path / "s.npz", samples=u8, labels=y.numpy())
    assert main(["eval", "--dataset", "digits", "--samples", str(tmp_path / "s.npz"), "--metrics", "gan_test",
                 "--out", str(out)]) == 0
    npz_value = float(capsys.readouterr().out.split("gan_test ")[1].split()[0])
    assert folder_value == npz_value  # the same images and labels, read from either form
    saved = [json.loads(p.read_text()) for p in (out / "runs").glob("*/classification.json")]
    assert len(saved) == 2 and all(len(s["gan_test"]["per_class"]) == 10 for s in saved)


def test_the_synthetic_set_does_not_depend_on_what_else_is_drawn(digits, cpu):
    n = labelled.synthetic_size(digits)
    assert n % 16 == 0 and n >= 10 * max(labelled.real_splits(digits).class_counts)

    class Echo(nn.Module):  # its samples are its latents: the draw itself
        conditional = True

        def forward(self, z, labels):
            return torch.tanh(z[:, :784].reshape(-1, 1, 28, 28))

    alone = generate(Echo(), n, 785, 0, cpu, num_classes=10)  # what cas alone draws
    with_more = generate(Echo(), 10_000, 785, 0, cpu, num_classes=10)  # beside a 10,000-sample metric
    assert torch.equal(alone, with_more[:n])


def test_eval_checks_the_dataset_before_drawing(tmp_path, capsys):
    g = tmp_path / "g.py"
    g.write_text("import torch\n\ndef gen(z, y):\n    return torch.zeros(len(z), 2)\n\ngen.conditional = True\n")
    argv = ["eval", "--dataset", "ring8", "--generator", f"{g}:gen", "--z-dim", "2", "--metrics", "cas",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "metric 'cas' trains a digit classifier on labelled single-channel data" in err
    assert len(err.strip().splitlines()) == 1


def test_the_classifiers_never_train_on_the_test_split(tmp_path):
    import gzip

    from ganbench.features.domain import classifier_split

    root = tmp_path / "mnist"
    root.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    with gzip.open(root / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (20).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + images.tobytes())
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (20).to_bytes(4, "big") + bytes((np.arange(20) % 10).tolist()))
    ds = DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(root / "t10k-images-idx3-ubyte.gz")))
    assert classifier_split(ds) == "test"
    assert "the two would be the same images" in labelled.accepts(ds)


def test_a_folder_hash_names_where_each_image_is(tmp_path):
    from ganbench.samples import _sha256

    for name in ("a", "b"):
        (tmp_path / name / "0").mkdir(parents=True)
        (tmp_path / name / "1").mkdir()
    (tmp_path / "a" / "0" / "x.png").write_bytes(b"one")
    (tmp_path / "a" / "1" / "y.png").write_bytes(b"two")
    (tmp_path / "b" / "0" / "x.png").write_bytes(b"one")
    (tmp_path / "b" / "0" / "y.png").write_bytes(b"two")  # same bytes in the same order, other class
    assert _sha256(tmp_path / "a") != _sha256(tmp_path / "b")


@pytest.mark.parametrize("case, message", [
    ("missing-class", "no images for class 3 (subfolder '3')"),
    ("unlabelled-folder", "is not in a class subfolder"),
    ("bad-labels", "labels outside 0..9"),
    ("no-labels", "has no 'labels' array"),
    ("unconditional", "is not class-conditional"),
])
def test_bad_labelled_input_is_one_line_exit_2_before_any_classifier(digits, real, tmp_path, case, message, capsys,
                                                                      monkeypatch):
    x, y = real

    def no_training(*args, **kwargs):
        raise AssertionError("a classifier was trained")

    monkeypatch.setattr(classification, "_train", no_training)
    monkeypatch.setattr(classifier_mod, "_train", no_training)
    x, y = x[:200], y[:200]
    u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    if case == "missing-class":
        _write_folder(tmp_path / "s", x, y, [c for c in range(10) if c != 3])
        source = ["--samples", str(tmp_path / "s")]
    elif case == "unlabelled-folder":
        _write_folder(tmp_path / "s", x, y, range(10))
        (tmp_path / "s" / "0" / "00000.png").rename(tmp_path / "s" / "stray.png")
        source = ["--samples", str(tmp_path / "s")]
    elif case in ("bad-labels", "no-labels"):
        arrays = {"samples": u8} if case == "no-labels" else {"samples": u8, "labels": y.numpy() + 1}
        np.savez(tmp_path / "s.npz", **arrays)
        source = ["--samples", str(tmp_path / "s.npz")]
    else:
        (tmp_path / "g.py").write_text("import torch\n\ndef gen(z):\n    return torch.zeros(len(z), 1, 28, 28)\n")
        source = ["--generator", f"{tmp_path / 'g.py'}:gen", "--z-dim", "4"]
    out = tmp_path / "out"
    assert main(["eval", "--dataset", "digits", *source, "--metrics", "fid_domain,cas", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (out / "results.jsonl").exists()


def test_run_checks_the_model_is_conditional_before_training(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", "--dataset", "digits", "--model", "dcgan", "--set", "metrics=cas", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "metric 'cas' needs class-labelled samples; model 'dcgan' is not class-conditional" in err
    assert not out.exists()
    assert main(["run", "--dataset", "ring8", "--set", "metrics=cas", "--out", str(out), "--no-progress"]) == 2
    assert "trains a digit classifier on labelled single-channel data" in capsys.readouterr().err


def test_a_run_computes_them_at_the_end_only_and_keeps_the_details(digits, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", "--dataset", "digits", "--model", "cdcgan", "--loss", "hinge", "--set", "steps=40", "--set",
            "eval_every=20", "--set", "width=8", "--set", "z_dim=16", "--set", "batch_size=32", "--set",
            "metrics=classes,cas,cas_real,cas_ratio", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    during = {r["metric"] for r in rows if not r["final"]}
    assert during == {"classes"}  # the classifier-training metrics wait for the end
    final = {r["metric"]: r for r in rows if r["final"]}
    assert set(final) == {"classes", "cas", "cas_real", "cas_ratio"}
    assert final["cas_ratio"]["value"] == pytest.approx(final["cas"]["value"] / final["cas_real"]["value"])
    d = json.loads(next((out / "runs").glob("*/classification.json")).read_text())
    assert d["cas"]["mean"] == final["cas"]["value"] and len(d["cas"]["per_class"]) == 10
    report = tmp_path / "r.html"
    assert main(["report", str(out), "--output", str(report)]) == 0
    html = report.read_text()
    assert "Per-class accuracy" in html and "cas_real" in html


def test_list_metrics_names_each_sample_count(capsys):
    assert main(["list", "metrics"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "n=train" in lines["cas"] and "n=-1" in lines["mse_ab"] and "n=10000" in lines["fid_domain"]


def test_registry_records():
    for name in ALL:
        m = METRICS[name]
        assert m.features == "labelled" and m.final_only and m.num_fake == TRAIN_SPLIT and m.higher_is_better
    assert resolve_metrics(("cas",), DATASETS["digits"](RunConfig(dataset="digits")))[0].range == (0.0, 1.0)
