"""Synthetic data with known structure for the demo, tests and benchmarks (no downloads).

Submodules: :mod:`.assemblies` (in-memory assemblies with object manifolds of controlled radius
and dimension), :mod:`.nwb` (realistic NWB recordings in the macaque RSVP, Allen Neuropixels and
mouse two-photon layouts), :mod:`.features` (random model-layer activations for an assembly's
stimuli).
"""

from .assemblies import object_manifolds
from .features import random_features
from .nwb import Truth, write_allen_neuropixels, write_macaque_rsvp, write_mouse_2p

__all__ = ["object_manifolds", "random_features", "Truth", "write_macaque_rsvp",
           "write_allen_neuropixels", "write_mouse_2p"]
