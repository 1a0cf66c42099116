"""The model registry: ``MODELS`` maps a name to a factory ``fn(cfg, dataset) -> (generator, discriminator)``.

A generator maps latents (B, cfg.z_dim) to samples (B, *dataset.shape); a discriminator maps
samples to logits (B,). A class-conditional pair sets ``conditional = True`` on the generator; then
the generator is called as ``g(z, labels)`` and the discriminator as ``d(x, labels)``, labels (B,)
int64. Models hold architecture only: losses and training live elsewhere.
"""

from __future__ import annotations

from ganbench.config import ADDED
from ganbench.errors import UserError
from ganbench.registry import Registry

MODELS = Registry("model")


# Architecture fields of RunConfig, and which of them each built-in model reads. A built-in model
# given a field it does not read is refused; a plug-in model reads what it reads.
ARCH_FIELDS = ("activation", "init", "init_gain", "g_batch_norm", "d_width", "d_depth", "maxout", "pack")
BUILTIN_OPTIONS = {
    "mlp": set(ARCH_FIELDS),
    "dcgan": {"d_width", "pack"},
    "cdcgan": set(),
    "sngan": set(),
    "small-dcgan": {"d_width", "pack"},
    "cyclegan": {"d_width", "d_depth"},
    "identity": {"d_width", "d_depth"},
}


def check_options(cfg) -> None:
    """A UserError when ``cfg`` sets an architecture field that its built-in model does not read."""
    reads = BUILTIN_OPTIONS.get(cfg.model)
    if reads is None:
        return
    for name in ARCH_FIELDS:
        if getattr(cfg, name) != ADDED[name] and name not in reads:
            which = ", ".join(sorted(reads)) or "none"
            raise UserError(f"model {cfg.model!r} has no option {name!r} (its options: {which})")


def is_conditional(g) -> bool:
    """Conditional generators take ``(z, labels)``; their discriminators take ``(x, labels)``."""
    return bool(getattr(g, "conditional", False))


def is_translator(g) -> bool:
    """Translator pairs (``cyclegan``) map images of domain A to domain B (``g.ab``) and back (``g.ba``)."""
    return bool(getattr(g, "translator", False))


def check_pairing(g, cfg, dataset) -> None:
    """Translators train on translation datasets, and only there."""
    translation = bool(getattr(dataset, "translation", False))
    if translation and not is_translator(g):
        raise UserError(f"dataset {cfg.dataset!r} is a translation pair (domains A and B); model {cfg.model!r} "
                        f"generates from noise: use a translator (cyclegan, identity)")
    if is_translator(g) and not translation:
        raise UserError(f"model {cfg.model!r} translates between two domains; dataset {cfg.dataset!r} is not a "
                        f"translation pair")
