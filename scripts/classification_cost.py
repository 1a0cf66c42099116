"""Seconds each classification metric costs on a dataset, with its real training images as samples.

    python scripts/classification_cost.py digits
    python scripts/classification_cost.py mnist --data-path ~/data/mnist --threads 2
    python scripts/classification_cost.py mnist --data-path DIR/t10k-images-idx3-ubyte.gz --train-size 60000

Each metric is timed alone in a fresh cache, twice: "first" trains everything it needs (the real-only
classifiers included: cas_real, the gains' baselines, the domain classifier behind gan_test), "then"
is every later evaluation, which reads the real-only results from the cache. ``--train-size N``
repeats (or cuts) the training split to N images, to time a full-size split where only a smaller
one is at hand (the MNIST test split, say); the accuracies printed are then meaningless, the
seconds are not: a classifier's cost depends on the images it sees, not on their content.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

from ganbench.config import RunConfig
from ganbench.data import DATASETS
from ganbench.evaluate import compute_metrics
from ganbench.features import labelled
from ganbench.features.cache import tensor_digest
from ganbench.metrics import METRICS

NAMES = ("cas", "cas_real", "gan_test", "aug_gain", "aug_gain_1pct", "rebalance_gain")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--data-path", default="")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-size", type=int, default=0)
    p.add_argument("--metrics", default=",".join(NAMES))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = DATASETS[args.dataset](RunConfig(dataset=args.dataset, data_path=args.data_path))
    real = labelled.real_splits(dataset)
    if args.train_size:
        idx = torch.arange(args.train_size) % len(real.train_y)
        real = labelled.RealSplits(real.train_x[idx], real.train_y[idx], real.test_x, real.test_y, real.num_classes,
                                   tensor_digest(real.train_x[idx], real.train_y[idx], real.test_x, real.test_y))
        labelled.real_splits = lambda d: real  # noqa: E731 - every module reads it through the labelled module
    print(f"{args.dataset}: {len(real.train_y)} training images, {len(real.test_y)} test images, "
          f"{args.threads} threads")
    print(f"{'metric':16s} {'value':>8s} {'first s':>8s} {'then s':>8s}")
    for name in args.metrics.split(","):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["GANBENCH_CACHE"] = cache
            seconds = []
            for _ in range(2):
                t0 = time.perf_counter()
                v = compute_metrics(real.train_x, dataset, [METRICS[name]], real.train_y)[name]
                seconds.append(time.perf_counter() - t0)
        print(f"{name:16s} {v:8.4f} {seconds[0]:8.1f} {seconds[1]:8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
