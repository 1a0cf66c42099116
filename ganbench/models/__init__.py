"""Models: ``MODELS`` maps a name to a factory ``fn(cfg, dataset) -> (generator, discriminator)``.

A generator maps latents (B, cfg.z_dim) to samples (B, *dataset.shape); a discriminator maps
samples to logits (B,). Models hold architecture only: losses and training live elsewhere.
"""

from __future__ import annotations

from ganbench.registry import Registry

MODELS = Registry("model")

from ganbench.models import mlp  # noqa: E402,F401  (registers the built-in models)
