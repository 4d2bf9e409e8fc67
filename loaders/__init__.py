"""loaders: read recordings, model activations and saved features into neurogeom assemblies.

Everything that touches an outside format lives here; the ``neurogeom`` analyses only see
assemblies (see :mod:`neurogeom.assembly`).
"""

from . import synthetic
from .activations import RandomProjection, fit_pca, layer_names, model_activations
from .files import from_brainscore, read_features, to_brainscore, write_features

__all__ = ["synthetic", "model_activations", "RandomProjection", "fit_pca", "layer_names",
           "read_features", "write_features", "from_brainscore", "to_brainscore"]
