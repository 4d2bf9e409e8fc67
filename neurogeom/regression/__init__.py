"""Cross-validated model-to-brain regression: estimators, splits, noise ceiling, predictivity."""

from .ridge import DEFAULT_ALPHAS, RidgeRegression

__all__ = ["RidgeRegression", "DEFAULT_ALPHAS"]
