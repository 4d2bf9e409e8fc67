"""neurogeom: neural population geometry on labeled xarray data.

Analyses take assemblies (``xarray.DataArray`` with ``presentation``/``time`` and ``neuroid``
dims; see :mod:`neurogeom.assembly`) and return ``xarray.Dataset`` results whose attrs record the
parameters that produced them. Loaders for NWB files, model activations and saved features live
in the separate ``loaders`` package.
"""

from ._version import __version__
from . import assembly
from .assembly import align, average_repetitions, manifolds, validate
from .errors import (AlignmentError, AnalysisError, AssemblyError, LoaderError,
                     NeurogeomError)
from . import latent, spectrum
from .latent import ReducedRankRegression, latent_dimensionality
from .spectrum import cvpca, participation_ratio, power_law_exponent, svca

__all__ = [
    "__version__", "assembly", "align", "average_repetitions", "manifolds", "validate",
    "NeurogeomError", "AssemblyError", "AlignmentError", "LoaderError", "AnalysisError",
    "latent", "spectrum", "NeuralCrossEncoder", "ReducedRankRegression", "latent_dimensionality",
    "cvpca", "participation_ratio", "power_law_exponent", "svca",
]


def __getattr__(name):
    # the torch-backed NCE is imported on first use: `import neurogeom` must not pay for torch
    if name == "NeuralCrossEncoder":
        from .latent.nce import NeuralCrossEncoder
        return NeuralCrossEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
