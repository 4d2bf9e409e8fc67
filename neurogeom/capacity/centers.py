"""Center-correlation removal: the low-rank subspace of manifold centers (Cohen et al. 2020).

Correlated manifold centers inflate MFT capacity estimates. Following the reference MFT pipeline
(Cohen et al. 2020), we look for a K-dimensional subspace V of the span of the mean-subtracted
centers X (P × r) that, when projected out, leaves the centers as decorrelated as possible:

    cost(V) = ½ Σ_{μν} (C_μν − (c cᵀ)_μν)² / (c0_μ c0_ν),  C = XXᵀ, c = XV, c0_μ = C_μμ − ||c_μ||²,

minimized over the Stiefel manifold {V : VᵀV = I_K} for K = 1..maxK. The Euclidean gradient is
analytic (derived in :func:`_cost_and_grad`); the optimizer is Riemannian gradient descent with
a QR retraction, Barzilai–Borwein steps and an Armijo backtracking safeguard (no pymanopt).
"""

from __future__ import annotations

import zlib

import numpy as np

from ..errors import AnalysisError


def _cost_and_grad(V, X, C, diagC):
    """cost(V) and its Euclidean gradient ∂cost/∂V, for a stack of V (R, r, K).

    With A = C − ccᵀ and W = c0 c0ᵀ, cost = ½ Σ A²/W. Differentiating,
    dcost = Σ (A/W)⊙dA − ½ Σ (A²/W²)⊙dW, where dA = −(dc cᵀ + c dcᵀ) and dW_μν = dc0_μ c0_ν +
    c0_μ dc0_ν with dc0_μ = −2 c_μ·dc_μ. Using the symmetry of A and W this is
    ⟨dc, −2 (A/W) c + 2 diag(h) c⟩ with h = (A²/W²) c0, and dc = X dV gives
    ∂cost/∂V = Xᵀ(−2 (A/W) c + 2 h ⊙ c).
    """
    c = X @ V                                               # (R, P, K)
    c0 = np.maximum(diagC - np.einsum("rik,rik->ri", c, c), 1e-300)
    A = C - c @ np.swapaxes(c, 1, 2)
    AW = A / (c0[:, :, None] * c0[:, None, :])
    cost = 0.5 * np.einsum("rij,rij->r", A, AW)
    h = np.einsum("rij,rj->ri", AW * AW, c0)
    grad = X.T @ (-2.0 * (AW @ c) + 2.0 * h[..., None] * c)
    return cost, grad


def _retract(Y):
    """QR retraction onto the Stiefel manifold: the Q factor of Y with a positive-diagonal R.

    Computed as Cholesky-QR (YᵀY = LLᵀ, Q = Y L⁻ᵀ), which gives exactly that factor and is much
    cheaper than batched Householder QR for thin Y; it is accurate here because Y = V − t·ξ with
    V orthonormal and ξ tangent has YᵀY = I + t²ξᵀξ, well conditioned for the capped steps.
    """
    L = np.linalg.cholesky(np.swapaxes(Y, -1, -2) @ Y)
    return np.swapaxes(np.linalg.solve(L, np.swapaxes(Y, -1, -2)), -1, -2)


def stiefel_minimize(V0, X, *, max_iter: int = 300, gtol: float = 1e-5, ftol: float = 1e-7):
    """Minimize the center-correlation cost over {V : VᵀV = I} from each start in ``V0``.

    Riemannian gradient descent: the Riemannian gradient is the Euclidean one projected onto
    the tangent space, g − V sym(Vᵀg); steps are (alternating) Barzilai–Borwein lengths with nonmonotone
    Armijo backtracking (the usual companion of BB steps); QR retraction. The starts are optimized together (vectorized), each with its
    own step size, and each stops when its Riemannian gradient norm falls below
    ``gtol·(1 + cost)``, when ten iterations lowered the cost by less than ``ftol·(1 + cost)``
    (flat landscapes, e.g. nearly orthogonal centers), or after ``max_iter`` iterations.

    Parameters
    ----------
    V0 : ndarray (R, r, K) or (r, K)
        Starting points (orthonormalized here).
    X : ndarray (P, r)
        Mean-subtracted centers in an orthonormal basis of their span.

    Returns
    -------
    V : ndarray shaped like V0
    cost : ndarray (R,) or float
    n_iter : int
    """
    single = V0.ndim == 2
    V = _retract(V0[None] if single else V0)
    C = X @ X.T
    diagC = np.diag(C).copy()
    f, g = _cost_and_grad(V, X, C, diagC)

    def rgrad(V, g):
        VtG = np.swapaxes(V, 1, 2) @ g
        return g - V @ (0.5 * (VtG + np.swapaxes(VtG, 1, 2)))

    rg = rgrad(V, g)
    step = 1.0 / (np.sqrt(np.einsum("rik,rik->r", rg, rg)) + 1e-300)
    running = np.ones(V.shape[0], dtype=bool)
    history = [f.copy()]   # nonmonotone Armijo reference (Grippo–Lampariello–Lucidi), memory 10
    best_hist = [f.copy()]
    it = 0
    for it in range(1, max_iter + 1):
        gn2 = np.einsum("rik,rik->r", rg, rg)
        running &= np.sqrt(gn2) > gtol * (1.0 + f)
        if len(best_hist) > 10:  # the best cost stalled over ten iterations
            running &= (best_hist[-11] - best_hist[-1]) > ftol * (1.0 + np.abs(best_hist[-1]))
        if not running.any():
            break
        # a retraction step longer than ~1 (radian) is meaningless on the Stiefel manifold, and
        # BB lengths can explode when sᵀy ≈ 0: cap the displacement at 1
        t = np.where(running, np.minimum(step, 1.0 / np.sqrt(gn2 + 1e-300)), 0.0)
        fref = np.max(history, axis=0)
        accepted = ~running
        Vn, fn, gnew = V.copy(), f.copy(), g.copy()
        for _ in range(60):
            todo = ~accepted
            Vt = _retract(V[todo] - t[todo, None, None] * rg[todo])
            ft, gt = _cost_and_grad(Vt, X, C, diagC)
            ok = ft <= fref[todo] - 1e-4 * t[todo] * gn2[todo]
            idx = np.flatnonzero(todo)[ok]
            Vn[idx], fn[idx], gnew[idx] = Vt[ok], ft[ok], gt[ok]
            accepted[idx] = True
            t[np.flatnonzero(todo)[~ok]] *= 0.5
            if accepted.all():
                break
        running &= accepted      # no descent possible at machine precision: stop that start
        rgn = rgrad(Vn, gnew)
        sdiff, ydiff = Vn - V, rgn - rg
        sy = np.abs(np.einsum("rik,rik->r", sdiff, ydiff))
        ss = np.einsum("rik,rik->r", sdiff, sdiff)
        yy = np.einsum("rik,rik->r", ydiff, ydiff)
        # alternate the two Barzilai–Borwein lengths (sᵀs/sᵀy, sᵀy/yᵀy), which is usually
        # faster than either alone
        bb = ss / np.where(sy > 0, sy, 1.0) if it % 2 else sy / np.where(yy > 0, yy, 1.0)
        step = np.where(sy > 0, bb, 2 * t)
        V, f, g, rg = Vn, fn, gnew, rgn
        history = (history + [f.copy()])[-10:]
        best_hist = (best_hist + [np.minimum(best_hist[-1], f)])[-11:]
    if single:
        return V[0], float(f[0]), it
    return V, f, it


def mean_abs_cosine(X):
    """Mean |cos| between distinct rows of X (rows of zero norm count as cosine 0)."""
    P = X.shape[0]
    norms = np.linalg.norm(X, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    U = X / safe[:, None]
    cos = np.abs(U @ U.T)
    np.fill_diagonal(cos, 0.0)
    return float(cos.sum() / (P * (P - 1)))


def center_subspace(centers, *, seed: int = 0, n_reps: int = 3, max_iter: int = 300,
                    gtol: float = 1e-5, ftol: float = 1e-7, keys=None):
    """Find the center-correlation subspace to project out (Cohen et al. 2020).

    Parameters
    ----------
    centers : ndarray (P, N)
        Manifold centers (any common offset is removed here).
    seed : int
        Seed of the random initializations.
    n_reps : int
        Random initializations per K; the one leaving the most of every center (the reference's
        "stability", min_μ ||X0_μ|| / ||X_μ||) is kept. The reference uses 10; 3 is the default
        here for speed (the chosen K and residuals agree to ~1e-4 on the benchmark data).
    max_iter, gtol, ftol
        Stiefel optimizer limits (see :func:`stiefel_minimize`).
    keys : sequence, optional
        One label per center. Each start is V0 ∝ Xᵀs with s drawn per center from a stream
        keyed by its label, so reordering the centers reorders s with them and yields the same
        subspace (default keys: the indices).

    Returns
    -------
    dict
        ``V`` (N, K) orthonormal basis to project out (K = 0: nothing), ``K``, ``rho_c``
        (mean |cos| between mean-subtracted centers before removal), ``residuals`` (mean |cos|
        after removing K = 1..tried dims), ``max_k``.

    Notes
    -----
    maxK is the reference's rule (index where the cumulative center variance passes 95%, plus
    11) capped at r − 1, with r ≤ P − 1 the rank of the mean-subtracted centers: removing all r
    directions would send every center to the global mean (zero), after which the per-manifold
    normalization is undefined. The reference caps at nothing and crashes for small P; here
    P = 2 gives K = 0 (nothing can be removed) and P = 3 gives K ≤ 1.
    """
    from .._blas import single_threaded_blas

    with single_threaded_blas():  # tiny matrices: threads only cost
        return _center_subspace(np.asarray(centers, dtype=np.float64), seed, n_reps, max_iter,
                                gtol, ftol, keys)


def _keyed_normal(seed, keys, size):
    """(len(keys), size) standard normals, row i from a stream keyed by str(keys[i])."""
    rows = []
    for key in keys:
        spawn = zlib.crc32(("centers/" + str(key)).encode("utf-8"))
        rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(spawn,)))
        rows.append(rng.standard_normal(size))
    return np.array(rows)


def _center_subspace(centers, seed, n_reps, max_iter, gtol, ftol, keys):
    P, N = centers.shape
    Xb = centers - centers.mean(axis=0, keepdims=True)
    U, s, Vt = np.linalg.svd(Xb, full_matrices=False)
    if s.size == 0 or s[0] <= 0:
        raise AnalysisError("all manifold centers are identical: center correlations (and the "
                            "capacity of manifolds that differ only in shape) are undefined; "
                            "pass center_correlations=False to skip this step")
    r = int(np.sum(s > s[0] * max(P, N) * np.finfo(float).eps))
    X = U[:, :r] * s[:r]            # centers in an orthonormal basis of their span (P × r)
    basis = Vt[:r].T                # (N, r)
    rho_c = mean_abs_cosine(X)
    total = np.cumsum(s ** 2) / np.sum(s ** 2)
    max_k = int(np.argmax(np.where(total < 0.95, total, 0.0))) + 11  # reference rule
    max_k = min(max_k, r - 1)
    out = {"rho_c": rho_c, "K": 0, "V": np.zeros((N, 0)), "residuals": [], "max_k": max_k}
    if max_k < 1:
        return out
    keys = list(range(P)) if keys is None else list(keys)
    draws = _keyed_normal(seed, keys, max_k * n_reps)          # (P, max_k · n_reps)
    V1 = None
    results = []
    for k in range(1, max_k + 1):
        starts = []
        for rep in range(n_reps):
            v = (draws[:, (k - 1) * n_reps + rep] @ X)[:, None]
            V0 = v if V1 is None else np.hstack([v, V1])
            starts.append(np.linalg.qr(V0)[0])
        Vs, _, _ = stiefel_minimize(np.stack(starts), X, max_iter=max_iter, gtol=gtol, ftol=ftol)
        X0 = X[None] - (X @ Vs) @ np.swapaxes(Vs, 1, 2)
        stab = np.min(np.linalg.norm(X0, axis=2) / np.linalg.norm(X, axis=1).clip(1e-300), axis=1)
        best = Vs[int(np.argmax(stab))]
        V1 = best
        X0 = X - (X @ V1) @ V1.T
        results.append((mean_abs_cosine(X0), V1))
        res = [r_ for r_, _ in results]
        # the reference stops after three consecutive increases of the residual
        if k > 4 and res[-1] > res[-2] > res[-3] > res[-4]:
            break
    residuals = [r_ for r_, _ in results]
    kbest = int(np.argmin(residuals)) + 1
    out.update(K=kbest, V=basis @ results[kbest - 1][1], residuals=residuals)
    return out
