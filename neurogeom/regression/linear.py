"""Ordinary least squares (minimum-norm solution when features outnumber stimuli)."""

from __future__ import annotations

from .._backend import get_namespace
from ..errors import AnalysisError
from ._validation import check_fitted, check_xy


class LinearRegression:
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

    Attributes
    ----------
    coef_ : ndarray (n_targets, n_features)
    intercept_ : ndarray (n_targets,)
    rank_ : int
    """

    def __init__(self, rcond=None, backend=None, device=None, dtype: str = "float64"):
        self.rcond = rcond
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def fit(self, X, Y):
        X, Y, self._y_1d = check_xy(X, Y, who="LinearRegression")
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
        return self

    def predict(self, X):
        check_fitted(self)
        X, _, _ = check_xy(X, who="LinearRegression.predict")
        if X.shape[1] != self.n_features_in_:
            raise AnalysisError(f"LinearRegression was fitted with {self.n_features_in_} "
                                f"features, X has {X.shape[1]}")
        out = X @ self.coef_.T + self.intercept_[None, :]
        return out[:, 0] if self._y_1d else out
