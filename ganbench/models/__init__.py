"""Models: ``MODELS`` maps a name to a factory ``fn(cfg, dataset) -> (generator, discriminator)``.

The registry and the architecture options are in ``base``; one file per model family: ``mlp``,
``dcgan``, ``cdcgan``, ``sngan``, ``small_dcgan``, ``cyclegan`` (translators), with shared layers in ``blocks``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ganbench import distributed
from ganbench.models.base import (  # noqa: F401
    ARCH_FIELDS,
    BUILTIN_OPTIONS,
    MODELS,
    check_options,
    check_pairing,
    is_conditional,
    is_translator,
)
from ganbench.models import mlp, cdcgan, dcgan, small_dcgan, sngan, cyclegan  # noqa: F401,I001  (register the built-in models, in this order)


def batch_norms(net: nn.Module) -> list[nn.Module]:
    """The layers of ``net`` that normalise by batch statistics and keep population statistics."""
    return [m for m in net.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, mlp.StdevBatchNorm1d))]


@contextlib.contextmanager
def batch_statistics(net: nn.Module):
    """Inside: ``net``'s batch norms normalise by each call's batch statistics (training mode), this
    process's own under torchrun, where every rank samples the same latents; after: their
    population statistics and modes are as before, whatever ran inside."""
    norms = batch_norms(net)
    saved = [(m.training, [b.clone() for b in m.buffers(recurse=False)]) for m in norms]
    for m in norms:
        m.train()
    try:
        with distributed.local_statistics():
            yield
    finally:
        with torch.no_grad():
            for m, (training, buffers) in zip(norms, saved):
                for b, old in zip(m.buffers(recurse=False), buffers):
                    b.copy_(old)
                m.train(training)
