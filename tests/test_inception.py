"""Inception metrics: agreement with torch-fidelity on one weights file, weights checks, the cache.

The weights are InceptionV3 with informative random values (``inception_weights`` in conftest):
the real file cannot be downloaded here. ganbench's FID, KID and IS on two small structured image
sets must equal torch-fidelity's ``calculate_metrics`` on the same images and the same file.
"""

import urllib.error
from unittest import mock

import numpy as np
import pytest
import torch
import torch_fidelity
import torch_fidelity.metrics
from torch.utils.data import Dataset

from ganbench.cli import main
from ganbench.errors import UserError
from ganbench.features import cache, inception
from ganbench.metrics.image import image_metrics

N, SIDE = 16, 32  # images per set: tiny, a 299x299 InceptionV3 pass costs ~0.1 s per image on a CPU
IS_SPLITS, KID_SUBSETS, KID_SUBSET_SIZE = 3, 10, 12


def blobs(n: int, seed: int) -> torch.Tensor:
    """(n, 3, SIDE, SIDE) smooth coloured Gaussian blobs in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIDE).float(), torch.arange(SIDE).float(), indexing="ij")
    centre = torch.rand(n, 2, generator=g) * SIDE
    width = 3 + 5 * torch.rand(n, 1, 1, generator=g)
    d2 = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2
    blob = torch.exp(-d2 / (2 * width**2))  # (n, SIDE, SIDE)
    colour = torch.rand(n, 3, 1, 1, generator=g) * 2 - 1
    return (blob[:, None] * colour).clamp(-1, 1)


def noise(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class Uint8Images(Dataset):
    """torch-fidelity input: uint8 (3, H, W) images, by the same fixed map as ganbench."""

    def __init__(self, images: torch.Tensor):
        self.images = inception.to_uint8(images)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


@pytest.fixture
def allow_random(monkeypatch):
    monkeypatch.setenv(inception.ENV_ALLOW_OTHER, "1")
    monkeypatch.delenv(inception.ENV_WEIGHTS, raising=False)


def torch_fidelity_metrics(fake: torch.Tensor, real: torch.Tensor, weights) -> dict:
    """calculate_metrics on the same images and weights file; KID on float64 copies of its features.

    torch-fidelity computes KID's cubic kernel on float32 features (its float64 option maps to
    float32), which loses about 4 digits on these sums; its own function given float64 features
    is the reference.
    """
    original = torch_fidelity.metrics.kid_featuresdict_to_metric

    def kid_float64(f1, f2, layer, **kw):
        return original({k: v.double() for k, v in f1.items()}, {k: v.double() for k, v in f2.items()}, layer, **kw)

    with mock.patch.object(torch_fidelity.metrics, "kid_featuresdict_to_metric", kid_float64):
        return torch_fidelity.calculate_metrics(
            input1=Uint8Images(fake), input2=Uint8Images(real), fid=True, isc=True, kid=True, cuda=False,
            feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(weights), batch_size=N,
            isc_splits=IS_SPLITS, kid_subsets=KID_SUBSETS, kid_subset_size=KID_SUBSET_SIZE, cache=False,
            save_cpu_ram=True, verbose=False)


def test_fid_kid_is_equal_torch_fidelity_on_the_same_file(inception_weights, allow_random):
    fake, real = blobs(N, 1), noise(N, 2)
    net = inception.extractor(inception_weights)
    real_features = net(real)
    options = dict(is_splits=IS_SPLITS, kid_subsets=KID_SUBSETS, kid_subset_size=KID_SUBSET_SIZE)
    with pytest.warns(UserWarning, match="rank-deficient"):  # 16 samples of 2,048-d features
        ours = image_metrics(net(fake), real_features, **options)
        same = image_metrics(net(noise(N, 3)), real_features, **options)  # two draws of the same noise
    theirs = torch_fidelity_metrics(fake, real, inception_weights)
    assert ours["fid"] > 10 and ours["kid"] > 0.01 and ours["is"] > 1.5  # informative: far from 0 and 1
    assert ours["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-5)
    assert ours["kid"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5)
    assert ours["kid_std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-5)
    assert ours["is"] == pytest.approx(theirs["inception_score_mean"], rel=1e-3)
    assert ours["is_std"] == pytest.approx(theirs["inception_score_std"], rel=1e-3)
    # noise against noise is close to 0, far below blobs against noise
    assert 0 <= same["fid"] < 0.05 * ours["fid"] and abs(same["kid"]) < 0.05 * ours["kid"]


def test_features_match_torch_fidelity_and_do_not_depend_on_the_batch(inception_weights, allow_random):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    images = blobs(5, 7)
    ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(inception_weights))
    with torch.no_grad():
        pool, logits = ref(inception.to_uint8(images))
    whole = inception.extractor(inception_weights)(images)
    net = inception.InceptionFeatures(inception_weights, batch_size=4)  # batches of 4 and 1
    parts = net(images)
    scale = pool.abs().max()
    assert (whole["2048"] - pool).abs().max() < 1e-5 * scale  # folded batch norm: rounding only
    assert (whole["logits_unbiased"] - logits).abs().max() < 1e-4 * logits.abs().max()
    assert (parts["2048"] - whole["2048"]).abs().max() < 1e-5 * scale


def test_uint8_map_is_fixed_and_rounds():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.999, 1.0, 1.5, -2.0]).view(1, 1, 1, 7)
    u = inception.to_uint8(x)
    assert u.shape == (1, 3, 1, 7) and u.dtype == torch.uint8
    assert u[0, 0, 0].tolist() == [0, 64, 128, 255, 255, 255, 0]  # round((x + 1) * 127.5), clamped
    # never min-max rescaled: a dim image stays dim
    assert inception.to_uint8(torch.full((1, 3, 1, 1), -0.9)).max().item() == 13


def test_mismatched_image_sizes_are_an_error(inception_weights, allow_random):
    with pytest.raises(UserError, match="image sizes differ: generated 3x32x32, real 3x28x28"):
        image_metrics(noise(12, 0), noise(12, 1)[..., :28, :28], inception.extractor(inception_weights))
    with pytest.raises(UserError, match="image sizes differ: generated 3x32x32, real 1x32x32"):
        image_metrics(noise(12, 0), noise(12, 1)[:, :1], inception.extractor(inception_weights))


def test_checksum_mismatch_is_an_error_unless_allowed(inception_weights, monkeypatch):
    monkeypatch.delenv(inception.ENV_ALLOW_OTHER, raising=False)
    with pytest.raises(UserError, match="does not match the Inception weights") as e:
        inception.check_weights(inception_weights)
    assert "\n" not in str(e.value) and inception.ENV_ALLOW_OTHER in str(e.value)
    sha = inception.check_weights(inception_weights, allow_other=True)
    assert sha == inception.file_sha256(inception_weights) and not sha.startswith(inception.SHA256_PREFIX)
    monkeypatch.setenv(inception.ENV_ALLOW_OTHER, "1")
    assert inception.check_weights(inception_weights) == sha


def test_not_a_state_dict_is_an_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="unreadable weights file"):
        inception.check_weights(bad, allow_other=True)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No weights anywhere and no network."""
    monkeypatch.delenv(inception.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub" / "checkpoints" / inception.WEIGHTS_FILE


def test_offline_without_weights_is_one_line_naming_file_url_and_place(offline):
    with pytest.raises(UserError) as e:
        inception.resolve_weights()
    msg = str(e.value)
    assert "\n" not in msg
    assert inception.WEIGHTS_FILE in msg and inception.weights_url() in msg and str(offline) in msg
    assert "--inception-weights" in msg and inception.ENV_WEIGHTS in msg


def test_cli_fails_before_training_without_weights(offline, tmp_path, capsys):
    code = main(["run", "--model", "dcgan", "--dataset", "digits", "--set", "metrics=fid", "--set", "steps=1",
                 "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and inception.weights_url() in err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_cli_inception_weights_option(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(inception.ENV_WEIGHTS, raising=False)
    code = main(["run", "--model", "dcgan", "--dataset", "digits", "--inception-weights", str(tmp_path / "nope.pth"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope.pth" in err


def test_weights_resolution_order(inception_weights, offline, monkeypatch, tmp_path):
    assert inception.resolve_weights(inception_weights) == inception_weights  # the argument first
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(inception_weights))
    assert inception.resolve_weights() == inception_weights  # then the environment
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(tmp_path / "missing.pth"))
    with pytest.raises(UserError, match="not found"):
        inception.resolve_weights()
    monkeypatch.delenv(inception.ENV_WEIGHTS)
    offline.parent.mkdir(parents=True)
    offline.write_bytes(b"x")
    assert inception.resolve_weights() == offline  # then torch hub's cache


# ----------------------------------------------------------------------------------------------
# the reference cache


class FakeNet:
    """Stands in for the network: counts the images it is asked about."""

    name = "fake-extractor"

    def __init__(self, sha: str = "0" * 64):
        self.weights_sha256, self.calls = sha, 0

    def __call__(self, images, progress=False):
        self.calls += len(images)
        return {"2048": images.flatten(1)[:, :8].double().sum(1, keepdim=True).repeat(1, 4)}


class FakeData:
    name, eval_split = "fake-data", "test"

    def __init__(self, images):
        self.images = images

    def real_images(self, split=None, n=None):
        return self.images.clone(), None


def test_reference_cache_hit_miss_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    images = noise(5, 0)
    net = FakeNet()
    first = inception.reference_features(FakeData(images), net)
    again = inception.reference_features(FakeData(images), net)
    assert net.calls == 5 and np.array_equal(first, again)  # miss, then hit
    entries = sorted((tmp_path / "cache" / "reference").iterdir())
    assert [p.suffix for p in entries] == [".json", ".npz"]  # the entry and what it was computed from

    changed = images.clone()
    changed[0, 0, 0, 0] += 0.5  # one pixel
    inception.reference_features(FakeData(changed), net)
    assert net.calls == 10  # new content, new key
    inception.reference_features(FakeData(images), FakeNet(sha="1" * 64))
    assert len(list((tmp_path / "cache" / "reference").glob("*.npz"))) == 3  # other weights, other key

    whole = entries[1].read_bytes()
    for damaged in (b"corrupt", b"", whole[: len(whole) // 2]):  # not an npz, empty, truncated
        entries[1].write_bytes(damaged)  # a damaged entry is recomputed, not trusted
        net2 = FakeNet()
        assert np.array_equal(inception.reference_features(FakeData(images), net2), first) and net2.calls == 5


def test_cache_key_covers_every_input_and_location(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path))
    assert cache.cache_dir() == tmp_path
    base = {"dataset": "d", "split": "test", "n": 10, "weights": "abc"}
    keys = {cache.key_of({**base, k: "other"}) for k in base} | {cache.key_of(base)}
    assert len(keys) == len(base) + 1
    assert cache.key_of(dict(reversed(list(base.items())))) == cache.key_of(base)  # order does not matter
