"""Ridge reduced-rank regression: the linear baseline of latent dimensionality, all ranks at once.

Ridge regression B_α = (XᵀX + αI)⁻¹ XᵀY is solved for every α from one SVD of X; the rank-r fit
projects the ridge predictions on their top r principal axes V_r: B_r = B_α V_r V_rᵀ (reduced-rank
ridge regression; Izenman 1975, Mukherjee & Zhu 2011). One SVD of the fitted values gives every
rank, so a whole R²-versus-rank curve costs one fit.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .._estimators import (
    EstimatorNotFittedError,
    LinearPredictorMixin,
    check_features,
    check_xy,
)
from .._params import DEFAULT_ALPHAS, check_alphas
from ..errors import AnalysisError

__all__ = ["ReducedRankRegression", "DEFAULT_ALPHAS"]


def _as_matrix(x, name: str) -> np.ndarray:
    return check_features(x, who="ReducedRankRegression", name=name).astype(np.float64,
                                                                           copy=False)


def _column(y, one_target: bool):
    """A 1-d target array as one column when the model was fitted on a 1-d target."""
    y = np.asarray(y) if one_target else y
    return y[:, None] if one_target and y.ndim == 1 else y


class ReducedRankRegression(TransformerMixin, LinearPredictorMixin, BaseEstimator):
    """Closed-form ridge reduced-rank regression of targets on sources.

    Parameters
    ----------
    rank : int, optional
        Rank of the fit :meth:`predict` and :meth:`score` use (``coef_``); default full rank.
        :meth:`predict` and :meth:`score_ranks` also answer for other ranks from the same fit.
    alphas : sequence of float
        Ridge penalties (default: the shared grid, ``neurogeom.regression.DEFAULT_ALPHAS``,
        20 values 0.01 … 1e7; 0 is allowed). One is chosen at full rank: by validation R²
        when ``fit`` gets ``validation``, otherwise by efficient leave-one-out error on the
        training data.

    Attributes
    ----------
    alpha_ : float
        The chosen penalty.
    coef_ : ndarray (n_targets, n_sources)
        Coefficients of the rank-``rank`` fit on the uncentered sources.
    intercept_ : ndarray (n_targets,)
        Its intercept.
    coef_ridge_ : ndarray (n_sources, n_targets)
        Full-rank ridge coefficients (on centered sources).
    components_ : ndarray (n_targets, max_rank_)
        Principal axes of the ridge fitted values, by decreasing variance.
    max_rank_ : int
        ``min(n_sources, n_targets, n_samples - 1)``.
    x_mean_, y_mean_ : ndarray
        Training means of sources and targets.
    n_features_in_ : int
        Number of sources seen by ``fit``.

    Notes
    -----
    :meth:`score` is R² pooled over targets (``sklearn.metrics.r2_score`` with
    ``multioutput="variance_weighted"``: 1 − Σ(y − ŷ)² / Σ(y − ȳ)² over all targets), the
    quantity :meth:`score_ranks` and the latent-dimensionality curves report, so that every
    neuron weighs by its variance as in Schmutz et al. (NeurIPS 2025) [2]_.

    References
    ----------
    .. [1] Izenman (1975). Reduced-rank regression for the multivariate linear model. J.
       Multivar. Anal. 5, 248-264.
    .. [2] Schmutz, Haydaroğlu, Wang, Feng, Carandini & Harris (2025). High-dimensional
       neuronal activity from low-dimensional latent dynamics: a solvable model. Advances in
       Neural Information Processing Systems (NeurIPS 2025).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((200, 20)); y = x[:, :2] @ rng.standard_normal((2, 30))
    >>> model = ReducedRankRegression(rank=2, alphas=[1e-3]).fit(x, y)
    >>> round(model.score(x, y), 6)
    1.0
    """

    _r2_multioutput = "variance_weighted"

    def __init__(self, rank: int | None = None, alphas=DEFAULT_ALPHAS):
        self.rank = rank
        self.alphas = alphas

    def fit(self, X, Y, validation=None) -> "ReducedRankRegression":
        """Fit ridge at every penalty, choose one, and find the principal axes of the fit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_sources)
            Source activity (at least 3 samples).
        Y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Target activity; predictions keep this shape.
        validation : (array-like, array-like), optional
            ``(sources, targets)`` of held-out samples whose squared error chooses ``alpha_``;
            without it, efficient leave-one-out on the training samples does.

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        AnalysisError
            Bad input (shapes, NaN or inf, fewer than 3 samples), negative ``alphas`` or a
            ``rank`` outside ``1..max_rank_``.
        """
        x, y, y_1d = check_xy(X, Y, who="ReducedRankRegression", min_samples=3)
        x, y = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
        alphas = check_alphas(self.alphas, allow_zero=True)
        self.max_rank_ = int(min(x.shape[1], y.shape[1], x.shape[0] - 1))
        if self.rank is not None:
            self._check_rank(self.rank)
        self.x_mean_ = x.mean(axis=0)
        self.y_mean_ = y.mean(axis=0)
        xc, yc = x - self.x_mean_, y - self.y_mean_
        u, s, wt = np.linalg.svd(xc, full_matrices=False)
        keep = s > s[0] * 1e-12 if s.size and s[0] > 0 else np.zeros_like(s, bool)
        u, s, wt = u[:, keep], s[keep], wt[keep]
        uty = u.T @ yc
        if validation is not None:
            xv = _as_matrix(validation[0], "validation source") - self.x_mean_
            yv = _as_matrix(_column(validation[1], y_1d), "validation target")
            xvw = xv @ wt.T
            errors = [np.sum((yv - self.y_mean_ - (xvw * (s / (s ** 2 + a))) @ uty) ** 2)
                      for a in alphas]
        else:
            # leave-one-out residual e_i / (1 - h_ii) of ridge with an unpenalized intercept
            errors = []
            for a in alphas:
                shrink = s ** 2 / (s ** 2 + a)
                fitted = (u * shrink) @ uty
                leverage = np.einsum("ik,k,ik->i", u, shrink, u) + 1.0 / x.shape[0]
                loo = (yc - fitted) / np.maximum(1.0 - leverage, 1e-12)[:, None]
                errors.append(np.sum(loo ** 2))
        self.alpha_ = float(alphas[int(np.argmin(errors))])
        self.coef_ridge_ = wt.T @ ((s / (s ** 2 + self.alpha_))[:, None] * uty)
        fitted = xc @ self.coef_ridge_
        _, _, vt = np.linalg.svd(fitted, full_matrices=False)
        self.components_ = vt[: self.max_rank_].T
        coef = self.coef(self.rank)
        self.coef_ = coef.T
        self.intercept_ = self.y_mean_ - self.x_mean_ @ coef
        self.n_features_in_ = x.shape[1]
        self._y_1d = y_1d
        return self

    def _is_fitted(self) -> bool:
        return hasattr(self, "components_")

    def _check_fitted(self):
        if not self._is_fitted():
            raise EstimatorNotFittedError("this ReducedRankRegression is not fitted yet; call "
                                          "fit(X, Y) first")

    def _check_rank(self, rank) -> int:
        if not isinstance(rank, (int, np.integer)) or not 1 <= rank <= self.max_rank_:
            raise AnalysisError(
                f"rank must be an integer in 1..{self.max_rank_} (the smallest of the numbers "
                f"of sources, targets and training samples - 1), got {rank!r}")
        return int(rank)

    def coef(self, rank: int | None = None) -> np.ndarray:
        """Coefficients (n_sources, n_targets) of the rank-``rank`` fit: B_α V_r V_rᵀ."""
        self._check_fitted()
        rank = self.rank if rank is None else rank
        if rank is None:
            return self.coef_ridge_
        v = self.components_[:, : self._check_rank(rank)]
        return (self.coef_ridge_ @ v) @ v.T

    def transform(self, X, rank: int | None = None) -> np.ndarray:
        """Latents (samples, rank): the ridge predictions projected on the top axes."""
        self._check_fitted()
        rank = self._check_rank(self.rank if rank is None else rank) if (
            rank is not None or self.rank is not None) else self.max_rank_
        x = self._check_fitted_features(X, "transform").astype(np.float64) - self.x_mean_
        return (x @ self.coef_ridge_) @ self.components_[:, :rank]

    def predict(self, X, rank: int | None = None) -> np.ndarray:
        """Predict targets from sources with the rank-``rank`` fit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_sources)
            Source activity.
        rank : int, optional
            Rank of the fit (1..``max_rank_``); default the ``rank`` parameter (``coef_``).

        Returns
        -------
        ndarray of shape (n_samples, n_targets), or (n_samples,) after a 1-d fit
        """
        if rank is None or not self._is_fitted():
            return super().predict(X)
        coef = self.coef(rank)
        return self._linear_predict(X, coef.T, self.y_mean_ - self.x_mean_ @ coef)

    def score_ranks(self, X, Y, ranks=None) -> np.ndarray:
        """R² (pooled over targets) at every rank in ``ranks`` (default 1..max_rank_) from one
        projection.

        With P = Ŷ V (full-rank predictions on the orthonormal axes), the rank-r residual is
        ‖Y − P_r V_rᵀ‖² = ‖Y‖² − 2 Σ_{k≤r} (YV)_k·P_k + Σ_{k≤r} ‖P_k‖², a cumulative sum.
        """
        self._check_fitted()
        ranks = np.arange(1, self.max_rank_ + 1) if ranks is None else np.asarray(ranks)
        for r in ranks:
            self._check_rank(int(r))
        x = self._check_fitted_features(X, "score_ranks").astype(np.float64) - self.x_mean_
        y = _as_matrix(_column(Y, self._y_1d), "Y")
        yc = y - self.y_mean_
        p = (x @ self.coef_ridge_) @ self.components_
        q = yc @ self.components_
        gain = np.cumsum(2 * np.einsum("ik,ik->k", q, p) - np.einsum("ik,ik->k", p, p))
        total = np.sum((y - y.mean(axis=0)) ** 2)
        if total == 0:
            raise AnalysisError("R² is undefined: the targets do not vary across samples")
        residual = np.sum(yc ** 2) - gain[ranks - 1]
        return 1.0 - residual / total
