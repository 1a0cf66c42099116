"""Registries: a dict with a decorator. Duplicates and unknown names fail loudly."""

from __future__ import annotations

from ganbench.errors import UserError, suggest


class Registry(dict):
    """Name -> object. ``@REG.register("name")`` adds; ``REG["nmae"]`` fails with suggestions."""

    def __init__(self, kind: str, record: type | None = None):
        super().__init__()
        self.kind = kind
        self.record = record  # entries must be instances of it (None: any object, e.g. a factory function)

    def register(self, name: str, obj=None):
        """Use as ``register("name", obj)`` or as the decorator ``@register("name")``."""

        def add(o):
            if self.record is not None and not isinstance(o, self.record):
                raise TypeError(f"{self.kind} {name!r}: register a {self.record.__name__} record, not {type(o).__name__}")
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            super(Registry, self).__setitem__(name, o)
            return o

        return add if obj is None else add(obj)

    def __setitem__(self, name, obj):
        raise TypeError(f"use {self.kind} registry .register({name!r}, obj)")

    def __getitem__(self, name: str):
        try:
            return super().__getitem__(name)
        except KeyError:
            raise UserError(f"unknown {self.kind} {suggest(name, self)}") from None
