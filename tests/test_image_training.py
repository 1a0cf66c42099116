"""Image GANs in the real training loop on `digits`, checks of each model against its dataset before
any work, and evaluation of image samples made elsewhere (a folder of PNGs, an .npz)."""

import numpy as np
import pytest
import torch

from ganbench.cli import main
from ganbench.config import RunConfig, single_setting_suite
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.evaluate import generate
from ganbench.losses import LOSSES
from ganbench.models import MODELS, is_conditional

TRANSLATORS = {"cyclegan", "identity"}  # image-to-image: tests/test_translation.py
from ganbench.results.store import load_rows
from ganbench.runs.suite import validate_suite
from ganbench.seeding import make_generator
from ganbench.train import build_models, train

CPU = torch.device("cpu")
TINY = dict(dataset="digits", width=8, depth=1, z_dim=8, batch_size=16, steps=3, n_dis=1)


def tiny(model: str, **changes) -> RunConfig:
    return RunConfig(model=model, **{**TINY, **changes})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: one thread is faster than several waiting on each other for microsecond ops."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return DATASETS["digits"](tiny("mlp"))


# ----------------------------------------------------------------------------------------------
# every model x every loss, a few steps of the real loop


# ns: the plain objective; wgan: the weight-clipping step hook; wgan-gp: the gradient penalty
# (through the projection discriminator for cdcgan); the other losses differ only in their formula
@pytest.mark.parametrize("loss", ["ns", "wgan", "wgan-gp"])
@pytest.mark.parametrize("model", sorted(set(MODELS) - TRANSLATORS))
def test_every_model_trains_on_digits_and_samples_images(model, loss, digits):
    cfg = tiny(model, loss=loss)
    result = train(cfg, digits, CPU)
    assert result.diverged is None and result.steps_done == 3 and len(result.history) == 3
    assert all(np.isfinite([r["d_loss"], r["g_loss"]]).all() for r in result.history)
    g0, d0 = build_models(cfg, digits, CPU)  # the initial weights: both networks must have moved
    for before, after in ((g0, result.generator), (d0, result.discriminator)):
        assert any(not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters()))
    with torch.no_grad():
        x = generate(result.generator, 40, cfg.z_dim, cfg.eval_seed, CPU, num_classes=digits.num_classes)
    assert x.shape == (40, 1, 28, 28) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
    assert x.std(dim=0).mean() > 0  # different latents, different images
    if LOSSES[loss].clip:
        bound = max(p.abs().max().item() for p in result.discriminator.parameters())
        assert bound <= cfg.weight_clip


# the plain loop, spectral norm's power iteration, a projection discriminator with a double backward
@pytest.mark.parametrize("model, loss", [("dcgan", "ns"), ("sngan", "hinge"), ("cdcgan", "wgan-gp")])
def test_bf16_mixed_precision_is_reproducible_and_keeps_fp32_weights(model, loss, digits):
    cfg = tiny(model, loss=loss, precision="bf16")
    a, b = train(cfg, digits, CPU), train(cfg, digits, CPU)
    for net_a, net_b in ((a.generator, b.generator), (a.discriminator, b.discriminator)):
        state_a, state_b = net_a.state_dict(), net_b.state_dict()
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)  # same seed, same bits
        assert all(v.dtype in (torch.float32, torch.int64) for v in state_a.values())
    full = train(cfg.replace(precision="fp32"), digits, CPU)
    # the same objective computed in bfloat16 (8 bits of mantissa): close to fp32, not equal to it
    ours, exact = a.history[0]["d_loss"], full.history[0]["d_loss"]
    assert ours != exact and ours == pytest.approx(exact, rel=0.02)
    with torch.no_grad():  # sampling for evaluation stays fp32
        x = generate(a.generator, 8, cfg.z_dim, cfg.eval_seed, CPU, num_classes=digits.num_classes)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()


def test_cdcgan_samples_follow_their_labels(digits):
    cfg = tiny("cdcgan", steps=5)
    g = train(cfg, digits, CPU).generator
    assert is_conditional(g) and not g.training
    z = torch.randn(6, cfg.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        by_label = {k: g(z, torch.full((6,), k)) for k in range(digits.num_classes)}
        mixed = g(z[:3], torch.tensor([3, 7, 3]))
    assert all(x.shape == (6, 1, 28, 28) for x in by_label.values())
    assert mixed.shape == (3, 1, 28, 28)
    # eval mode: each sample depends only on its own (z, label) pair
    assert torch.allclose(mixed[0], by_label[3][0], atol=1e-6) and torch.allclose(mixed[1], by_label[7][1], atol=1e-6)
    assert torch.allclose(mixed[2], by_label[3][2], atol=1e-6)
    assert not torch.allclose(by_label[3], by_label[7])  # same noise, another label: another image
    # balanced labels for evaluation: sample i has label i mod 10 (what fid_intra relies on)
    with torch.no_grad():
        x = generate(g, 25, cfg.z_dim, 0, CPU, num_classes=10)
        z25 = torch.randn(25, cfg.z_dim, generator=make_generator(0, "eval"))
        expected = g(z25, torch.arange(25) % 10)
    assert x.shape == (25, 1, 28, 28) and torch.equal(x, expected)


# ----------------------------------------------------------------------------------------------
# validation before any work


@pytest.mark.parametrize("argv, message", [
    (["--model", "dcgan", "--dataset", "ring8"], "model 'dcgan' needs square images (C, H, W) of side 28, 32 or 64"),
    (["--model", "sngan", "--dataset", "grid25"], "model 'sngan' needs square images"),
    (["--model", "dcgan", "--dataset", "digits", "--set", "resolution=20"], "set resolution to 28, 32 or 64"),
])
def test_model_that_does_not_fit_the_data_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "res"
    assert main(["run", *argv, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_conditional_model_on_unlabelled_images_exits_2(tmp_path, capsys):
    from PIL import Image

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(4):
        Image.fromarray(np.full((28, 28), 40 * i, dtype=np.uint8)).save(flat / f"{i}.png")
    out = tmp_path / "res"
    argv = ["run", "--model", "cdcgan", "--dataset", "folder", "--set", f"data_path={flat}", "--out", str(out)]
    assert main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'cdcgan' is class-conditional and needs a labelled dataset" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


PLUGIN = '''
from torch import nn
from ganbench.models import MODELS
from ganbench.models.dcgan import DCGANGenerator


@MODELS.register("{name}")
def factory(cfg, dataset):
    g = DCGANGenerator(cfg.z_dim, 1, 28, cfg.width, True)
    return g, nn.Sequential(nn.Flatten(), nn.Linear(784, {outputs}))
'''


def test_discriminator_with_wrong_output_is_refused_before_training(tmp_path, capsys):
    plugin = tmp_path / "two_logits.py"
    plugin.write_text(PLUGIN.format(name="two-logits", outputs=2))
    out = tmp_path / "res"
    argv = ["run", "--plugin", str(plugin), "--model", "two-logits", "--dataset", "digits", "--out", str(out)]
    assert main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "model 'two-logits' discriminator: output has shape (2, 2), expected (N,) logits" in err
    assert not out.exists()


def test_validation_builds_full_size_models_without_memory_or_randomness():
    # width 4096 at 64 px: a dcgan generator of ~4.5e9 parameters (18 GB), which the meta device never allocates
    suite = single_setting_suite({"model": "dcgan", "dataset": "digits", "width": 4096, "resolution": 64,
                                  "z_dim": 128}, [0])
    state = torch.get_rng_state()
    validate_suite(suite)
    assert torch.equal(state, torch.get_rng_state())
    suite = single_setting_suite({"model": "cdcgan", "dataset": "ring8"}, [0])
    with pytest.raises(UserError, match="model 'cdcgan' needs square images"):
        validate_suite(suite)


# ----------------------------------------------------------------------------------------------
# evaluation of image samples made elsewhere


def test_eval_of_a_png_folder_and_an_npz_of_the_same_images_agree(tmp_path, digits, capsys):
    from PIL import Image

    real, _ = digits.real_images()  # (355, 1, 28, 28) in [-1, 1]
    uint8 = ((real + 1) * 127.5).round().to(torch.uint8)
    n = 10_000  # the protocol's sample count, made of the real test images repeated
    images = uint8.repeat(n // len(uint8) + 1, 1, 1, 1)[:n].numpy()
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img[0]).save(folder / f"{i:05d}.png", compress_level=0)
    np.savez(tmp_path / "samples.npz", samples=images)
    noise = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
    np.savez(tmp_path / "noise.npz", samples=noise)

    out = tmp_path / "res"
    metrics = ["--metrics", "fid_domain,classes,class_kl"]
    for name, source in (("folder", folder), ("npz", tmp_path / "samples.npz"), ("noise", tmp_path / "noise.npz")):
        argv = ["eval", "--dataset", "digits", "--samples", str(source), "--name", name, "--out", str(out)]
        assert main(argv + metrics) == 0
    values = {}
    for r in load_rows(out):
        values.setdefault(r["label"], {})[r["metric"]] = r["value"]
    # the same pixels, whichever the container (PNG decoding takes another float path: rounding only)
    assert values["folder"] == pytest.approx(values["npz"], rel=1e-5)
    assert values["npz"]["classes"] == 10 and values["npz"]["class_kl"] < 0.01
    # the real images against themselves, resampled: far below uniform noise
    assert values["npz"]["fid_domain"] < values["noise"]["fid_domain"] / 100
    assert {r["source"]["kind"] for r in load_rows(out)} >= {"folder", "npz"}


def test_eval_of_images_with_the_wrong_shape_is_one_line(tmp_path, capsys):
    np.savez(tmp_path / "rgb.npz", samples=np.zeros((10_000, 3, 28, 28), dtype=np.uint8))
    out = tmp_path / "res"
    assert main(["eval", "--dataset", "digits", "--samples", str(tmp_path / "rgb.npz"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "expected (N, 1, 28, 28)" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
