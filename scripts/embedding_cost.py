"""Seconds per image of each DINOv2 and CLIP variant on this machine, and what 10,000 images cost.

    python scripts/embedding_cost.py [--n 16] [--threads T] [dinov2:vit-s-14 clip:vit-l-14-336 ...]

Each network is the real architecture with random weights (written to a temporary folder: the
cost does not depend on the values), timed on n 32 x 32 RGB images after one warm-up batch.
Prints one line per network: images/s, seconds per image, hours for 10,000 images.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

DEFAULT = ["dinov2:vit-s-14", "dinov2:vit-b-14", "dinov2:vit-l-14", "clip:vit-b-32", "clip:vit-l-14",
           "clip:vit-l-14-336"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("networks", nargs="*", default=DEFAULT, help="family:variant (default: all)")
    p.add_argument("--n", type=int, default=16, help="images timed per network")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from ganbench.features import clip, dinov2

    folder = Path(tempfile.mkdtemp())
    x = torch.rand(args.n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    print(f"{torch.get_num_threads()} torch threads, {args.n} images of 32x32")
    for spec in args.networks:
        family, _, variant = spec.partition(":")
        path = folder / f"{family}-{variant}.pth"
        if family == "dinov2":
            dinov2.make_random_weights(path, variant)
            net = dinov2.DinoV2(path, batch_size=8)
        elif family == "clip":
            clip.make_random_weights(path, variant)
            net = clip.Clip(path, batch_size=8)
        else:
            raise SystemExit(f"unknown family {family!r} (dinov2 or clip)")
        net(x[:2])  # warm-up
        start = time.perf_counter()
        net(x)
        per = (time.perf_counter() - start) / args.n
        print(f"{net.name:22s} {1 / per:7.2f} images/s  {per:7.3f} s/image  {per * 10_000 / 3600:6.2f} h per 10,000")
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
