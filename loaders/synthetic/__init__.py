"""Synthetic data with known structure for the demo, tests and benchmarks (no downloads).

Submodules: :mod:`.assemblies` (in-memory assemblies with object manifolds of controlled radius
and dimension).
"""

from .assemblies import object_manifolds

__all__ = ["object_manifolds"]
