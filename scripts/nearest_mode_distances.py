"""How far each finished 2-D run's final samples lie from the nearest mixture mean.

    python scripts/nearest_mode_distances.py WORK_FOLDER [--setting LABEL ...]

For every run folder with a saved generator: the fraction of 2,500 points (the evaluation seed's
latents) within 3 sigma of a mean (the hq threshold) and within 0.1, the quartiles of the distance,
and the samples' per-coordinate spread. It tells a generator that collapsed onto one sharp mode
from one that covers the modes with blurred points, which the mode count and hq alone do not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ganbench.data import DATASETS
from ganbench.evaluate import generate
from ganbench.samples import load_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a suite's results folder (with runs/)")
    parser.add_argument("--setting", action="append", default=[], help="only these labels")
    args = parser.parse_args()
    print("label\tdataset\tseed\twithin_3sigma\twithin_0.1\tq25\tq50\tq75\tspread_x\tspread_y")
    for run in sorted((args.work / "runs").iterdir()):
        if not (run / "generator.pt").is_file():
            continue
        label = json.loads((run / "config.json").read_text())["label"]
        if args.setting and label not in args.setting:
            continue
        g, cfg, _ = load_generator(run / "generator.pt")
        dataset = DATASETS[cfg.dataset](cfg)
        x = generate(g, 2500, cfg.z_dim, cfg.eval_seed, torch.device("cpu")).double()
        dist = torch.cdist(x, dataset.means.double()).min(dim=1).values
        q = torch.quantile(dist, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
        spread = x.std(dim=0)
        print(f"{label}\t{cfg.dataset}\t{cfg.seed}\t{(dist <= 3 * dataset.sigma).double().mean():.3f}\t"
              f"{(dist <= 0.1).double().mean():.3f}\t" + "\t".join(f"{v:.3f}" for v in q.tolist())
              + f"\t{spread[0]:.3f}\t{spread[1]:.3f}")


if __name__ == "__main__":
    main()
