"""Runs under ``torchrun``: one run at a time, data-parallel over the processes.

``ganbench.distributed`` holds the collectives the loop and the extractors use; this module checks
a suite before any process starts work.
"""

from __future__ import annotations

import os

import torch

from ganbench import distributed
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.models import MODELS


def check_suite(suite) -> None:
    """Before any work: every setting's networks, built on the meta device, can be converted for
    data parallelism (``sync_batch_norm``); a model that cannot is a one-line error on every rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun; the process group is not up yet
    for label, cfg in suite.settings:
        if cfg.pack > 1 and (cfg.batch_size % world or (cfg.batch_size // world) % cfg.pack):
            raise UserError(f"{label}: each of the {world} processes gets batch_size / {world} samples, which must be "
                            f"a multiple of pack ({cfg.pack}); got batch_size {cfg.batch_size}")
        dataset = DATASETS[cfg.dataset](cfg)  # outside the meta device: datasets are loaded once and kept
        with torch.device("meta"):
            nets = MODELS[cfg.model](cfg, dataset)
        try:
            for net in nets:
                distributed.sync_batch_norm(net)
        except UserError as e:
            raise UserError(f"{label}: model {cfg.model!r}: {e}") from None
