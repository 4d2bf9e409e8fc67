"""loaders: read recordings, model activations and saved features into neurogeom assemblies.

Everything that touches an outside format lives here; the ``neurogeom`` analyses only see
assemblies (see :mod:`neurogeom.assembly`).
"""

from . import synthetic
from .activations import RandomProjection, fit_pca, layer_names, model_activations

__all__ = ["synthetic", "model_activations", "RandomProjection", "fit_pca", "layer_names"]
