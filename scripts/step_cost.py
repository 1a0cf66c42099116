"""What one training step of each setting of a suite costs on this machine, against its arithmetic.

    python scripts/step_cost.py [--suite paper-gdpp-2d] [--steps 40] [--threads 1] [--jobs 2]
        [--set KEY=VALUE ...] [LABEL ...]

``--set`` changes every setting as ``ganbench run --set`` does (``data_path=`` for a dataset kept
outside the data root; the step does not depend on which digits it reads).

For every (setting, dataset) of the suite (or only the labels given) it prints:

- ms/step: the median over 3 rounds of `steps` training steps of ganbench's own loop (`train`, no
  evaluation, a history row at the full run's rate), after 2 warm-up steps; the set-up is excluded.
- GFLOP/step: the floating-point work of the matrix products of one step (forward, backward and,
  for the Unrolled GAN and the gradient penalty, the second-order passes), counted with
  PyTorch's own per-operator formulas (`torch.utils.flop_counter`): everything the step cannot avoid doing.
- floor ms: that work at the best rate this machine's BLAS reaches on the step's main products
  (batch x width x width and batch x z x width in float32, measured here, one call at a time): the
  step's time if everything else (activations, losses, optimiser, autograd, Python) were free.
- ratio: ms/step over floor ms.
- min/run and the suite's wall time: ms/step x the setting's steps, and the sum over all seeds of
  the suite divided by `jobs` (runs on separate cores do not slow each other much here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def gemm_rate(batch: int, z_dim: int, width: int) -> float:
    """FLOP/s of float32 matrix products of the step's main shapes (the faster of the two, best of 10)."""
    gen = torch.Generator().manual_seed(0)
    best = 0.0
    for k in (width, z_dim):
        a, b = torch.randn(batch, k, generator=gen), torch.randn(k, width, generator=gen)
        for _ in range(200):  # the clock and the caches settle first
            a @ b
        for _ in range(10):
            start = time.perf_counter()
            for _ in range(100):
                a @ b
            best = max(best, 100 * 2 * batch * k * width / (time.perf_counter() - start))
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("labels", nargs="*", help="settings to time (default: all)")
    p.add_argument("--suite", default="paper-gdpp-2d")
    p.add_argument("--steps", type=int, default=40, help="steps per timed round")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one run per core)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once for the suite's wall time")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change every setting")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from ganbench.config import load_suite, parse_overrides
    from ganbench.data import DATASETS
    from ganbench.flops import step_products
    from ganbench.train import log_interval, train

    suite = load_suite(args.suite)
    cpu = torch.device("cpu")
    print(f"suite {suite.name}, {args.threads} torch thread(s), {len(suite.seeds)} seeds, jobs {args.jobs}")
    print(f"{'setting':14s} {'dataset':15s} {'ms/step':>8s} {'GFLOP/step':>10s} {'floor ms':>8s} {'ratio':>5s} "
          f"{'GFLOP/s':>7s} {'min/run':>7s}")
    total = 0.0
    changes = parse_overrides(args.set)
    for label, cfg in suite.settings:
        if args.labels and label not in args.labels:
            continue
        cfg = cfg.replace(**changes)
        dataset = DATASETS[cfg.dataset](cfg)
        timed = cfg.replace(eval_every=0)
        # history rows at the full run's rate, not at a short run's (which would log every step)
        every = log_interval(cfg.steps)
        train(timed.replace(steps=2), dataset, cpu, log_every=every)  # warm-up: allocator, kernels
        rounds = []
        for _ in range(3):
            start = time.perf_counter()
            train(timed.replace(steps=1), dataset, cpu, log_every=every)
            setup = time.perf_counter() - start
            start = time.perf_counter()
            train(timed.replace(steps=args.steps + 1), dataset, cpu, log_every=every)
            rounds.append((time.perf_counter() - start - setup) / args.steps)
        per_step = statistics.median(rounds)
        flops = step_products(timed, dataset, cpu).total
        rate = gemm_rate(cfg.batch_size, cfg.z_dim, cfg.width)
        floor = flops / rate
        minutes = per_step * cfg.steps / 60
        total += minutes * len(suite.seeds)
        print(f"{label:14s} {cfg.dataset:15s} {per_step * 1e3:8.1f} {flops / 1e9:10.3f} {floor * 1e3:8.1f} "
              f"{per_step / floor:5.1f} {rate / 1e9:7.1f} {minutes:7.1f}", flush=True)
    print(f"suite: {total:.0f} core-minutes, {total / args.jobs:.0f} min on {args.jobs} cores")
    return 0


if __name__ == "__main__":
    from ganbench.errors import UserError

    try:
        sys.exit(main())
    except UserError as e:
        print(f"step_cost.py: {e}", file=sys.stderr)
        sys.exit(2)
