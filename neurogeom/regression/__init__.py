"""Cross-validated model-to-brain regression: estimators, splits, noise ceiling, predictivity,
and the spectral theory that explains its error."""

from .ceiling import noise_ceiling
from .linear import LinearRegression
from .pls import PLSRegression
from .predictivity import BRAINSCORE_ALPHAS, PRESETS, neural_predictivity
from .ridge import DEFAULT_ALPHAS, RidgeRegression
from .spectral import spectral_decomposition
from .splits import repetition_halves, stimulus_splits

__all__ = ["RidgeRegression", "PLSRegression", "LinearRegression", "DEFAULT_ALPHAS",
           "BRAINSCORE_ALPHAS", "PRESETS",
           "neural_predictivity", "noise_ceiling", "spectral_decomposition", "stimulus_splits", "repetition_halves"]
