"""DINOv2 and CLIP feature spaces, CMMD, the Vendi score and the RKE mode count.

The networks are the real architectures with random weights saved to disk (``dinov2_weights``:
ViT-S/14 in the published checkpoint format; ``clip_weights``: ViT-B/32 as a TorchScript archive
like OpenAI's files): the published weights cannot be downloaded here. Their numbers mean nothing
by themselves; what is tested is that ganbench computes what the references compute on the same
file, deterministically, and records which file it was.
"""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from ganbench.cli import main
from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.data.toy import ring8
from ganbench.errors import UserError
from ganbench.features import clip, dinov2, embedding, weights
from ganbench.features.weights import file_sha256, load_state_dict
from ganbench.metrics import METRICS
from ganbench.metrics import embedding as emb_metrics
from ganbench.metrics.diversity import rke_mode_count, vendi_cosine, vendi_gaussian


def structured(n: int, seed: int, channels: int = 1, side: int = 28) -> torch.Tensor:
    """(n, channels, side, side) smooth blobs in [-1, 1]: images a network tells apart."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    centre = torch.rand(n, 2, generator=g) * side
    width = 2 + 5 * torch.rand(n, 1, 1, generator=g)
    blob = torch.exp(-((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2) / (2 * width**2))
    colour = torch.rand(n, channels, 1, 1, generator=g) * 2 - 1
    return (blob[:, None] * colour * 2 - 0.5).clamp(-1, 1)


@pytest.fixture
def allow_other(monkeypatch):
    monkeypatch.setenv(embedding.ENV_ALLOW_OTHER, "1")


# ----------------------------------------------------------------------------------------------
# preprocessing and loading


def test_pil_bicubic_is_torchvision_resize_of_a_pil_image():
    """dgm-eval and open_clip resize PIL images with torchvision's Resize(BICUBIC): the same bytes."""
    x = torch.randint(0, 256, (3, 3, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ours = embedding.pil_bicubic(x, 224)
    resize = T.Resize((224, 224), interpolation=T.InterpolationMode.BICUBIC)
    for i in range(3):
        ref = np.asarray(resize(Image.fromarray(x[i].permute(1, 2, 0).numpy(), "RGB")))
        assert np.array_equal(ours[i].permute(1, 2, 0).numpy(), ref)
    assert embedding.pil_bicubic(ours, 224) is ours  # already at size: untouched


def _dinov2_code_interpolation(pos_embed: torch.Tensor, w0: int, offset: float = 0.1) -> torch.Tensor:
    """The position-embedding interpolation of facebookresearch/dinov2 (commit b8931f7,
    ``DinoVisionTransformer.interpolate_pos_encoding``) for a square w0 x w0 patch grid."""
    pos_embed = pos_embed.float()
    n = pos_embed.shape[1] - 1
    m = int(math.sqrt(n))
    dim = pos_embed.shape[-1]
    sx = float(w0 + offset) / m
    patch = torch.nn.functional.interpolate(pos_embed[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2),
                                            mode="bicubic", antialias=False, scale_factor=(sx, sx))
    assert (w0, w0) == patch.shape[-2:]
    patch = patch.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((pos_embed[:, 0].unsqueeze(0), patch), dim=1)


def test_dinov2_position_embedding_is_interpolated_as_the_dinov2_code_does():
    from timm.layers import resample_abs_pos_embed

    pos = torch.randn(1, 1 + 37 * 37, 8, generator=torch.Generator().manual_seed(0))
    ours = dinov2.interpolate_pos_embed(pos, 16)
    assert torch.equal(ours, _dinov2_code_interpolation(pos, 16))
    # timm's own resampling (antialiased, to an exact size) is a different map: not what DINOv2 computes
    timm_way = resample_abs_pos_embed(pos, new_size=(16, 16), num_prefix_tokens=1)
    assert (timm_way - ours).abs().max() > 1e-3
    assert dinov2.interpolate_pos_embed(ours, 16) is ours  # already at the grid


def test_dinov2_features_are_deterministic_batch_independent_and_read_the_image(dinov2_weights):
    net = dinov2.DinoV2(dinov2_weights, batch_size=5)
    assert net.variant == "vit-s-14" and net.name == "dinov2-vit-s-14" and net.dim == 384
    x = structured(12, 0)
    a = net(x)
    assert a.shape == (12, 384) and a.dtype == np.float32
    assert np.array_equal(a, net(x))  # the same batches: bit for bit
    whole = dinov2.DinoV2(dinov2_weights, batch_size=12)(x)
    np.testing.assert_allclose(whole, a, rtol=0, atol=1e-5 * np.abs(a).max())
    assert a.std(axis=0).mean() > 0.05  # the embedding depends on the image
    # gray images are the same as their RGB repetition (an image file's convert("RGB"))
    assert np.array_equal(net(x[:5]), net(x[:5].expand(-1, 3, -1, -1)))


def test_dinov2_reads_timm_format_and_the_published_format_alike(dinov2_weights, tmp_path):
    state = load_state_dict(dinov2_weights, "DINOv2")
    state.pop("mask_token")
    other = tmp_path / "timm-format.pth"
    torch.save({"model": state}, other)  # a wrapped state dict without the mask token
    x = structured(4, 1, channels=3)
    assert np.array_equal(dinov2.DinoV2(dinov2_weights)(x), dinov2.DinoV2(other)(x))


def test_clip_equals_torch_fidelity_on_the_same_file(clip_weights, tmp_path):
    """At the network's resolution no resize applies: ganbench's CLIP features are torch-fidelity's
    ``clip-vit-b-32`` features of the same TorchScript file, up to float rounding."""
    from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP

    theirs = FeatureExtractorCLIP("clip-vit-b-32", ["clip"], feature_extractor_weights_path=str(clip_weights))
    ours = clip.Clip(clip_weights)
    assert ours.variant == "vit-b-32" and ours.dim == 512 and ours.resolution == 224
    u = embedding.to_uint8(structured(3, 2, channels=3, side=224))
    with torch.inference_mode():
        (ref,) = theirs(u)
        mine = ours.forward(u)
    torch.testing.assert_close(mine, ref, rtol=0, atol=1e-5 * ref.abs().max().item())
    # the same tensors as a plain state dict (open_clip's format) give the same features exactly
    plain = tmp_path / "clip-state-dict.pth"
    torch.save(load_state_dict(clip_weights, "CLIP"), plain)
    x = structured(3, 3)
    assert np.array_equal(clip.Clip(plain)(x), ours(x))


def test_cmmd_embeddings_are_unit_length_clip_embeddings_of_the_reference_resize(clip_weights):
    """The CMMD code centre-crops and resizes each image file with PIL's bicubic filter (then its
    float resize to the same size is the identity) and scales embeddings to unit length."""
    u = embedding.to_uint8(structured(2, 4))
    net = clip.Clip(clip_weights, unit=True)
    ref = np.stack([np.asarray(Image.fromarray(im[0].numpy(), "L").resize((224, 224), Image.BICUBIC)) for im in u])
    ref = torch.from_numpy(ref).float()[:, None].expand(-1, 3, -1, -1) / 255.0  # gray files tiled to RGB
    ref = (ref - torch.tensor(clip.CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(clip.CLIP_STD).view(1, 3, 1, 1)
    assert torch.equal(net.preprocess(u.expand(-1, 3, -1, -1)), ref)
    with torch.inference_mode():
        e = net.forward(u.expand(-1, 3, -1, -1))
        plain = clip.Clip(clip_weights).forward(u.expand(-1, 3, -1, -1))
    torch.testing.assert_close(torch.linalg.vector_norm(e, dim=1), torch.ones(2))
    torch.testing.assert_close(e, plain / torch.linalg.vector_norm(plain, dim=1, keepdim=True))


def test_published_clip_files_are_torch_fidelitys():
    from torch_fidelity.feature_extractor_clip import MODEL_URLS

    for name, sha in clip.PUBLISHED_SHA256.items():
        file_name, url = clip._published(name)
        assert url == MODEL_URLS[name] and file_name == f"{name}-{sha}.pt"
    assert clip.SOURCE_CMMD.file_name.startswith("clip-vit-l-14-336px-")


# ----------------------------------------------------------------------------------------------
# weights files: where they come from, what goes wrong


def test_missing_weights_name_the_file_its_address_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(dinov2.SOURCE.env, raising=False)
    with pytest.raises(UserError) as e:
        dinov2.DINOV2.preflight(DATASETS["digits"]())
    msg = str(e.value)
    assert dinov2.URL in msg and "dinov2_vitl14_pretrain.pth" in msg and str(tmp_path / "torch") in msg
    assert "--weights dinov2=FILE" in msg and "GANBENCH_DINOV2_WEIGHTS" in msg and "\n" not in msg


def test_a_run_without_weights_stops_before_training_with_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(clip.SOURCE_CMMD.env, raising=False)
    out = tmp_path / "res"
    code = main(["run", "--model", "dcgan", "--dataset", "digits", "--set", "metrics=cmmd", "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "ViT-L-14-336px.pt" in err and "--weights cmmd=FILE" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("pair, message", [
    ("dinov3=x.pth", "unknown network 'dinov3'; did you mean 'dinov2'"),
    ("dinov2", "expected KEY=FILE"),
    ("clip=/no/such/file.pt", "--weights clip: file not found: /no/such/file.pt"),
])
def test_bad_weights_flags_exit_2_with_one_line(pair, message, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["eval", "--dataset", "digits", "--samples", str(tmp_path / "x.npz"), "--weights", pair,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_corrupt_or_foreign_weights_are_one_line_errors(tmp_path, dinov2_weights, clip_weights):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="unreadable DINOv2 weights file"):
        dinov2.DinoV2(junk)
    with pytest.raises(UserError, match="not a CLIP ViT checkpoint"):
        clip.Clip(dinov2_weights)
    with pytest.raises(UserError, match="not a DINOv2 checkpoint"):
        dinov2.DinoV2(clip_weights)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(dinov2_weights.read_bytes()[:100_000])
    with pytest.raises(UserError, match="unreadable"):
        dinov2.DinoV2(truncated)


def test_cmmd_needs_vit_l14_336_unless_allowed(clip_weights, monkeypatch):
    monkeypatch.setenv(clip.SOURCE_CMMD.env, str(clip_weights))
    monkeypatch.delenv(embedding.ENV_ALLOW_OTHER, raising=False)
    with pytest.raises(UserError, match=r"CMMD is defined on CLIP ViT-L/14@336 embeddings; this file holds CLIP vit-b-32"):
        clip.CLIP_CMMD.preflight(None)
    monkeypatch.setenv(embedding.ENV_ALLOW_OTHER, "1")
    assert clip.CLIP_CMMD.provenance(DATASETS["digits"]())["extractor"] == "clip-cmmd-vit-b-32"


# ----------------------------------------------------------------------------------------------
# the maths: closed forms and the reference formulas


def _reference_cmmd(x: np.ndarray, y: np.ndarray, sigma: float = 10.0, scale: float = 1000.0) -> float:
    """google-research/cmmd distance.py ``mmd``, in numpy: every pair, diagonals included."""
    x_sq, y_sq = np.diag(x @ x.T), np.diag(y @ y.T)
    gamma = 1 / (2 * sigma**2)
    k_xx = np.mean(np.exp(-gamma * (-2 * x @ x.T + x_sq[:, None] + x_sq[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * x @ y.T + x_sq[:, None] + y_sq[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * y @ y.T + y_sq[:, None] + y_sq[None, :])))
    return scale * (k_xx + k_yy - 2 * k_xy)


def test_cmmd_is_the_reference_formula_and_zero_on_the_same_set(monkeypatch):
    g = np.random.default_rng(0)
    x = g.normal(size=(300, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = g.normal(size=(200, 16)) + 0.3
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    monkeypatch.setattr(emb_metrics, "CMMD_BLOCK", 64)  # several blocks
    value = emb_metrics.cmmd_value(x, y)
    assert value == pytest.approx(_reference_cmmd(x, y), rel=1e-10) and value > 0
    assert emb_metrics.cmmd_value(x, x) == 0.0
    assert emb_metrics.cmmd_value(x, y) == emb_metrics.cmmd_value(y, x)


def test_vendi_closed_forms():
    assert vendi_cosine(np.tile([[0.3, -1.0, 2.0]], (9, 1))) == pytest.approx(1.0, abs=1e-12)  # 9 identical
    assert vendi_cosine(np.eye(7) * 3.0) == pytest.approx(7.0, abs=1e-12)  # 7 orthogonal
    two = np.array([[1.0, 0.0]] * 5 + [[0.0, 2.0]] * 5)  # two orthogonal groups of equal size
    assert vendi_cosine(two) == pytest.approx(2.0, abs=1e-12)
    far = np.arange(6.0)[:, None] * 100.0 * np.ones((1, 2))  # far apart against sigma
    assert vendi_gaussian(far, sigma=1.0) == pytest.approx(6.0, abs=1e-9)
    assert vendi_gaussian(np.ones((8, 2)), sigma=1.0) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(UserError, match="all zeros"):
        vendi_cosine(np.zeros((3, 4)))
    with pytest.raises(UserError, match="NaN"):
        vendi_cosine(np.array([[1.0, np.nan]]))


def test_rke_counts_equal_clusters_exactly_and_the_ring_modes(monkeypatch):
    assert rke_mode_count(np.zeros((10, 2)), sigma=0.5) == 1.0
    far = np.repeat(np.arange(5.0)[:, None] * 100.0, 4, axis=0) * np.ones((1, 3))  # 5 clusters of 4
    assert rke_mode_count(far, sigma=1.0) == pytest.approx(5.0, abs=1e-9)
    # the blocked sum is the whole matrix's
    x = np.random.default_rng(1).normal(size=(150, 2))
    k = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / (2 * 0.7**2))
    assert rke_mode_count(x, 0.7, block_bytes=8 * 150 * 7) == pytest.approx(150**2 / (k**2).sum(), rel=1e-12)
    with pytest.raises(UserError, match="sigma"):
        rke_mode_count(x, 0.0)
    # a perfect ring8 sampler and a one-mode sampler, with the points metrics' bandwidth: for K
    # well-separated equal modes both scores are K times one mode's (block-diagonal kernel matrix)
    ds = ring8()
    perfect = ds.sample(4000, torch.Generator().manual_seed(0)).numpy()
    sigma = emb_metrics.points_sigma(ds)
    one = ds.means[0].numpy() + ds.sigma * np.random.default_rng(2).normal(size=(500, 2))
    assert rke_mode_count(one, sigma) == pytest.approx(1.0, rel=0.03)
    assert rke_mode_count(perfect, sigma) == pytest.approx(8.0, rel=0.03)
    assert rke_mode_count(perfect, sigma) == pytest.approx(8 * rke_mode_count(one, sigma), rel=0.01)
    assert vendi_gaussian(perfect[:2000], sigma) == pytest.approx(8 * vendi_gaussian(one, sigma), rel=0.01)


# ----------------------------------------------------------------------------------------------
# end to end: ganbench eval


@pytest.fixture
def small_protocol(monkeypatch):
    """The embedding metrics on 24 generated and 24 reference images (10,000 each by default)."""
    monkeypatch.setattr(embedding, "NUM_REAL", 24)
    monkeypatch.setattr(emb_metrics, "KID_SUBSET_SIZE", 12)
    monkeypatch.setattr(emb_metrics, "KID_SUBSETS", 5)
    originals = {name: m for name, m in METRICS.items() if m.features in ("dinov2", "clip", "clip_cmmd")}
    for name, m in originals.items():  # the registry refuses item assignment: dict's own, and put back after
        dict.__setitem__(METRICS, name, dataclasses.replace(m, num_fake=24))
    embedding.reference_embeddings.cache_clear()
    yield
    for name, m in originals.items():
        dict.__setitem__(METRICS, name, m)
    embedding.reference_embeddings.cache_clear()


def test_eval_on_npz_records_the_network_and_extracts_once_per_space(tmp_path, dinov2_weights, clip_weights,
                                                                     allow_other, small_protocol, monkeypatch):
    digits = DATASETS["digits"](RunConfig(dataset="digits"))
    samples = digits.real_images("train")[0][:24]
    np.savez(tmp_path / "s.npz", samples=samples.numpy())
    calls = []
    real_call = embedding.Network.__call__
    monkeypatch.setattr(embedding.Network, "__call__", lambda self, x, progress=False: calls.append(self.name)
                        or real_call(self, x, progress))
    names = ["fd_dinov2", "kid_dinov2", "precision_dinov2", "coverage_dinov2", "vendi_dinov2", "rke_modes_dinov2",
             "fd_clip", "vendi_clip", "cmmd"]
    argv = ["eval", "--dataset", "digits", "--samples", str(tmp_path / "s.npz"), "--metrics", ",".join(names),
            "--weights", f"dinov2={dinov2_weights}", "--weights", f"clip={clip_weights}",
            "--weights", f"cmmd={clip_weights}", "--out", str(tmp_path / "out")]
    with pytest.warns(UserWarning, match="rank-deficient"):
        assert main(argv) == 0
    # each space: the samples once and the reference once (then from the cache)
    assert sorted(calls) == sorted(["dinov2-vit-s-14"] * 2 + ["clip-vit-b-32"] * 2 + ["clip-cmmd-vit-b-32"] * 2)
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    by = {r["metric"]: r for r in rows}
    assert list(by) == names
    for r in rows:
        assert r["status"] == "ok" and math.isfinite(r["value"])
    p = by["fd_dinov2"]["protocol"]
    assert p["extractor"] == "dinov2-vit-s-14" and p["weights_sha256"] == file_sha256(dinov2_weights)
    assert p["num_real"] == 24 and "PIL bicubic" in p["preprocessing"]
    assert by["cmmd"]["protocol"]["extractor"] == "clip-cmmd-vit-b-32" and by["cmmd"]["protocol"]["sigma"] == 10.0
    assert by["vendi_dinov2"]["protocol"]["kernel"] == "cosine" and by["vendi_dinov2"]["protocol"]["num_real"] == 0
    assert 1.0 <= by["vendi_dinov2"]["value"] <= 24 and 0 <= by["precision_dinov2"]["value"] <= 1
    # a second evaluation reads the reference embeddings from disk and gives the same numbers
    embedding.reference_embeddings.cache_clear()
    calls.clear()
    with pytest.warns(UserWarning, match="rank-deficient"):
        assert main(argv) == 0
    assert sorted(calls) == sorted(["dinov2-vit-s-14", "clip-vit-b-32", "clip-cmmd-vit-b-32"])
    again = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()][len(rows):]
    assert [r["value"] for r in again] == [r["value"] for r in rows]


def test_cmmd_of_the_reference_images_against_themselves_is_zero(tmp_path, clip_weights, allow_other,
                                                                 small_protocol, monkeypatch):
    monkeypatch.setenv(clip.SOURCE_CMMD.env, str(clip_weights))
    digits = DATASETS["digits"](RunConfig(dataset="digits"))
    reference = digits.real_images()[0][:24]
    f = clip.CLIP_CMMD(reference, digits)
    assert METRICS["cmmd"].fn(f) == 0.0
    other = clip.CLIP_CMMD(digits.real_images("train")[0][:24], digits)
    assert METRICS["cmmd"].fn(other) > 0


def test_eval_vendi_and_rke_on_2d_points(tmp_path):
    ds = ring8()
    perfect = ds.sample(2500, torch.Generator().manual_seed(3)).numpy()
    collapsed = np.repeat(perfect[:1], 2500, axis=0) + 0.005 * np.random.default_rng(0).normal(size=(2500, 2))
    values = {}
    for name, pts in (("perfect", perfect), ("collapsed", collapsed)):
        np.savez(tmp_path / f"{name}.npz", samples=pts.astype(np.float32))
        out = tmp_path / name
        assert main(["eval", "--dataset", "ring8", "--samples", str(tmp_path / f"{name}.npz"), "--metrics",
                     "vendi,rke_modes", "--out", str(out)]) == 0
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        values[name] = {r["metric"]: r["value"] for r in rows}
        assert rows[0]["protocol"]["sigma"] == emb_metrics.points_sigma(ds)
    assert values["perfect"]["rke_modes"] == pytest.approx(8.0, rel=0.03)
    assert values["collapsed"]["rke_modes"] == pytest.approx(1.0, rel=0.03)
    assert 8.0 < values["perfect"]["vendi"] < 9.0 and values["collapsed"]["vendi"] < 1.1


def test_eval_on_a_folder_and_a_generator(tmp_path, dinov2_weights, allow_other, small_protocol):
    """The same extractors read an image folder and a Python generator; 2-D scores a callable's points."""
    digits = DATASETS["digits"](RunConfig(dataset="digits"))
    images = embedding.to_uint8(digits.real_images("train")[0][:24])[:, :1]
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im[0].numpy(), "L").save(folder / f"{i:03d}.png")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="rank-deficient"):
        assert main(["eval", "--dataset", "digits", "--samples", str(folder), "--metrics", "fd_dinov2,vendi_dinov2",
                     "--weights", f"dinov2={dinov2_weights}", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["protocol"]["extractor"] for r in rows] == ["dinov2-vit-s-14"] * 2
    # the folder holds the same images as the first 24 training digits: the same embeddings
    direct = dinov2.DINOV2(digits.real_images("train")[0][:24], digits)
    assert rows[1]["value"] == pytest.approx(vendi_cosine(direct.fake), rel=1e-6)
    gen = tmp_path / "ring.py"
    gen.write_text("import math, torch\n"
                   "def ring(z):\n"
                   "    k = (z[:, 0].abs() * 1000).long() % 8\n"
                   "    a = 2 * math.pi * k.double() / 8\n"
                   "    return (torch.stack([a.cos(), a.sin()], 1) + 0.01 * z[:, 1:3].double()).float()\n")
    out2 = tmp_path / "out2"
    assert main(["eval", "--dataset", "ring8", "--generator", f"{gen}:ring", "--z-dim", "3", "--metrics",
                 "rke_modes,modes", "--out", str(out2)]) == 0
    values = {json.loads(line)["metric"]: json.loads(line)["value"] for line in (out2 / "results.jsonl").read_text().splitlines()}
    assert values["modes"] == 8 and values["rke_modes"] == pytest.approx(8.0, rel=0.03)
