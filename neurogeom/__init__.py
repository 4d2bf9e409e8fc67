"""neurogeom: neural population geometry on labeled xarray data.

Analyses take assemblies (``xarray.DataArray`` with ``presentation``/``time`` and ``neuroid``
dims; see :mod:`neurogeom.assembly`) and return ``xarray.Dataset`` results whose attrs record the
analysis, the parameters that produced them, the inputs' provenance, the neurogeom version and
the papers the method comes from (:mod:`neurogeom._results`). Options are keyword-only. Loaders
for NWB files, model activations and saved features live in the separate ``loaders`` package.
"""

from typing import TYPE_CHECKING

from ._version import __version__
from . import assembly, io
from .assembly import align, average_repetitions, manifolds, validate
from .capacity import (correlated_capacity, effective_geometry, manifold_capacity,
                       simulated_capacity)
from .errors import (AlignmentError, AnalysisError, AssemblyError, LoaderError,
                     NeurogeomError)
from . import latent, regression, report  # report loads matplotlib only when drawing
from .latent import eigenspectrum
from .latent import eigenspectrum as spectrum  # the module's earlier name
from .latent import ReducedRankRegression, latent_dimensionality
from .regression import (LinearRegression, PLSRegression, RidgeRegression, neural_predictivity,
                         noise_ceiling)
from .latent.eigenspectrum import cvpca, participation_ratio, power_law_exponent, svca
from .regression.spectral import spectral_decomposition
from .parallel import map_recordings
from .alignment import compare_geometry, decoding_accuracy, layer_profile, manifold_alignment

if TYPE_CHECKING:  # imported lazily by __getattr__ below
    from . import models
    from .latent.nce import NeuralCrossEncoder

__all__ = [
    "__version__", "assembly", "io", "align", "average_repetitions", "manifolds", "validate",
    "NeurogeomError", "AssemblyError", "AlignmentError", "LoaderError", "AnalysisError",
    "manifold_capacity", "correlated_capacity", "effective_geometry", "simulated_capacity",
    "regression", "RidgeRegression", "PLSRegression", "LinearRegression", "neural_predictivity",
    "noise_ceiling", "spectral_decomposition",
    "latent", "eigenspectrum", "spectrum", "NeuralCrossEncoder", "ReducedRankRegression", "latent_dimensionality",
    "cvpca", "participation_ratio", "power_law_exponent", "svca", "map_recordings",
    "manifold_alignment", "decoding_accuracy", "compare_geometry", "layer_profile", "models",
    "report",
]


def __getattr__(name):
    # the torch-backed NCE and models are imported on first use: `import neurogeom` must not pay for torch
    if name == "NeuralCrossEncoder":
        from .latent.nce import NeuralCrossEncoder
        return NeuralCrossEncoder
    if name == "models":   # torch-side geometry (MMCR, adversarial/stochastic manifolds)
        import importlib

        return importlib.import_module(".models", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
