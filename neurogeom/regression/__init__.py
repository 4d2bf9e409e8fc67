"""Cross-validated model-to-brain regression: estimators, splits, noise ceiling, predictivity."""

from .ceiling import noise_ceiling
from .linear import LinearRegression
from .pls import PLSRegression
from .predictivity import neural_predictivity
from .ridge import DEFAULT_ALPHAS, RidgeRegression
from .splits import repetition_halves, stimulus_splits

__all__ = ["RidgeRegression", "PLSRegression", "LinearRegression", "DEFAULT_ALPHAS",
           "neural_predictivity", "noise_ceiling", "stimulus_splits", "repetition_halves"]
