"""Every bundled suite file parses and validates (names, models against their data, metrics)
without training, and the reference settings carry their papers' hyperparameters."""

import numpy as np
import pytest
import torch

from ganbench.config import available_suites, load_suite
from ganbench.data import DATASETS
from ganbench.data.idx import write_idx
from ganbench.data.images import IMAGE_METRICS, ImageDataset
from ganbench.features import inception
from ganbench.runs.suite import validate_suite

NEW = ("mnist", "fashion-mnist", "stacked-mnist", "cifar10")  # the published-scale image suites


@pytest.fixture
def offline_data(tmp_path, monkeypatch, inception_weights):
    """Stand-ins for downloads: MNIST-format IDX files (mnist, fashion-mnist, stacked-mnist read them
    through their own loaders), a CIFAR-10-shaped dataset, and the random Inception weights file."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)

    def cifar10(cfg=None):
        side = (cfg.resolution if cfg else 0) or 32
        images, labels = torch.zeros(20, 3, side, side, dtype=torch.uint8), torch.arange(20) % 10
        return ImageDataset("cifar10", images, labels, 10, 32, "train", lambda split: (images, labels),
                            default_metrics=IMAGE_METRICS)

    monkeypatch.setenv(inception.ENV_WEIGHTS, str(inception_weights))
    monkeypatch.setenv(inception.ENV_ALLOW_OTHER, "1")
    real = DATASETS["cifar10"]
    dict.__setitem__(DATASETS, "cifar10", cifar10)  # the registry refuses replacements; a test may swap one
    yield tmp_path
    dict.__setitem__(DATASETS, "cifar10", real)


@pytest.mark.parametrize("name", sorted(available_suites()))
def test_every_bundled_suite_parses_and_validates(name, offline_data):
    plain = load_suite(name)
    needs_files = {cfg.dataset for _, cfg in plain.settings} & {"mnist", "fashion-mnist", "stacked-mnist"}
    suite = load_suite(name, {"data_path": str(offline_data)} if needs_files else None)
    validate_suite(suite)  # builds every model for its data: no weights are allocated, nothing is trained
    assert suite.settings and suite.seeds
    # each table line (label x dataset) is one setting
    assert len({(label, cfg.dataset) for label, cfg in suite.settings}) == len(suite.settings)


def test_validation_catches_a_model_that_does_not_fit_a_bundled_dataset(offline_data):
    from ganbench.errors import UserError

    with pytest.raises(UserError, match="model 'dcgan' needs square images .* of side 28, 32 or 64"):
        validate_suite(load_suite("cifar10", {"resolution": 48}))


@pytest.mark.parametrize("name", NEW)
def test_published_suites_carry_their_papers_hyperparameters(name):
    suite = load_suite(name)
    assert "GPU-scale" in suite.description and suite.seeds == (0, 1, 2)
    settings = dict(suite.settings)
    assert {cfg.dataset for cfg in settings.values()} == {name}
    dcgan = settings["dcgan"]  # Radford et al. 2016
    assert (dcgan.model, dcgan.loss, dcgan.optimizer, dcgan.lr_g, dcgan.lr_d, dcgan.betas) == (
        "dcgan", "ns", "adam", 2e-4, 2e-4, (0.5, 0.999))
    gp = settings["wgan-gp"]  # Gulrajani et al. 2017
    assert (gp.loss, gp.optimizer, gp.lr_g, gp.lr_d, gp.betas, gp.gp_weight, gp.n_dis) == (
        "wgan-gp", "adam", 1e-4, 1e-4, (0.0, 0.9), 10.0, 5)
    sn = settings["sngan"]  # Miyato et al. 2018
    assert (sn.model, sn.loss, sn.lr_g, sn.betas, sn.n_dis) == ("sngan", "hinge", 2e-4, (0.0, 0.9), 5)
    lsgan = settings["lsgan"]  # Mao et al. 2017
    assert (lsgan.loss, lsgan.lr_g, lsgan.betas[0]) == ("lsgan", 2e-4, 0.5)
    if "wgan" in settings:  # Arjovsky et al. 2017
        w = settings["wgan"]
        assert (w.loss, w.optimizer, w.lr_g, w.lr_d, w.weight_clip, w.n_dis) == ("wgan", "rmsprop", 5e-5, 5e-5, 0.01, 5)
    # a conditional model on Stacked MNIST would be given the modes it is scored on
    assert ("cdcgan" in settings) == (name != "stacked-mnist")
