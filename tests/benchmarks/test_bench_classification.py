"""One classifier fit of the classification metrics (a CAS seed) on digits: ganbench's recipe
against a plain PyTorch loop over the same network, images, batch size and number of steps
(AdamW at a constant learning rate, no shifts, no schedule), paired in one run.

    pytest tests/benchmarks/test_bench_classification.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean,ops

The recipe's own work beyond the plain loop is the random shift of each batch and the one-cycle
schedule; both fits see 20,160 images (14 epochs of the 1,442 training digits). With benchmarks
disabled (the default run) each fits 2 epochs of 256 images, and the test asserts what both
share: the same number of optimiser steps and a classifier that beats chance.
"""

import pytest
import torch
import torch.nn.functional as F

from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.features import classifier as classifier_mod
from ganbench.features.labelled import real_splits
from ganbench.metrics.classification import accuracy, fit_and_test
from ganbench.seeding import make_generator, seeded_init


@pytest.fixture
def data(benchmark, monkeypatch):
    real = real_splits(DATASETS["digits"](RunConfig(dataset="digits")))
    n = len(real.train_y) if not benchmark.disabled else 256
    if benchmark.disabled:
        monkeypatch.setitem(classifier_mod.RECIPE, "min_samples", 2 * n)
    return real, real.train_x[:n], real.train_y[:n]


def epochs(n: int) -> int:
    r = classifier_mod.RECIPE
    return max(r["min_epochs"], -(-r["min_samples"] // n))


def plain_fit(x, y, real):
    with seeded_init(0, torch.device("cpu")):
        net = classifier_mod.DigitClassifier(real.num_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    order = make_generator(0, "data")
    steps = 0
    for _ in range(epochs(len(x))):
        for idx in torch.randperm(len(x), generator=order).split(classifier_mod.RECIPE["batch_size"]):
            loss = F.cross_entropy(net(x[idx])[1], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    net.eval()
    with torch.no_grad():
        hit = (net(real.test_x)[1].argmax(1) == real.test_y).double().mean()
    return float(hit), steps


def test_ganbench_fit(benchmark, data):
    real, x, y = data
    counts = benchmark.pedantic(fit_and_test, args=(x, y, real, 0), rounds=3 if not benchmark.disabled else 1)
    assert accuracy(counts) > 0.3 and counts[:, 1].sum() == len(real.test_y)


def test_plain_loop(benchmark, data):
    real, x, y = data
    acc, steps = benchmark.pedantic(plain_fit, args=(x, y, real), rounds=3 if not benchmark.disabled else 1)
    assert steps == epochs(len(x)) * -(-len(x) // classifier_mod.RECIPE["batch_size"]) and acc > 0.3
