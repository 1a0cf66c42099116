"""Evaluation: a generator -> samples drawn with the eval seed -> features -> metric values.

Sampling, feature extraction and metric math are separate steps: features are computed once per
extractor and shared by every metric that reads them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json

import torch
from torch import nn

from ganbench.data.checks import check_output
from ganbench.errors import UserError
from ganbench.features import FEATURES
from ganbench.features.translation import STEGO_SIGMA, Translations
from ganbench.metrics import METRICS, Metric
from ganbench.metrics.base import TRAIN_SPLIT
from ganbench.models import batch_norms, batch_statistics, is_conditional
from ganbench.seeding import make_generator


class NonFiniteSamples(UserError):
    """Samples contain NaN or Inf: a diverged generator, or bad input."""


@torch.no_grad()
def generate(g: nn.Module, n: int, z_dim: int, eval_seed: int, device: torch.device, batch: int = 5000,
             num_classes: int = 0, bn_batch: int = 0) -> torch.Tensor:
    """n samples (CPU, float32) from latents drawn on the CPU with the eval seed.

    Latents come from a CPU generator so that every device sees the same noise. A conditional
    generator gets balanced labels 0, 1, ..., num_classes - 1, 0, 1, ...

    ``bn_batch`` > 0 (a config's ``eval_bn_batch``): G runs on batches of that many latents with its
    batch norms normalising by each batch's statistics, as TensorFlow code that samples in training
    mode does; the last batch is filled up with latents drawn after the n (and their samples
    dropped), so every sample is normalised among ``bn_batch``; G's population statistics are left
    as they were. The first n latents are the same either way.
    """
    if bn_batch and not (isinstance(g, nn.Module) and batch_norms(g)):
        raise UserError(f"eval_bn_batch = {bn_batch} evaluates the generator with batch statistics, but it has no "
                        f"batch norm that ganbench can switch (a TorchScript file or a callable is run as it is)")
    noise = make_generator(eval_seed, "eval")
    z = torch.randn(n, z_dim, generator=noise)
    y = generated_labels(n, num_classes) if is_conditional(g) else None
    if bn_batch:
        batch, fill = bn_batch, -n % bn_batch
        z = torch.cat([z, torch.randn(fill, z_dim, generator=noise)])
        y = None if y is None else generated_labels(n + fill, num_classes)
    with batch_statistics(g) if bn_batch else contextlib.nullcontext():
        if y is None:
            out = [g(zc.to(device)).float().cpu() for zc in z.split(batch)]
        else:
            out = [g(zc.to(device), yc.to(device)).float().cpu() for zc, yc in zip(z.split(batch), y.split(batch))]
    return torch.cat(out)[:n]


def generated_labels(n: int, num_classes: int) -> torch.Tensor:
    """The labels ``generate`` gives a conditional generator's n samples: 0, 1, ..., K-1, 0, 1, ..."""
    return torch.arange(n) % num_classes


@torch.no_grad()
def translate(ab, ba, dataset, eval_seed: int, device: torch.device, batch: int = 500, where: str = "translator") -> Translations:
    """A translator pair's outputs on the test split (``ba`` may be None: only A -> B is known).

    The steganography probe's noise is drawn on the CPU with the eval seed, so every device sees
    the same. A translator whose output has the wrong count, shape or range is a UserError.
    """
    shape = tuple(dataset.shape)

    def run(net, x: torch.Tensor, name: str) -> torch.Tensor:
        out = []
        for chunk in x.split(batch):
            y = net(chunk.to(device))
            if not isinstance(y, torch.Tensor) or y.dim() == 0 or len(y) != len(chunk):
                got = f"{len(y)} outputs" if isinstance(y, torch.Tensor) and y.dim() else type(y).__name__
                raise UserError(f"{where} {name}: {len(chunk)} images in, {got} out")
            out.append(y.float().cpu())
        y = torch.cat(out)
        check_output(y, shape, True, where=f"{where} {name}")
        return y

    def noisy(x: torch.Tensor, key: str) -> torch.Tensor:
        n = torch.randn(x.shape, generator=make_generator(eval_seed, key)) * STEGO_SIGMA
        return (x + n).clamp_(-1.0, 1.0)

    fake_b = run(ab, dataset.test_a, "A -> B")
    if ba is None:
        return Translations(fake_b)
    fake_a = run(ba, dataset.test_b, "B -> A")
    return Translations(
        ab=fake_b, ba=fake_a, cycle_a=run(ba, fake_b, "B -> A"), cycle_b=run(ab, fake_a, "A -> B"),
        stego_a=run(ba, noisy(fake_b, "stego-a"), "B -> A"), stego_b=run(ab, noisy(fake_a, "stego-b"), "A -> B"),
    )


def check_samples(samples: torch.Tensor, dataset) -> None:
    """Shape, dtype and range must fit the dataset; values must be finite."""
    check_output(samples, tuple(dataset.shape), dataset.bounded, where="samples")
    bad = (~torch.isfinite(samples)).flatten(1).any(dim=1)
    if bad.any():
        raise NonFiniteSamples(f"{int(bad.sum())} of {len(samples)} samples contain NaN or Inf")


def resolve_metrics(names: tuple[str, ...], dataset) -> list[Metric]:
    """The metrics to compute: the named ones, or the dataset's defaults."""
    return [METRICS[n] for n in (names or dataset.default_metrics)]


def num_fake(metric: Metric, cfg=None) -> int:
    """The generated samples ``metric`` reads under ``cfg``: its own ``num_fake``, or the config's
    ``eval_samples`` when that is set and the metric reads a fixed count (not a split's size)."""
    if cfg is not None and cfg.eval_samples and metric.num_fake > 0:
        return cfg.eval_samples
    return metric.num_fake


def fake_count(metric: Metric, dataset, cfg=None) -> int:
    """How many samples ``metric`` reads: ``num_fake(metric, cfg)``, or the real training split's size."""
    if metric.num_fake == TRAIN_SPLIT:
        from ganbench.features.labelled import synthetic_size

        return synthetic_size(dataset)
    return num_fake(metric, cfg)


def samples_needed(metrics: list[Metric], dataset, cfg=None) -> int:
    """Samples to draw for an evaluation: the most any of ``metrics`` reads (under ``cfg``'s ``eval_samples``)."""
    return max(fake_count(m, dataset, cfg) for m in metrics)


def needs_labels(metrics: list[Metric]) -> list[Metric]:
    """The metrics that read class-labelled samples."""
    return [m for m in metrics if FEATURES[m.features].labelled]


def require_labels(metrics: list[Metric], labels, what: str) -> None:
    """A UserError, before anything is computed, when a metric needs labels that ``what`` lacks."""
    wanting = needs_labels(metrics)
    if wanting and labels is None:
        raise UserError(f"metric {wanting[0].name!r} needs class-labelled samples and {what}; give a class-conditional "
                        f"generator, an .npz with 'samples' and 'labels', or a folder with one subfolder per class")


def compute_metrics(samples: torch.Tensor, dataset, metrics: list[Metric], labels: torch.Tensor | None = None,
                    cfg=None, details: dict | None = None) -> dict[str, float]:
    """Each metric on the first ``num_fake(metric, cfg)`` samples (on a translator's ``Translations``,
    all of them); features computed once per extractor.

    ``labels`` (N,) are the samples' classes, for the metrics whose extractor is ``labelled`` (a
    UserError without them, raised before any metric is computed); those extractors read the config
    fields their metrics name (``Metric.config``) from ``cfg`` (default: ``RunConfig()``). When
    ``details`` is a dict, extractors that keep per-seed or per-class results (a ``details`` dict on
    what they return) add them under the extractor's name.
    """
    if isinstance(samples, Translations):
        bad = (~torch.isfinite(samples.images())).flatten(1).any(dim=1)
        if bad.any():
            raise NonFiniteSamples(f"{int(bad.sum())} translated images contain NaN or Inf")
        features = {}
        for m in metrics:
            if m.features not in features:
                features[m.features] = FEATURES[m.features](samples, dataset)
        return {m.name: float(m.fn(features[m.features])) for m in metrics}
    check_samples(samples, dataset)
    require_labels(metrics, labels, "these have none")
    for m in metrics:  # (a labelled extractor checks its samples per class)
        if not FEATURES[m.features].labelled and len(samples) < fake_count(m, dataset, cfg):
            raise UserError(f"metric {m.name!r} needs {fake_count(m, dataset, cfg)} samples, got {len(samples)}")
    features = {}
    if needs_labels(metrics):  # labels are checked (range, classes) before anything is computed
        from ganbench.config import RunConfig

        cfg = cfg if cfg is not None else RunConfig()
        settings = {k: getattr(cfg, k) for m in metrics for k in m.config}
        for m in needs_labels(metrics):
            if m.features not in features:
                features[m.features] = FEATURES[m.features](samples, dataset, labels, settings)
    values = {}
    for m in metrics:
        n = num_fake(m, cfg)
        key = m.features if FEATURES[m.features].labelled else (m.features, n)
        if key not in features:
            features[key] = FEATURES[m.features](samples[:n], dataset)
        values[m.name] = float(m.fn(features[key]))
    if details is not None:
        for key, f in features.items():
            if getattr(f, "details", None):
                details[key if isinstance(key, str) else key[0]] = f.details
    return values


def protocol(metric: Metric, eval_seed: int, dataset=None, cfg=None) -> dict:
    """Everything that must match for two values of a metric to be comparable.

    With ``dataset``, the extractor's ``provenance(dataset)`` adds what it was computed with: network
    or classifier and the hash of its weights, classifier accuracy, and the actual number of real samples (a metric's ``num_real`` of -1 means the whole reference split).
    The metric's fixed ``params`` are recorded, and with ``cfg`` the config fields it names in
    ``config``, the sample count it reads (``num_fake(metric, cfg)``) and, when set, ``eval_bn_batch``.
    """
    p = {
        "metric_version": metric.version,
        "features": metric.features,
        "num_fake": num_fake(metric, cfg),
        "num_real": metric.num_real,
        "eval_seed": eval_seed,
        **{k: v for k, v in metric.params},
    }
    if cfg is not None:
        p.update({k: getattr(cfg, k) for k in metric.config})
        if cfg.eval_bn_batch:  # (recorded only when set: protocols written before it keep their ids)
            p["eval_bn_batch"] = cfg.eval_bn_batch
    if dataset is not None:
        extra = dict(FEATURES[metric.features].provenance(dataset))
        if metric.num_real == 0:  # the metric reads no real samples, whatever the extractor loads
            extra.pop("num_real", None)
        p.update(extra)
    return p


def preflight(metrics: list[Metric], dataset, cfg=None) -> None:
    """Checks that can fail before any training: each metric's extractor reads this kind of data (2-D
    mode metrics need mode centres, image features need images), a config's ``eval_samples`` is
    enough for each metric's definition, and each extractor can run (e.g. the Inception weights file
    exists)."""
    for m in metrics:
        reason = FEATURES[m.features].mismatch(dataset)
        if reason:
            raise UserError(f"metric {m.name!r} {reason}")
    if cfg is not None and cfg.eval_samples:
        short = {m.name: m.least(dataset) for m in metrics if 0 < num_fake(m, cfg) < m.least(dataset)}
        if short:
            raise UserError(f"config key 'eval_samples' ({cfg.eval_samples}) is too few for "
                            f"{', '.join(f'{name} (at least {n})' for name, n in short.items())}; set it to at least "
                            f"{max(short.values())} or to 0 for each metric's own count")
    for m in metrics:
        FEATURES[m.features].preflight(dataset)


def protocol_id(p: dict) -> str:
    return hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:12]
