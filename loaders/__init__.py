"""loaders: read recordings, model activations and saved features into neurogeom assemblies.

Everything that touches an outside format lives here; the ``neurogeom`` analyses only see
assemblies (see :mod:`neurogeom.assembly`).
"""

from . import synthetic
from .files import from_brainscore, read_features, to_brainscore, write_features

# torch-backed names load on first use, so `import loaders` (and the CLI) stays torch-free
_LAZY = {"model_activations": "activations", "RandomProjection": "activations",
         "fit_pca": "activations", "layer_names": "activations"}

__all__ = ["synthetic", "model_activations", "RandomProjection", "fit_pca", "layer_names",
           "read_features", "write_features", "from_brainscore", "to_brainscore"]


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
