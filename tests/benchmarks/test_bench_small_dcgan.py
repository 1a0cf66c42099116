"""PacGAN's Stacked MNIST step (paper-pacgan-stacked-mnist, setting dcgan: the small DCGAN, D = 1/4 G,
batch 128). ganbench's ``small-dcgan`` computes the reference's TensorFlow-'SAME' networks as
PyTorch-padded layers with one flip at D's input and one at G's output; paired in one run with the
same networks padded layer by layer as TensorFlow does (``tests/tf_same.py``: a zero pad before
each stride-2 conv, a crop after each transposed conv), which compute the same functions. 20
training steps on one thread, on random 28 x 28 digits (the step does not depend on what they show).

    pytest tests/benchmarks/test_bench_small_dcgan.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean --benchmark-group-by=func

With benchmarks disabled (the default run) each runs once, for 2 steps.
"""

import numpy as np
import pytest
import torch
from tf_same import literal

from ganbench.config import load_suite
from ganbench.data import DATASETS
from ganbench.data.idx import write_idx
from ganbench.models import MODELS
import ganbench.train as train_module
from ganbench.train import log_interval, train

CPU = torch.device("cpu")
DCGAN = dict(load_suite("paper-pacgan-stacked-mnist").settings)["dcgan"]


@pytest.fixture
def digits_folder(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, size=(1000, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", rng.integers(0, 10, size=1000, dtype=np.uint8))
    return tmp_path


@pytest.mark.parametrize("layers", ["ganbench-flipped", "tensorflow-padded"])
def test_stacked_mnist_step(benchmark, monkeypatch, one_thread, digits_folder, layers):
    cfg = DCGAN.replace(steps=20 if not benchmark.disabled else 2, eval_every=0, data_path=str(digits_folder))
    if layers == "tensorflow-padded":
        built = MODELS["small-dcgan"]
        monkeypatch.setattr(train_module, "MODELS", {**MODELS, "small-dcgan": lambda cfg, ds: literal(*built(cfg, ds))})
    benchmark.extra_info["steps"] = cfg.steps
    dataset = DATASETS[cfg.dataset](cfg)
    result = benchmark.pedantic(train, args=(cfg, dataset, CPU), kwargs={"log_every": log_interval(DCGAN.steps)},
                                rounds=5, iterations=1, warmup_rounds=1)
    assert result.steps_done == cfg.steps and result.diverged is None
    assert result.generator(torch.zeros(2, cfg.z_dim)).shape == (2, 3, 28, 28)
    assert type(result.generator).__name__ == {"ganbench-flipped": "SmallGenerator", "tensorflow-padded": "LiteralGenerator"}[layers]
