"""loaders: read recordings, model activations and saved features into neurogeom assemblies.

Everything that touches an outside format lives here; the ``neurogeom`` analyses only see
assemblies (see :mod:`neurogeom.assembly`).
"""

from typing import TYPE_CHECKING

from . import synthetic
from ._lazy import lazy_attributes
from ._urls import redact_url
from .files import from_brainscore, read_features, to_brainscore, write_features
from .specs import RecordingLoader, from_spec
from .nwb import binned_activity, calcium_responses, nwb_summary, open_nwb, spike_responses

# torch-backed names load on first use, so `import loaders` (and the CLI) stays torch-free
_LAZY = {"model_activations": "activations", "RandomProjection": "activations",
         "fit_pca": "activations", "layer_names": "activations"}
__getattr__ = lazy_attributes(__name__, _LAZY, globals())
if TYPE_CHECKING:  # what the lazy names are, for readers, linters and type checkers
    from .activations import RandomProjection, fit_pca, layer_names, model_activations

__all__ = ["synthetic", "open_nwb", "spike_responses", "calcium_responses", "binned_activity",
           "nwb_summary", "model_activations", "RandomProjection", "fit_pca", "layer_names",
           "read_features", "write_features", "from_brainscore", "to_brainscore", "redact_url",
           "from_spec", "RecordingLoader"]
