"""Synthetic data with known structure for the demo, tests and benchmarks (no downloads).

Submodules: :mod:`.assemblies` (in-memory assemblies with object manifolds of controlled radius
and dimension), :mod:`.models` (small torch models and digit image sets with controlled identity
and translation).
"""

from .assemblies import object_manifolds

# torch models load on first use, so importing loaders does not import torch
_LAZY = {"untrained_convnet": "models", "digits_convnet": "models",
         "translated_digits": "models"}

__all__ = ["object_manifolds", "untrained_convnet", "digits_convnet", "translated_digits"]


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
