"""Models: ``MODELS`` maps a name to a factory ``fn(cfg, dataset) -> (generator, discriminator)``.

A generator maps latents (B, cfg.z_dim) to samples (B, *dataset.shape); a discriminator maps
samples to logits (B,). A class-conditional pair sets ``conditional = True`` on the generator; then
the generator is called as ``g(z, labels)`` and the discriminator as ``d(x, labels)``, labels (B,)
int64. Models hold architecture only: losses and training live elsewhere.
"""

from __future__ import annotations

from ganbench.registry import Registry

MODELS = Registry("model")


def is_conditional(g) -> bool:
    """Conditional generators take ``(z, labels)``; their discriminators take ``(x, labels)``."""
    return bool(getattr(g, "conditional", False))


from ganbench.models import mlp  # noqa: E402,F401  (registers the built-in models)
from ganbench.models import cdcgan, dcgan, sngan  # noqa: E402,F401  (the image models)
