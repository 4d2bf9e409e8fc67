"""Arranging samples for the latent models: time windows of continuous input, crossed repeats.

numpy only, so the split and regression code can use them without importing torch.
"""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError

__all__ = ["time_window", "crossed_pairs"]


def time_window(x, window: int) -> np.ndarray:
    """Stack ``window`` consecutive samples of a time series around each time point.

    Row t of the result is ``x[t - window//2 : t - window//2 + window]`` flattened (lag-major),
    with the first and last samples repeated at the edges so every time point keeps a row.

    Parameters
    ----------
    x : array_like, shape (n_times, n_neurons)
    window : int
        Number of time bins L (Schmutz et al. 2025 use L = 6 for spontaneous activity).

    Returns
    -------
    ndarray, shape (n_times, window * n_neurons)
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise AnalysisError(f"a time window needs (time, neurons) data, got shape {x.shape}")
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise AnalysisError(f"window must be a positive integer, got {window!r}")
    if window == 1:
        return x
    before = window // 2
    padded = np.concatenate([np.repeat(x[:1], before, axis=0), x,
                             np.repeat(x[-1:], window - 1 - before, axis=0)])
    n = x.shape[0]
    return np.concatenate([padded[k:k + n] for k in range(window)], axis=1)


def crossed_pairs(source, target):
    """Stack every ordered pair of different repeats: sources of repeat r, targets of repeat r'.

    Parameters
    ----------
    source, target : array_like, shapes (n_repeats, n_samples, ·)

    Returns
    -------
    (ndarray, ndarray)
        ``(n_repeats (n_repeats − 1) n_samples, ·)`` inputs and targets. Fitting these removes
        variability that is shared by sources and targets within a trial but not stimulus-locked.
    """
    source, target = np.asarray(source), np.asarray(target)
    n_rep = source.shape[0]
    pairs = [(r, q) for r in range(n_rep) for q in range(n_rep) if q != r]
    return (np.concatenate([source[r] for r, _ in pairs]),
            np.concatenate([target[q] for _, q in pairs]))
