"""Run configuration: one frozen, typed dataclass, TOML suites and typed ``--set`` overrides.

Every value that can change a result lives in ``RunConfig``; its content hash is the run id, so two
runs with the same id are the same experiment. A field added later is left out of the hash while it
has its default, so the ids of runs recorded before it existed stay valid. Execution choices that
must not change a result (device, output folder, progress bars) are not part of it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from ganbench.errors import UserError
from ganbench.errors import suggest as _suggest
from ganbench.papers import parse_published

_PACKAGE = Path(__file__).resolve().parent
# Where suites are found by name: inside an installed wheel (ganbench/baselines, package data), in a
# checkout or editable install (the repository's baselines/, the same files), then ./baselines.
SUITE_DIRS = (_PACKAGE / "baselines", _PACKAGE.parent / "baselines", Path.cwd() / "baselines")


@dataclass(frozen=True)
class RunConfig:
    """One training run. Every field changes the result; the hash of all of them is the run id."""

    model: str = "mlp"  # generator/discriminator pair (see `ganbench list models`)
    loss: str = "ns"  # adversarial objective (see `ganbench list losses`)
    dataset: str = "ring8"  # training data and reference distribution (`ganbench list datasets`)
    seed: int = 0  # training seed: initialisation, data order and training noise derive from it
    steps: int = 2000  # generator updates
    batch_size: int = 256  # samples per discriminator and per generator update
    optimizer: str = "adam"  # "adam" or "rmsprop", for both networks
    lr_g: float = 1e-3  # generator learning rate
    lr_d: float = 1e-3  # discriminator learning rate
    betas: tuple[float, float] = (0.5, 0.999)  # Adam (beta1, beta2); ignored by rmsprop
    precision: str = "fp32"  # training arithmetic: "fp32", or "bf16" mixed precision (autocast; weights stay fp32)
    n_dis: int = 1  # discriminator updates per generator update
    gp_weight: float = 10.0  # gradient-penalty weight, used by losses that have a penalty
    z_dim: int = 2  # latent dimension (standard normal prior)
    width: int = 128  # hidden units (MLP) or base channels (CNN)
    depth: int = 3  # hidden layers of the MLP generator and discriminator
    spectral_norm: bool = False  # spectral normalisation on every discriminator layer
    resolution: int = 0  # image side in pixels (0: the dataset's default resolution)
    channels: int = 0  # image channels, for datasets that can convert (folder): 1 or 3 (0: as stored)
    data_path: str = ""  # a dataset's own files (folder of images, folder of IDX files); "" = under data_root
    ema: float = 0.0  # decay of an exponential moving average of G's weights, evaluated instead of G (0: off)
    weight_clip: float = 0.01  # discriminator weight clipping bound, used by losses that clip (wgan)
    divergence: str = "stop"  # on a detected divergence: "stop" the run (recorded as diverged) or "continue"
    eval_every: int = 0  # evaluate every this many steps as well as at the end (0: end only)
    eval_seed: int = 0  # seed of the evaluation noise, shared by all runs so they compare fairly
    eval_samples: int = 0  # generated samples every metric of a fixed count reads (FID at 10,000, say), recorded in each row's protocol; 0: each metric's own count
    bn_refresh: int = 0  # before each evaluation, batches of fresh latents through G that renew its batch-norm population statistics at the evaluated weights (PacGAN's code: 50); 0: off
    eval_bn_batch: int = 0  # evaluate G in batches of this many latents, its batch norms normalising by each batch's own statistics (PacGAN's Stacked MNIST code: 128); 0: by the population statistics
    metrics: tuple[str, ...] = ()  # metrics to compute; empty: the dataset's default metrics
    activation: str = ""  # MLP hidden units: "relu", "leaky_relu" (0.2) or "tanh" in G and D; "": ReLU in G, LeakyReLU in D
    init: str = "default"  # MLP weights: "default" (PyTorch's), "orthogonal" (times init_gain) or "normal" (N(0, init_gain)); zero biases
    init_gain: float = 1.0  # gain of the orthogonal initialisation, or std of the normal one
    g_batch_norm: bool = False  # batch norm after every hidden layer of the MLP generator
    d_width: int = 0  # discriminator hidden units (MLP) or base channels (CNN); 0: same as width
    d_depth: int = 0  # hidden layers of the MLP discriminator; 0: same as depth
    maxout: int = 0  # pieces of each maxout unit in the MLP discriminator's hidden layers; 0: no maxout
    pack: int = 1  # PacGAN: the discriminator judges packs of this many samples at once
    update: str = "alternating"  # "alternating": D's steps, then G's on fresh latents; "alternating-same-latents": G's on D's last latents; "simultaneous": both from one batch at the same weights
    unroll_steps: int = 0  # Unrolled GAN: look-ahead discriminator updates the generator's loss goes through
    step: str = ""  # training step (``ganbench list steps``); "": "unrolled" when unroll_steps > 0, else ``update``
    lr_decay: float = 0.0  # fraction of the steps, at the end, over which both learning rates fall linearly towards 0
    cycle_weight: float = 10.0  # step "cycle": weight (lambda) of the cycle-consistency L1 loss
    identity_weight: float = 0.5  # step "cycle": identity-loss weight, as a fraction of cycle_weight
    pool_size: int = 50  # step "cycle": generated images each discriminator's history pool holds (0: no pool)
    tail_ratio: float = 0.01  # rebalance_gain: the rarest class's share of the most common one in its long-tailed subset

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _check_type(f.name, _HINTS[f.name], getattr(self, f.name)))
        _check_ranges(self)

    @property
    def run_id(self) -> str:
        """Content hash of the whole config: same id, same experiment."""
        return digest(self.identity())

    @property
    def group_id(self) -> str:
        """Content hash without the seed: runs that differ only by seed share it."""
        d = self.identity()
        del d["seed"]
        return digest(d)

    def identity(self) -> dict:
        """What the ids hash: every field, except a later-added field at its default (``ADDED``), so
        that the runs recorded before the field existed keep their ids (and ``--resume`` finds them);
        and the revision of a built-in model whose networks have changed (``MODEL_REVISIONS``), so that
        its new runs are never averaged with, or resumed from, the old ones."""
        d = {k: v for k, v in self.to_dict().items() if not (k in ADDED and v == ADDED[k])}
        if self.model in MODEL_REVISIONS:
            d["model_revision"] = MODEL_REVISIONS[self.model]
        return d

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict, where: str = "config") -> RunConfig:
        unknown = sorted(set(values) - set(_HINTS))
        if unknown:
            raise UserError(f"{where}: unknown config key {_suggest(unknown[0], _HINTS)}")
        return cls(**values)


_HINTS = typing.get_type_hints(RunConfig)
# fields added after results were first recorded, with their defaults
ADDED = {"precision": "fp32", "activation": "", "init": "default", "init_gain": 1.0, "g_batch_norm": False,
         "d_width": 0, "d_depth": 0, "maxout": 0, "pack": 1, "unroll_steps": 0, "update": "alternating",
         "step": "", "lr_decay": 0.0, "cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 50, "tail_ratio": 0.01,
         "bn_refresh": 0, "eval_bn_batch": 0, "eval_samples": 0}
# built-in models whose networks changed after runs were recorded: model -> revision (absent: 1)
MODEL_REVISIONS = {"small-dcgan": 2}  # 2: PacGAN's TensorFlow networks (SAME padding, channel batch norm, truncated init)
_POSITIVE = ("steps", "batch_size", "lr_g", "lr_d", "n_dis", "z_dim", "width", "depth", "pack", "init_gain")
_NON_NEGATIVE = ("seed", "gp_weight", "eval_every", "eval_seed", "resolution", "channels", "weight_clip",
                 "d_width", "d_depth", "unroll_steps", "cycle_weight", "identity_weight", "pool_size", "bn_refresh",
                 "eval_bn_batch", "eval_samples")
ACTIVATIONS = ("", "relu", "leaky_relu", "tanh")
INITS = ("default", "orthogonal", "normal")
UPDATES = ("alternating", "alternating-same-latents", "simultaneous")
_OPTIMIZERS = ("adam", "rmsprop")
PRECISIONS = ("fp32", "bf16")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def digest(d: dict) -> str:
    """12 hex digits of the sha256 of a canonical JSON dump."""
    text = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _check_type(name: str, hint, value):
    """Return ``value`` as the field's type (ints pass as floats, lists as tuples) or raise."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key {name!r} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(args) != len(value):
            raise UserError(f"config key {name!r} needs {len(args)} values, got {len(value)}")
        return tuple(_check_type(name, a, v) for a, v in zip(args, value))
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        raise UserError(f"config key {name!r} must be {hint.__name__}, got {value!r}")
    if hint is float:
        value = float(value)
        if not math.isfinite(value):
            raise UserError(f"config key {name!r} must be finite, got {value!r}")
    return value


def _check_ranges(cfg: RunConfig) -> None:
    for name in _POSITIVE:
        if getattr(cfg, name) <= 0:
            raise UserError(f"config key {name!r} must be > 0, got {getattr(cfg, name)!r}")
    for name in _NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            raise UserError(f"config key {name!r} must be >= 0, got {getattr(cfg, name)!r}")
    if cfg.channels not in (0, 1, 3):
        raise UserError(f"config key 'channels' must be 0 (as stored), 1 or 3, got {cfg.channels!r}")
    if not 0.0 <= cfg.lr_decay <= 1.0:
        raise UserError(f"config key 'lr_decay' must lie in [0, 1], got {cfg.lr_decay!r}")
    if not 0.0 < cfg.tail_ratio <= 1.0:
        raise UserError(f"config key 'tail_ratio' must lie in (0, 1], got {cfg.tail_ratio!r}")
    if not 0.0 <= cfg.ema < 1.0:
        raise UserError(f"config key 'ema' must lie in [0, 1), got {cfg.ema!r}")
    if not all(0.0 <= b < 1.0 for b in cfg.betas):
        raise UserError(f"config key 'betas' must lie in [0, 1), got {list(cfg.betas)}")
    if cfg.divergence not in ("stop", "continue"):
        raise UserError(f"config key 'divergence' must be 'stop' or 'continue', got {cfg.divergence!r}")
    if cfg.optimizer not in _OPTIMIZERS:
        raise UserError(f"config key 'optimizer': unknown optimizer {_suggest(cfg.optimizer, _OPTIMIZERS)}")
    if cfg.precision not in PRECISIONS:
        raise UserError(f"config key 'precision': unknown precision {_suggest(cfg.precision, PRECISIONS)}")
    if cfg.activation not in ACTIVATIONS:
        raise UserError(f"config key 'activation': unknown activation {_suggest(cfg.activation, ACTIVATIONS[1:])}")
    if cfg.init not in INITS:
        raise UserError(f"config key 'init': unknown initialisation {_suggest(cfg.init, INITS)}")
    if cfg.update not in UPDATES:
        raise UserError(f"config key 'update': unknown update {_suggest(cfg.update, UPDATES)}")
    if cfg.init == "default" and cfg.init_gain != 1.0:
        raise UserError(f"config key 'init_gain' ({cfg.init_gain}) is read by init 'orthogonal' or 'normal', not 'default'")
    if cfg.maxout == 1 or cfg.maxout < 0:
        raise UserError(f"config key 'maxout' must be 0 (off) or at least 2 pieces, got {cfg.maxout!r}")
    if cfg.eval_bn_batch == 1:
        raise UserError("config key 'eval_bn_batch' must be 0 (population statistics) or at least 2 latents per "
                        "batch, got 1: batch norm over one sample has no statistics")
    if cfg.bn_refresh and cfg.eval_bn_batch:
        raise UserError(f"config keys 'bn_refresh' ({cfg.bn_refresh}) and 'eval_bn_batch' ({cfg.eval_bn_batch}): "
                        f"the population statistics bn_refresh renews are not used when G is evaluated with batch "
                        f"statistics; set one of them to 0")
    if cfg.batch_size % cfg.pack:
        raise UserError(f"config key 'batch_size' ({cfg.batch_size}) must be a multiple of pack ({cfg.pack})")
    for key in ("model", "loss", "dataset"):
        if not getattr(cfg, key):
            raise UserError(f"config key {key!r} must not be empty")


def _parse_text(name: str, hint, text: str):
    """Parse one ``--set`` value by the field's type."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        items = [t.strip() for t in text.strip("()[] ").split(",") if t.strip()]
        args = typing.get_args(hint)
        item_hint = args[0]
        return tuple(_parse_text(name, item_hint, t) for t in items)
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise UserError(f"--set {name}: expected true or false, got {text!r}")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise UserError(f"--set {name}: expected {hint.__name__}, got {text!r}") from None
    return text


def parse_overrides(pairs: list[str]) -> dict:
    """``["steps=500", "betas=0.0,0.9"]`` -> typed dict; unknown keys are errors."""
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {pair!r}")
        if key not in _HINTS:
            raise UserError(f"--set: unknown config key {_suggest(key, _HINTS)}")
        out[key] = _parse_text(key, _HINTS[key], text)
    return out


# ----------------------------------------------------------------------------------------------
# Suites: TOML files of settings x seeds


@dataclass(frozen=True)
class Suite:
    """A named list of settings, each run once per seed."""

    name: str
    description: str
    seeds: tuple[int, ...]
    settings: tuple[tuple[str, RunConfig], ...]  # (label, config with seed 0)
    path: str = ""
    citation: str = ""  # the paper whose protocol a ``paper-...`` suite follows
    protocol: tuple[tuple[str, str], ...] = ()  # (aspect, the paper's choice) for details no config field holds
    deviations: tuple[str, ...] = ()  # where ganbench's runs differ from the published protocol
    published: tuple = ()  # ``papers.Published`` rows: the paper's numbers for settings of this suite

    def runs(self) -> list[tuple[str, RunConfig]]:
        """Every (label, config) pair, settings in file order, seeds innermost."""
        return [(label, cfg.replace(seed=s)) for label, cfg in self.settings for s in self.seeds]


_SUITE_KEYS = {"name", "description", "seeds", "defaults", "matrix", "settings",
               "citation", "protocol", "deviations", "published"}
_SETTING_EXTRA = {"label"}


def default_label(values: dict) -> str:
    label = f"{values.get('model', RunConfig.model)}/{values.get('loss', RunConfig.loss)}"
    return label + "+sn" if values.get("spectral_norm") else label


def suite_path(name_or_file: str) -> Path:
    """A suite file path, or the name of a suite in ``baselines/``."""
    p = Path(name_or_file)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise UserError(f"suite file not found: {p}")
        return p
    known = available_suites()
    if name_or_file not in known:
        raise UserError(f"unknown suite {_suggest(name_or_file, known)}")
    return known[name_or_file]


def available_suites() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in SUITE_DIRS:
        for p in sorted(d.glob("*.toml")) if d.is_dir() else ():
            found.setdefault(p.stem, p)
    return found


def load_suite(name_or_file: str, overrides: dict | None = None, seeds: list[int] | None = None) -> Suite:
    path = suite_path(name_or_file)
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
    return suite_from_dict(doc, str(path), overrides or {}, seeds)


def suite_from_dict(doc: dict, where: str, overrides: dict, seeds: list[int] | None = None) -> Suite:
    unknown = sorted(set(doc) - _SUITE_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown suite key {_suggest(unknown[0], _SUITE_KEYS)}")
    defaults = dict(doc.get("defaults", {}))
    matrix = dict(doc.get("matrix", {}))
    for key, values in matrix.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: matrix key {key!r} must be a non-empty list")
    if not doc.get("settings") and not matrix:  # not one silent run of the default config
        raise UserError(f"{where}: the suite has no settings: add [[settings]] tables (or a [matrix] to expand [defaults])")
    entries = doc.get("settings") or [{}]
    seeds = list(seeds) if seeds is not None else list(doc.get("seeds", [0]))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise UserError(f"{where}: seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{where}: repeated seed in {seeds!r}")
    settings: list[tuple[str, RunConfig]] = []
    entries_of: list[int] = []  # the entry each setting came from
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UserError(f"{where}: settings[{i}] must be a table")
        entry = dict(entry)
        label = entry.pop("label", None)
        free = {k: v for k, v in matrix.items() if k not in entry}
        for combo in itertools.product(*free.values()):
            mine = {**defaults, **dict(zip(free, combo)), **entry}  # the file's values
            mine.pop("seed", None)
            values = {**mine, **overrides}
            values.pop("seed", None)
            place = f"settings[{i}]" if doc.get("settings") else "matrix"
            if free:
                place += " (" + ", ".join(f"{k} = {v!r}" for k, v in zip(free, combo)) + ")"
            try:
                cfg = RunConfig.from_dict(values, where=f"{where}: {place}")
            except UserError as e:  # a bad value: say which setting, and --set when it is to blame
                if str(e).startswith(where) or where == "command line":  # one setting: --set is all there is
                    raise
                if overrides and _valid(mine):
                    place += f" with --set {', '.join(sorted(overrides))}"
                raise UserError(f"{where}: {place}: {e}") from None
            name = label or default_label(values)
            settings.append((name, cfg))
            entries_of.append(i)
    ids = [cfg.run_id for _, cfg in settings]
    if len(set(ids)) != len(ids):
        raise UserError(f"{where}: two settings give the same config")
    entry_of: dict[tuple[str, str], int] = {}  # (label, dataset) -> the [[settings]] entry it came from
    for i, (label, cfg) in zip(entries_of, settings):
        j = entry_of.setdefault((label, cfg.dataset), i)
        if j != i:  # (one entry that a matrix sweeps over more than the dataset repeats its label: allowed)
            raise UserError(f"{where}: settings[{j}] and settings[{i}] are both labelled {label!r} on "
                            f"{cfg.dataset!r}; give each its own label")
    protocol = doc.get("protocol", {})
    deviations = doc.get("deviations", [])
    if not isinstance(protocol, dict) or not all(isinstance(v, str) for v in protocol.values()):
        raise UserError(f"{where}: protocol must be a table of aspect = \"text\"")
    if not isinstance(deviations, list) or not all(isinstance(v, str) for v in deviations):
        raise UserError(f"{where}: deviations must be a list of strings")
    published = parse_published(doc.get("published", []), where)
    labels = {(label, cfg.dataset) for label, cfg in settings}
    for i, pub in enumerate(published):
        if (pub.setting, pub.dataset) not in labels:
            raise UserError(f"{where}: published[{i}] names setting {pub.setting!r} on {pub.dataset!r}, "
                            "which the suite does not run")
    return Suite(
        name=str(doc.get("name", Path(where).stem)),
        description=str(doc.get("description", "")),
        seeds=tuple(seeds),
        settings=tuple(settings),
        path=where,
        citation=str(doc.get("citation", "")),
        protocol=tuple((str(k), v) for k, v in protocol.items()),
        deviations=tuple(deviations),
        published=published,
    )


def _valid(values: dict) -> bool:
    try:
        RunConfig.from_dict(values)
    except UserError:
        return False
    return True


def select_settings(suite: Suite, labels: list[str] | None) -> Suite:
    """``suite`` with only the settings of these labels (all without), so a long suite runs in parts."""
    if not labels:
        return suite
    known = list(dict.fromkeys(label for label, _ in suite.settings))
    for label in labels:
        if label not in known:
            raise UserError(f"--setting: suite {suite.name!r} has no setting {_suggest(label, known)}")
    return dataclasses.replace(suite, settings=tuple((lab, c) for lab, c in suite.settings if lab in labels))


def single_setting_suite(values: dict, seeds: list[int]) -> Suite:
    """The suite behind ``ganbench run --model M --loss L --dataset D --seeds ...``."""
    return suite_from_dict({"name": "adhoc", "settings": [values]}, "command line", {}, seeds)


def config_diff(old: dict, new: dict) -> list[str]:
    """Per-key differences between two config dicts, for refusing a mismatched resume."""
    old, new = {**ADDED, **old}, {**ADDED, **new}  # a config saved before a field existed had its default
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]

