"""Synthetic data with known structure for the demo, tests and benchmarks (no downloads).

Submodules: :mod:`.assemblies` (in-memory assemblies with object manifolds of controlled radius
and dimension), :mod:`.features` (random model-layer activations for an assembly's stimuli).
"""

from .assemblies import object_manifolds
from .features import random_features

__all__ = ["object_manifolds", "random_features"]
