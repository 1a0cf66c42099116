"""Models: ``MODELS`` maps a name to a factory ``fn(cfg, dataset) -> (generator, discriminator)``.

The registry and the architecture options are in ``base``; one file per model family: ``mlp``,
``dcgan``, ``cdcgan``, ``sngan``, ``small_dcgan``, ``cyclegan`` (translators), with shared layers in ``blocks``.
"""

from __future__ import annotations

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
