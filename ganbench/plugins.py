"""Bringing your own code: plug-in files, modules and installed entry points.

A plug-in is ordinary Python that registers entries on import (``@MODELS.register("mine")``).
Its content hash goes into every result row, since changing it changes the results.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

from ganbench.errors import UserError, one_line

ENTRY_POINT_GROUPS = ("ganbench.models", "ganbench.datasets", "ganbench.losses", "ganbench.metrics", "ganbench.features",
                      "ganbench.steps", "ganbench.formats", "ganbench.tests")

_loaded: dict[str, str] = {}  # plug-in -> sha256 of its source ("" when unknown)


def load_plugin(spec: str):
    """Import a plug-in given as a ``.py`` file path or a module name; returns the module."""
    if spec in _loaded:
        return sys.modules[_module_name(spec)]
    path = Path(spec)
    try:
        if spec.endswith(".py") or path.exists():
            if not path.is_file():
                raise UserError(f"plug-in file not found: {spec}")
            name = _module_name(spec)
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            module = importlib.import_module(spec)
            source = getattr(module, "__file__", None)
            digest = hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else ""
    except UserError:
        raise
    except ModuleNotFoundError as e:
        raise UserError(f"plug-in {spec!r}: {one_line(e)}") from None
    except Exception as e:  # the plug-in's own error, reported on one line
        raise UserError(f"plug-in {spec!r} failed to import: {one_line(e)}") from None
    _loaded[spec] = digest
    return module


def _module_name(spec: str) -> str:
    if spec.endswith(".py") or Path(spec).exists():
        return "ganbench_plugin_" + hashlib.sha256(str(Path(spec).resolve()).encode()).hexdigest()[:12]
    return spec


def load_entry_points() -> None:
    """Import installed packages that register entries under the ``ganbench.*`` groups."""
    for group in ENTRY_POINT_GROUPS:
        for ep in entry_points(group=group):
            if ep.value in _loaded:
                continue
            try:
                ep.load()
            except Exception as e:
                raise UserError(f"entry point {ep.name!r} ({ep.value}) failed to load: {one_line(e)}") from None
            _loaded[ep.value] = ""


def loaded_plugins() -> dict[str, str]:
    """Plug-ins imported so far and the sha256 of their source, for provenance."""
    return dict(_loaded)
