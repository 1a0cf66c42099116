"""Samples from anywhere: generator checkpoints, TorchScript files, Python callables, image folders
and ``.npz`` arrays, all checked and brought to the form the metrics expect.

Images become float32 (N, C, H, W) in [-1, 1] (uint8 x -> x / 127.5 - 1, never min-max rescaled);
2-D points stay float32 (N, 2).
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganbench.config import RunConfig, default_label
from ganbench.data import DATASETS
from ganbench.data.checks import to_model_range
from ganbench.errors import UserError
from ganbench.evaluate import (
    generate,
    generated_labels,
    needs_labels,
    preflight,
    require_labels,
    resolve_metrics,
    samples_needed,
    translate,
)
from ganbench.features.labelled import check_labels
from ganbench.features.translation import Translations
from ganbench.io import atomic_write_bytes
from ganbench.metrics import METRICS
from ganbench.models import MODELS, is_conditional, is_translator
from ganbench.plugins import load_plugin
from ganbench.seeding import seeded_init

CHECKPOINT_FORMAT = "ganbench-generator"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# the config fields `ganbench eval --set` takes: those that shape the reference data or the evaluation
# (beside them, the fields a registered metric declares in its ``config``), and the training seed
# the rows record (their ``seed``, which tables count); other training fields would only mislabel
# the row, or change the architecture a checkpoint's weights are loaded into
EVAL_FIELDS = ("resolution", "channels", "data_path", "eval_seed", "eval_samples", "eval_bn_batch", "metrics", "seed")
_ELSEWHERE = {"dataset": "give it with --dataset",
              "z_dim": "give it with --z-dim (TorchScript files and callables; a checkpoint has its own)"}


def _npz_error(e: Exception) -> str:
    """What is wrong with a damaged .npz, from what reading it raised: a truncated file is no zip
    (BadZipFile), a torn member fails to inflate (zlib) or ends early (EOFError), a damaged array
    header fails to parse (ValueError, SyntaxError, tokenize's TokenError)."""
    return "damaged compressed data" if isinstance(e, zlib.error) else type(e).__name__


def eval_fields() -> tuple[str, ...]:
    """``EVAL_FIELDS`` and the config fields registered metrics depend on, sorted."""
    return tuple(sorted({*EVAL_FIELDS, *(k for m in METRICS.values() for k in m.config)}))


def check_eval_overrides(values: dict) -> None:
    """A one-line UserError for a ``--set`` field that ``ganbench eval`` does not use."""
    allowed = eval_fields()
    for key, value in values.items():
        if key in _ELSEWHERE:
            raise UserError(f"--set {key}: {_ELSEWHERE[key]}")
        if key == "bn_refresh" and value == 0:
            continue  # the config check's own advice, to evaluate a bn_refresh checkpoint with eval_bn_batch
        if key not in allowed:
            raise UserError(f"--set {key}: ganbench eval does not use it; it takes the fields that shape the data "
                            f"or the evaluation, and the training seed to record ({', '.join(allowed)})")


def save_generator(path: Path, g: nn.Module, cfg: RunConfig, step: int) -> None:
    """Final generator weights with the config that rebuilds them (loads with weights_only=True)."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "config": cfg.to_dict(), "step": step,
                "state_dict": {k: v.detach().cpu() for k, v in g.state_dict().items()}}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_generator(path: Path, overrides: dict | None = None) -> tuple[nn.Module, RunConfig, int]:
    """A ganbench generator checkpoint -> (generator in eval mode, its config with ``overrides``, step)."""
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a ganbench generator checkpoint")
    cfg = RunConfig.from_dict({**ckpt["config"], **(overrides or {})}, where=str(path))
    with seeded_init(cfg.seed, torch.device("cpu")):  # the weights are replaced; keep global state alone
        g, _ = MODELS[cfg.model](cfg, DATASETS[cfg.dataset](cfg))
    try:
        g.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not fit model {cfg.model!r}: {str(e).splitlines()[0]}") from None
    return g.eval(), cfg, int(ckpt["step"])


def _torch_load(path: Path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: unreadable or corrupt checkpoint ({type(e).__name__})") from None


def load_torchscript(path: Path) -> nn.Module:
    import warnings

    try:
        with warnings.catch_warnings():  # TorchScript is deprecated upstream but still what many users export
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:
        raise UserError(f"{path}: not a TorchScript file ({type(e).__name__})") from None


def is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files holding a ``code/`` folder; plain checkpoints do not."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_npz(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """Samples from an ``.npz`` file: the array named ``samples``, or its only array."""
    return load_npz_labelled(path, shape)[0]


def load_npz_labelled(path: Path, shape: tuple[int, ...]) -> tuple[torch.Tensor, np.ndarray | None]:
    """(samples, the ``labels`` array or None) from an ``.npz`` file: the array named ``samples`` (or
    its only array, or its only array beside ``labels``)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
            if not keys:
                raise UserError(f"{path}: holds no arrays")
            rest = [k for k in keys if k != "labels"]
            key = "samples" if "samples" in keys else rest[0] if len(rest) == 1 else None
            if key is None:
                raise UserError(f"{path}: holds arrays {keys}; name the samples array 'samples'")
            arr = f[key]
            labels = f["labels"] if "labels" in keys else None
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except Exception as e:  # noqa: BLE001 - a user's file: whatever its damage trips in numpy or zipfile
        raise UserError(f"{path}: not a readable .npz file ({_npz_error(e)})") from None
    return to_model_range(arr, shape, str(path)), labels


def _image_files(path: Path) -> list[Path]:
    return sorted(p for p in Path(path).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def folder_labels(path: Path, dataset) -> tuple[torch.Tensor | None, str]:
    """Labels of the images ``load_image_folder`` reads (same order) from a folder with one subfolder
    per class, named by class index (0, 1, ...) or by the dataset's class name -> (labels, "") or
    (None, why the folder is not class-labelled). A class without a subfolder is a UserError."""
    k = dataset.num_classes
    if not k:
        return None, f"dataset {dataset.name!r} has no classes"
    names = {str(c): c for c in range(k)} | {name: c for c, name in enumerate(getattr(dataset, "classes", ()) or ())}
    labels = []
    for f in _image_files(path):
        parts = f.relative_to(path).parts
        if len(parts) != 2 or parts[0] not in names:
            where = ("is not in a class subfolder" if len(parts) == 1
                     else f"is in {'/'.join(parts[:-1])!r}, not a class subfolder")
            return None, f"folder {path} is not one subfolder per class: {'/'.join(parts)} {where} (named 0..{k - 1})"
        labels.append(names[parts[0]])
    y = torch.tensor(labels, dtype=torch.long)
    missing = sorted(set(range(k)) - set(labels))
    if missing:
        raise UserError(f"{path}: no images for class {missing[0]} (subfolder '{missing[0]}')"
                        + (f" nor {len(missing) - 1} other classes" if len(missing) > 1 else "")
                        + f"; the classification metrics need one subfolder per class, 0..{k - 1}")
    return y, ""


def load_image_folder(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """Every image under a folder (recursively, sorted by path), converted to the dataset's channels;
    images must already have the dataset's resolution (no silent resizing of generated samples)."""
    from PIL import Image

    files = _image_files(path)
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {path}")
    mode = "L" if shape[0] == 1 else "RGB"
    arrays = []
    for f in files:
        try:
            with Image.open(f) as im:
                a = np.asarray(im.convert(mode))
        except OSError as e:
            raise UserError(f"{f}: unreadable image ({type(e).__name__})") from None
        if a.shape[:2] != shape[1:]:
            raise UserError(f"{f}: image is {a.shape[1]}x{a.shape[0]}, expected {shape[2]}x{shape[1]}")
        arrays.append(a.reshape(shape[1], shape[2], -1))
    return to_model_range(np.stack(arrays), shape, str(path))


def _sha256(path: Path) -> str:
    """Content hash of a file, or of a folder's files with their relative paths (which order the
    images and, in class subfolders, carry their labels)."""
    import hashlib

    h = hashlib.sha256()
    path = Path(path)
    if not path.is_dir():
        h.update(path.read_bytes())
        return h.hexdigest()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        data = f.read_bytes()
        h.update(f"{f.relative_to(path).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def load_callable(spec: str):
    """``FILE.py:NAME`` or ``module:NAME`` -> the object."""
    target, _, name = spec.rpartition(":")
    module = load_plugin(target)
    if not hasattr(module, name):
        raise UserError(f"{target} has no attribute {name!r}")
    obj = getattr(module, name)
    if not callable(obj):
        raise UserError(f"{spec}: {name} is not callable ({type(obj).__name__}); name an nn.Module, a class or a function")
    return obj


def load_source(values: dict, device: torch.device, generator: str | None, samples: str | None,
                z_dim: int | None) -> tuple[torch.Tensor, RunConfig, str, dict, int, torch.Tensor | None]:
    """What ``ganbench eval`` evaluates -> (samples, config, label, source provenance, step, labels).

    ``labels`` are the samples' classes where the source has them (a class-conditional generator,
    an ``.npz`` with a ``labels`` array, a folder with one subfolder per class), else None; metrics
    that need them fail here, before anything is computed, when there are none.

    ``values`` are the config fields the user gave (dataset, metrics, --set); a ganbench checkpoint
    supplies the rest from its own config, anything else is recorded as model "external".
    """
    step, g = 0, None
    if z_dim is not None and samples is not None:
        raise UserError(f"--z-dim is for TorchScript files and callables; --samples {samples} holds samples already made")
    if z_dim is not None and z_dim < 1:
        raise UserError(f"--z-dim must be >= 1, got {z_dim}")
    if samples is None and Path(generator).suffix in (".pt", ".pth", ".ckpt") and not is_torchscript(Path(generator)):
        fields = {k: v for k, v in values.items() if k not in ("model", "loss", "seed")}
        g, cfg, step = load_generator(Path(generator), fields)
        if values.get("seed", cfg.seed) != cfg.seed:
            raise UserError(f"--set seed={values['seed']}: checkpoint {generator} was trained with seed {cfg.seed} "
                            f"(a checkpoint needs no seed)")
        kind = "checkpoint"
    else:
        cfg = RunConfig.from_dict({"model": "external", "loss": "none", **values}, where="command line")
    dataset = DATASETS[cfg.dataset](cfg)
    shape = tuple(dataset.shape)
    metrics = resolve_metrics(cfg.metrics, dataset)
    preflight(metrics, dataset, cfg)  # each metric reads this dataset's kind of samples, its weights exist
    if getattr(dataset, "translation", False):
        if z_dim is not None:
            raise UserError(f"--z-dim: dataset {cfg.dataset!r} translates images; a translator takes no latent")
        return _translations(values, cfg, dataset, device, g, generator, samples, step)
    if g is not None:  # a checkpoint
        if z_dim is not None and z_dim != cfg.z_dim:
            raise UserError(f"--z-dim {z_dim}: checkpoint {generator} has z_dim {cfg.z_dim} (a checkpoint needs no --z-dim)")
        z_dim = cfg.z_dim

    labelled = bool(needs_labels(metrics))
    if samples is not None and cfg.eval_bn_batch:
        raise UserError(f"eval_bn_batch = {cfg.eval_bn_batch} sets how a generator samples; {samples} holds samples "
                        f"already made")
    if samples is not None:
        path = Path(samples)
        if path.is_dir():
            x, kind = load_image_folder(path, shape), "folder"
            y, why = folder_labels(path, dataset) if labelled else (None, "")
        elif path.suffix == ".npz":
            (x, y), kind = load_npz_labelled(path, shape), "npz"
            why = f"{path} has no 'labels' array"
            y = None if y is None or not labelled else check_labels(y, len(x), dataset.num_classes, f"{path} labels")
        elif not path.exists():
            raise UserError(f"not found: {path}")
        else:
            raise UserError(f"{path}: samples must be a folder of images or an .npz file")
        require_labels(metrics, y, why)
        return x, cfg, path.stem or path.name, {"kind": kind, "path": str(path), "sha256": _sha256(path)}, 0, y

    target = generator.rpartition(":")[0] if ":" in generator and not Path(generator).exists() else generator
    if g is None and Path(generator).suffix in (".pt", ".pth", ".ckpt", ".ts", ".jit"):
        g, kind = load_torchscript(Path(generator)), "torchscript"
    elif g is None and ":" in generator:
        g, kind = load_callable(generator), "callable"
    elif g is None:
        raise UserError(f"--generator {generator!r}: expected a .pt checkpoint, a TorchScript file or FILE.py:NAME")
    if z_dim is None:
        raise UserError("--z-dim is required for TorchScript files and callables")
    if isinstance(g, nn.Module):
        g = g.to(device)
    conditional = is_conditional(g)
    require_labels(metrics, True if conditional else None,
                   f"generator {generator} is not class-conditional (a conditional one has `conditional = True` "
                   f"and is called as g(z, labels))")
    sha = _sha256(Path(target)) if Path(target).is_file() else ""
    n = samples_needed(metrics, dataset, cfg)
    x = generate(g, n, z_dim, cfg.eval_seed, device, num_classes=dataset.num_classes, bn_batch=cfg.eval_bn_batch)
    y = generated_labels(n, dataset.num_classes) if conditional else None
    label = {"callable": generator.rpartition(":")[2], "checkpoint": default_label(cfg.to_dict())}.get(kind, Path(target).stem)
    source = {"kind": kind, "path": generator, "sha256": sha, "z_dim": z_dim}
    return to_model_range(x, shape, f"generator {generator}"), cfg, label, source, step, y



def _translator_pair(obj, spec: str) -> tuple:
    """(A -> B, B -> A or None) from a translator pair, a pair of callables or one callable."""
    if is_translator(obj):
        return obj.ab, obj.ba
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(callable(t) for t in obj):
        return obj[0], obj[1]
    if callable(obj):
        return obj, None
    raise UserError(f"--generator {spec}: expected a translator (a callable from images to images) or a pair "
                    f"(A -> B, B -> A), got {type(obj).__name__}")


def _stored_translations(path: Path, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(A -> B translations, B -> A translations or None, kind) from a folder or an ``.npz`` file
    (arrays ``ab`` and ``ba``, or one array of A -> B translations)."""
    if path.is_dir():
        return load_image_folder(path, shape), None, "folder"
    if not path.exists():
        raise UserError(f"not found: {path}")
    if path.suffix != ".npz":
        raise UserError(f"{path}: translations must be a folder of images or an .npz file")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.keys())
            if "ab" in keys:
                ab, ba = f["ab"], f["ba"] if "ba" in keys else None
            elif "ba" in keys or (len(keys) != 1 and "samples" not in keys):  # else 'samples' or one array: A -> B
                raise UserError(f"{path}: holds arrays {sorted(keys)}; name the A -> B translations 'ab' "
                                f"(and the B -> A ones 'ba')")
            else:
                ab, ba = None, None
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a user's file: whatever its damage trips in numpy or zipfile
        raise UserError(f"{path}: not a readable .npz file ({_npz_error(e)})") from None
    if ab is None:
        return load_npz(path, shape), None, "npz"
    return (to_model_range(ab, shape, f"{path} (ab)"),
            None if ba is None else to_model_range(ba, shape, f"{path} (ba)"), "npz")


def _translations(values: dict, cfg: RunConfig, dataset, device: torch.device, g, generator: str | None,
                  samples: str | None, step: int) -> tuple[Translations, RunConfig, str, dict, int, None]:
    """``load_source`` on a translation dataset: a translator pair (checkpoint, TorchScript, callable)
    run on the test split, or translations stored in the order of the test split."""
    if samples is not None:
        path = Path(samples)
        ab, ba, kind = _stored_translations(path, tuple(dataset.shape))
        for name, x, inputs in (("A -> B", ab, dataset.test_a), ("B -> A", ba, dataset.test_b)):
            if x is not None and len(x) != len(inputs):
                raise UserError(f"{path}: holds {len(x)} {name} translations; the test split of dataset "
                                f"{cfg.dataset!r} has {len(inputs)} images (translations go in its order)")
        t = Translations(ab=ab, ba=ba)
        label, source = path.stem or path.name, {"kind": kind, "path": str(path), "sha256": _sha256(path)}
    else:
        target = generator.rpartition(":")[0] if ":" in generator and not Path(generator).exists() else generator
        kind = "checkpoint" if g is not None else None
        if g is None and Path(generator).suffix in (".pt", ".pth", ".ckpt", ".ts", ".jit"):
            g, kind = load_torchscript(Path(generator)), "torchscript"
        elif g is None and ":" in generator:
            obj = load_callable(generator)
            g, kind = (obj if isinstance(obj, nn.Module) else obj()), "callable"
        elif g is None:
            raise UserError(f"--generator {generator!r}: expected a .pt checkpoint, a TorchScript file or FILE.py:NAME")
        ab, ba = _translator_pair(g, generator)
        for net in (ab, ba):
            if isinstance(net, nn.Module):
                net.to(device).eval()
        t = translate(ab, ba, dataset, cfg.eval_seed, device, where=f"translator {generator}")
        label = {"callable": generator.rpartition(":")[2], "checkpoint": default_label(cfg.to_dict())}.get(
            kind, Path(target).stem)
        source = {"kind": kind, "path": generator, "sha256": _sha256(Path(target)) if Path(target).is_file() else ""}
    if "metrics" not in values:  # the dataset's metrics that these translations can give
        names = [m for m in dataset.default_metrics
                 if (t.ba is not None or not m.endswith(("_ba", "_ba_ci")))
                 and (t.cycle_a is not None or not m.startswith(("cycle_", "stego_")))]
        if not names:
            raise UserError(f"no metric of dataset {cfg.dataset!r} applies to translations of one direction only "
                            f"(its metrics: {', '.join(dataset.default_metrics)}); give the translator pair")
        cfg = cfg.replace(metrics=tuple(names))
    return t, cfg, label, source, step, None
