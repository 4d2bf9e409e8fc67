"""The scikit-learn face shared by neurogeom's estimators: input checks, one ``predict`` for every
linear model and one R² ``score``.

Each estimator subclasses ``BaseEstimator`` and one of the mixins below, so ``get_params``,
``set_params``, ``sklearn.base.clone``, pipelines and ``cross_val_score`` work on it. Inputs are
checked at the door with scikit-learn's ``check_array`` (its messages are what scikit-learn's
own estimator checks look for) and every failure is re-raised as :class:`AnalysisError` naming
the estimator.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from sklearn.base import MultiOutputMixin, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_array

from .errors import AnalysisError

__all__ = ["EstimatorNotFittedError", "LinearPredictorMixin", "R2ScoreMixin", "check_features",
           "check_xy"]


class EstimatorNotFittedError(AnalysisError, NotFittedError):
    """``predict`` (or another method that needs a fit) was called before ``fit``.

    Both a neurogeom :class:`AnalysisError` and scikit-learn's ``NotFittedError``, so either
    ``except`` clause catches it.
    """


def check_features(X, *, who: str, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """``X`` as a dense 2-d float array (float32 kept, anything else float64) of finite values.

    Raises
    ------
    AnalysisError
        Sparse, complex, non-numeric, not 2-d, too few samples or features, NaN or inf; the
        message names ``who`` (the estimator or method) and what was expected.
    """
    if scipy.sparse.issparse(X):
        raise AnalysisError(f"{who}: {name} is a sparse matrix; sparse input is not supported, "
                            f"pass a dense array ({name}.toarray())")
    try:
        X = check_array(X, dtype=("float64", "float32"), ensure_all_finite=False,
                        ensure_min_samples=min_samples, input_name=name)
    except ValueError as exc:
        raise AnalysisError(f"{who}: {exc}") from exc
    bad = int(X.size - np.isfinite(X).sum())
    if bad:
        raise AnalysisError(f"{who}: {name} has {bad} non-finite value(s) (NaN or inf); "
                            "all values must be finite")
    return X


def check_xy(X, Y, *, who: str, min_samples: int = 2):
    """``(X, Y, y_was_1d)``: 2-d float ``X`` (samples, features) and 2-d ``Y`` (samples,
    targets) of finite values, with matching sample counts.

    ``Y`` may be 1-d (one target); it is returned as one column and ``y_was_1d`` says so, so
    that ``predict`` can answer in the shape it was given.
    """
    if Y is None:
        raise AnalysisError(f"{who} requires y to be passed, but the target y is None; "
                            "call fit(X, Y) with Y of shape (samples,) or (samples, targets)")
    X = check_features(X, who=who, min_samples=min_samples)
    if scipy.sparse.issparse(Y):
        raise AnalysisError(f"{who}: Y is a sparse matrix; sparse targets are not supported, "
                            "pass a dense array (Y.toarray())")
    try:
        Y = check_array(Y, dtype=("float64", "float32"), ensure_2d=False,
                        ensure_all_finite=False, ensure_min_samples=0, input_name="Y")
    except ValueError as exc:
        raise AnalysisError(f"{who}: {exc}") from exc
    if Y.ndim not in (1, 2):
        raise AnalysisError(f"{who}: Y must be 1-d (samples,) or 2-d (samples, targets), got "
                            f"shape {Y.shape}")
    was_1d = Y.ndim == 1
    Y = Y[:, None] if was_1d else Y
    bad = int(Y.size - np.isfinite(Y).sum())
    if bad:
        raise AnalysisError(f"{who}: Y has {bad} non-finite value(s) (NaN or inf); "
                            "all values must be finite")
    if X.shape[0] != Y.shape[0]:
        raise AnalysisError(f"{who}: X has {X.shape[0]} samples but Y has {Y.shape[0]}")
    if Y.shape[1] == 0:
        raise AnalysisError(f"{who}: Y has no targets (shape {Y.shape})")
    return X, Y, was_1d


class R2ScoreMixin(MultiOutputMixin, RegressorMixin):
    """``score``: the coefficient of determination R² of ``predict(X)`` against ``Y``.

    Subclasses choose how several targets are combined with ``_r2_multioutput`` (sklearn's
    ``multioutput`` argument): ``"uniform_average"`` (the mean of per-target R², sklearn's
    default) or ``"variance_weighted"`` (R² pooled over targets, so each target weighs by its
    variance: 1 - Σ(y - ŷ)² / Σ(y - ȳ)²).
    """

    _r2_multioutput = "uniform_average"

    def score(self, X, y, sample_weight=None) -> float:
        """Coefficient of determination R² of the predictions of ``X`` against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            True targets.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples.

        Returns
        -------
        float
            ``sklearn.metrics.r2_score(y, self.predict(X))``, several targets combined as the
            class documents (the mean of per-target R² unless stated otherwise). 1 is a perfect
            prediction, 0 that of the targets' mean; it can be negative.
        """
        y_true, y_pred = self._score_pairs(X, y)
        return float(r2_score(y_true, y_pred, sample_weight=sample_weight,
                              multioutput=self._r2_multioutput))

    def _score_pairs(self, X, y):
        """The (true, predicted) arrays :meth:`score` compares."""
        return y, self.predict(X)


class LinearPredictorMixin(R2ScoreMixin):
    """``predict`` of a fitted linear model: ``X @ coef_.T + intercept_``.

    Fitted estimators have ``coef_`` (n_targets, n_features), ``intercept_`` (n_targets,),
    ``n_features_in_`` and ``_y_1d`` (whether ``fit`` got a 1-d target).
    """

    def predict(self, X):
        """Predict targets from features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features, with as many columns as the training data.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
            ``X @ coef_.T + intercept_``; 1-d when the model was fitted on a 1-d target.

        Raises
        ------
        EstimatorNotFittedError
            Before ``fit``.
        AnalysisError
            ``X`` not 2-d numeric and finite, or with a different number of features.
        """
        return self._linear_predict(X, self.coef_ if self._is_fitted() else None,
                                    getattr(self, "intercept_", None))

    def _is_fitted(self) -> bool:
        return hasattr(self, "coef_")

    def _check_fitted_features(self, X, method: str):
        """``X`` checked by :func:`check_features`, with as many columns as in ``fit``."""
        X = check_features(X, who=f"{type(self).__name__}.{method}")
        n_features = self.n_features_in_
        if X.shape[1] != n_features:
            raise AnalysisError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                                f"expecting {n_features} features as input (it was fitted with "
                                f"{n_features} features)")
        return X

    def _linear_predict(self, X, coef, intercept):
        """``X @ coef.T + intercept`` after the checks of :meth:`predict`."""
        if coef is None:
            raise EstimatorNotFittedError(f"this {type(self).__name__} is not fitted yet; call "
                                          "fit(X, Y) first")
        X = self._check_fitted_features(X, "predict")
        out = X @ coef.T + intercept[None, :]
        return out[:, 0] if self._y_1d else out
