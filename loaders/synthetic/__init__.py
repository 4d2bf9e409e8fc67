"""Synthetic data with known structure for the demo, tests and benchmarks (no downloads).

Submodules: :mod:`.assemblies` (in-memory assemblies with object manifolds of controlled radius
and dimension), :mod:`.models` (small torch models and digit image sets with controlled identity
and translation).
"""

from .assemblies import object_manifolds
from .models import digits_convnet, translated_digits, untrained_convnet

__all__ = ["object_manifolds", "untrained_convnet", "digits_convnet", "translated_digits"]
