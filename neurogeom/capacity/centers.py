"""Center-correlation removal: the low-rank subspace of manifold centers (Cohen et al. 2020).

Correlated manifold centers inflate MFT capacity estimates. Following the reference MFT pipeline
(Cohen et al. 2020), we look for a K-dimensional subspace V of the span of the mean-subtracted
centers X (P × r) that, when projected out, leaves the centers as decorrelated as possible:

    cost(V) = ½ Σ_{μν} (C_μν − (c cᵀ)_μν)² / (c0_μ c0_ν),  C = XXᵀ, c = XV, c0_μ = C_μμ − ||c_μ||²,

minimized over the Stiefel manifold {V : VᵀV = I_K} for K = 1..maxK. The Euclidean gradient is
analytic (derived in :func:`_cost_and_grad`), and so is the Hessian of the cost pulled back to a
chart of the Grassmann manifold (:func:`_pullback_hessian`: the cost depends on V only through
its span). Two optimizers (no pymanopt): Riemannian Newton (:func:`stiefel_newton`, saddle-free
steps, 10–60 iterations; the default while the Hessians are small, i.e. for about 10 centers) and
Riemannian gradient descent with Barzilai–Borwein steps (:func:`stiefel_minimize`, hundreds of
iterations on flat landscapes, but cheap per iteration for many centers).

Why the answer used to depend on the seed (issue 15). With X0 = X(I − VVᵀ) the residual
centers, the cost is ½ Σ_μν cos²(X0_μ, X0_ν): the frame potential of the P unit residuals in the
d = r − K dims left, so cost ≥ P²/(2d) (equality for tight frames, a continuum of V). It is
non-convex with several proper local optima, and it is ill-posed where a residual vanishes (a
center swallowed by V has undefined cosines; restarts drift towards such points without
converging). On the digits CNN's ``block2.pool`` (10 digit manifolds) single random starts reach
optima whose capacities differ by 10–20%. :func:`center_subspace` therefore runs deterministic
(spectral) and many uniformly random restarts per K, discards the degenerate ones and keeps the
lowest cost; a restart that reaches the frame-potential floor is a global minimum and ends
the search for that K. How far the other optima would move the capacity is reported by
``manifold_capacity`` as ``center_step_spread``.
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
    cost, grad, _ = _cost_grad_ratio(V, X, C, diagC)
    return cost, grad


def _cost_grad_ratio(V, X, C, diagC):
    """:func:`_cost_and_grad` plus min_μ c0_μ / C_μμ per start (the squared fraction of the
    worst-kept center's norm left outside V; see ``min_ratio`` of :func:`stiefel_minimize`)."""
    c = X @ V                                               # (R, P, K)
    c0 = diagC - np.einsum("rik,rik->ri", c, c)
    ratio = np.min(c0 / diagC, axis=1)
    c0 = np.maximum(c0, 1e-300)
    A = C - c @ np.swapaxes(c, 1, 2)
    AW = A / (c0[:, :, None] * c0[:, None, :])
    cost = 0.5 * np.einsum("rij,rij->r", A, AW)
    h = np.einsum("rij,rj->ri", AW * AW, c0)
    grad = X.T @ (-2.0 * (AW @ c) + 2.0 * h[..., None] * c)
    return cost, grad, ratio


def _retract(Y):
    """QR retraction onto the Stiefel manifold: the Q factor of Y with a positive-diagonal R.

    Computed as Cholesky-QR (YᵀY = LLᵀ, Q = Y L⁻ᵀ), which gives exactly that factor and is much
    cheaper than batched Householder QR for thin Y; it is accurate here because Y = V − t·ξ with
    V orthonormal and ξ tangent has YᵀY = I + t²ξᵀξ, well conditioned for the capped steps.
    """
    if Y.shape[-1] == 1:
        return Y / np.sqrt(np.sum(Y * Y, axis=-2, keepdims=True))
    L = np.linalg.cholesky(np.swapaxes(Y, -1, -2) @ Y)
    return Y @ np.swapaxes(np.linalg.inv(L), -1, -2)


def stiefel_minimize(V0, X, *, max_iter: int = 1000, gtol: float = 1e-6, ftol: float = 1e-9,
                     min_ratio: float = 0.0, best_of: bool = False, prune: float | None = None,
                     screen: int = 50, return_info: bool = False):
    """Minimize the center-correlation cost over {V : VᵀV = I} from each start in ``V0``.

    Riemannian gradient descent: the Riemannian gradient is the Euclidean one projected onto
    the tangent space, g − V sym(Vᵀg); steps are (alternating) Barzilai–Borwein lengths with
    nonmonotone Armijo backtracking (the usual companion of BB steps); QR retraction. The starts
    are optimized together (vectorized), each with its own step size, and each stops when its
    Riemannian gradient norm falls below ``gtol·(1 + cost)`` (converged), when ten iterations
    lowered its cost by less than ``ftol·(1 + cost)`` (flat landscapes, e.g. nearly orthogonal
    centers), when it becomes degenerate (below), or after ``max_iter`` iterations.

    Parameters
    ----------
    V0 : ndarray (R, r, K) or (r, K)
        Starting points (orthonormalized here).
    X : ndarray (P, r)
        Mean-subtracted centers in an orthonormal basis of their span.
    max_iter, gtol, ftol
        Stopping rules (above).
    min_ratio : float
        A start is stopped as *degenerate* once some center keeps less than this fraction of
        its norm outside V, min_μ ||X_μ − VVᵀX_μ|| / ||X_μ|| < min_ratio: the cost can always
        be lowered by turning V onto a center (a center with no residual has undefined
        correlations, so the cost near it is set by the last digits of its residual), and an
        optimizer that heads there never converges (0 disables the check).
    best_of : bool
        Only the lowest cost matters (best of restarts): every start stops once one proper
        start reaches the cost's global floor P²/(2(r − K)).
    prune : float, optional
        With ``best_of``: from iteration ``screen`` on, a start whose cost is above
        (1 + prune) × the lowest cost of the proper (non-degenerate) starts is stopped, since
        only the lowest optimum is kept; its result is then not a stationary point. None: every
        start runs to its own stopping rule.
    screen : int
        Iterations before pruning begins.
    return_info : bool
        Also return per-start diagnostics.

    Returns
    -------
    V : ndarray shaped like V0
    cost : ndarray (R,) or float
    n_iter : int
        Iterations run (the most of any start).
    info : dict, only with ``return_info``
        ``converged`` (gradient rule met), ``degenerate``, ``pruned``, ``ratio`` (min_μ residual norm
        fraction at the end), each (R,) (or scalars for a single start).
    """
    single = V0.ndim == 2
    V = _retract(V0[None] if single else V0)
    C = X @ X.T
    diagC = np.diag(C).copy()
    f, g, rat = _cost_grad_ratio(V, X, C, diagC)

    def rgrad(V, g):
        VtG = np.swapaxes(V, 1, 2) @ g
        return g - V @ (0.5 * (VtG + np.swapaxes(VtG, 1, 2)))

    rg = rgrad(V, g)
    step = 1.0 / (np.sqrt(np.einsum("rik,rik->r", rg, rg)) + 1e-300)
    running = np.ones(V.shape[0], dtype=bool)
    converged = np.zeros(V.shape[0], dtype=bool)
    degenerate = rat < min_ratio ** 2
    pruned = np.zeros(V.shape[0], dtype=bool)
    running &= ~degenerate
    # nonmonotone Armijo reference (Grippo–Lampariello–Lucidi): the last 10 costs; and the
    # best cost of the last 11 iterations, for the stall rule (ring buffers)
    history = np.repeat(f[None], 10, axis=0)
    best_hist = np.repeat(f[None], 11, axis=0)
    it = 0
    # cost ≥ P²/(2(r − K)) (frame potential of P unit vectors in the r − K dims left: ½ Σ cos²
    # ≥ P²/(2d)); a start that reaches this bound is at a global minimum
    P, r = X.shape
    K = V.shape[2]
    floor = P * P / (2.0 * (r - K)) if r > K else np.inf
    for it in range(1, max_iter + 1):
        gn2 = np.einsum("rik,rik->r", rg, rg)
        at_floor = f <= floor * (1 + 1e-6)
        converged |= running & ((np.sqrt(gn2) <= gtol * (1.0 + f)) | at_floor)
        if best_of and (at_floor & ~degenerate).any():
            running[:] = False   # best of restarts: nothing can go below a global minimum
        running &= ~converged
        if it > 10:  # the best cost stalled over ten iterations
            now, then = best_hist[(it - 1) % 11], best_hist[it % 11]
            running &= (then - now) > ftol * (1.0 + np.abs(now))
        if not running.any():
            break
        # a retraction step longer than ~1 (radian) is meaningless on the Stiefel manifold, and
        # BB lengths can explode when sᵀy ≈ 0: cap the displacement at 1
        t = np.where(running, np.minimum(step, 1.0 / np.sqrt(gn2 + 1e-300)), 0.0)
        fref = np.max(history, axis=0)
        accepted = ~running
        Vn, fn, gnew, ratn = V.copy(), f.copy(), g.copy(), rat.copy()
        for _ in range(60):
            todo = ~accepted
            Vt = _retract(V[todo] - t[todo, None, None] * rg[todo])
            ft, gt, rt = _cost_grad_ratio(Vt, X, C, diagC)
            ok = ft <= fref[todo] - 1e-4 * t[todo] * gn2[todo]
            idx = np.flatnonzero(todo)[ok]
            Vn[idx], fn[idx], gnew[idx], ratn[idx] = Vt[ok], ft[ok], gt[ok], rt[ok]
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
        V, f, g, rg, rat = Vn, fn, gnew, rgn, ratn
        if min_ratio > 0:
            newly = running & (rat < min_ratio ** 2)
            degenerate |= newly
            running &= ~newly
        if best_of and prune is not None and it >= screen and (~degenerate).any():
            best = np.min(f[~degenerate])
            pruned |= running & (f > best + prune * abs(best))
            running &= ~pruned
        history[it % 10] = f
        best_hist[it % 11] = np.minimum(best_hist[(it - 1) % 11], f)
    info = {"converged": converged, "degenerate": degenerate, "pruned": pruned,
            "ratio": np.sqrt(np.maximum(rat, 0.0))}
    return _optimizer_output(V, f, it, info, single, return_info)


def _pullback_hessian(V, Vperp, X, C, diagC):
    """The Hessian (R, n, n), n = K(r − K), of the cost pulled back to the chart
    Y(Z) = V + V⊥Z of the Grassmann manifold at orthonormal V, in the coordinates
    j = a·K + b of Z (the chart direction E_j = e_a e_bᵀ, i.e. D_j = V⊥E_j), in closed form.

    The gradient at any full-rank basis Y of the subspace (the cost depends on V only through
    the projector Y G⁻¹ Yᵀ, G = YᵀY; A = XY, B = A G⁻¹ Aᵀ, E as in :func:`_cost_and_grad`) is
    ∇_Y = 2 Xᵀ E A G⁻¹ − 2 Y G⁻¹ AᵀEA G⁻¹. Along D (VᵀD = 0) at Y = V, G does not move to first
    order and V⊥ᵀ annihilates the terms of −2Y G⁻¹AᵀEAG⁻¹ other than −2D AᵀEA, so the Hessian
    column of D is V⊥ᵀ(2Xᵀ d(EA)) − 2 V⊥ᵀD AᵀEA, with EA = −QA + h⊙A, Q = (C − B)/W,
    W = c0c0ᵀ, h = (Q⊙Q)c0, and d(EA) = −dQ A − Q dA + dh⊙A + h⊙dA.

    Every directional derivative is low-rank in the chart coordinates, which avoids one P × P
    matrix per direction. With A = XV, Y = XV⊥ (write y_a, a_b for columns), the direction
    E_j moves dA = y_a e_bᵀ, so dB = y_a a_bᵀ + a_b y_aᵀ, dc0 = −2 y_a⊙a_b, and since
    dW/W = g1ᵀ + 1gᵀ with g = dc0/c0,
    dQ = −(ỹ_a ã_bᵀ + ã_b ỹ_aᵀ) − diag(g)Q − Q diag(g)  (ỹ = y/c0, ã = a/c0),
    dh = −2 ỹ_a⊙(QA)_b − 2 ã_b⊙(QY)_a − 2 g⊙h − (Q⊙Q) dc0.
    Taking y_{a'}ᵀ(·)e_{b'} of 2Xᵀd(EA) and collecting terms, with F1 = [y_a⊙a_b]_j and
    F23 = [ỹ_a⊙(QA)_b + ã_b⊙(QY)_a]_j (P × n),

    H[(a'b'), (ab)] = 2 [ F1ᵀ dh − 2 F23ᵀF1 + M1_{a'a} M2_{bb'} + M3_{a'b} M3_{ab'}
                         + δ_{bb'} (Yᵀ(h⊙Y − QY))_{a'a} − δ_{aa'} (AᵀEA)_{b'b} ],

    M1 = Yᵀ diag(1/c0) Y, M2 = Aᵀ diag(1/c0) A, M3 = Yᵀ diag(1/c0) A. The test suite checks it
    against the complex-step derivative of the gradient. V (R, r, K), V⊥ (R, r, r − K).
    """
    R, r, K = V.shape
    m = r - K
    n = m * K
    A = X @ V                                                            # (R, P, K)
    Y = X @ Vperp                                                        # (R, P, m)
    c0 = diagC - np.sum(A * A, axis=2)
    ic = 1.0 / c0
    Q = (C - A @ np.swapaxes(A, 1, 2)) * (ic[:, :, None] * ic[:, None, :])
    Q2 = Q * Q
    h = (Q2 @ c0[..., None])[..., 0]
    QA, QY = Q @ A, Q @ Y
    Ai, Yi = A * ic[..., None], Y * ic[..., None]
    Yt = np.swapaxes(Y, 1, 2)
    M1, M2, M3 = Yt @ Yi, np.swapaxes(A, 1, 2) @ Ai, Yt @ Ai
    F1 = (Y[:, :, :, None] * A[:, :, None, :]).reshape(R, -1, n)                  # (R, P, n)
    F23 = (Yi[:, :, :, None] * QA[:, :, None, :]
           + QY[:, :, :, None] * Ai[:, :, None, :]).reshape(R, -1, n)
    dh = 2.0 * (Q2 @ F1) + (4.0 * ic * h)[..., None] * F1 - 2.0 * F23
    H = np.swapaxes(F1, 1, 2) @ dh - 2.0 * (np.swapaxes(F23, 1, 2) @ F1)
    YQY = Yt @ (h[..., None] * Y - QY)
    AtEA = np.swapaxes(A, 1, 2) @ (h[..., None] * A - QA)
    blk = (M1[:, :, None, :, None] * M2[:, None, :, None, :]                    # [a', b', a, b]
           + M3[:, :, None, None, :] * np.swapaxes(M3, 1, 2)[:, None, :, :, None]
           + YQY[:, :, None, :, None] * np.eye(K)[:, None, :]
           - np.eye(m)[:, None, :, None] * AtEA[:, None, :, None, :])
    return 2.0 * (H + blk.reshape(R, n, n))


#: Step lengths 2⁻ᵉ tried per batch by :func:`stiefel_newton`'s backtracking (40 in all).
LINE_SEARCH_BATCHES = (4, 12, 24)


def stiefel_newton(V0, X, *, max_iter: int = 200, gtol: float = 1e-6, ftol: float = 1e-9,
                   min_ratio: float = 0.0, best_of: bool = False, return_info: bool = False):
    """Minimize the center-correlation cost from each start in ``V0`` by Riemannian Newton.

    Same problem, stopping rules and outputs as :func:`stiefel_minimize` (``gtol`` on the
    Riemannian gradient norm relative to 1 + cost, ``ftol`` on ten iterations' progress,
    ``min_ratio`` for degenerate starts, ``best_of`` for the cost floor), with second-order
    steps: the cost depends on V only through the subspace (Grassmann manifold), so around
    the current V it is pulled back to the affine chart Y(Z) = V + V⊥Z, Z ∈ R^((r−K)×K)
    (V⊥ an orthonormal complement), whose gradient is V⊥ᵀ∇_Y (the Riemannian gradient, same
    norm as :func:`stiefel_minimize`'s) and whose Hessian is analytic
    (:func:`_pullback_hessian`, in closed form, all starts in one batch). The step solves the
    Newton system with the Hessian's eigenvalues replaced by their absolute values (floored:
    saddle-free Newton, Dauphin et al. 2014, so every step descends and saddles repel),
    capped at length 1, with Armijo backtracking (:data:`LINE_SEARCH_BATCHES`), then
    retracted to orthonormal V (Cholesky-QR). Near a nondegenerate minimum the convergence is
    quadratic: on the digits CNN centers 10–30 iterations instead of the 200–1000
    Barzilai–Borwein iterations of :func:`stiefel_minimize`, where the landscape near the
    frame-potential floor is flat (ill-conditioned Hessian).
    """
    single = V0.ndim == 2
    V = _retract(V0[None] if single else V0)
    R, r, K = V.shape
    P = X.shape[0]
    C = X @ X.T
    diagC = np.diag(C).copy()
    f, g, rat = _cost_grad_ratio(V, X, C, diagC)
    n = K * (r - K)
    running = np.ones(R, dtype=bool)
    converged = np.zeros(R, dtype=bool)
    degenerate = rat < min_ratio ** 2
    running &= ~degenerate
    best_hist = np.repeat(f[None], 11, axis=0)
    floor = P * P / (2.0 * (r - K)) if r > K else np.inf
    it = 0
    for it in range(1, max_iter + 1):
        at_floor = f <= floor * (1 + 1e-6)
        # a start that meets the gradient rule takes one more (full, quadratically convergent)
        # Newton step before it stops, so that where it stops does not depend on rounding
        # through whether its gradient was just above or below gtol (e.g. data scaled by 1e80)
        running &= ~(converged & ~at_floor)
        # the chart (V⊥) and gradient of the running starts only
        act = np.flatnonzero(running)
        Vp = np.linalg.qr(V[act], mode="complete")[0][:, :, K:]            # (a, r, r − K)
        gz = np.swapaxes(Vp, 1, 2) @ g[act]                                 # (a, r − K, K)
        small = np.zeros(R, dtype=bool)
        small[act] = np.sqrt(np.einsum("rik,rik->r", gz, gz)) <= gtol * (1.0 + f[act])
        newly = running & ~converged & small
        converged |= newly | (running & at_floor)
        if best_of and (at_floor & ~degenerate).any():
            running[:] = False
        running &= ~(converged & at_floor)
        if it > 10:
            now, then = best_hist[(it - 1) % 11], best_hist[it % 11]
            running &= (then - now) > ftol * (1.0 + np.abs(now))
        if not running.any():
            break
        keep = running[act]                   # the starts that go on, among those charted
        act, Vp, gz = act[keep], Vp[keep], gz[keep]
        Va = V[act]
        # exact Hessian of the pullback, in the chart coordinates j = a·K + b of Z
        Hs = _pullback_hessian(Va, Vp, X, C, diagC)
        Hs = 0.5 * (Hs + np.swapaxes(Hs, 1, 2))
        lam, Q = np.linalg.eigh(Hs)
        absl = np.abs(lam)
        absl = np.maximum(absl, 1e-8 * absl.max(axis=1, keepdims=True) + 1e-300)
        gvec = gz.reshape(len(act), n)
        s = -np.einsum("rij,rj->ri", Q, np.einsum("rji,rj->ri", Q, gvec) / absl)
        sn = np.sqrt(np.sum(s * s, axis=1))
        s *= np.minimum(1.0, 1.0 / np.maximum(sn, 1e-300))[:, None]
        slope = np.sum(s * gvec, axis=1)                                    # < 0
        S = np.einsum("rab,rbk->rak", Vp, s.reshape(len(act), r - K, K))
        # backtracking from the full step, t = 2⁻ᵉ for e = 0..39: the candidates of several e
        # are evaluated in one batch (the first passing one is the one sequential halving
        # would accept; most iterations need 2–5 halvings, and a batched evaluation of a few
        # starts costs about as much as one of one start)
        todo = np.arange(len(act))
        e0 = 0
        for n_e in LINE_SEARCH_BATCHES:
            ts = np.ldexp(1.0, -np.arange(e0, e0 + n_e))                            # (n_e,)
            Vt = _retract((Va[todo, None] + ts[:, None, None] * S[todo, None]).reshape(-1, r, K))
            ft, gt, rt = _cost_grad_ratio(Vt, X, C, diagC)
            # Armijo, with an allowance of a few roundings of the cost: near convergence the
            # decrease is below rounding, and a test decided by rounding would make where a
            # start stops depend on it (e.g. data scaled by 1e-200): full steps are taken there
            fa = f[act[todo]][:, None]
            ok = (ft.reshape(-1, n_e) <= fa + 1e-4 * ts * slope[todo, None]
                  + 16 * np.finfo(float).eps * np.abs(fa))
            found = ok.any(axis=1)
            pick = np.flatnonzero(found) * n_e + np.argmax(ok[found], axis=1)
            good = act[todo[found]]
            V[good], f[good], g[good], rat[good] = Vt[pick], ft[pick], gt[pick], rt[pick]
            todo = todo[~found]
            e0 += n_e
            if not todo.size:
                break
        running[act[todo]] = False     # no descent at machine precision: stop that start
        if min_ratio > 0:
            newly = running & (rat < min_ratio ** 2)
            degenerate |= newly
            running &= ~newly
        best_hist[it % 11] = np.minimum(best_hist[(it - 1) % 11], f)
    info = {"converged": converged, "degenerate": degenerate,
            "pruned": np.zeros(R, dtype=bool), "ratio": np.sqrt(np.maximum(rat, 0.0))}
    return _optimizer_output(V, f, it, info, single, return_info)


def _optimizer_output(V, f, it, info, single, return_info):
    """What :func:`stiefel_minimize` and :func:`stiefel_newton` return: ``(V, cost, iterations)``
    (plus ``info``), for one start when the caller gave one (2-d ``V0``)."""
    if single:
        out = V[0], float(f[0]), it
        info = {k: v[0] for k, v in info.items()}
    else:
        out = V, f, it
    return (*out, info) if return_info else out


def mean_abs_cosine(X):
    """Mean |cos| between distinct rows of X (rows of zero norm count as cosine 0)."""
    P = X.shape[0]
    norms = np.linalg.norm(X, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    U = X / safe[:, None]
    cos = np.abs(U @ U.T)
    np.fill_diagonal(cos, 0.0)
    return float(cos.sum() / (P * (P - 1)))


#: Restarts whose optimizer drives a center almost entirely into V (it keeps less than this
#: fraction of its norm) are stopped and discarded (see :func:`stiefel_minimize`, ``min_ratio``).
DEGENERATE_RATIO = 1e-3
#: Two restarts reached the same optimum when their projectors VVᵀ differ by less than this
#: (Frobenius norm; distinct optima of the benchmark data are ≥ 0.2 apart, and the optimizer's
#: gradient tolerance leaves ~1e-5).
SAME_OPTIMUM = 1e-2
#: Restarts whose cost is this fraction above the best one's after the screening iterations
#: are stopped (only the lowest optimum is kept; distinct optima of the CNN benchmark data
#: differ by 0.25–3% at convergence, and a start in the lowest basin is below the others by
#: then).
PRUNE = None
#: K is the smallest whose residual mean |cos| is within this fraction of the lowest one.
K_TOLERANCE = 0.01
#: Reference-style starts per K: the subspace kept at K − 1 plus one random mixture of centers.
N_CONTINUATION = 2
#: uniform random starts of the first round of restarts per K (see :func:`_settled`)
FIRST_ROUND = 8
#: a first round settles when at least this many (and half of the) proper starts agree
SETTLE_MIN = 3
#: relative cost difference within which two restarts reached the same optimum's cost
SAME_COST = 1e-4
#: relative cost difference below which restarts at the lowest cost count as tied (rounding)
TIE = 1e-11


def center_subspace(centers, *, seed: int = 0, n_reps: int = 32, max_iter: int | None = None,
                    gtol: float = 1e-6, ftol: float = 1e-8, keys=None, method: str = "auto"):
    """Find the center-correlation subspace to project out (Cohen et al. 2020).

    For each K = 1..maxK the cost (module docstring) is minimized from several starts at once
    (vectorized, :func:`stiefel_minimize`) and the lowest cost reached is kept; K is then the
    one whose kept subspace leaves the smallest mean |cos| between the residual centers (the
    reference's rule). The cost is non-convex: on CNN activations single random starts land in
    optima whose capacities differ by 10–20%, which made the answer depend on the seed. The
    starts per K are

    * the spectral start: the top-K principal directions of the centers (deterministic);
    * for K > 1, the subspace kept at K − 1 plus the K-th principal direction (deterministic)
      and plus a random mixture of centers Xᵀs (:data:`N_CONTINUATION` of these; the
      reference's only kind of start);
    * ``n_reps`` random starts uniform on the Stiefel manifold (K whitened random mixtures of
      centers Uᵀs, U the left singular vectors of the centers).

    Restarts heading to a degenerate point (a center swallowed by V, :data:`DEGENERATE_RATIO`)
    are discarded, so the lowest cost is taken among proper optima; a restart that reaches the
    cost's floor P²/(2(r − K)) ends the search for that K. On the digits CNN's layers 21%
    (``block1.pool``) to 35% (``block2.pool``) of the uniform starts reach the lowest optimum at
    K = 2 (the one kept for every seed), while the reference-style starts mostly miss it; with
    32 uniform starts the chance that a seed misses it is ≤ 0.79³² ≈ 5e-4 (with 16, one seed
    of six missed it on ``block1.pool`` and chose K = 3). The starts are optimized together,
    so on 10 centers 32 cost little more than 16; the per-iteration cost grows like the
    number of starts × P². The uniform starts run in two rounds: :data:`FIRST_ROUND` of them
    with the deterministic ones, the rest only when that round has not settled the lowest
    optimum (:func:`_settled`: the floor reached, or half of the proper starts at the same
    lowest cost). Well-posed centers settle in the first round (100 nearly orthogonal
    centers: about a third of the time of all 32 starts); ill-posed ones run every start.

    Parameters
    ----------
    centers : ndarray (P, N)
        Manifold centers (any common offset is removed here).
    seed : int
        Seed of the random starts.
    n_reps : int
        Uniform random starts per K (default 32), besides the deterministic and
        reference-style ones. The reference (``mftma``) runs 10 reference-style random starts
        per K and keeps the one that keeps the most of every center.
    max_iter, gtol, ftol
        Stiefel optimizer limits (see :func:`stiefel_minimize`); ``max_iter`` None: 200 Newton
        or 1000 Barzilai–Borwein iterations.
    method : {"auto", "newton", "bb"}
        The optimizer of every start: Riemannian Newton (:func:`stiefel_newton`) or
        Barzilai–Borwein gradient descent (:func:`stiefel_minimize`). ``"auto"`` (default)
        takes Newton at each K where K(r − K)·P² ≤ :data:`NEWTON_MAX_ENTRIES` (its Hessians are
        then cheap: 10 centers at every K), else BB. Both stop by the same rules and reach the
        same optima from a start where both converge; from a given start they may end in
        different basins (the cost is non-convex), which the restarts are for. On the digits
        CNN's layers (10 centers) Newton keeps the same K and subspace as BB for every seed
        tried and takes about a third of the time.
    keys : sequence, optional
        One label per center. Each random start is V0 ∝ XᵀS or UᵀS with the rows of S drawn per
        center from a stream keyed by its label, so reordering the centers reorders S with them
        and yields the same subspace (default keys: the indices).

    Returns
    -------
    dict
        ``V`` (N, K) orthonormal basis to project out (K = 0: nothing), ``K``, ``rho_c``
        (mean |cos| between mean-subtracted centers before removal), ``residuals`` (mean |cos|
        after removing K = 1..tried dims), ``max_k``, ``costs`` (the kept cost per K tried),
        ``alternatives`` (list of (N, K) bases: the other distinct proper optima reached at the
        chosen K, by increasing cost), ``alternative_costs``, ``n_starts`` (per K) and
        ``n_degenerate`` (discarded restarts over all K).

    Notes
    -----
    maxK is the reference's rule (index where the cumulative center variance passes 95%, plus
    11) capped at r − 1, with r ≤ P − 1 the rank of the mean-subtracted centers: removing all r
    directions would send every center to the global mean (zero), after which the per-manifold
    normalization is undefined. The reference caps at nothing and crashes for small P; here
    P = 2 gives K = 0 (nothing can be removed) and P = 3 gives K ≤ 1. As in the reference, the
    K loop stops after three consecutive increases of the residual correlation (K > 4). Unlike
    the reference, K is the smallest whose residual correlation is within 1%
    (:data:`K_TOLERANCE`) of the lowest, not the lowest itself: an extra removed dimension must
    earn its place, and near-ties otherwise decide K by the optimizer's luck.
    """
    from .._blas import single_threaded_blas

    with single_threaded_blas():  # tiny matrices: threads only cost
        return _center_subspace(np.asarray(centers, dtype=np.float64), seed, n_reps, max_iter,
                                gtol, ftol, keys, method)


#: center-step optimizers: name -> (function, default max_iter)
OPTIMIZERS = {"newton": (stiefel_newton, 200), "bb": (stiefel_minimize, 1000)}
#: ``method="auto"`` uses Newton at a K while K(r − K)·P² (the entries of one start's Hessian
#: computation: one P × P matrix per chart direction) is at most this, else Barzilai–Borwein
#: (10 centers: Newton at every K, ≈ 2× faster than BB on the CNN benchmark's centers; 12–20
#: random centers: BB, which was as fast or, at 20 centers with a larger bound, 8× faster)
NEWTON_MAX_ENTRIES = 2 ** 11


def _settled(costs, info, P, r, k) -> bool:
    """Whether a first round of restarts has settled the lowest optimum at this K: a proper
    start reached the cost's floor P²/(2(r − K)) (a global minimum), or at least half of the
    proper starts, and at least :data:`SETTLE_MIN`, reached the same lowest cost (within
    :data:`SAME_COST`). On well-posed centers (e.g. nearly orthogonal ones) most starts agree
    and the other uniform starts are skipped; on the CNN layers of the module docstring 21-35%
    of the starts reach the lowest optimum, so every uniform start runs, as before."""
    proper = ~np.asarray(info["degenerate"])
    if not proper.any():
        return False
    best = float(np.min(costs[proper]))
    if r > k and best <= P * P / (2.0 * (r - k)) * (1 + 1e-6):
        return True
    agree = int(np.sum(proper & (costs <= best + SAME_COST * abs(best))))
    return agree >= max(SETTLE_MIN, -(-int(proper.sum()) // 2))


def _keyed_streams(seed, keys):
    """One generator per center, keyed by str(key): reordering centers reorders their draws."""
    out = []
    for key in keys:
        spawn = zlib.crc32(("centers/" + str(key)).encode("utf-8"))
        out.append(np.random.default_rng(np.random.SeedSequence(entropy=seed,
                                                                spawn_key=(spawn,))))
    return out


def _orthonormal(V):
    """Orthonormal basis of the columns of V (R, r, K) (Householder QR: exact for any input)."""
    return np.linalg.qr(V)[0]


def _distinct(Vs, order):
    """Indices (in ``order``) of the first restart reaching each distinct optimum."""
    kept = []
    for i in order:
        P_i = Vs[i] @ Vs[i].T
        if all(np.linalg.norm(P_i - Vs[j] @ Vs[j].T) >= SAME_OPTIMUM for j in kept):
            kept.append(i)
    return kept


def _center_subspace(centers, seed, n_reps, max_iter, gtol, ftol, keys, method):
    if method not in ("auto", *OPTIMIZERS):
        raise AnalysisError(f"method must be 'auto' or one of {tuple(OPTIMIZERS)}, got "
                            f"{method!r}")
    P, N = centers.shape
    Xb = centers - centers.mean(axis=0, keepdims=True)
    U, s, Vt = np.linalg.svd(Xb, full_matrices=False)
    if s.size == 0 or s[0] <= 0:
        raise AnalysisError("all manifold centers are identical: center correlations (and the "
                            "capacity of manifolds that differ only in shape) are undefined; "
                            "pass center_correlations=False to skip this step")
    r = int(np.sum(s > s[0] * max(P, N) * np.finfo(float).eps))
    X = U[:, :r] * s[:r]            # centers in an orthonormal basis of their span (P × r)
    basis = Vt[:r].T                # (N, r); column j is the j-th principal direction
    rho_c = mean_abs_cosine(X)
    total = np.cumsum(s ** 2) / np.sum(s ** 2)
    max_k = int(np.argmax(np.where(total < 0.95, total, 0.0))) + 11  # reference rule
    max_k = min(max_k, r - 1)
    out = {"rho_c": rho_c, "K": 0, "V": np.zeros((N, 0)), "residuals": [], "max_k": max_k,
           "costs": [], "alternatives": [], "alternative_costs": [], "n_starts": [],
           "n_degenerate": 0}
    if max_k < 1:
        return out
    keys = list(range(P)) if keys is None else list(keys)
    streams = _keyed_streams(seed, keys)
    eye = np.eye(r)
    V1 = None
    results = []
    n_degenerate = 0
    for k in range(1, max_k + 1):
        # per center: n_reps rows of (1 + k) normals, drawn in K order from its own stream
        # per center: N_CONTINUATION + n_reps·k normals, drawn in K order from its own stream
        S = np.stack([g.standard_normal(N_CONTINUATION + n_reps * k) for g in streams])
        # reference-style mixtures of centers Xᵀs (weighted towards the leading principal
        # directions) extend the subspace kept at K − 1; whitened mixtures Uᵀs (isotropic:
        # uniform on the Stiefel manifold) make the fully random starts, which reach every basin
        cont = (S[:, :N_CONTINUATION].T @ X)[:, :, None]                       # (n_c, r, 1)
        rand = np.einsum("pd,prj->rdj", U[:, :r],
                         S[:, N_CONTINUATION:].reshape(P, n_reps, k))           # (n_reps, r, k)
        starts = [eye[None, :, :k], rand]
        if V1 is not None:
            starts.append(np.concatenate([V1, eye[:, k - 1:k]], axis=1)[None])
            starts.append(np.concatenate(
                [cont, np.broadcast_to(V1, (N_CONTINUATION, r, k - 1))], axis=2))
        # first round: the deterministic and reference-style starts and FIRST_ROUND uniform
        # ones; the other uniform starts run only if the first round has not settled (below)
        n_first = min(n_reps, FIRST_ROUND)
        starts[1] = rand[:n_first]
        V0 = _orthonormal(np.concatenate(starts))
        name = method
        if name == "auto":   # Newton while its Hessians (starts × K(r − K) × P² entries) are small
            name = "newton" if k * (r - k) * P * P <= NEWTON_MAX_ENTRIES else "bb"
        minimize, default_iter = OPTIMIZERS[name]
        kw = dict(max_iter=default_iter if max_iter is None else max_iter, gtol=gtol, ftol=ftol,
                  min_ratio=DEGENERATE_RATIO, best_of=True, return_info=True)
        if name == "bb":
            kw["prune"] = PRUNE
        Vs, costs, _, info = minimize(V0, X, **kw)
        n_started = V0.shape[0]
        if n_reps > n_first and not _settled(costs, info, X.shape[0], r, k):
            V0b = _orthonormal(rand[n_first:])
            Vs2, costs2, _, info2 = minimize(V0b, X, **kw)
            Vs, costs = np.concatenate([Vs, Vs2]), np.concatenate([costs, costs2])
            info = {name: np.concatenate([info[name], info2[name]]) for name in info}
            n_started += V0b.shape[0]
        proper = ~info["degenerate"]
        n_degenerate += int(np.sum(~proper))
        if proper.any():
            order = [int(i) for i in np.argsort(np.where(proper, costs, np.inf)) if proper[i]]
            # starts that reached the lowest optimum tie up to rounding (Newton converges to
            # machine precision): keep the first of them, not the one rounding favours, so the
            # kept V does not jump between equivalent starts when the data are rescaled
            best = costs[order[0]]
            tied = [i for i in order if costs[i] <= best + TIE * abs(best)]
            order = [min(tied)] + [i for i in order if i != min(tied)]
        else:   # every restart swallowed a center: keep the one that keeps the most (reference)
            order = [int(np.argmax(info["ratio"]))]
        V1 = Vs[order[0]]
        X0 = X - (X @ V1) @ V1.T
        results.append((mean_abs_cosine(X0), V1, float(costs[order[0]]), Vs, costs, order,
                        n_started))
        res = [r_[0] for r_ in results]
        # the reference stops after three consecutive increases of the residual
        if k > 4 and res[-1] > res[-2] > res[-3] > res[-4]:
            break
    residuals = [r_[0] for r_ in results]
    # the smallest K within K_TOLERANCE of the lowest residual (the reference: the lowest):
    # near-ties between K are common on CNN data (avgpool: 0.2168 at K = 2, 0.2167 at K = 3
    # for one seed) and flipped α by 10%
    low = min(residuals)
    kbest = next(k for k, r_ in enumerate(residuals, 1) if r_ <= low * (1 + K_TOLERANCE))
    _, Vk, _, Vs, costs, order, _ = results[kbest - 1]
    alt = _distinct(Vs, order)[1:]
    out.update(K=kbest, V=basis @ Vk, residuals=residuals, costs=[r_[2] for r_ in results],
               alternatives=[basis @ Vs[i] for i in alt],
               alternative_costs=[float(costs[i]) for i in alt],
               n_starts=[r_[6] for r_ in results], n_degenerate=n_degenerate)
    return out
