"""Train/test splits of stimuli (Brain-Score protocol) and half-splits of repetitions.

Brain-Score (``brainscore_core.metrics.transformations.Split``) builds its splits with
scikit-learn: ``StratifiedShuffleSplit(n_splits=10, train_size=0.9, random_state=1)`` over the
presentations of the (repetition-averaged) target, with ``object_name`` as the class label, or
``ShuffleSplit`` when no stratification is asked for, or ``(Stratified)KFold(shuffle=True)`` in
its k-fold mode. Using the same classes with the same arguments on the same label order
reproduces its split indices exactly, so that is what ``protocol="brainscore"`` does. The
noise ceiling splits the unique repetition values in halves with
``ShuffleSplit(train_size=0.5, test_size=0.5, random_state=1)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

from ..errors import AnalysisError, format_list

PROTOCOLS = ("brainscore", "kfold")


def _stratification_problem(labels: np.ndarray, n_splits: int, train_size: float,
                            protocol: str) -> str | None:
    """Why stratified splitting is impossible for these labels, or None."""
    counts = pd.Series(labels).value_counts()
    n, n_classes = len(labels), len(counts)
    if protocol == "kfold":
        small = counts[counts < n_splits]
        if len(small):
            return (f"{len(small)} class(es) have fewer members than the {n_splits} folds: "
                    f"{format_list([f'{k!r} ({v})' for k, v in small.items()])}")
        return None
    small = counts[counts < 2]
    if len(small):
        return (f"{len(small)} class(es) have a single member, so they cannot be in both train "
                f"and test: {format_list(small.index.tolist())}")
    n_test = int(np.ceil((1 - train_size) * n))
    n_train = int(np.floor(train_size * n))
    if n_test < n_classes or n_train < n_classes:
        return (f"{n_classes} classes do not fit in a test set of {n_test} and a training set of "
                f"{n_train} stimuli (train_size={train_size}); each class needs a member in both")
    return None


def stimulus_splits(n_values: int, stratify=None, *, n_splits: int = 10, train_size: float = 0.9,
                    seed: int = 1, protocol: str = "brainscore", stratify_fallback: bool = False,
                    stratify_name: str = "stratify_by"):
    """Indices of train and test values for each split.

    Parameters
    ----------
    n_values : int
        Number of split units (stimuli), in the order the caller will index.
    stratify : array-like of length ``n_values`` or None
        Class label per unit (``object_name``); None for unstratified splits.
    n_splits, train_size, seed
        As in Brain-Score (10, 0.9, 1). ``train_size`` is ignored by ``protocol="kfold"``.
    protocol : {"brainscore", "kfold"}
        ``"brainscore"``: (Stratified)ShuffleSplit. ``"kfold"``: (Stratified)KFold with
        shuffling, Brain-Score's k-fold mode.
    stratify_fallback : bool
        When stratification is impossible (a class too small), fall back to unstratified
        splits with a warning instead of raising.
    stratify_name : str
        Name of the label coord, for messages.

    Returns
    -------
    (splits, stratified) : list of (train_index, test_index) arrays and whether stratification
    was applied.
    """
    if protocol not in PROTOCOLS:
        raise AnalysisError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise AnalysisError(f"n_splits must be a positive integer, got {n_splits!r}")
    if protocol == "kfold" and n_splits < 2:
        raise AnalysisError(f"protocol='kfold' needs n_splits >= 2, got {n_splits}")
    if not 0 < train_size < 1:
        raise AnalysisError(f"train_size must be between 0 and 1, got {train_size!r}")
    if n_values < n_splits:
        raise AnalysisError(f"{n_values} stimuli cannot make {n_splits} splits; "
                            f"use n_splits <= {n_values}")
    if n_values * (1 - train_size) < 1 or n_values * train_size < 2:
        raise AnalysisError(f"{n_values} stimuli are too few for train_size={train_size} "
                            "(need >= 2 training and >= 1 test stimulus)")
    stratified = stratify is not None
    if stratified:
        labels = np.asarray(stratify)
        if labels.shape != (n_values,):
            raise AnalysisError(f"stratification labels have shape {labels.shape}, "
                                f"expected ({n_values},)")
        problem = _stratification_problem(labels, n_splits, train_size, protocol)
        if problem:
            if not stratify_fallback:
                raise AnalysisError(
                    f"cannot stratify splits by {stratify_name!r}: {problem}. Pass "
                    f"stratify_by=None for unstratified splits, or stratify_fallback=True to fall "
                    "back to them automatically")
            warnings.warn(f"stratification by {stratify_name!r} impossible ({problem}); "
                          "falling back to unstratified splits", stacklevel=3)
            stratified = False
    dummy = np.zeros((n_values, 1))
    if protocol == "brainscore":
        cls = StratifiedShuffleSplit if stratified else ShuffleSplit
        splitter = cls(n_splits=n_splits, train_size=train_size, random_state=seed)
    else:
        cls = StratifiedKFold if stratified else KFold
        splitter = cls(n_splits=n_splits, shuffle=True, random_state=seed)
    args = (dummy, labels) if stratified else (dummy,)
    splits = [(np.asarray(tr), np.asarray(te)) for tr, te in splitter.split(*args)]
    return splits, stratified


def repetition_halves(n_repetitions: int, *, n_splits: int = 10, seed: int = 1):
    """Split repetition indices ``0..n_repetitions-1`` in two halves, ``n_splits`` times.

    Brain-Score's internal consistency: ``ShuffleSplit(train_size=0.5, test_size=0.5)`` over
    the unique repetition values.
    """
    if n_repetitions < 2:
        raise AnalysisError(f"split-half consistency needs >= 2 repetitions, got {n_repetitions}")
    splitter = ShuffleSplit(n_splits=n_splits, train_size=0.5, test_size=0.5, random_state=seed)
    return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros((n_repetitions, 1)))]
