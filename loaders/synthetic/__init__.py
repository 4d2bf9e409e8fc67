"""Synthetic data with known structure for the demo, tests and benchmarks (no downloads).

Submodules: :mod:`.assemblies` (in-memory assemblies with object manifolds of controlled radius
and dimension), :mod:`.latents` (activity driven by known low-dimensional latents).
"""

from .assemblies import object_manifolds
from .latents import (power_law_responses, random_feature_latents, ring_model, solvable_rnn,
                      with_repetitions)

__all__ = ["object_manifolds", "ring_model", "random_feature_latents", "solvable_rnn",
           "power_law_responses", "with_repetitions"]
