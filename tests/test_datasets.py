"""Image datasets: values, splits, data order, IDX files, Stacked MNIST, folders, offline errors.

No test touches the network (urlopen is replaced by a failure) or data outside tmp_path.
"""

import gzip
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.data import images as images_module
from ganbench.data.idx import parse_idx, read_idx, write_idx
from ganbench.data.images import digits_split_mask, index_batches, real_images, to_float
from ganbench.data.mnist import stacked_real
from ganbench.errors import UserError

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """An empty data root, no network, and no splits remembered from another test."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv("GANBENCH_DATA", str(tmp_path / "data-root"))
    images_module._CACHE.clear()
    yield
    images_module._CACHE.clear()


def take(ds, n_batches, batch_size, seed):
    it = ds.batches(batch_size, torch.Generator().manual_seed(seed), CPU)
    return [next(it) for _ in range(n_batches)]


# ----------------------------------------------------------------------------------------------
# digits


def test_digits_shape_range_classes_and_labels_match_sklearn():
    from sklearn.datasets import load_digits

    ref = load_digits()
    test = digits_split_mask(torch.from_numpy(ref.target))
    ds = DATASETS["digits"](RunConfig(dataset="digits"))
    assert ds.shape == (1, 28, 28) and ds.native_resolution == 8 and ds.num_classes == 10
    assert ds.bounded and ds.split == "train"
    assert ds.default_metrics == ("fid_domain", "cs", "classes", "class_kl", "precision", "recall", "density", "coverage")
    assert len(ds) == 1442 and int(test.sum()) == 355
    assert ds.labels.tolist() == ref.target[~test.numpy()].tolist()
    x = ds.images
    assert x.dtype == torch.float32 and x.min().item() == -1.0 and 0.99 <= x.max().item() <= 1.0

    xt, yt = real_images(RunConfig(dataset="digits"))
    assert xt.shape == (355, 1, 28, 28) and yt.tolist() == ref.target[test.numpy()].tolist()
    x5, y5 = real_images(RunConfig(dataset="digits"), "test", n=5)
    assert torch.equal(x5, xt[:5]) and torch.equal(y5, yt[:5])


def test_digits_native_resolution_is_the_fixed_map_and_resolution_overrides():
    from sklearn.datasets import load_digits

    ref = load_digits()
    test = digits_split_mask(torch.from_numpy(ref.target)).numpy()
    native = DATASETS["digits"](RunConfig(dataset="digits", resolution=8))
    expected = torch.from_numpy(ref.images[~test] / 8.0 - 1.0).float().unsqueeze(1)
    assert torch.equal(native.images, expected)  # 0..16 -> x / 8 - 1, no min-max rescaling
    assert DATASETS["digits"](RunConfig(dataset="digits", resolution=32)).shape == (1, 32, 32)


def test_digits_split_is_stratified_every_fifth_per_class():
    labels = torch.tensor([0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    mask = digits_split_mask(labels)
    # class 0 at positions 0,2,3,4,5,10,11,12,13: its 5th (index 5) is test; class 1's 5th (index 9)
    assert mask.nonzero().squeeze(1).tolist() == [5, 9]


# ----------------------------------------------------------------------------------------------
# data order


def test_batches_are_deterministic_per_seed_and_leave_global_rng_alone():
    ds = DATASETS["digits"](RunConfig(dataset="digits"))
    state = torch.get_rng_state()
    a, b, c = take(ds, 3, 16, seed=0), take(ds, 3, 16, seed=0), take(ds, 3, 16, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a[0][0], c[0][0])
    x, y = a[0]
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_every_index_appears_once_per_epoch():
    gen = torch.Generator().manual_seed(3)
    it = index_batches(10, 4, gen, CPU)  # batches straddle epoch boundaries
    stream = torch.cat([next(it) for _ in range(10)])  # 40 indices = 4 epochs
    for epoch in stream.view(4, 10):
        assert sorted(epoch.tolist()) == list(range(10))
    assert stream.view(4, 10)[0].tolist() != stream.view(4, 10)[1].tolist()  # reshuffled each epoch


def test_every_image_appears_once_per_epoch(fake_mnist):
    ds = DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(fake_mnist["dir"])))
    n = len(ds)
    x = torch.cat([b[0] for b in take(ds, n // 20, 20, seed=5)])  # exactly one epoch
    seen = sorted(fake_mnist["index_of"][img.numpy().tobytes()] for img in ((x + 1) * 127.5).round().to(torch.uint8))
    assert seen == list(range(n))


# ----------------------------------------------------------------------------------------------
# IDX files


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("array", [
    np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-7, 0, 1 << 20], dtype=np.int32),
    np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
])
def test_idx_round_trip(tmp_path, name, array):
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)


def test_idx_header_is_the_mnist_layout(tmp_path):
    write_idx(tmp_path / "x", np.zeros((2, 28, 28), np.uint8))
    raw = (tmp_path / "x").read_bytes()
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]) and len(raw) == 16 + 2 * 784


def test_corrupt_idx_files_are_user_errors(tmp_path):
    write_idx(tmp_path / "ok", np.zeros((4, 5, 5), np.uint8))
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-3])
    (tmp_path / "magic").write_bytes(b"\x1f\x8b" + raw[2:])
    (tmp_path / "bad.gz").write_bytes(gzip.compress(raw)[:-10])
    (tmp_path / "notgz.gz").write_bytes(raw)
    for name, words in [("short", "corrupt"), ("magic", "not an IDX"), ("bad.gz", "corrupt"), ("notgz.gz", "corrupt")]:
        with pytest.raises(UserError, match=words) as e:
            read_idx(tmp_path / name)
        assert str(tmp_path / name) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError):
        parse_idx(b"")


# ----------------------------------------------------------------------------------------------
# MNIST from IDX folders


@pytest.fixture
def fake_mnist(tmp_path):
    """10 distinct random images per digit in the train split (gzipped) and 5 in t10k (plain)."""
    d = tmp_path / "mnist-idx"
    d.mkdir()
    out = {"dir": d}
    rng = np.random.default_rng(0)
    for split, per_digit, suffix in [("train", 10, ".gz"), ("t10k", 5, "")]:
        labels = np.repeat(np.arange(10, dtype=np.uint8), per_digit)
        rng.shuffle(labels)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        write_idx(d / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(d / f"{split}-labels-idx1-ubyte{suffix}", labels)
        out[split] = (images, labels)
    out["index_of"] = {img.tobytes(): i for i, img in enumerate(out["train"][0])}
    return out


def test_mnist_reads_an_idx_folder(fake_mnist):
    images, labels = fake_mnist["train"]
    ds = DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(fake_mnist["dir"])))
    assert ds.shape == (1, 28, 28) and ds.num_classes == 10 and ds.split == "train" and len(ds) == 100
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images)) and ds.labels.tolist() == labels.tolist()
    x, y = ds.real_images("test", n=7)
    t_images, t_labels = fake_mnist["t10k"]
    assert torch.equal(x, torch.from_numpy(t_images[:7]).float().unsqueeze(1) / 127.5 - 1)
    assert y.tolist() == t_labels[:7].tolist() and x.min() >= -1 and x.max() <= 1
    big = DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(fake_mnist["dir"]), resolution=32))
    assert big.shape == (1, 32, 32) and big.images.dtype == torch.uint8


def test_mnist_test_split_trains_only_when_named_on_purpose(fake_mnist):
    d = fake_mnist["dir"]
    for f in d.glob("train-*"):
        f.unlink()
    with pytest.raises(UserError) as e:
        DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(d)))
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and str(d) in msg and "https://" in msg and "\n" not in msg
    assert f"data_path={d / 't10k-images-idx3-ubyte'}" in msg
    ds = DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(d / "t10k-images-idx3-ubyte")))
    assert ds.split == "test" and len(ds) == 50
    assert ds.labels.tolist() == fake_mnist["t10k"][1].tolist()


def test_a_classifier_trained_on_the_test_split_is_measured_on_a_tenth_held_out(fake_mnist):
    """On a machine with only the test split, the domain classifier learns from nine tenths of it and
    its recorded accuracy comes from the other tenth, a fixed random one: disjoint, together the split."""
    from ganbench.features.domain import _digit_source, held_out

    d = fake_mnist["dir"]
    for f in d.glob("train-*"):
        f.unlink()
    ds = DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(d / "t10k-images-idx3-ubyte")))
    name, (fit_x, fit_y), (measure_x, measure_y), (test_x, _) = _digit_source(ds)
    fit, measure = held_out(50)
    assert name == "mnist" and len(measure) == 5 and len(fit) == 45
    assert sorted(fit.tolist() + measure.tolist()) == list(range(50)) and measure.tolist() != [45, 46, 47, 48, 49]
    assert torch.equal(measure_x, test_x[measure]) and torch.equal(fit_x, test_x[fit])
    assert torch.equal(measure_y, ds.labels[measure]) and torch.equal(fit_y, ds.labels[fit])
    assert torch.equal(held_out(50)[1], measure)  # the same tenth each time
    assert held_out(10_000)[1][:5].tolist() == [33, 35, 45, 57, 78]  # and on every machine (torch's generator)


def test_the_held_out_tenth_is_what_the_classifier_s_accuracy_is_measured_on(fake_mnist, monkeypatch):
    from ganbench.features import domain

    d = fake_mnist["dir"]
    for f in d.glob("train-*"):
        f.unlink()
    ds = DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(d / "t10k-images-idx3-ubyte")))
    seen = {}
    monkeypatch.setattr(domain, "get_classifier", lambda name, train, test, k: seen.update(train=train, test=test))
    domain._classifier.cache_clear()
    domain._classifier(ds)
    fit, measure = domain.held_out(50)
    assert torch.equal(seen["test"][1], ds.labels[measure]) and torch.equal(seen["train"][1], ds.labels[fit])
    assert domain._split_provenance(ds) == {"classifier_train_split": "test", "classifier_held_out": 5}
    domain._classifier.cache_clear()
    with pytest.raises(UserError, match="at least 10 images"):
        domain.held_out(9)


@pytest.mark.slow  # trains a digit classifier (20,000 samples)
def test_the_suggested_test_split_also_evaluates(fake_mnist, tmp_path):
    """The "missing train split" message suggests data_path=<t10k images file>; following it, `ganbench
    eval` works too: the domain classifier trains on nine tenths of that split, and every row says so."""
    from ganbench.cli import main
    from ganbench.results.store import load_rows

    d = fake_mnist["dir"]
    for f in d.glob("train-*"):
        f.unlink()
    chosen = str(d / "t10k-images-idx3-ubyte")
    images, _ = fake_mnist["t10k"]
    samples = tmp_path / "samples.npz"
    np.savez(samples, samples=np.tile(images[:, None], (200, 1, 1, 1)))  # the test images, 10,000 in all
    out = tmp_path / "res"
    argv = ["eval", "--dataset", "mnist", "--set", f"data_path={chosen}", "--samples", str(samples),
            "--metrics", "classes,class_kl", "--out", str(out)]
    assert main(argv) == 0
    rows = {r["metric"]: r for r in load_rows(out)}
    assert rows["classes"]["protocol"]["classifier_train_split"] == "test"
    assert rows["classes"]["protocol"]["classifier_held_out"] == 5  # of the 50 test images
    assert rows["classes"]["protocol"]["reference_split"] == "test"
    # the classifier was trained on 45 of these 50 images: it reads back every class
    assert rows["classes"]["value"] == 10 and rows["class_kl"]["value"] < 0.1


def test_mnist_corrupt_file_and_wrong_channels_are_user_errors(fake_mnist):
    d = fake_mnist["dir"]
    (d / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz"):
        DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(d)))
    with pytest.raises(UserError, match="channels"):
        DATASETS["mnist"](RunConfig(dataset="mnist", data_path=str(d), channels=3))


# ----------------------------------------------------------------------------------------------
# Stacked MNIST


def test_stacked_mnist_is_deterministic_with_the_right_labels_and_all_modes(fake_mnist):
    cfg = RunConfig(dataset="stacked-mnist", data_path=str(fake_mnist["dir"]))
    ds = DATASETS["stacked-mnist"](cfg)
    assert ds.shape == (3, 28, 28) and ds.num_classes == 1000 and ds.bounded
    a, b, c = take(ds, 2, 64, seed=0), take(ds, 2, 64, seed=0), take(ds, 2, 64, seed=1)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])

    labels = fake_mnist["train"][1].astype(int)
    x, y = a[0]
    as_uint8 = ((x + 1) * 127.5).round().to(torch.uint8).numpy()
    for img, label in zip(as_uint8, y.tolist()):
        idx = [fake_mnist["index_of"][img[ch].tobytes()] for ch in range(3)]  # channel c is a real digit image
        assert label == 100 * labels[idx[0]] + 10 * labels[idx[1]] + labels[idx[2]]

    seen = torch.cat([yb for _, yb in take(ds, 40, 1000, seed=2)])
    assert seen.min() >= 0 and seen.max() <= 999 and len(seen.unique()) == 1000


def test_stacked_real_is_fixed_by_its_seed(fake_mnist):
    cfg = RunConfig(dataset="stacked-mnist", data_path=str(fake_mnist["dir"]))
    x1, y1 = stacked_real(cfg, n=30)
    x2, y2 = real_images(cfg, "test", n=30)
    x3, _ = stacked_real(cfg, n=30, seed=1)
    assert x1.shape == (30, 3, 28, 28) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    t_images, t_labels = fake_mnist["t10k"]
    first = ((x1[0, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    assert any(np.array_equal(first, t) for t in t_images)  # drawn from the test split
    assert len(stacked_real(cfg)[0]) == len(t_images)
    digits, digit_labels = DATASETS["stacked-mnist"](cfg).mnist_images("test", n=4)  # for a digit classifier
    assert digits.shape == (4, 1, 28, 28) and digit_labels.tolist() == t_labels[:4].tolist()
    assert len(stacked_real(cfg, split="train")[0]) == 100
    with pytest.raises(UserError, match="split 'test' has 50"):
        real_images(cfg.replace(dataset="mnist"), n=51)


# ----------------------------------------------------------------------------------------------
# folders of images


def _png(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def test_flat_folder_keeps_values_and_size(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (20, 20), dtype=np.uint8) for _ in range(6)]
    for i, a in enumerate(arrays):
        _png(tmp_path / "imgs" / f"{i:02d}.png", a, "L")
    (tmp_path / "imgs" / "notes.txt").write_text("ignored")
    ds = DATASETS["folder"](RunConfig(dataset="folder", data_path=str(tmp_path / "imgs")))
    assert ds.shape == (1, 20, 20) and ds.num_classes == 0 and ds.labels is None and len(ds) == 6
    assert torch.equal(to_float(ds.images), torch.from_numpy(np.stack(arrays)).float().unsqueeze(1) / 127.5 - 1)
    x, y = next(ds.batches(4, torch.Generator().manual_seed(0), CPU))
    assert x.shape == (4, 1, 20, 20) and y is None
    xr, yr = real_images(RunConfig(dataset="folder", data_path=str(tmp_path / "imgs")))
    assert xr.shape == (6, 1, 20, 20) and yr is None


def test_class_subfolders_channels_and_resizing(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "classes"
    for cls, n in [("zebra", 3), ("ant", 2)]:
        for i in range(n):
            _png(root / cls / f"{i}.png", rng.integers(0, 256, (16, 24, 3), dtype=np.uint8), "RGB")
    cfg = RunConfig(dataset="folder", data_path=str(root), resolution=8)
    ds = DATASETS["folder"](cfg)
    assert ds.shape == (3, 8, 8) and ds.num_classes == 2 and ds.classes == ("ant", "zebra")
    assert ds.labels.tolist() == [0, 0, 1, 1, 1] and ds.native_resolution == 16

    # centre crop 24x16 -> 16x16, then Pillow bilinear to 8x8
    im = Image.open(root / "ant" / "0.png").crop((4, 0, 20, 16)).resize((8, 8), Image.Resampling.BILINEAR)
    assert torch.equal(ds.images[0], torch.from_numpy(np.array(im)).permute(2, 0, 1))

    gray = DATASETS["folder"](cfg.replace(channels=1))
    assert gray.shape == (1, 8, 8)
    im = Image.open(root / "ant" / "0.png").convert("L").crop((4, 0, 20, 16)).resize((8, 8), Image.Resampling.BILINEAR)
    assert torch.equal(gray.images[0, 0], torch.from_numpy(np.array(im)))  # converted, then resized


def test_grayscale_to_rgb_and_mixed_modes(tmp_path):
    root = tmp_path / "mixed"
    _png(root / "a.png", np.full((8, 8), 200, np.uint8), "L")
    _png(root / "b.png", np.zeros((8, 8, 3), np.uint8), "RGB")
    with pytest.raises(UserError, match="b.png") as e:
        DATASETS["folder"](RunConfig(dataset="folder", data_path=str(root)))
    assert "channels=" in str(e.value)
    rgb = DATASETS["folder"](RunConfig(dataset="folder", data_path=str(root), channels=3))
    assert rgb.shape == (3, 8, 8) and rgb.images[0].unique().tolist() == [200] and rgb.images[1].max() == 0


def test_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        DATASETS["folder"](RunConfig(dataset="folder", data_path=str(tmp_path / "empty")))
    with pytest.raises(UserError, match="data_path"):
        DATASETS["folder"](RunConfig(dataset="folder"))
    bad = tmp_path / "bad"
    _png(bad / "ok.png", np.zeros((8, 8), np.uint8), "L")
    (bad / "broken.png").write_bytes(b"\x89PNG not an image")
    with pytest.raises(UserError, match="broken.png"):
        DATASETS["folder"](RunConfig(dataset="folder", data_path=str(bad)))


# ----------------------------------------------------------------------------------------------
# downloads, names, training


@pytest.mark.parametrize("name, where, file", [
    ("mnist", "mnist/MNIST/raw", "train-images-idx3-ubyte.gz"),
    ("fashion-mnist", "fashion-mnist/FashionMNIST/raw", "train-images-idx3-ubyte.gz"),
    ("stacked-mnist", "mnist/MNIST/raw", "t10k-labels-idx1-ubyte.gz"),
    ("cifar10", "cifar10", "cifar-10-python.tar.gz"),
])
def test_offline_download_is_one_line_naming_files_source_and_path(tmp_path, name, where, file):
    with pytest.raises(UserError) as e:
        DATASETS[name](RunConfig(dataset=name))  # torchvision's own download, urlopen failing
    msg = str(e.value)
    assert "\n" not in msg and "could not download" in msg
    assert file in msg and "http" in msg and msg.endswith(str(tmp_path / "data-root" / where))


def test_unknown_dataset_suggests_names():
    with pytest.raises(UserError, match="did you mean 'digits'"):
        DATASETS["digts"]


def test_list_datasets_shows_the_image_datasets(capsys):
    from ganbench.cli import main

    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist", "fashion-mnist", "stacked-mnist", "cifar10", "folder"):
        assert name in out


def test_train_three_steps_on_digits():
    from ganbench.evaluate import generate
    from ganbench.train import train

    cfg = RunConfig(model="mlp", dataset="digits", width=16, depth=1, batch_size=16, steps=3)
    result = train(cfg, DATASETS["digits"](cfg), CPU)
    assert result.steps_done == 3 and result.diverged is None
    samples = generate(result.generator, 16, cfg.z_dim, cfg.eval_seed, CPU)
    assert samples.shape == (16, 1, 28, 28) and samples.min() >= -1 and samples.max() <= 1
