"""loaders: read recordings, model activations and saved features into neurogeom assemblies.

Everything that touches an outside format lives here; the ``neurogeom`` analyses only see
assemblies (see :mod:`neurogeom.assembly`).
"""

from . import synthetic
from .nwb import binned_activity, calcium_responses, nwb_summary, open_nwb, spike_responses

__all__ = ["synthetic", "open_nwb", "spike_responses", "calcium_responses",
           "binned_activity", "nwb_summary"]
