"""Synthetic data with known structure for the demo, tests and benchmarks (no downloads).

Submodules: :mod:`.assemblies` (in-memory assemblies with object manifolds of controlled radius
and dimension), :mod:`.nwb` (realistic NWB recordings in the macaque RSVP, Allen Neuropixels and
mouse two-photon layouts), :mod:`.features` (random model-layer activations for an assembly's
stimuli), :mod:`.models` (small torch models and digit image sets with controlled identity and
translation), :mod:`.latents` (activity driven by known low-dimensional latents).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from .assemblies import object_manifolds
from .features import random_features
from .latents import (power_law_responses, random_feature_latents, ring_model, solvable_rnn,
                      with_repetitions)
from .nwb import (Truth, to_zarr, write_allen_neuropixels, write_head_direction,
                  write_macaque_rsvp, write_mouse_2p)

# torch models load on first use, so importing loaders does not import torch
_LAZY = {"untrained_convnet": "models", "digits_convnet": "models",
         "translated_digits": "models"}
__getattr__ = lazy_attributes(__name__, _LAZY, globals())
if TYPE_CHECKING:  # what the lazy names are, for readers, linters and type checkers
    from .models import digits_convnet, translated_digits, untrained_convnet

__all__ = ["object_manifolds", "random_features", "Truth", "to_zarr", "write_macaque_rsvp",
           "write_allen_neuropixels", "write_mouse_2p", "write_head_direction", "untrained_convnet", "digits_convnet",
           "translated_digits", "ring_model", "random_feature_latents", "solvable_rnn",
           "power_law_responses", "with_repetitions"]
