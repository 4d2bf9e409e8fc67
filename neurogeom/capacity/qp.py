"""Batched solver for non-negative quadratic programs (the duals of the capacity QPs).

Every capacity estimate in :mod:`neurogeom.capacity` needs many tiny quadratic programs: one per
manifold per Gaussian sample ``t``. In dual form each is

    minimize_{λ ≥ 0}  ½ λᵀ G λ + qᵀ λ,                                            (1)

with ``G = SᵀS`` the Gram matrix of one manifold's points (shared by all its samples) and
``q = −(Sᵀt + κ)``. This module solves a whole batch of them at once, vectorized over the batch,
with one code path for numpy and torch (the :mod:`neurogeom._backend` namespace; ``device="cuda:0"``
solves on a GPU).

The extreme eigenvalues μ ≤ L of each distinct G choose its method:

* Well-conditioned G (the projected-gradient iteration count that L/μ guarantees is at most
  ``PG_MAX_ITER``; e.g. Gaussian point clouds, whose G has L/μ ≈ 1.5): projected gradient
  ``λ ← max(λ − s(Gλ + q), 0)`` with s = 2/(μ + L), which contracts the error by
  (L − μ)/(L + μ) per iteration whatever the active set. One iteration is one batched GEMM, and
  its gradient doubles as the μ of the KKT check.
* Otherwise (singular or ill-conditioned G: densely sampled curves, repeated or correlated
  points), or for a group where projected gradient missed the tolerance:

  1. ADMM on the splitting λ = z, z ≥ 0. The λ-step solves ``(G + ρI) λ = r``; with one
     eigendecomposition ``G = U diag(w) Uᵀ`` per distinct G this costs two small matmuls for
     any ρ, so every problem of the batch gets its own adaptively balanced ρ (OSQP-style);
     for singular G the matmuls use the eigenvectors of its nonzero eigenvalues only. Solved
     problems stop iterating: once at most half of the slots of the groups still iterating
     hold unsolved problems, the iterates are compacted to those.
  2. A polish step: active-set iterations started from the ADMM iterate solve the equality
     system on the detected free set exactly; their best iterate is kept when it lowers the KKT
     residual.

Either way a problem is done when its KKT natural residual
``max_i |min(G_ii λ_i, μ_i)| / (1 + ||q||∞)`` with ``μ = Gλ + q``, which is zero exactly at
the solution of (1), is at most ``tol``.

Problems whose ``λ = 0`` already satisfies the KKT conditions (``q ≥ 0``; in MFT terms "t is
interior") are solved exactly by λ = 0 and report 0 iterations. The batch is processed in chunks
of about ``max_chunk_bytes`` of solver state, so that memory stays bounded by the inputs plus one
chunk.

The solution ``λ`` is unique when G is positive definite. When G is singular (more points than
dimensions, repeated points) λ is not unique but ``Gλ`` — hence the primal solution
``v = t − Sλ`` and everything computed from it — is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import get_namespace
from ..errors import AnalysisError, ConvergenceError

#: ADMM hands a problem to the active-set polish once its KKT residual is below this.
POLISH_AT = 1e-3
#: Groups whose G guarantees convergence of projected gradient within this many iterations
#: (see :func:`_pg_iteration_bound`) are solved by it instead of ADMM + polish.
PG_MAX_ITER = 80
#: The polish solves its systems in one batch per bucket of free-set sizes this wide (wider:
#: fewer batched solves but more padding; 8 was the fastest on the CNN benchmark's QPs).
POLISH_BUCKET = 8
#: Projected-gradient iterations allowed beyond the guaranteed count (rounding).
PG_SPARE_ITER = 5
#: Projected gradient works on blocks of problems of about this many bytes per vector (CPU cache).
PG_BLOCK_BYTES = 2**20

__all__ = ["QPResult", "solve_nonneg_qp", "project_onto_polyhedral_cone", "kkt_residual"]


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------

@dataclass
class QPResult:
    """Solutions of a batch of problems (1) and how they were reached.

    Attributes
    ----------
    lam : array (B, n)
        Dual solutions λ ≥ 0 (numpy array, or torch tensor with ``backend="torch"``).
    kkt : ndarray (B,)
        KKT natural residual of each solution (see :func:`kkt_residual`).
    iterations : ndarray (B,)
        Iterations (ADMM or projected gradient) spent on each problem (0 for problems
        solved by λ = 0).
    polished : ndarray (B,) of bool
        Whether the active-set polish produced the returned solution.
    trivial : ndarray (B,) of bool
        Problems with q ≥ 0, solved by λ = 0 without iterating (MFT: interior t).
    converged : ndarray (B,) of bool
        ``kkt <= tol``.
    """

    lam: Any
    kkt: np.ndarray
    iterations: np.ndarray
    polished: np.ndarray
    trivial: np.ndarray
    converged: np.ndarray

    @property
    def max_kkt(self) -> float:
        return float(self.kkt.max()) if self.kkt.size else 0.0


# --------------------------------------------------------------------------------------------
# the solver
# --------------------------------------------------------------------------------------------

def kkt_residual(G, q, lam, *, backend=None, device=None) -> np.ndarray:
    """KKT natural residual of candidate solutions ``lam`` of problems (1).

    ``r = max_i |min(G_ii λ_i, μ_i)| / (1 + max_i |q_i|)`` with ``μ = Gλ + q``. It is zero iff
    λ ≥ 0, μ ≥ 0 and λ_i μ_i = 0 for every i, i.e. iff λ solves (1); scaling λ by the diagonal of
    G makes both arguments of the min carry the units of q.

    ``backend`` and ``device`` follow :mod:`neurogeom._backend` (default: numpy on the CPU).

    Returns
    -------
    ndarray (B,)
    """
    xp = get_namespace(backend, device)
    G, q, lam = xp.asarray(G), xp.asarray(q), xp.asarray(lam)
    Gg, qg, layout = _canonical(xp, G, q)
    lg = lam.reshape(qg.shape)
    r = np.asarray(xp.to_numpy(_gkkt(xp, Gg, qg, lg, _diag_scale(xp, Gg))))
    return r.reshape(tuple(q.shape[:-1]))


def _diag_scale(xp, G):
    d = xp.diagonal(G)
    floor = 1e-12 * (xp.amax(d, -1) + 1e-300)
    return xp.maximum(d, floor[..., None])


def _canonical(xp, G, q):
    """Bring (G, q) to the grouped layout G (P, n, n), q (P, B, n); also return how to undo it."""
    layout = "shared"
    if q.ndim == 1:
        layout = "single"
        q = q[None, :]
    if q.ndim == 2:
        B, n = q.shape
        if G.ndim == 2:
            if tuple(G.shape) != (n, n):
                raise AnalysisError(f"G has shape {tuple(G.shape)}, expected ({n}, {n}) for q "
                                    f"of shape {tuple(q.shape)}")
            return G[None], q[None], layout
        if G.ndim == 3:
            if tuple(G.shape) != (B, n, n):
                raise AnalysisError(f"G has shape {tuple(G.shape)}, expected ({B}, {n}, {n}) "
                                    f"(one matrix per row of q)")
            return G, q[:, None, :], "per_problem"
    elif q.ndim == 3:
        P, B, n = q.shape
        if G.ndim != 3 or tuple(G.shape) != (P, n, n):
            raise AnalysisError(f"grouped q of shape {tuple(q.shape)} needs G of shape "
                                f"({P}, {n}, {n}), got {tuple(G.shape)}")
        return G, q, "grouped"
    raise AnalysisError(f"unsupported shapes: G {tuple(G.shape)}, q {tuple(q.shape)}; expected "
                        "G (n, n) or (B, n, n) with q (B, n), or G (P, n, n) with q (P, B, n)")


def solve_nonneg_qp(G, q, *, tol: float = 1e-10, max_iter: int = 20000,
                    polish: bool = True, backend=None, device=None,
                    max_chunk_bytes: int = 64 * 2**20,
                    raise_on_failure: bool = False) -> QPResult:
    """Solve a batch of QPs ``min_{λ≥0} ½ λᵀGλ + qᵀλ`` (see the module docstring).

    Parameters
    ----------
    G : array (n, n), (B, n, n) or (P, n, n)
        Symmetric positive semi-definite matrices: one shared by the whole batch (with q of shape
        (B, n)), one per problem (with q of shape (B, n)), or one per *group* of problems (with q
        of shape (P, B, n): all B samples of manifold p share ``G[p]``). numpy arrays or torch
        tensors.
    q : array (B, n) or (P, B, n)
        Linear terms, one row per problem. A 1-d ``q`` is a single problem.
    tol : float
        Target KKT natural residual (relative to ``1 + ||q||∞``; see :func:`kkt_residual`).
    max_iter : int
        Most ADMM iterations per problem (projected gradient, used only where it is certain to
        converge quickly, has its own bound).
    polish : bool
        Run the active-set polish (recommended; it makes the answer exact to rounding once the
        active set is identified, instead of waiting for ADMM's linear convergence).
    backend : {None, "numpy", "torch"}
        Array library; None is numpy unless ``device`` names a GPU (:mod:`neurogeom._backend`).
        Everything is computed in float64.
    device : None, str or torch.device
        None or ``"cpu"``: the CPU; ``"cuda:0"``…: that GPU (torch).
    max_chunk_bytes : int
        Problems are solved in chunks whose solver state (ADMM vectors, and the polish's masked
        (n, n) systems) stays near this size, so memory holds the inputs plus one chunk.
    raise_on_failure : bool
        Raise :class:`~neurogeom.errors.ConvergenceError` when a problem does not reach ``tol``
        (default: report it through ``converged`` and ``kkt``).

    Returns
    -------
    QPResult
        ``lam`` shaped like ``q`` (backend array type) and per-problem diagnostics shaped like
        ``q`` without its last axis (numpy arrays).

    Examples
    --------
    >>> import numpy as np
    >>> G = np.array([[2.0, 0.0], [0.0, 1.0]]); q = np.array([[-2.0, 1.0]])
    >>> solve_nonneg_qp(G, q).lam.round(12)
    array([[1., 0.]])
    """
    xp = get_namespace(backend, device)
    with xp.single_threaded():
        return _solve(xp, G, q, tol, max_iter, polish, max_chunk_bytes, raise_on_failure)


def _solve(xp, G, q, tol, max_iter, polish, max_chunk_bytes, raise_on_failure):
    G = xp.asarray(G)
    q = xp.asarray(q)
    Gg, qg, layout = _canonical(xp, G, q)
    finite = np.isfinite(xp.to_numpy(qg)).all() and np.isfinite(xp.to_numpy(Gg)).all()
    if not finite:
        raise AnalysisError("G or q contains NaN or infinite values")
    if not tol > 0:
        raise AnalysisError(f"tol must be positive, got {tol}")
    P, B, n = qg.shape
    lam = xp.zeros((P, B, n))
    kkt = np.zeros((P, B))
    iters = np.zeros((P, B), dtype=np.int64)
    polished = np.zeros((P, B), dtype=bool)
    # ~12 vectors of n per problem for ADMM; the polish adds one (n, n) system per problem
    per_problem = 8 * n * (12 + 2 * n)
    max_problems = max(1, int(max_chunk_bytes // per_problem))
    b_step = min(B, max_problems)
    p_step = max(1, max_problems // b_step)
    for p0 in range(0, P, p_step):
        p1 = min(P, p0 + p_step)
        Gc = Gg[p0:p1]
        # each G's condition number picks its method: projected gradient when it is certain to
        # converge in few iterations, ADMM + polish otherwise (module docstring)
        ev = xp.eigvalsh(Gc)
        pg_iters = _pg_iteration_bound(np.asarray(xp.to_numpy(ev)), tol)
        fast = np.flatnonzero(pg_iters <= PG_MAX_ITER)
        for b0 in range(0, B, b_step):
            b1 = min(B, b0 + b_step)
            qc = qg[p0:p1, b0:b1]
            rest = np.flatnonzero(pg_iters > PG_MAX_ITER)
            if fast.size:
                fi = xp.asarray(fast, dtype="int")
                out = _solve_pg(xp, Gc[fi], qc[fi], ev[fi], tol,
                                int(pg_iters[fast].max()) + PG_SPARE_ITER)
                dst = xp.asarray(p0 + fast, dtype="int")
                lam[dst, b0:b1] = out[0]
                kkt[p0 + fast, b0:b1] = out[1]
                iters[p0 + fast, b0:b1] = out[2]
                # a group that missed tol (rounding at a tiny tol) starts over with ADMM
                rest = np.union1d(rest, fast[~out[3]])
            if rest.size:
                whole = rest.size == p1 - p0
                Gr = Gc if whole else Gc[xp.asarray(rest, dtype="int")]
                qr = qc if whole else qc[xp.asarray(rest, dtype="int")]
                w, U = xp.eigh(Gr)
                out = _solve_chunk(xp, Gr, qr, w, U, tol, max_iter, polish)
                lam[xp.asarray(p0 + rest, dtype="int"), b0:b1] = out[0]
                kkt[p0 + rest, b0:b1] = out[1]
                iters[p0 + rest, b0:b1] = out[2]
                polished[p0 + rest, b0:b1] = out[3]
    trivial = np.asarray(xp.to_numpy(xp.all(qg >= 0, -1)), dtype=bool)
    converged = kkt <= tol
    if raise_on_failure and not converged.all():
        bad = np.argwhere(~converged)
        raise ConvergenceError(
            f"{len(bad)} of {P * B} QPs did not reach KKT residual {tol:g} in {max_iter} "
            f"iterations (worst {kkt.max():.3g})")
    if layout == "single":
        lam, kkt, iters, polished, trivial, converged = (x[0, 0] for x in (
            lam, kkt, iters, polished, trivial, converged))
    elif layout == "shared":
        lam, kkt, iters, polished, trivial, converged = (x[0] for x in (
            lam, kkt, iters, polished, trivial, converged))
    elif layout == "per_problem":
        lam, kkt, iters, polished, trivial, converged = (x[:, 0] for x in (
            lam, kkt, iters, polished, trivial, converged))
    return QPResult(lam=lam, kkt=np.asarray(kkt), iterations=np.asarray(iters),
                    polished=np.asarray(polished), trivial=np.asarray(trivial),
                    converged=np.asarray(converged))


def _pg_iteration_bound(ev, tol):
    """Projected-gradient iterations that guarantee KKT residual ≤ tol, per group (inf when G
    is singular).

    With step 2/(μ + L) (μ, L the extreme eigenvalues of G) each iteration contracts the
    distance to the solution by ``c = (L − μ)/(L + μ)``, whatever the active set (projection onto
    the orthant is non-expansive). The natural residual is L-Lipschitz in λ, λ₀ = max(−q/d, 0)
    has norm ≤ √n ||q||∞/μ and the solution ≤ 2√n ||q||∞/μ, so after k iterations the relative
    residual is at most 3√n (L/μ) cᵏ.

    ev : ndarray (P, n) ascending eigenvalues of each G.
    """
    n = ev.shape[-1]
    lo, hi = ev[:, 0], ev[:, -1]
    bound = np.full(lo.shape, np.inf)
    pd = lo > 1e-12 * hi
    c = (hi[pd] - lo[pd]) / (hi[pd] + lo[pd])
    need = np.log(tol / (3.0 * np.sqrt(n) * hi[pd] / lo[pd]))
    with np.errstate(divide="ignore"):
        bound[pd] = np.where(c > 0, np.ceil(need / np.log(np.maximum(c, 1e-300))), 1.0)
    return np.maximum(bound, 1.0)


def _solve_pg(xp, G, q, ev, tol, max_iter):
    """Projected gradient λ ← max(λ − s(Gλ + q), 0), s = 2/(μ + L), on well-conditioned groups.

    G (P, n, n), q (P, B, n), ev (P, n) ascending eigenvalues of G. Returns λ (backend array),
    KKT residual and iterations (numpy (P, B)), and whether every problem of a group reached
    ``tol`` (numpy (P,)). Each iteration is one batched GEMM plus a few elementwise operations,
    and its gradient Gλ + q is also the μ of the KKT check. On the CPU the problems are taken in
    blocks of about ``PG_BLOCK_BYTES`` so that an iteration's vectors stay in cache.
    """
    P, B, n = q.shape
    step = 2.0 / (ev[:, 0] + ev[:, -1])
    d = _diag_scale(xp, G)
    lam = xp.zeros((P, B, n))
    kkt = np.zeros((P, B))
    iters = np.zeros((P, B), dtype=np.int64)
    if xp.on_cpu:
        b_blk = min(B, max(1, PG_BLOCK_BYTES // (8 * n)))
        p_blk = max(1, PG_BLOCK_BYTES // (8 * n * b_blk))
    else:
        p_blk, b_blk = P, B
    for p0 in range(0, P, p_blk):
        p1 = min(P, p0 + p_blk)
        Gb, db, sb = G[p0:p1], d[p0:p1, None, :], step[p0:p1, None, None]
        for b0 in range(0, B, b_blk):
            b1 = min(B, b0 + b_blk)
            qb = q[p0:p1, b0:b1]
            scale = 1.0 + xp.amax(xp.abs(qb), -1)
            x = xp.maximum(-qb / db, 0.0)   # exact for q ≥ 0 (λ = 0) and for diagonal G
            for it in range(max_iter + 1):
                mu = x @ Gb + qb
                r = xp.amax(xp.abs(xp.minimum(db * x, mu)), -1) / scale
                if it == max_iter or bool(xp.all(r <= tol)):
                    break
                x = xp.maximum(x - sb * mu, 0.0)
            lam[p0:p1, b0:b1] = x
            kkt[p0:p1, b0:b1] = xp.to_numpy(r)
            # λ = 0 problems (q ≥ 0) stay at λ = 0 and count no iterations
            iters[p0:p1, b0:b1] = np.where(xp.to_numpy(xp.all(qb >= 0, -1)), 0, it)
    return lam, kkt, iters, (kkt <= tol).all(axis=1)


def _gmatvec(G, x):
    """x @ G for grouped x (P, B, n) and symmetric G (P, n, n)."""
    return x @ G


def _solve_chunk(xp, G, q, w, U, tol, max_iter, polish):
    """ADMM with per-problem adaptive ρ, then active-set polish, on one grouped chunk.

    G (P, n, n), q (P, B, n), w (P, n), U (P, n, n). Returns numpy-compatible pieces.
    """
    P, B, n = q.shape
    w = xp.maximum(w, 0.0)  # G is PSD; eigh may return -1e-16
    d = _diag_scale(xp, G)  # (P, n)
    lam = xp.zeros((P, B, n))
    iters = np.zeros((P, B), dtype=np.int64)
    polished = np.zeros((P, B), dtype=bool)
    kkt = _gkkt(xp, G, q, lam, d)
    # λ = 0 solves every problem with q ≥ 0 (MFT: interior t) — no iterations needed.
    active = kkt > tol
    if not bool(xp.any(active)):
        return lam, xp.to_numpy(kkt), iters, polished

    wmax = float(xp.to_numpy(xp.amax(w.reshape(-1), 0))) + 1e-300
    alpha = 1.6          # over-relaxation, the usual OSQP value
    check_every = 10
    polish_at = POLISH_AT  # polish a problem once ADMM has roughly identified its active set
    groups = xp.nonzero(xp.any(active, -1))       # groups still iterating
    Ga, Ua, wa, da, qa = G[groups], U[groups], w[groups], d[groups], q[groups]
    act = active[groups]
    m = groups.shape[0]
    z, u = xp.zeros((m, B, n)), xp.zeros((m, B, n))
    # the problem (column of the batch) each slot holds: once most problems of the groups still
    # iterating are done, the slots are compacted to the problems still active (below)
    slot = xp.arange(B)[None, :] + 0 * xp.arange(m)[:, None]
    # Per-problem ρ starts at the mean eigenvalue of its G (balances the two ADMM terms).
    rho = xp.ones((m, B)) * xp.maximum(wa.mean(-1), 1e-12 * wmax)[:, None]
    last_try = xp.ones((m, B)) * np.inf  # KKT residual at the last polish attempt
    qscale = 1.0 + xp.amax(xp.abs(qa), -1)  # the KKT residual's denominator, per problem
    # Singular G (more points than dimensions): (G + ρI)⁻¹ = I/ρ + U_r diag(1/(w + ρ) − 1/ρ) U_rᵀ
    # over the eigenvectors U_r of the nonzero eigenvalues only (exact: the others add 0), so
    # the λ-step's two products shrink from n × n to n × rank
    rank = int(xp.to_numpy(xp.amax(xp.sum_int(wa > 1e-12 * wmax, -1), 0)))
    low_rank = 4 * rank <= 3 * n
    if low_rank:
        Ua, wa = Ua[:, :, n - rank:], wa[:, n - rank:]       # eigenvalues come ascending
    Ut = xp.swap(Ua)
    it = 0
    while m and it < max_iter:
        # ρ changes only between checks: (w + ρ)⁻¹ once per check
        inv_wr = 1.0 / (wa[:, None, :] + rho[..., None])
        if low_rank:
            inv_rho = 1.0 / rho[..., None]
            inv_wr = inv_wr - inv_rho
        for _ in range(check_every):
            # λ-step: (G + ρI) λ = ρ(z − u) − q through the eigendecomposition of G
            if low_rank:
                r_ = (z - u) * rho[..., None] - qa
                lam_a = r_ * inv_rho + ((r_ @ Ua) * inv_wr) @ Ut
            else:
                lam_a = ((((z - u) * rho[..., None] - qa) @ Ua) * inv_wr) @ Ut
            # over-relaxed λ̂ = αλ + (1 − α)z; z ← max(λ̂ + u, 0), u ← λ̂ + u − z
            w_ = alpha * lam_a + (1 - alpha) * z + u
            z_new = xp.maximum(w_, 0.0)
            u = w_ - z_new
            dz = z_new - z
            z = z_new
        it += check_every
        # residual balancing of ρ (OSQP, Stellato et al. 2020 sec. 5.2), per problem
        prim = xp.amax(xp.abs(lam_a - z), -1) / (xp.maximum(xp.amax(xp.abs(lam_a), -1),
                                                             xp.amax(xp.abs(z), -1)) + 1e-300)
        dual = xp.amax(xp.abs(rho[..., None] * dz), -1) / (xp.amax(xp.abs(qa), -1) + 1e-300)
        ratio = xp.sqrt(xp.clip((prim + 1e-300) / (dual + 1e-300), 1e-4, 1e4))
        new_rho = xp.clip(rho * ratio, 1e-9 * wmax, 1e6 * wmax)
        u = u * (rho / new_rho)[..., None]
        rho = new_rho
        k, mu_all = _gkkt(xp, Ga, qa, z, da, scale=qscale, return_mu=True)
        final = it >= max_iter
        if polish:
            # polish when close, and again each time ADMM has gained two more digits
            try_now = act & (k > tol) & (((k < polish_at) & (k < 1e-2 * last_try)) | final)
            if bool(xp.any(try_now)):
                gi, bi = xp.nonzero2(try_now)
                mu_sel = mu_all[gi, bi]
                zp, kp = _polish(xp, Ga, gi, qa[gi, bi], z[gi, bi], mu_sel, da[gi], tol)
                kold = k[gi, bi]
                better = kp < kold
                xp.setitem(z, (gi, bi), xp.where(better[:, None], zp, z[gi, bi]))
                xp.setitem(k, (gi, bi), xp.where(better, kp, kold))
                xp.setitem(last_try, (gi, bi), xp.minimum(kp, kold))
                gnp = np.asarray(xp.to_numpy(groups[gi]))
                bnp = np.asarray(xp.to_numpy(slot[gi, bi]))
                bet = np.asarray(xp.to_numpy(better), dtype=bool)
                polished[gnp[bet], bnp[bet]] = True
        done = act & ((k <= tol) | final)
        gall = np.asarray(xp.to_numpy(groups))
        actn = np.asarray(xp.to_numpy(act), dtype=bool)
        slotn = np.asarray(xp.to_numpy(slot))
        iters[gall[:, None].repeat(actn.shape[1], 1)[actn], slotn[actn]] = it
        if bool(xp.any(done)):
            gi, bi = xp.nonzero2(done)
            xp.setitem(lam, (groups[gi], slot[gi, bi]), z[gi, bi])
            xp.setitem(kkt, (groups[gi], slot[gi, bi]), k[gi, bi])
            act = act & ~done
            keep = xp.nonzero(xp.any(act, -1))
            if keep.shape[0] < m:
                groups, Ga, Ua, Ut, wa, da = (groups[keep], Ga[keep], Ua[keep], Ut[keep],
                                              wa[keep], da[keep])
                act, z, u, rho, last_try, qa, qscale, slot = (
                    act[keep], z[keep], u[keep], rho[keep], last_try[keep], qa[keep],
                    qscale[keep], slot[keep])
                m = groups.shape[0]
            # compact the slots to the active problems once they fill at most half of them:
            # the iterations then cost in proportion to the problems left, not to the group
            # sizes (a few slow problems per group otherwise keep every sample iterating)
            width = int(xp.to_numpy(xp.amax(xp.sum_int(act, -1), 0))) if m else 0
            if m and 2 * width <= act.shape[1]:
                order = xp.argsort_stable(~act)[:, :width]      # active slots first, in order
                rows = xp.arange(m)[:, None]
                act, z, u, rho, last_try, qa, qscale, slot = (
                    act[rows, order], z[rows, order], u[rows, order], rho[rows, order],
                    last_try[rows, order], qa[rows, order], qscale[rows, order],
                    slot[rows, order])
    return lam, np.asarray(xp.to_numpy(kkt)), iters, polished


def _gkkt(xp, G, q, lam, d, scale=None, return_mu=False):
    """Grouped KKT natural residual (P, B): see :func:`kkt_residual`. ``scale``: its
    denominator 1 + ||q||∞ when known; ``return_mu``: also return μ = Gλ + q."""
    mu = _gmatvec(G, lam) + q
    r = xp.amax(xp.abs(xp.minimum(d[:, None, :] * lam, mu)), -1)
    r = r / ((1.0 + xp.amax(xp.abs(q), -1)) if scale is None else scale)
    return (r, mu) if return_mu else r


def _polish(xp, G, gi, q, lam, mu, d, tol, max_steps: int | None = None):
    """Exact active-set refinement from an approximate solution; returns (λ, KKT residual).

    A vectorized Lawson–Hanson-style primal active-set method started from ``lam`` (≥ 0) and
    its support F:

    - solve the equality system G_FF x_F = −q_F (x = 0 off F);
    - if x_F > 0: accept λ = x; if some μ_i = (Gλ + q)_i < 0 off F, add the most negative i to
      F, else λ is optimal;
    - otherwise step from λ toward x until the first coordinate reaches 0 (ratio test) and drop
      the coordinates that reached 0 from F.

    Each step keeps λ ≥ 0 and lowers the objective, so the method is finite. Started from an
    ADMM iterate whose support is (nearly) the optimal one it typically needs one or two solves;
    it also handles the near-degenerate cases where ADMM is slow (adjacent vertices of densely
    sampled curves, repeated points), where the optimal support is a linearly independent subset
    of many almost-active points. Systems are compacted to the largest free set of the batch
    (free indices first, padded with identity rows); a relative ridge of 1e-13·d keeps singular
    G_FF solvable.

    G (P, n, n) grouped matrices and gi (m,) the group of each selected problem; q, lam, mu, d
    (m, n) for the selected problems.
    """
    m, n = q.shape
    if max_steps is None:
        max_steps = 2 * n + 10
    scale = 1.0 + xp.amax(xp.abs(q), -1)
    lam = xp.maximum(lam, 0.0)
    free = lam > 0
    best = xp.copy(lam)   # a copy: ``lam`` is updated in place below
    best_k = xp.amax(xp.abs(xp.minimum(d * lam, mu)), -1) / scale
    todo = best_k > tol
    Gflat = G.reshape(-1)

    def _step(sel):
        ms = sel.shape[0]
        rows = xp.arange(ms)
        f_s, q_s, d_s, g_s, l_s = free[sel], q[sel], d[sel], gi[sel], lam[sel]
        nf = xp.sum_int(f_s, -1)
        k = max(int(xp.to_numpy(xp.amax(nf, 0))), 1)
        perm = xp.argsort_stable(~f_s)[:, :k]                        # free indices first
        vf = xp.where(xp.arange(k)[None, :] < nf[:, None], 1.0, 0.0)
        # gather only the free-set submatrices through flat indices: G[g_s] would first copy a
        # full (n, n) matrix per problem, and multi-axis fancy indexing is several times slower
        base = (g_s * (n * n))[:, None, None]
        cols = perm[:, None, :]
        Gsub = Gflat[base + perm[:, :, None] * n + cols]                              # (ms, k, k)
        Gsub = Gsub * vf[:, :, None]
        Gsub *= vf[:, None, :]
        xp.add_to_diagonal(Gsub, (1.0 - vf) + 1e-13 * d_s[rows[:, None], perm] * vf)
        sol = xp.solve(Gsub, -q_s[rows[:, None], perm] * vf) * vf
        x = xp.zeros((ms, n))
        xp.setitem(x, (rows[:, None], perm), sol)
        positive = xp.all((x > 0) | ~f_s, -1)
        # ratio test for the problems whose solution left the orthant
        shrink = f_s & (x <= 0)
        ratio = xp.where(shrink, l_s / xp.where(shrink, l_s - x, 1.0), np.inf)
        step = xp.minimum(xp.amax(-ratio, -1) * -1.0, 1.0)          # min over the free set
        step = xp.where(positive, 1.0, step)
        new = xp.maximum(l_s + step[:, None] * (x - l_s), 0.0)
        hit = shrink & (new <= 1e-15 * xp.amax(new, -1)[:, None] + 1e-300)
        hit = hit | (shrink & (ratio <= step[:, None]))
        new = xp.where(hit, 0.0, new)
        f_new = f_s & ~hit
        # mu = G λ + q with one GEMM per manifold group (G symmetric: λ G = (G λ)ᵀ)
        # (the selected problems come sorted by group: one slice per group, no masks)
        mu_new = xp.zeros((ms, n))
        g_np = np.asarray(xp.to_numpy(g_s))
        cuts = [0, *(np.flatnonzero(np.diff(g_np)) + 1).tolist(), ms]
        if np.all(np.diff(g_np) >= 0):
            for a, b in zip(cuts[:-1], cuts[1:]):
                xp.setitem(mu_new, slice(a, b), new[a:b] @ G[int(g_np[a])])
        else:
            for g in np.unique(g_np):
                in_g = g_s == int(g)
                xp.setitem(mu_new, in_g, new[in_g] @ G[int(g)])
        mu_new = mu_new + q_s
        # optimal on F: add the most violated constraint
        viol = xp.where(f_new, np.inf, mu_new)
        worst = xp.argmin_last(viol)
        add = positive & (xp.amin_last(viol) < -tol * scale[sel])
        addmask = (xp.arange(n)[None, :] == worst[:, None]) & add[:, None]
        f_new = f_new | addmask
        kk = xp.amax(xp.abs(xp.minimum(d_s * new, mu_new)), -1) / scale[sel]
        xp.setitem(lam, sel, new)
        xp.setitem(free, sel, f_new)
        better = kk < best_k[sel]
        xp.setitem(best, sel, xp.where(better[:, None], new, best[sel]))
        xp.setitem(best_k, sel, xp.where(better, kk, best_k[sel]))
        xp.setitem(todo, sel, (kk > tol) & (xp.sum_int(f_new, -1) > 0) | add)

    for _ in range(max_steps):
        if not bool(xp.any(todo)):
            break
        sel = xp.nonzero(todo)
        # one solve per bucket of similar free-set size: padding every system of the batch to
        # the largest free set made the solves and gathers several times dearer
        bucket = (xp.sum_int(free[sel], -1) + POLISH_BUCKET - 1) // POLISH_BUCKET
        for b in np.unique(xp.to_numpy(bucket)):
            _step(sel[bucket == int(b)])
    return best, best_k


# --------------------------------------------------------------------------------------------
# the primal problem MFT and GLUE need
# --------------------------------------------------------------------------------------------

def project_onto_polyhedral_cone(S, T, kappa: float = 0.0, **kwargs):
    """Solve ``min_v ||v − t||²  s.t.  sᵀv ≤ −κ`` for every column s of S, for a batch of t.

    This is the MFT problem of PRX 2018 (eq. 15, the reference code's sign convention). Its dual
    is (1) with ``G = SᵀS`` and ``q = −(Sᵀt + κ)``; then ``v = t − Sλ``. For GLUE-style joint
    problems with labels y, pass the columns ``−y_μ x`` (constraints ``y_μ xᵀv ≥ κ``).

    Parameters
    ----------
    S : array (d, m) or (B, d, m)
        Constraint vectors as columns; shared by the batch or one matrix per problem.
    T : array (B, d)
        Points to project, one per row.
    kappa : float
        Margin κ ≥ 0.
    **kwargs
        Passed to :func:`solve_nonneg_qp` (``backend``, ``device``, ``tol``, ``max_chunk_bytes``…).

    Returns
    -------
    v : array (B, d)
        The projections (solutions).
    result : QPResult
        The dual solution ``lam`` (B, m) and diagnostics.
    """
    xp = get_namespace(kwargs.get("backend"), kwargs.get("device"))
    S = xp.asarray(S)
    T = xp.asarray(T)
    if S.ndim == 2:
        G = xp.swap(S) @ S
        q = -(T @ S) - kappa
        res = solve_nonneg_qp(G, q, **kwargs)
        v = T - res.lam @ xp.swap(S)
    else:
        G = xp.swap(S) @ S
        q = -(xp.swap(S) @ T[..., None])[..., 0] - kappa
        res = solve_nonneg_qp(G, q, **kwargs)
        v = T - (S @ res.lam[..., None])[..., 0]
    return v, res
