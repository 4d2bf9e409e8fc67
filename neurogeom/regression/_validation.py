"""Input checks shared by the regression estimators (arrays in, clear AnalysisErrors out)."""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError


def _finite_numeric(A: np.ndarray, name: str, expected: str, who: str) -> np.ndarray:
    """``A`` if it is a 2-d numeric array of finite values, else AnalysisError naming ``who``."""
    if A.ndim != 2:
        raise AnalysisError(f"{who}: {name} must be {expected}, got shape {A.shape}")
    if A.dtype.kind not in "biuf":
        raise AnalysisError(f"{who}: {name} must be numeric, got dtype {A.dtype}")
    if not np.isfinite(A).all():
        raise AnalysisError(f"{who}: {name} has {int((~np.isfinite(A)).sum())} non-finite value(s)")
    return A


def check_xy(X, Y=None, *, who: str, min_samples: int = 2):
    """Return float arrays ``X`` (2-d) and ``Y`` (2-d) plus whether ``Y`` was 1-d.

    Raises AnalysisError naming the estimator when shapes disagree, values are not finite or
    there are too few samples.
    """
    X = _finite_numeric(np.asarray(X), "X", "2-d (samples, features)", who)
    if Y is None:
        return X, None, False
    Y = np.asarray(Y)
    was_1d = Y.ndim == 1
    Y = _finite_numeric(Y[:, None] if was_1d else Y, "Y", "1-d or 2-d (samples, targets)", who)
    if X.shape[0] != Y.shape[0]:
        raise AnalysisError(f"{who}: X has {X.shape[0]} samples but Y has {Y.shape[0]}")
    if X.shape[0] < min_samples:
        raise AnalysisError(f"{who}: needs at least {min_samples} samples, got {X.shape[0]}")
    return X, Y, was_1d


def check_fitted(est, attr: str = "coef_"):
    if not hasattr(est, attr):
        raise AnalysisError(f"this {type(est).__name__} is not fitted yet; call fit(X, Y) first")
