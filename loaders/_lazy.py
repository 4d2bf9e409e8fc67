"""Module-level ``__getattr__`` factory: names whose modules import torch load on first use."""

from __future__ import annotations

from importlib import import_module


def lazy_attributes(package: str, names: dict[str, str], namespace: dict):
    """Return a ``__getattr__`` for ``package`` that imports ``names[attr]`` (a submodule) lazily.

    The loaded value is cached in ``namespace`` (the package's globals), so each name is
    resolved once. Keeps ``import loaders`` (and so the CLI) free of torch.
    """
    def __getattr__(name):
        if name in names:
            value = getattr(import_module(f".{names[name]}", package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
