"""Partial least squares regression (PLS2, NIPALS regression mode) without deflated copies of X.

sklearn's ``PLSRegression`` finds each component's weight vector by power iterations on the
deflated data ``X_k`` and ``Y_k`` and then deflates both, so it touches the full n × p matrix
dozens of times per component. The weight it converges to is the leading left singular vector of
the cross-covariance ``S_k = X_k^T Y_k``. Here:

* ``S_k`` is kept explicitly (p × t) and updated by a rank-one step: with score ``t_k = X_k w_k``
  and loadings ``p_k = X_k^T t_k / t_k·t_k``, ``q_k = Y_k^T t_k / t_k·t_k``, deflation gives
  ``S_{k+1} = S_k - (t_k·t_k) p_k q_k^T`` (the cross terms coincide because
  ``X_k^T t_k = (t_k·t_k) p_k`` and ``t_k^T Y_k = (t_k·t_k) q_k^T``).
* ``w_k`` is the exact leading singular vector of ``S_k`` from the eigendecomposition of the
  smaller Gram (``S_k^T S_k``, t × t, when targets are fewer than features).
* ``X_k`` is never formed: ``t_k = X w_k - sum_j t_j (p_j·w_k)`` and
  ``X_k^T t_k = X^T t_k - sum_j p_j (t_j·t_k)``.

Predictions then follow sklearn exactly: rotations ``R = W (P^T W)^-1`` and
``coef = R Q^T`` on data centered by the training means (``scale=False``).
"""

from __future__ import annotations

import numpy as np

from .._backend import get_namespace
from ..errors import AnalysisError
from ._validation import check_fitted, check_xy


def pls_kernel(X, Y, n_components: int, xp):
    """Weights, scores and loadings of PLS regression on centered ``X`` (n×p), ``Y`` (n×t).

    Returns
    -------
    (W, T, P, Q, n_used) : backend arrays (p×k, n×k, p×k, t×k) and the number of components
    extracted (smaller than requested only when ``X`` runs out of rank).
    """
    n, p = X.shape
    t = Y.shape[1]
    S = X.T @ Y                                        # p × t cross-covariance
    W, T, P, Q = (xp.zeros((p, n_components)), xp.zeros((n, n_components)),
                  xp.zeros((p, n_components)), xp.zeros((t, n_components)))
    flat = X.reshape(-1)
    scale = float(flat @ flat) ** 0.5 or 1.0             # Frobenius norm without a temporary
    k_used = 0
    for k in range(n_components):
        # Rescale before the Gram: late components have tiny S_k whose squares would drift
        # into subnormal numbers (slow and inaccurate); singular vectors do not change.
        s_max = float(abs(S).max())
        if s_max == 0:
            break
        Sn = S / s_max
        if t <= p:
            _, vecs = xp.eigh(Sn.T @ Sn)
            w = Sn @ vecs[:, -1]
        else:
            _, vecs = xp.eigh(Sn @ Sn.T)
            w = vecs[:, -1]
        w = w / float((w * w).sum()) ** 0.5
        # sklearn's sign convention (_svd_flip_1d): largest |weight| positive.
        if float(w[int(abs(w).argmax())]) < 0:
            w = -w
        score = X @ w
        if k:
            score = score - T[:, :k] @ (P[:, :k].T @ w)
        tt = float((score * score).sum())
        if tt <= (xp.finfo_eps() * scale) ** 2:
            break
        load_x = X.T @ score
        if k:
            load_x = load_x - P[:, :k] @ (T[:, :k].T @ score)
        load_x = load_x / tt
        load_y = (Y.T @ score) / tt                    # Y_k^T t = Y^T t: earlier scores ⟂ t
        S = S - tt * xp.outer(load_x, load_y)
        W[:, k], T[:, k], P[:, k], Q[:, k] = w, score, load_x, load_y
        k_used = k + 1
    return W[:, :k_used], T[:, :k_used], P[:, :k_used], Q[:, :k_used], k_used


def kernel_pls_predict(K, K_test, Y, n_components: int, xp):
    """PLS regression predictions from centered Gram matrices only (kernel PLS).

    The same NIPALS regression-mode model as :func:`pls_kernel`, written in sample space
    (Rännar et al. 1994; Rosipal & Trejo 2001), which is cheaper when stimuli are fewer than
    features and lets :func:`neural_predictivity` reuse one Gram matrix across splits:

    * ``S_k^T S_k = Y_k^T K_k Y_k`` (``K_k = X_k X_k^T``), kept as a t × t matrix updated by
      rank-2 steps; its leading eigenvector ``v`` gives the Y-score ``u = Y_k v`` and the
      X-score ``t = X_k w = K_k u / sqrt(u^T K_k u)`` (``w = X_k^T u / ||X_k^T u||``);
    * with ``D_k`` the projector removing earlier scores, ``Y_k = D_k Y`` and
      ``K_k x = D_k K x`` for x in the range of ``D_k``, so deflated matrices are never formed;
      ``K u`` is assembled from ``K Y`` (computed once) and the stored ``K t_j``, leaving one
      n × n matrix-vector product (``K t``) per component;
    * ``W = X^T U~ C`` with ``U~`` the (deflated) Y-scores, hence ``R Q^T = X^T U~ (T^T K U~)^-1
      T^T Y`` and test predictions ``K_test U~ (T^T K U~)^-1 T^T Y``.

    Parameters
    ----------
    K : backend array (n × n)
        Gram matrix of the centered training features.
    K_test : backend array (m × n)
        Test × training cross kernel, centered with the training mean.
    Y : backend array (n × t)
        Centered training targets.

    Returns
    -------
    (predictions of the centered targets (m × t), number of components extracted)
    """
    tiny = _rank_tolerance(_diag(K, xp), xp)
    (T, U, KU, used), = _pls_lockstep([Y], [K @ Y], lambda items: [K @ x for _, x in items],
                                      n_components, [tiny], xp)
    return K_test @ _dual_weights(T, U, KU, Y, xp), used


def kernel_pls_splits(K, Y, splits, n_components: int, xp):
    """Kernel PLS on every split at once from one Gram matrix of all stimuli.

    Equivalent to :func:`kernel_pls_predict` on each split's double-centered training Gram and
    test × training cross kernel, without forming either n_train × n_train matrix: the splits
    run in lockstep and each component's ``K_s t_s`` products for all splits are one product of
    ``K`` with the zero-padded scores, so ``K`` is read once per component instead of once per
    split, and no per-split copy of it is made. With ``r_s = K[:, tr] 1 / n_s`` and
    ``m = mean r_s[tr]`` the training Gram of split s is
    ``K_s = K[tr, tr] - r 1^T - 1 r^T + m 1 1^T``.

    Parameters
    ----------
    K : backend array (N × N)
        Gram matrix of all stimuli's features (centered globally for conditioning).
    Y : backend array (N × t)
        Targets of all stimuli (uncentered).
    splits : sequence of (train_rows, test_rows) integer arrays

    Returns
    -------
    list of (predictions of the test rows (m_s × t) as backend arrays, components used)
    """
    N = K.shape[0]
    tr_idx = [xp.asarray(tr, dtype="int") for tr, _ in splits]
    ind = xp.zeros((N, len(splits)))
    for j, tr in enumerate(tr_idx):
        ind[tr, j] = 1.0 / tr.shape[0]
    R = K @ ind                                         # column s: r_s on all rows
    rs = [R[tr, j] for j, tr in enumerate(tr_idx)]
    ms = [float(r.mean()) for r in rs]
    diagK = _diag(K, xp)
    Yg = Y - Y.mean(0)[None, :]                         # small offsets below: less cancellation
    KY = K @ Yg                                         # one product serves every split
    Ys, KYs, means, tinys, K_tests = [], [], [], [], []
    for j, ((tr_rows, te_rows), tr) in enumerate(zip(splits, tr_idx)):
        shift = Yg[tr].mean(0)
        Yc = Yg[tr] - shift[None, :]                    # = Y[tr] - its training mean
        # K[tr, tr] Yc = (K Yg)[tr] - K[tr, rest] Yg[rest] - (K[tr, tr] 1) shift^T, with rest
        # the rows outside the training set (usually the test set: K[tr, te] = K[te, tr]^T)
        rest_rows = np.setdiff1d(np.arange(N), np.asarray(tr_rows))
        rest = xp.asarray(rest_rows, dtype="int")
        K_rest = xp.take2d(K, rest, tr)
        te_rows = np.asarray(te_rows)
        if np.array_equal(rest_rows, np.sort(te_rows)):
            K_tests.append(K_rest[xp.asarray(np.searchsorted(rest_rows, te_rows), dtype="int")])
        else:
            K_tests.append(xp.take2d(K, xp.asarray(te_rows, dtype="int"), tr))
        KYc = (KY[tr] - K_rest.T @ Yg[rest]
               - (tr.shape[0] * rs[j])[:, None] * shift[None, :])
        KYs.append(_centered_rows(KYc, Yc, rs[j], ms[j]))
        Ys.append(Yc)
        means.append(Y[tr].mean(0))
        tinys.append(_rank_tolerance(diagK[tr] - 2.0 * rs[j] + ms[j], xp))   # diag of K_s

    def products(items):
        pad = xp.zeros((N, len(items)))
        for j, (s, x) in enumerate(items):
            pad[tr_idx[s], j] = x
        KP = K @ pad
        return [_centered_rows(KP[tr_idx[s], j], x, rs[s], ms[s])
                for j, (s, x) in enumerate(items)]

    fits = _pls_lockstep(Ys, KYs, products, n_components, tinys, xp)
    out = []
    for j, (T, U, KU, used) in enumerate(fits):
        K_st = K_tests[j]                                # rows: the test rows in split order
        K_st -= K_st.mean(1)[:, None]
        K_st -= rs[j][None, :] - ms[j]
        out.append((K_st @ _dual_weights(T, U, KU, Ys[j], xp) + means[j][None, :], used))
    return out


def _centered_rows(Ptr, x, r, m: float):
    """``K_s x`` from ``Ptr = (K @ pad(x))[tr] = K[tr, tr] x``: the double-centering terms
    ``K_s x = K[tr, tr] x - r (1^T x) - 1 (r^T x) + m (1^T x) 1`` for a vector or the columns of a
    matrix ``x``."""
    sx = x.sum(0)
    if x.ndim == 1:
        return Ptr - r * sx - (float(r @ x) - m * float(sx))
    return Ptr - r[:, None] * sx[None, :] - (r @ x - m * sx)[None, :]


def _rank_tolerance(diag, xp) -> float:
    """Threshold on ``||X_k^T u||^2 / ||u||^2`` below which X is exhausted: n·eps times the
    largest entry of the PSD Gram (its largest diagonal entry), the round-off level of the
    n-term products that form it."""
    return diag.shape[0] * xp.finfo_eps() * max(float(diag.max()), 1e-300)


def _diag(K, xp):
    """Diagonal of a square backend array."""
    return xp.diagonal(K)


def _dual_weights(T, U, KU, Y, xp):
    """``U (T^T K U)^-1 T^T Y``: sample-space coefficients whose product with a test × training
    kernel gives the PLS predictions of centered targets (``K U`` is passed as ``KU``)."""
    inner = np.linalg.solve(xp.to_numpy(T.T @ KU), xp.to_numpy(T.T @ Y))
    return U @ xp.asarray(inner)


def _pls_lockstep(Ys, KYs, products, n_components: int, tinys, xp):
    """NIPALS kernel PLS on several independent problems in lockstep (the algebra is in
    :func:`kernel_pls_predict`).

    ``Ys[s]`` are centered targets, ``KYs[s] = K_s Ys[s]``, ``tinys[s]`` the rank threshold and
    ``products([(s, x), ...])`` returns ``[K_s x, ...]`` for the problems still running, all in
    one call per component. Returns one ``(T, U, K U, used)`` per problem.
    """
    S = len(Ys)
    n_of = [Y.shape[0] for Y in Ys]
    A = [Y.T @ KY for Y, KY in zip(Ys, KYs)]             # S_0^T S_0, t × t
    a_ref = [float(abs(a).max()) for a in A]
    T = [xp.zeros((n, n_components)) for n in n_of]
    U = [xp.zeros((n, n_components)) for n in n_of]
    KT = [xp.zeros((n, n_components)) for n in n_of]    # K t_j (K undeflated)
    KU = [xp.zeros((n, n_components)) for n in n_of]    # K u_j
    used = [0] * S
    live = list(range(S))
    for k in range(n_components):
        pending = []
        for s in live:
            a_max = float(abs(A[s]).max())
            if a_max == 0:
                continue
            v = xp.top_eigenvector(A[s] / a_max)         # rescaled: see pls_kernel
            Tk = T[s][:, :k]
            # Y_k = D_k Y (Y deflated by the x-scores), so u = Y_k v = D_k (Y v) = Y v - T c
            # and, as u lies in the range of D_k, K_k u = D_k K D_k u = D_k (K u) with
            # K u = (K Y) v - (K T) c from stored products: neither Y_k nor K_k is formed.
            yv = Ys[s] @ v
            c = _coefficients(yv, Tk)
            u = yv - Tk @ c if k else yv
            Ku = KYs[s] @ v - KT[s][:, :k] @ c if k else KYs[s] @ v
            Kku = _project_out(Ku, Tk, xp)
            norm2 = float((u * Kku).sum())               # ||X_k^T u||^2
            if norm2 <= tinys[s] * float((u * u).sum()):
                continue                                 # X_k exhausted: rank reached
            pending.append((s, u, Ku, Kku / norm2 ** 0.5))
        if not pending:
            break
        live = [s for s, *_ in pending]
        K_scores = products([(s, score) for s, *_, score in pending])  # one K product
        for (s, u, Ku, score), K_score in zip(pending, K_scores):
            Y, Tk = Ys[s], T[s][:, :k]
            Kt = _project_out(K_score, Tk, xp)           # K_k t
            tt = float((score * score).sum())
            coupling = (score @ Y) / tt                  # q = Y_k^T t / t·t = Y^T t / t·t
            g = Kt @ Y                                   # Y_k^T K_k t = Y^T (K_k t)
            s_tKt = float((score * Kt).sum())
            # A_{k+1} = Y_{k+1}^T K_{k+1} Y_{k+1} = A - g q^T - q g^T + (t^T K_k t) q q^T: a
            # rank-2 update in place of an n × n × t product per component.
            A[s] = (A[s] - xp.outer(g, coupling) - xp.outer(coupling, g)
                    + s_tKt * xp.outer(coupling, coupling))
            T[s][:, k], U[s][:, k], KT[s][:, k], KU[s][:, k] = score, u, K_score, Ku
            used[s] = k + 1
            if float(abs(A[s]).max()) < 1e-3 * a_ref[s]:
                # The updates cancel: their round-off is relative to the old, larger A.
                # Recompute exactly whenever A has shrunk 1000-fold so the error stays ~1e3 eps
                # of A: with C the coefficients of Y on the scores, Y_k = Y - T C and
                # K Y_k = KY - (KT) C.
                Tu = T[s][:, :k + 1]
                C = _coefficients(Y, Tu)
                A[s] = (Y - Tu @ C).T @ _project_out(KYs[s] - KT[s][:, :k + 1] @ C, Tu, xp)
                a_ref[s] = float(abs(A[s]).max())
    if min(used) == 0:
        raise AnalysisError("PLS: X^T Y is zero (constant features or targets); nothing to fit")
    return [(T[s][:, :used[s]], U[s][:, :used[s]], KU[s][:, :used[s]], used[s])
            for s in range(S)]


def _coefficients(x, T):
    """Coefficients of ``x`` (vector or matrix) on the orthogonal columns of ``T``."""
    if T.shape[1] == 0:
        return None
    return (T.T @ x) / (T * T).sum(0)[(slice(None),) + (None,) * (x.ndim - 1)]


def _project_out(x, T, xp):
    """``x`` (vector or matrix) minus its components along the orthogonal columns of ``T``."""
    if T.shape[1] == 0:
        return x
    return x - T @ _coefficients(x, T)


class PLSRegression:
    """PLS regression (sklearn ``PLSRegression(scale=False)`` semantics, exact singular vectors).

    Parameters
    ----------
    n_components : int
        Number of latent components (Brain-Score uses 25).
    backend : {None, "numpy", "torch"}
        Array library; None is numpy unless ``device`` names a GPU (:mod:`neurogeom._backend`).
    device : None, str or torch.device
        None or ``"cpu"``: the CPU; ``"cuda:0"``…: that GPU (torch).
    dtype : {"float64", "float32"}

    Attributes
    ----------
    coef_ : ndarray (n_targets, n_features)
    intercept_ : ndarray (n_targets,)
    x_weights_, x_loadings_, y_loadings_, x_rotations_ : ndarray
        As in sklearn (features × components / targets × components).
    n_components_ : int
        Components actually extracted (fewer than requested when X has lower rank).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 100)); Y = X[:, :2] @ np.ones((2, 3))
    >>> PLSRegression(n_components=5).fit(X, Y).predict(X).shape
    (40, 3)
    """

    def __init__(self, n_components: int = 25, backend=None, device=None,
                 dtype: str = "float64"):
        self.n_components = n_components
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def fit(self, X, Y):
        X, Y, self._y_1d = check_xy(X, Y, who="PLSRegression")
        n, p = X.shape
        k = self.n_components
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise AnalysisError(f"PLSRegression: n_components must be a positive integer, "
                                f"got {k!r}")
        if k > p:
            raise AnalysisError(f"PLSRegression: n_components={k} exceeds the {p} features")
        xp = get_namespace(self.backend, self.device, self.dtype)
        Xb, Yb = xp.asarray(X), xp.asarray(Y)
        x_mean, y_mean = Xb.mean(0), Yb.mean(0)
        Xc, Yc = Xb - x_mean[None, :], Yb - y_mean[None, :]
        W, T, P, Q, used = pls_kernel(Xc, Yc, int(k), xp)
        if used == 0:
            raise AnalysisError("PLSRegression: X^T Y is zero (constant X or Y); nothing to fit")
        # R = W (P^T W)^-1; P^T W is upper triangular with unit diagonal, hence invertible.
        R = W @ xp.asarray(np.linalg.inv(xp.to_numpy(P.T @ W)))
        coef = R @ Q.T
        self.x_weights_, self.x_loadings_ = xp.to_numpy(W), xp.to_numpy(P)
        self.y_loadings_, self.x_rotations_ = xp.to_numpy(Q), xp.to_numpy(R)
        self.x_scores_ = xp.to_numpy(T)
        self.coef_ = xp.to_numpy(coef.T)
        self.intercept_ = xp.to_numpy(y_mean - x_mean @ coef)
        self.n_components_ = used
        self.n_features_in_ = p
        return self

    def predict(self, X):
        check_fitted(self)
        X, _, _ = check_xy(X, who="PLSRegression.predict")
        if X.shape[1] != self.n_features_in_:
            raise AnalysisError(f"PLSRegression was fitted with {self.n_features_in_} features, "
                                f"X has {X.shape[1]}")
        out = X @ self.coef_.T + self.intercept_[None, :]
        return out[:, 0] if self._y_1d else out
