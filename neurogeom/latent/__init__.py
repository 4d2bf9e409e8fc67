"""Latent dimensionality: the Neural Cross-Encoder, ridge reduced-rank regression, the
R²-versus-d analysis that compares them, and eigenspectra of population activity (cvPCA, SVCA).

:class:`NeuralCrossEncoder` (torch) is imported on first use, so ``import neurogeom`` stays fast.
"""

from typing import TYPE_CHECKING

from . import eigenspectrum
from .dimensionality import latent_dimensionality, sample_sets
from .eigenspectrum import cvpca, participation_ratio, power_law_exponent, svca
from .rrr import ReducedRankRegression, r2_score
from .windows import crossed_pairs, time_window

if TYPE_CHECKING:  # imported lazily by __getattr__ below
    from .nce import NeuralCrossEncoder

__all__ = ["NeuralCrossEncoder", "ReducedRankRegression", "latent_dimensionality",
           "sample_sets", "time_window", "crossed_pairs", "r2_score", "eigenspectrum", "cvpca",
           "participation_ratio", "power_law_exponent", "svca"]


def __getattr__(name):
    if name == "NeuralCrossEncoder":
        from .nce import NeuralCrossEncoder
        return NeuralCrossEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
