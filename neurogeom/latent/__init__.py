"""Latent dimensionality: the Neural Cross-Encoder, ridge reduced-rank regression and the
R²-versus-d analysis that compares them (SCIENCE.md §8)."""

from .dimensionality import latent_dimensionality, sample_sets
from .nce import NeuralCrossEncoder, crossed_pairs, time_window
from .rrr import ReducedRankRegression, r2_score

__all__ = ["NeuralCrossEncoder", "ReducedRankRegression", "latent_dimensionality",
           "sample_sets", "time_window", "crossed_pairs", "r2_score"]
