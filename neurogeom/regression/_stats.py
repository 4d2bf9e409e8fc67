"""Column-wise Pearson correlation and the Spearman–Brown correction."""

from __future__ import annotations

import numpy as np


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of ``a`` and ``b`` (samples × columns).

    A column with zero variance in either input has no correlation: its entry is NaN, and the
    callers count and report those instead of passing them on silently.
    """
    a = a - a.mean(0)
    b = b - b.mean(0)
    # Zero variance up to round-off (relative to the column scale) counts as constant.
    scale_a = np.abs(a).max(0) if len(a) else 0.0
    scale_b = np.abs(b).max(0) if len(b) else 0.0
    # r does not depend on each column's scale: divide by its largest deviation first so the
    # products below neither overflow (values ~1e200) nor underflow (~1e-200)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = a / np.where(scale_a > 0, scale_a, 1.0)
        b = b / np.where(scale_b > 0, scale_b, 1.0)
    num = (a * b).sum(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    flat = (den == 0) | (scale_a == 0) | (scale_b == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(flat, np.nan, num / np.where(flat, 1.0, den))
    return np.clip(r, -1.0, 1.0)


def spearman_brown(r, n: float = 2.0):
    """Reliability of an ``n``-times longer test: ``n r / (1 + (n - 1) r)``.

    For split halves (n = 2): 0.5 → 0.6667, 0.8 → 0.8889, 1 → 1.
    """
    r = np.asarray(r, dtype=np.float64)
    return n * r / (1.0 + (n - 1.0) * r)


def constant_columns(values: np.ndarray) -> np.ndarray:
    """Boolean mask of columns whose values are all equal."""
    return (values == values[:1]).all(0) if len(values) else np.zeros(values.shape[1], bool)
