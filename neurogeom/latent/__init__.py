"""Latent dimensionality: the Neural Cross-Encoder, ridge reduced-rank regression and the
R²-versus-d analysis that compares them (SCIENCE.md §8).

:class:`NeuralCrossEncoder` (torch) is imported on first use, so ``import neurogeom`` stays fast.
"""

from .dimensionality import latent_dimensionality, sample_sets
from .rrr import ReducedRankRegression, r2_score
from .windows import crossed_pairs, time_window

__all__ = ["NeuralCrossEncoder", "ReducedRankRegression", "latent_dimensionality",
           "sample_sets", "time_window", "crossed_pairs", "r2_score"]


def __getattr__(name):
    if name == "NeuralCrossEncoder":
        from .nce import NeuralCrossEncoder
        return NeuralCrossEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
