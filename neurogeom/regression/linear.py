"""Ordinary least squares (minimum-norm solution when features outnumber stimuli)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from .._backend import get_namespace
from .._estimators import LinearPredictorMixin, check_xy
from ..errors import AnalysisError


class LinearRegression(LinearPredictorMixin, BaseEstimator):
    """Ordinary least squares with an intercept, solved through the SVD of the centered data.

    Directions whose Gram eigenvalue (squared singular value) is below ``rcond * e_max`` are
    treated as zero, so the minimum-norm solution is returned when ``X`` is rank deficient. The
    cut-off is on eigenvalues, not singular values, because eigenvalues of the Gram are only
    accurate to about ``eps * e_max``.

    Parameters
    ----------
    rcond : float or None
        Relative cut-off; None means ``max(n, p) * eps``.
    backend : {None, "numpy", "torch"}
        Array library; None is numpy unless ``device`` names a GPU (:mod:`neurogeom._backend`).
    device : None, str or torch.device
        None or ``"cpu"``: the CPU; ``"cuda:0"``…: that GPU (torch).
    dtype : {"float64", "float32"}
        Working precision.

    Attributes
    ----------
    coef_ : ndarray (n_targets, n_features)
        Coefficients on the uncentered features.
    intercept_ : ndarray (n_targets,)
        ``mean(Y) - mean(X) @ coef_.T``.
    rank_ : int
        Number of directions kept (the numerical rank of the centered ``X``).
    n_features_in_ : int
        Number of features seen by ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((30, 4)); y = X @ [1.0, -2.0, 0.5, 0.0] + 3.0
    >>> model = LinearRegression().fit(X, y)
    >>> np.round(model.coef_, 6).tolist(), round(float(model.intercept_[0]), 6)
    ([[1.0, -2.0, 0.5, 0.0]], 3.0)
    >>> round(model.score(X, y), 6)
    1.0
    """

    def __init__(self, rcond=None, backend=None, device=None, dtype: str = "float64"):
        self.rcond = rcond
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def fit(self, X, Y):
        """Fit the least-squares coefficients and intercept.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features (at least 2 samples).
        Y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets; predictions keep this shape.

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        AnalysisError
            Bad input (shapes, non-finite values, fewer than 2 samples), a bad ``rcond``,
            ``backend``, ``device`` or ``dtype``, or a constant ``X``.
        """
        X, Y, y_1d = check_xy(X, Y, who="LinearRegression")
        if self.rcond is not None and not (isinstance(self.rcond, (int, float, np.floating))
                                           and 0 <= self.rcond < 1):
            raise AnalysisError(f"LinearRegression: rcond must be None or a number in [0, 1), "
                                f"got {self.rcond!r}")
        xp = get_namespace(self.backend, self.device, self.dtype)
        Xb, Yb = xp.asarray(X), xp.asarray(Y)
        x_mean, y_mean = Xb.mean(0), Yb.mean(0)
        Xc, Yc = Xb - x_mean[None, :], Yb - y_mean[None, :]
        n, p = X.shape
        rcond = self.rcond if self.rcond is not None else max(n, p) * xp.finfo_eps()
        # Eigendecomposition of the smaller Gram gives the thin SVD without an n×p SVD.
        if n <= p:
            e, U = xp.eigh(xp.matmul_self_t(Xc))
            keep = e > rcond * e.max() if float(e.max()) > 0 else e > 1
            U, e = U[:, keep], e[keep]
            coef = Xc.T @ (U @ ((U.T @ Yc) / e[:, None]))
        else:
            e, V = xp.eigh(Xc.T @ Xc)
            keep = e > rcond * e.max() if float(e.max()) > 0 else e > 1
            V, e = V[:, keep], e[keep]
            coef = V @ ((V.T @ (Xc.T @ Yc)) / e[:, None])
        self.rank_ = int(keep.sum())
        if self.rank_ == 0:
            raise AnalysisError("LinearRegression: X is constant; nothing to fit")
        self.coef_ = xp.to_numpy(coef.T)
        self.intercept_ = xp.to_numpy(y_mean - x_mean @ coef)
        self.n_features_in_ = p
        self._y_1d = y_1d
        return self
