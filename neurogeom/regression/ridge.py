"""Ridge regression that solves every alpha from one eigendecomposition per training fold.

The math (himalaya and sklearn's ``_RidgeGCV`` are the anchors):

* With centered training data ``Xc`` (n × p) and ``G = Xc Xc^T = U diag(e) U^T``, the dual
  coefficients for ridge ``alpha`` are ``c = (G + alpha I)^-1 Y = U diag(1/(e+alpha)) U^T Y``
  and the primal ones ``beta = Xc^T c`` (push-through identity
  ``(X^T X + aI)^-1 X^T = X^T (X X^T + aI)^-1``). One eigendecomposition serves every alpha.
  When features are fewer than stimuli the primal form ``Xc^T Xc = V diag(e) V^T`` is cheaper;
  then ``U = Xc V diag(e^-1/2)`` spans only part of the sample space and the rest of
  ``(G + alpha I)^-1`` is ``(I - U U^T)/alpha``.
* Efficient leave-one-out on the training fold only: the LOO residual of sample i is
  ``c_i / [H^-1]_ii`` (Allen's PRESS identity). The intercept is not penalized, which removes
  the constant direction ``1/sqrt(n)`` (an exact null vector of ``G`` because ``Xc`` is
  centered) from ``H^-1``: ``H^-1 = (G + alpha I)^-1 - 11^T/(n alpha)``. This equals a brute-force
  LOO that refits the intercept on every n-1 samples.
* ``cv=k`` (integer) chooses alpha by k-fold CV inside the training data (folds in order).

Alpha is therefore chosen from training stimuli only; test stimuli never enter the choice.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from .._backend import get_namespace
from .._estimators import LinearPredictorMixin, check_xy
from .._params import DEFAULT_ALPHAS, check_alphas
from ..errors import AnalysisError


def check_cv(cv, n_samples: int):
    if cv == "loo":
        if n_samples < 3:
            raise AnalysisError(f"leave-one-out alpha selection needs >= 3 training samples, "
                                f"got {n_samples}")
        return "loo"
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        if cv < 2 or cv > n_samples:
            raise AnalysisError(f"cv={cv} folds impossible with {n_samples} training samples "
                                f"(need 2 <= cv <= n_samples)")
        return int(cv)
    raise AnalysisError(f"cv must be 'loo' or an integer number of folds, got {cv!r}")


# --------------------------------------------------------------------------------------------
# kernels (array namespace: numpy or torch)
# --------------------------------------------------------------------------------------------

def double_center(K, rows, cols, xp):
    """Centered train Gram and test×train cross kernel from a Gram ``K = X X^T`` of all samples.

    Centering uses the mean of the training rows ``cols`` only:
    ``(x_s - m)·(x_i - m) = K_si - mean_j K_sj - mean_j K_ji + mean_jk K_jk`` (j, k in train).
    ``rows`` may be None (no test block).
    """
    K_tt = xp.take2d(K, cols, cols)
    r = K_tt.mean(0)                       # m · x_i for training i
    m = r.mean()                           # m · m
    K_tt -= r[:, None]                     # in place: K_tt is a fresh copy
    K_tt -= r[None, :] - m
    if rows is None:
        return K_tt, None
    K_st = xp.take2d(K, rows, cols)
    K_st -= K_st.mean(1)[:, None]
    K_st -= r[None, :] - m
    return K_tt, K_st


def decompose_gram(G, xp):
    """``G = U diag(e) U^T`` with tiny negative round-off eigenvalues clipped to 0."""
    e, U = xp.eigh(G)
    return xp.maximum(e, 0.0), U


def loo_errors(U, e, Y, alphas, xp, *, complete: bool, fit_intercept: bool = True):
    """Mean squared leave-one-out error for every alpha and target.

    Parameters
    ----------
    U, e : backend arrays
        Eigenvectors (n × r) and eigenvalues (r) of the centered training Gram. ``complete``
        says whether ``U`` spans all n sample dimensions (kernel form) or only the span of the
        data (primal form).
    Y : backend array (n × t)
        Centered training targets.

    Returns
    -------
    backend array (n_alphas × t)
    """
    n, t = Y.shape
    Z = U.T @ Y                              # targets in the eigenbasis, computed once
    U2 = U * U
    outside = None if complete else Y - U @ Z
    outside_diag = None if complete else 1.0 - U2.sum(1)
    alphas = np.asarray(alphas, dtype=np.float64)
    errors = xp.zeros((len(alphas), t))
    # Several alphas per matrix product: one wide GEMM runs closer to peak than many narrow
    # ones; chunks keep the temporary at about 1024 columns.
    per_chunk = max(1, 1024 // max(t, 1))
    for start in range(0, len(alphas), per_chunk):
        chunk = alphas[start:start + per_chunk]
        a = xp.asarray(chunk)
        W = 1.0 / (e[:, None] + a[None, :])                      # r × chunk
        C = U @ (W[:, :, None] * Z[:, None, :]).reshape(Z.shape[0], len(chunk) * t)
        C = C.reshape(n, len(chunk), t)                          # (G + alpha I)^-1 Y
        H = U2 @ W                                               # diag (G + alpha I)^-1
        if not complete:
            C += outside[:, None, :] / a[None, :, None]
            H = H + outside_diag[:, None] / a[None, :]
        if fit_intercept:
            H = H - 1.0 / (n * a[None, :])   # unpenalized intercept: drop the 1/sqrt(n) mode
        C /= H[:, :, None]                   # LOO residuals c_i / [H^-1]_ii, in place
        C *= C
        errors[start:start + len(chunk)] = C.mean(0)
    return errors


def loo_select(U, e, Y, alphas, xp, *, complete: bool, fit_intercept: bool = True,
               chunk_columns: int = 2048):
    """Best alpha per target by leave-one-out, with exact errors only where an alpha can win.

    The mean squared LOO error of target j at alpha a is ``E[a, j] = mean_i (C_ij / h_i)^2``
    with ``C = (G + aI)^-1 y_j`` and ``h = diag H^-1`` (see :func:`loo_errors`). Because ``U`` has
    orthonormal columns, ``sum_i C_ij^2 = ||w_a * z_j||^2`` (plus ``||y_out||^2 / a^2`` outside
    the span in primal form) costs O(n) per pair, so

        ``||C||^2 / (n max h^2)  <=  E[a, j]  <=  ||C||^2 / (n min h^2)``.

    Exact errors are computed (one n × n product per column) first at the alpha with the
    smallest upper bound, then only for pairs whose lower bound does not exceed that exact
    error; every other pair is provably worse and is reported as ``inf``. The chosen alphas
    are therefore exactly those of the full search (:func:`loo_errors` + :func:`select_alphas`),
    including sklearn's first-on-ties rule; on typical data ~70% of the products are skipped.

    Returns
    -------
    (best, errors, dual) : numpy int array (t,) of alpha indices; numpy array (n_alphas × t) of
    LOO errors, ``inf`` where skipped; backend array (n × t), ``(G + alpha_j I)^-1 y_j`` for each
    target at its chosen alpha.
    """
    n, t = Y.shape
    alphas = np.asarray(alphas, dtype=np.float64)
    n_alpha = alphas.size
    a_b = xp.asarray(alphas)
    Z = U.T @ Y
    W = 1.0 / (e[:, None] + a_b[None, :])                       # r × n_alphas
    H = xp.zeros((n, n_alpha))                                  # diag (G + aI)^-1
    row_sq = xp.zeros((n,))
    for lo in range(0, n, 512):                                 # U * U a block at a time
        U2 = U[lo:lo + 512] * U[lo:lo + 512]
        H[lo:lo + 512] = U2 @ W
        row_sq[lo:lo + 512] = U2.sum(1)
    norm2 = (W * W).T @ (Z * Z)                                 # ||U (w * z)||^2, n_alphas × t
    outside = None
    if not complete:
        outside = Y - U @ Z
        H = H + (1.0 - row_sq)[:, None] / a_b[None, :]
        norm2 = norm2 + (outside * outside).sum(0)[None, :] / (a_b * a_b)[:, None]
    if fit_intercept:
        H = H - 1.0 / (n * a_b[None, :])  # unpenalized intercept: drop the 1/sqrt(n) mode
    Hn, norm2n = xp.to_numpy(H), xp.to_numpy(norm2)
    h_max, h_min = Hn.max(0), Hn.min(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = norm2n / (n * h_max * h_max)[:, None]
        upper = np.where((h_min > 0)[:, None], norm2n / (n * h_min * h_min)[:, None], np.inf)
    lower = np.where(np.isfinite(lower), lower, -np.inf)        # no valid bound: never pruned
    errors = np.full((n_alpha, t), np.inf)
    every = np.arange(t)

    def duals(a_sel, j_sel):
        """``(G + a I)^-1 y_j`` for the pairs ``(a_sel[k], j_sel[k])``."""
        ab, jb = xp.asarray(a_sel, dtype="int"), xp.asarray(j_sel, dtype="int")
        C = U @ (W[:, ab] * Z[:, jb])
        if outside is not None:
            C = C + outside[:, jb] / a_b[ab][None, :]
        return C

    def evaluate(a_idx, j_idx):
        """Exact LOO errors of the pairs (at most one per target); returns their duals."""
        dual_cols = xp.zeros((n, a_idx.size))
        for start in range(0, a_idx.size, chunk_columns):
            stop = start + chunk_columns
            a_sel, j_sel = a_idx[start:stop], j_idx[start:stop]
            C = duals(a_sel, j_sel)
            dual_cols[:, start:stop] = C
            C = C / H[:, xp.asarray(a_sel, dtype="int")]          # LOO residuals
            errors[a_sel, j_sel] = xp.to_numpy((C * C).mean(0))
        return dual_cols

    # Rounds: every target still undecided evaluates its most promising alpha (first the one
    # with the smallest upper bound, then the smallest lower bound), and drops the alphas whose
    # lower bound exceeds its best exact error so far. One product of at most t columns a round.
    dual = xp.zeros((n, t))
    dual_alpha = np.full(t, -1)
    best_err = np.full(t, np.inf)
    pending = np.ones((n_alpha, t), dtype=bool)
    pick = upper.argmin(0)
    todo = every
    while todo.size:
        a_idx = pick[todo]
        cols = evaluate(a_idx, todo)
        pending[a_idx, todo] = False
        err = errors[a_idx, todo]
        better = np.flatnonzero(~(err >= best_err[todo]))       # NaN counts as better
        if better.size:
            dual[:, xp.asarray(todo[better], dtype="int")] = cols[:, xp.asarray(better,
                                                                                dtype="int")]
            dual_alpha[todo[better]] = a_idx[better]
            best_err[todo[better]] = err[better]
        pending &= ~(lower > best_err[None, :] * (1.0 + 1e-9))
        todo = np.flatnonzero(pending.any(0))
        pick = np.where(pending, lower, np.inf).argmin(0)
    best = errors.argmin(0)                                     # first on ties, like sklearn
    redo = np.flatnonzero(dual_alpha != best)                   # exact ties only
    if redo.size:
        dual[:, xp.asarray(redo, dtype="int")] = duals(best[redo], redo)
    return best, errors, dual


def select_alphas(errors, alpha_per_target: bool, xp):
    """Index of the best alpha per target (first one on ties, like sklearn)."""
    if alpha_per_target:
        return errors.argmin(0)
    best = errors.mean(1).argmin()
    return xp.asarray(np.full(errors.shape[1], int(best)), dtype="int")


def dual_coefficients(U, e, Y, alpha_per_col, xp, *, complete: bool):
    """``(G + alpha_j I)^-1 y_j`` for every target j with its own alpha."""
    Z = U.T @ Y
    W = 1.0 / (e[:, None] + alpha_per_col[None, :])
    C = U @ (W * Z)
    if not complete:
        C = C + (Y - U @ Z) / alpha_per_col[None, :]
    return C


def kfold_errors(K, Y, alphas, n_folds: int, xp, *, fit_intercept: bool = True):
    """Mean squared k-fold CV error per alpha and target, from the Gram ``K`` of training data.

    Folds are contiguous blocks in sample order (sklearn ``KFold`` without shuffling).
    """
    n = Y.shape[0]
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    errors = xp.zeros((len(alphas), Y.shape[1]))
    everything = np.arange(n)
    for f in range(n_folds):
        test = everything[bounds[f]:bounds[f + 1]]
        train = np.setdiff1d(everything, test)
        ti, si = xp.asarray(train, dtype="int"), xp.asarray(test, dtype="int")
        if fit_intercept:
            K_tt, K_st = double_center(K, si, ti, xp)
            y_mean = Y[ti].mean(0)
        else:
            K_tt, K_st = K[ti][:, ti], K[si][:, ti]
            y_mean = xp.zeros((Y.shape[1],))
        e, U = decompose_gram(K_tt, xp)
        Z = U.T @ (Y[ti] - y_mean[None, :])
        KU = K_st @ U
        for k, alpha in enumerate(alphas):
            pred = KU @ ((1.0 / (e + alpha))[:, None] * Z) + y_mean[None, :]
            errors[k] = errors[k] + ((Y[si] - pred) ** 2).sum(0)
    return errors / n


# --------------------------------------------------------------------------------------------
# estimator
# --------------------------------------------------------------------------------------------

class RidgeRegression(LinearPredictorMixin, BaseEstimator):
    """Ridge regression with alpha chosen per target from a grid, on the training data only.

    Parameters
    ----------
    alphas : float or sequence of float
        Candidate penalties (all > 0). With one value no selection happens.
    alpha_per_target : bool
        Choose one alpha per target (neuroid) instead of one shared by all.
    cv : "loo" or int
        Efficient leave-one-out (default) or k-fold CV over contiguous folds of the training
        samples.
    fit_intercept : bool
        Center X and Y on the training data and leave the intercept unpenalized.
    backend : {None, "numpy", "torch"}
        Array library; None is numpy unless ``device`` names a GPU (:mod:`neurogeom._backend`).
    device : None, str or torch.device
        None or ``"cpu"``: the CPU; ``"cuda:0"``…: that GPU (torch).
    dtype : {"float64", "float32"}
        Working precision (float64 by default).

    Attributes
    ----------
    coef_ : ndarray (n_targets, n_features)
        Coefficients on the uncentered features.
    intercept_ : ndarray (n_targets,)
        ``mean(Y) - mean(X) @ coef_.T`` (zeros without ``fit_intercept``).
    alpha_ : ndarray (n_targets,)
        Chosen alpha per target.
    alpha_index_ : ndarray (n_targets,)
        Position of each chosen alpha in ``alphas``.
    cv_errors_ : ndarray (n_alphas, n_targets)
        Mean squared CV error of every alpha (zeros when only one alpha was given).
    solver_ : str
        ``"kernel"`` (samples <= features) or ``"primal"``.
    n_features_in_ : int
        Number of features seen by ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 200)); Y = X[:, :3] + 0.1 * rng.standard_normal((50, 3))
    >>> model = RidgeRegression(alphas=np.logspace(-2, 3, 6)).fit(X, Y)
    >>> model.predict(X).shape
    (50, 3)
    >>> from sklearn.base import clone
    >>> clone(model).get_params()["alpha_per_target"]
    True
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, alpha_per_target: bool = True, cv="loo",
                 fit_intercept: bool = True, backend=None, device=None,
                 dtype: str = "float64"):
        self.alphas = alphas
        self.alpha_per_target = alpha_per_target
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def fit(self, X, Y):
        """Choose alpha(s) on the training data and fit the coefficients.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features (at least 2 samples; 3 for leave-one-out selection).
        Y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets; predictions keep this shape.

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        AnalysisError
            Bad input (shapes, non-finite values, too few samples), bad ``alphas`` or ``cv``,
            an unknown ``dtype`` or ``device``.
        """
        X, Y, y_1d = check_xy(X, Y, who="RidgeRegression")
        alphas = check_alphas(self.alphas)
        n, p = X.shape
        cv = check_cv(self.cv, n) if alphas.size > 1 else self.cv
        xp = get_namespace(self.backend, self.device, self.dtype)
        Xb, Yb = xp.asarray(X), xp.asarray(Y)
        if self.fit_intercept:
            x_mean, y_mean = Xb.mean(0), Yb.mean(0)
            Xb, Yb = Xb - x_mean[None, :], Yb - y_mean[None, :]
        else:
            x_mean, y_mean = xp.zeros((p,)), xp.zeros((Y.shape[1],))
        if n <= p:
            C = self._fit_gram(xp.matmul_self_t(Xb), Yb, alphas, cv, xp)
            coef = Xb.T @ C                                  # push-through identity
        else:
            e, V = decompose_gram(Xb.T @ Xb, xp)
            keep = e > e.max() * max(n, p) * xp.finfo_eps()
            e, V = e[keep], V[:, keep]
            U = (Xb @ V) / xp.sqrt(e)[None, :]
            errors = self._cv_errors(U, e, Yb, alphas, cv, xp, complete=False,
                                     gram=lambda: xp.matmul_self_t(Xb))
            best = select_alphas(errors, self.alpha_per_target, xp)
            alpha_col = xp.asarray(alphas)[best]
            Z = V.T @ (Xb.T @ Yb)
            coef = V @ (Z / (e[:, None] + alpha_col[None, :]))
            self._set_selection(alphas, best, errors, "primal", xp)
        self.coef_ = xp.to_numpy(coef.T)
        self.intercept_ = xp.to_numpy(y_mean - x_mean @ coef)
        self.n_features_in_ = p
        self._y_1d = y_1d
        return self

    def _fit_gram(self, G, Y, alphas, cv, xp, *, exact_errors: bool = True):
        """The kernel-form fit: alpha selection and dual coefficients ``(G + alpha_j I)^-1 y_j``
        from the training Gram ``G = Xc Xc^T`` (n × n) and targets ``Y`` (n × t), both centered
        on the training data when ``fit_intercept``.

        Used by :meth:`fit` when samples <= features and, with a Gram shared across splits, by
        :func:`~neurogeom.regression.neural_predictivity` (:meth:`_fit_predict_gram`). Sets
        ``alpha_``, ``alpha_index_``, ``cv_errors_`` and ``solver_``. With
        ``exact_errors=False`` leave-one-out selection of an alpha per target uses
        :func:`loo_select`, which finds the same alphas but leaves ``cv_errors_`` at ``inf``
        for the (alpha, target) pairs it proved cannot win.
        """
        e, U = decompose_gram(G, xp)
        if alphas.size > 1 and cv == "loo" and self.alpha_per_target and not exact_errors:
            best, errors, C = loo_select(U, e, Y, alphas, xp, complete=True,
                                         fit_intercept=self.fit_intercept)
            self._set_selection(alphas, best, errors, "kernel", xp)
            return C
        errors = self._cv_errors(U, e, Y, alphas, cv, xp, complete=True, gram=lambda: G)
        best = select_alphas(errors, self.alpha_per_target, xp)
        self._set_selection(alphas, best, errors, "kernel", xp)
        return dual_coefficients(U, e, Y, xp.asarray(alphas)[best], xp, complete=True)

    def _cv_errors(self, U, e, Y, alphas, cv, xp, *, complete: bool, gram):
        """Validation error of every (alpha, target): none to compute for a single alpha,
        efficient leave-one-out from the decomposition ``(U, e)``, or k-fold on the sample
        Gram matrix (``gram()`` makes it only when it is needed)."""
        if alphas.size == 1:
            return xp.zeros((1, Y.shape[1]))
        if cv == "loo":
            return loo_errors(U, e, Y, alphas, xp, complete=complete,
                              fit_intercept=self.fit_intercept)
        return kfold_errors(gram(), Y, alphas, cv, xp, fit_intercept=self.fit_intercept)

    def _fit_predict_gram(self, K, Y, train, test, xp):
        """Fit on the ``train`` rows and predict the ``test`` rows from a Gram ``K = X X^T`` of
        all samples (a backend array, best centered globally for conditioning), as
        :func:`~neurogeom.regression.neural_predictivity` does with one ``K`` for every split.

        Training rows are double-centered on their own mean (:func:`double_center`), so the
        result equals ``fit(X[train], Y[train]).predict(X[test])`` (``fit_intercept=True``
        only); ``alpha_``, ``alpha_index_`` and ``cv_errors_`` are set, ``coef_`` is not (the
        features are never seen). Returns the predictions as a backend array.
        """
        if not self.fit_intercept:
            raise AnalysisError("RidgeRegression: fitting from a shared Gram needs "
                                "fit_intercept=True (it centers each training fold)")
        alphas = check_alphas(self.alphas)
        cv = check_cv(self.cv, len(train)) if alphas.size > 1 else self.cv
        ti, si = xp.asarray(train, dtype="int"), xp.asarray(test, dtype="int")
        K_tt, K_st = double_center(K, si, ti, xp)
        y_mean = Y[ti].mean(0)
        C = self._fit_gram(K_tt, Y[ti] - y_mean[None, :], alphas, cv, xp, exact_errors=False)
        return K_st @ C + y_mean[None, :]

    def _set_selection(self, alphas, best, errors, solver: str, xp):
        """Record the selection (``best``/``errors`` are numpy or backend arrays)."""
        best, errors = (x if isinstance(x, np.ndarray) else xp.to_numpy(x) for x in (best, errors))
        self.alpha_ = alphas[best].astype(xp.dtype_name)
        self.alpha_index_ = best
        self.cv_errors_ = errors
        self.solver_ = solver
