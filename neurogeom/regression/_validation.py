"""Input checks shared by the regression estimators (arrays in, clear AnalysisErrors out)."""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError


def check_xy(X, Y=None, *, who: str, min_samples: int = 2):
    """Return float arrays ``X`` (2-d) and ``Y`` (2-d) plus whether ``Y`` was 1-d.

    Raises AnalysisError naming the estimator when shapes disagree, values are not finite or
    there are too few samples.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise AnalysisError(f"{who}: X must be 2-d (samples, features), got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise AnalysisError(f"{who}: X must be numeric, got dtype {X.dtype}")
    if not np.isfinite(X).all():
        raise AnalysisError(f"{who}: X has {int((~np.isfinite(X)).sum())} non-finite value(s)")
    if Y is None:
        return X, None, False
    Y = np.asarray(Y)
    was_1d = Y.ndim == 1
    if was_1d:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise AnalysisError(f"{who}: Y must be 1-d or 2-d (samples, targets), got shape {Y.shape}")
    if Y.dtype.kind not in "biuf":
        raise AnalysisError(f"{who}: Y must be numeric, got dtype {Y.dtype}")
    if not np.isfinite(Y).all():
        raise AnalysisError(f"{who}: Y has {int((~np.isfinite(Y)).sum())} non-finite value(s)")
    if X.shape[0] != Y.shape[0]:
        raise AnalysisError(f"{who}: X has {X.shape[0]} samples but Y has {Y.shape[0]}")
    if X.shape[0] < min_samples:
        raise AnalysisError(f"{who}: needs at least {min_samples} samples, got {X.shape[0]}")
    return X, Y, was_1d


def check_fitted(est, attr: str = "coef_"):
    if not hasattr(est, attr):
        raise AnalysisError(f"this {type(est).__name__} is not fitted yet; call fit(X, Y) first")
