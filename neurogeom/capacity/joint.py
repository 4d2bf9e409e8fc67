"""The joint capacity QP over all manifolds' points for a dichotomy, and its anchor points.

For a Gaussian vector ``t`` and labels ``y`` (one sign per manifold), the joint problem
(GLUE/GCMC, Chou et al. 2024; the correlated MFT of Wakhloo et al. 2023) is

    v* = argmin_v ||v - t||²   subject to   y_mu x . v >= kappa  for every point x of manifold mu.

With the signed points ``z_i = y_mu(i) x_i`` as rows of Z, its dual is the non-negative QP
``min_{lam >= 0} ½ lamᵀ (Z Zᵀ) lam + lamᵀ (Z t - kappa)`` and ``v* = t + Zᵀ lam``. Joint
problems have far more constraints than dimensions (m points in the r-dim span), where the
shared ADMM solver :func:`neurogeom.capacity.qp.solve_nonneg_qp` converges slowly (thousands of
iterations on a rank-29 Gram of 640 points); :func:`active_set_qp` solves them exactly with a
Lawson–Hanson active set that never holds more than about r+1 points (``solver="active_set"``;
``solver="shared"`` uses the batched ADMM solver — the solvers agree in the tests).

The default ``solver="screened"`` (issue 15) uses that a joint solution keeps few points
active (a handful per touching manifold, at most about r in all): each sample starts from the
points most violated at ``v = t``, the restricted problem on k points is solved exactly in k
unknowns (Cholesky of its k x k Gram block taken from the points' Gram matrix, then compiled
NNLS — the r dimensions are never touched), the slacks of all samples of a dichotomy at their
restricted solutions come from one matrix product, and samples with a violated point add every
violated point and solve again (constraint generation). A restricted solution that violates no
constraint satisfies the full KKT conditions, so the answer is the same exact solution as the
active-set path (to its KKT tolerance). With a margin, the feasibility LP runs only when the
solve fails (it would cost as much as the solve). Each manifold's anchor is the convex
combination of its
points weighted by its duals, ``s_mu = sum_i lam_i x_i / sum_i lam_i``; a manifold with no active
constraint (sum lam = 0) gets the point nearest the margin, ``argmin_i y_mu x_i . v*`` (for
orthogonal manifolds this is the MFT anchor of an interior t).

``||v* - t||² = lamᵀ G lam = -lamᵀ q`` (complementary slackness), and the second form splits it
exactly into per-manifold shares ``-sum_{i in mu} lam_i q_i = Lam_mu (kappa - y_mu s_mu . t)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dtrtrs as _trtrs

from .._backend import resolve
from .._blas import single_threaded_blas
from ..errors import AnalysisError, ConvergenceError
from .qp import solve_nonneg_qp

DICHOTOMIES = ("random", "one_vs_rest")
SOLVERS = ("screened", "active_set", "shared")
#: the screened solver keeps the points' Gram matrix when it takes at most this many bytes
#: (5792 points); beyond, each restricted Gram block is computed from the coordinates
_GRAM_MAX_BYTES = 256 * 2**20
#: points per manifold that join a sample's screened set at a time (its most violated ones),
#: the first time and in later rounds
_FIRST_PER_MANIFOLD = 6
_PER_MANIFOLD = 3
#: samples whose screened solution has a larger KKT residual are re-solved at full size
_REFINE_ABOVE = 1e-9


@dataclass
class JointSolution:
    """Solutions of the joint QP for ``n_dichotomies x n_t`` samples (flattened: ``n``)."""

    t: np.ndarray            # (n, r) Gaussian samples
    labels: np.ndarray       # (n, P) the dichotomy of each sample
    anchors: np.ndarray      # (n, P, r) unsigned anchor points
    share: np.ndarray        # (n, P) per-manifold parts of ||v* - t||^2 (sum = the total)
    active: np.ndarray       # (n, P) whether the manifold has an active constraint
    kkt: np.ndarray          # (n,) KKT residual of each dual solution


def draw_labels(rng: np.random.Generator, n_manifolds: int, n_dichotomies: int,
                kind: str) -> np.ndarray:
    """(n_dichotomies, P) labels: i.i.d. fair signs, or one manifold positive in turn."""
    if kind == "random":
        return rng.choice([-1.0, 1.0], size=(n_dichotomies, n_manifolds))
    if kind == "one_vs_rest":
        labels = -np.ones((n_dichotomies, n_manifolds))
        labels[np.arange(n_dichotomies), np.arange(n_dichotomies) % n_manifolds] = 1.0
        return labels
    raise AnalysisError(f"dichotomy must be one of {DICHOTOMIES}, got {kind!r}")


def active_set_qp(Z: np.ndarray, t: np.ndarray, kappa: float = 0.0, *, tol: float = 1e-10,
                  max_iter: int | None = None, lam0: np.ndarray | None = None) -> np.ndarray:
    """Duals of ``min_v ||v - t||²  s.t.  Z v >= kappa`` by a Lawson–Hanson active set.

    Minimizes ``f(lam) = ½ ||t + Zᵀ lam||² - kappa 1ᵀ lam`` over ``lam >= 0`` (the dual). The
    gradient ``g = Z v - kappa`` (``v = t + Zᵀ lam``) is each constraint's slack; the most
    violated constraint joins the free set, the free duals are solved exactly from
    ``z_i . v = kappa`` (least squares when the free points are linearly dependent), and a step
    back to the feasible boundary drops duals that would turn negative (Lawson & Hanson 1974,
    ch. 23, with the linear term). Stops when every slack is >= -tol * (1 + |t|).

    Parameters
    ----------
    Z : ndarray (m, r)
        Signed constraint points as rows.
    t : ndarray (r,)
    kappa : float
    lam0 : ndarray (m,), optional
        A warm start (``>= 0``; e.g. an approximate solution): its positive entries are the
        initial free set, and the first step moves from it towards the exact solution on that
        set, dropping duals that would turn negative, as every later step does.

    Returns
    -------
    ndarray (m,)
        ``lam``, with ``Z v* >= kappa - tol`` and ``lam_i (z_i . v* - kappa) = 0``.
    """
    m, r = Z.shape
    lam = np.zeros(m)
    free: list[int] = []
    scale = 1.0 + np.abs(t).max() + kappa
    max_iter = 3 * m + 10 if max_iter is None else max_iter
    v = t.copy()
    warm = lam0 is not None and np.any(lam0 > 0)
    if warm:
        free = [int(i) for i in np.flatnonzero(lam0 > 0)]
        lam[free] = lam0[free]
    for _ in range(max_iter):
        if not warm:
            slack = Z @ v - kappa
            if free:
                slack[free] = np.inf
            j = int(np.argmin(slack))
            if slack[j] >= -tol * scale:
                return lam
            free.append(j)
        warm = False
        while True:
            zf = Z[free]                                           # (k, r)
            # stationarity on the free set: z_i . (t + zfᵀ s) = kappa
            s = np.linalg.lstsq(zf @ zf.T, kappa - zf @ t, rcond=None)[0]
            if np.all(s > 0):
                lam[free] = s
                break
            cur = lam[free]
            neg = s <= 0
            step = np.min(cur[neg] / (cur[neg] - s[neg]))
            lam[free] = cur + step * (s - cur)
            keep = lam[free] > 1e-15 * scale
            lam[[i for i, k in zip(free, keep) if not k]] = 0.0
            free = [i for i, k in zip(free, keep) if k]
            if not free:
                break
        v = t + Z[free].T @ lam[free] if free else t.copy()
    raise ConvergenceError(f"active-set QP did not converge in {max_iter} iterations "
                           f"({m} constraints, {r} dims; with kappa > 0 check that the "
                           "constraints are feasible)")


def check_joint_backend(solver: str, backend=None, device=None):
    """Resolve ``backend``/``device`` (:mod:`neurogeom._backend`) for a joint-QP ``solver``.

    Only the shared batched solver has a torch path; the active-set solver is numpy/scipy, so
    asking it for torch or a GPU is an error rather than a silent CPU run.
    """
    if solver not in SOLVERS:
        raise AnalysisError(f"solver must be one of {SOLVERS}, got {solver!r}")
    backend, device = resolve(backend, device)
    if solver != "shared" and backend != "numpy":
        raise AnalysisError(f"solver={solver!r} runs in numpy/scipy only, but backend="
                            f"{backend!r}, device={str(device)!r} was requested; use "
                            "solver='shared' for torch or a GPU")
    return backend, device


def solve_joint(coords: np.ndarray, owner: np.ndarray, labels: np.ndarray, t: np.ndarray,
                kappa: float = 0.0, *, solver: str = "screened", backend=None,
                device=None, tol: float = 1e-10,
                max_chunk_bytes: int = 64 * 2**20) -> JointSolution:
    """Solve the joint QP for every dichotomy and its Gaussian samples.

    Parameters
    ----------
    coords : ndarray (m, r)
        All points (rows), in any orthonormal coordinates of their span.
    owner : ndarray (m,)
        Manifold index of each point (0..P-1).
    labels : ndarray (n_dichotomies, P)
        ±1 per manifold.
    t : ndarray (n_dichotomies, n_t, r)
        Gaussian samples, ``n_t`` per dichotomy.
    kappa : float
        Margin.
    solver : {"screened", "active_set", "shared"}
        ``"screened"`` (default): constraint generation per sample, each restricted problem an
        exact k-unknown NNLS from the Cholesky factor of its Gram block, the slack checks of
        a dichotomy's samples batched into one matrix product (:func:`_solve_screened`; exact,
        like the others). ``"active_set"``: :func:`active_set_qp` per sample on all m points
        (exact; at kappa = 0 the same Lawson–Hanson iteration from ``scipy.optimize.nnls``;
        kept as the baseline of ``benchmarks/capacity.py --analysis``), or the shared batched
        solver :func:`neurogeom.capacity.qp.solve_nonneg_qp` (``backend``/``device`` apply, with
        the convention of :mod:`neurogeom._backend`).
    """
    backend, device = check_joint_backend(solver, backend, device)
    n_dich, n_t, rank = t.shape
    m = coords.shape[0]
    n_manifolds = labels.shape[1]
    if kappa > 0 and solver != "screened":
        _check_feasible(coords, owner, labels, kappa)
    if solver == "screened":
        # every restricted problem it solves is feasible, and an infeasible full problem ends
        # in dependent rows the margin cannot meet: the LP that names the dichotomy runs then
        # (it costs about as much as the whole screened solve, so not up front)
        # the points' Gram matrix, shared by every dichotomy (signs flip rows and columns);
        # one large product, so with the BLAS threads
        m = coords.shape[0]
        gram0 = coords @ coords.T if 8 * m * m <= _GRAM_MAX_BYTES else None
        try:
            with single_threaded_blas():
                lam, kkt = _solve_screened(coords, owner, labels, t, kappa, tol, gram0)
        except ConvergenceError:
            if kappa > 0:
                _check_feasible(coords, owner, labels, kappa)
            raise
        if kappa > 0 and np.max(kkt) > 1e-6:
            _check_feasible(coords, owner, labels, kappa)
    elif solver == "active_set":
        with single_threaded_blas():
            lam, kkt = _solve_active_set(coords, owner, labels, t, kappa, tol)
    else:
        lam, kkt = _solve_shared(coords, owner, labels, t, kappa, tol, backend, device,
                                 max_chunk_bytes)
    if np.max(kkt) > 1e-6:
        raise ConvergenceError(f"the joint QP did not converge: worst KKT residual "
                               f"{np.max(kkt):.2e} (tolerance 1e-6)")

    lam = lam.reshape(n_dich * n_t, m)
    t_flat = t.reshape(n_dich * n_t, rank)
    y = np.repeat(labels, n_t, axis=0)                               # (n, P)
    signed_proj = (t_flat @ coords.T) * y[:, owner]                  # z_i . t
    share_points = lam * (kappa - signed_proj)                       # -lam_i q_i
    onehot = np.zeros((m, n_manifolds))
    onehot[np.arange(m), owner] = 1.0
    share = share_points @ onehot                                    # (n, P)
    mass = lam @ onehot                                              # Lam_mu
    active = mass > 0
    # anchors: dual-weighted means of each manifold's points
    anchors = np.zeros((len(lam), n_manifolds, rank))
    for mu in range(n_manifolds):
        idx = np.flatnonzero(owner == mu)
        rows = active[:, mu]
        anchors[rows, mu] = (lam[rows][:, idx] @ coords[idx]) / mass[rows, mu][:, None]
    if not np.all(active):
        # inactive manifolds: the point nearest the margin, argmin y_mu x . v*
        v = t_flat + (lam * y[:, owner]) @ coords                    # v* = t + Z^T lam
        margin = (v @ coords.T) * y[:, owner]                        # (n, m)
        for mu in range(n_manifolds):
            rows = np.flatnonzero(~active[:, mu])
            if rows.size == 0:
                continue
            idx = np.flatnonzero(owner == mu)
            nearest = idx[np.argmin(margin[np.ix_(rows, idx)], axis=1)]
            anchors[rows, mu] = coords[nearest]
    return JointSolution(t_flat, y, anchors, share, active, kkt.reshape(-1))


def _check_feasible(coords, owner, labels, kappa):
    """With a margin, a dichotomy whose points no hyperplane through the origin separates makes
    the QP infeasible (||v* - t|| would be infinite): say so instead of iterating forever."""
    m, r = coords.shape
    for d, y in enumerate(labels):
        z = coords * y[owner][:, None]
        res = scipy.optimize.linprog(np.zeros(r), A_ub=-z, b_ub=-np.full(m, kappa),
                                     bounds=(None, None), method="highs")
        if res.status == 2:
            raise AnalysisError(
                f"with kappa={kappa} the joint QP is infeasible for dichotomy {d} (labels "
                f"{y.astype(int).tolist()[:20]}): no hyperplane through the (centered) origin "
                "separates these manifolds, so the capacity at this margin is 0; use kappa=0 "
                "or fewer/more separable manifolds")


def _solve_active_set(coords, owner, labels, t, kappa, tol):
    n_dich, n_t, _ = t.shape
    lam = np.empty((n_dich, n_t, coords.shape[0]))
    kkt = np.empty((n_dich, n_t))
    for d in range(n_dich):
        z = coords * labels[d][owner][:, None]
        for b in range(n_t):
            if kappa == 0:
                # kappa = 0: the dual is NNLS min ||t + Z^T lam||, and scipy's compiled
                # Lawson-Hanson is ~25x faster than the Python loop of active_set_qp
                lam[d, b] = scipy.optimize.nnls(z.T, -t[d, b])[0]
            else:
                lam[d, b] = active_set_qp(z, t[d, b], kappa, tol=tol)
        kkt[d] = _factored_kkt(z, (t[d] @ z.T) - kappa, lam[d])
    return lam, kkt


def _restricted_duals(zc: np.ndarray, gram: np.ndarray, slack: np.ndarray, t: np.ndarray,
                      kappa: float, tol: float) -> np.ndarray:
    """Exact duals of the joint QP restricted to the constraint rows ``zc`` (k, r).

    ``gram = zc zcᵀ`` and ``slack = zc t - kappa``. When the rows are independent,
    ``gram = Rᵀ R`` (Cholesky) and the dual ``½ ||t + zcᵀ lam||² - kappa 1ᵀ lam`` equals
    ``½ ||R lam - b||²`` up to a constant, with ``Rᵀ b = -slack``: an NNLS in k unknowns and k
    equations (compiled Lawson–Hanson), never touching the r dimensions. When they are not
    (or the Cholesky factor is too ill-conditioned to trust), ``zcᵀ = Q R`` (thin QR) reduces
    the problem to ``Qᵀ t`` exactly; at kappa = 0 it is the NNLS ``min ||Qᵀt + R lam||``, and
    with a margin :func:`active_set_qp` solves it, warm-started from the NNLS of the
    homogenized problem (one more coordinate: ``||t + zcᵀ lam||² + (c - (kappa/c) 1ᵀ lam)²``,
    twice the dual objective plus ``(kappa/c)² (1ᵀ lam)²``, so its free set is right for a
    large ``c``).
    """
    k = zc.shape[0]
    max_iter = 50 * k + 100
    # LAPACK directly: these are k x k with k ~ tens, where the checks of the scipy.linalg
    # wrappers cost more than the factorization
    r, info = _potrf(gram, lower=0, clean=1)
    diag = np.abs(np.diag(r))
    if info == 0 and diag.min() > 1e-6 * diag.max():
        b, info = _trtrs(r, -slack, lower=0, trans=1)
        if info == 0:
            return scipy.optimize.nnls(r, b, maxiter=max_iter)[0]
    q, r = np.linalg.qr(zc.T)
    tr = q.T @ t
    if kappa == 0:
        return scipy.optimize.nnls(r, -tr, maxiter=max_iter)[0]
    c = 1e4 * (1.0 + kappa) * (1.0 + np.abs(tr).max())
    a = np.vstack([r, np.full((1, k), -kappa / c)])
    lam0 = scipy.optimize.nnls(a, np.append(-tr, c), maxiter=max_iter)[0]
    return active_set_qp(r.T, tr, kappa, tol=tol, lam0=lam0)


def _most_violated(slack: np.ndarray, limit: np.ndarray, groups, per_group: int) -> np.ndarray:
    """(n, m) mask: in each row and group, the up to ``per_group`` smallest slacks below limit."""
    mask = np.zeros(slack.shape, dtype=bool)
    for idx in groups:
        s = slack[:, idx]
        if len(idx) > per_group:
            keep = np.argpartition(s, per_group - 1, axis=1)[:, :per_group]
            sub = np.zeros(s.shape, dtype=bool)
            np.put_along_axis(sub, keep, True, axis=1)
        else:
            sub = np.ones(s.shape, dtype=bool)
        mask[:, idx] = sub & (s < limit)
    return mask


def _solve_screened(coords, owner, labels, t, kappa, tol, gram0=None):
    """Per-sample exact duals by constraint generation, the slack checks batched per dichotomy.

    Every sample starts from the constraints most violated at ``v = t`` (a few per violated
    manifold; joint solutions keep few points of each manifold active), solves the restricted
    problem exactly (:func:`_restricted_duals`), and the slacks of all samples of the dichotomy
    at their restricted solutions are computed in one matrix product; samples with a violated
    constraint outside their set keep their free points, add the most violated ones (again a
    few per manifold) and solve again. A restricted solution that violates no constraint is the
    solution of the full problem (its KKT conditions hold for every row), so the answer is
    exact; the loop ends because ``|v - t|²`` grows strictly every round (dropping points with
    zero duals leaves the restricted solution unchanged, adding a violated one moves it), so
    no set repeats.
    """
    n_dich, n_t, _ = t.shape
    m = coords.shape[0]
    n_manifolds = labels.shape[1]
    lam = np.zeros((n_dich, n_t, m))
    kkt = np.empty((n_dich, n_t))
    per_manifold = _PER_MANIFOLD
    groups = [np.flatnonzero(owner == mu) for mu in range(n_manifolds)]
    for d in range(n_dich):
        sign = labels[d][owner]
        z = coords * sign[:, None]
        td = t[d]
        slack = td @ z.T - kappa                                    # (n_t, m) at v = t
        scale = tol * (1.0 + np.abs(td).max(axis=1) + kappa)
        # initial sets: per manifold, its most violated points (up to per_manifold of them)
        cand = _most_violated(slack, -scale[:, None], groups, _FIRST_PER_MANIFOLD)
        todo = np.flatnonzero(cand.any(axis=1))                     # the rest: lam = 0 (v = t)
        while todo.size:
            v = td[todo].copy()
            for j, b in enumerate(todo):
                idx = np.flatnonzero(cand[b])
                zc = z[idx]
                gram = (gram0[np.ix_(idx, idx)] * np.outer(sign[idx], sign[idx])
                        if gram0 is not None else zc @ zc.T)
                lam_b = _restricted_duals(zc, gram, slack[b, idx], td[b], kappa, tol)
                lam[d, b] = 0.0
                lam[d, b, idx] = lam_b
                v[j] += lam_b @ z[idx]
            new_slack = v @ z.T - kappa
            free = lam[d, todo] > 0
            new_slack[free] = np.inf
            viol = _most_violated(new_slack, -scale[todo, None], groups, per_manifold)
            again = viol.any(axis=1)
            # keep the free points, drop the others (their restricted solution does not change
            # without them, so |v - t|² still grows every round: no cycling), add the violators
            cand[todo[again]] = free[again] | viol[again]
            todo = todo[again]
        kkt[d] = _factored_kkt(z, (td @ z.T) - kappa, lam[d])
        # a restricted solve that lost accuracy (a nearly dependent set): the full-size
        # active set for that sample, as solver="active_set" does
        for b in np.flatnonzero(kkt[d] > _REFINE_ABOVE):
            lam[d, b] = (scipy.optimize.nnls(z.T, -td[b])[0] if kappa == 0
                         else active_set_qp(z, td[b], kappa, tol=tol))
            kkt[d, b] = _factored_kkt(z, td[b] @ z.T - kappa, lam[d, b][None])[0]
    return lam, kkt


def _factored_kkt(z, q, lam):
    """The natural KKT residual of :func:`neurogeom.capacity.qp.kkt_residual` for G = Z Zᵀ,
    computed from the factor (never forms the m x m Gram matrix)."""
    mu = (lam @ z) @ z.T + q                                        # G lam + q
    diag = np.sum(z ** 2, axis=1)
    r = np.abs(np.minimum(diag * lam, mu)).max(axis=-1)
    return r / (1.0 + np.abs(q).max(axis=-1))


def _solve_shared(coords, owner, labels, t, kappa, tol, backend, device, max_chunk_bytes):
    n_dich, n_t, _ = t.shape
    m = coords.shape[0]
    gram = coords @ coords.T
    # dichotomies per solver call: the (group, m, m) Gram stack and the (group, n_t, m) state
    per_group = 8 * (m * m + 4 * n_t * m)
    group = max(1, int(max_chunk_bytes // per_group))
    lam = np.empty((n_dich, n_t, m))
    kkt = np.empty((n_dich, n_t))
    for start in range(0, n_dich, group):
        stop = min(n_dich, start + group)
        sign = labels[start:stop][:, owner]                         # (g, m)
        g_stack = gram[None] * sign[:, :, None] * sign[:, None, :]  # D_y G D_y
        q = np.einsum("gbr,mr,gm->gbm", t[start:stop], coords, sign) - kappa
        res = solve_nonneg_qp(g_stack, q, tol=tol, backend=backend, device=device,
                              max_chunk_bytes=max_chunk_bytes)
        lam_chunk = res.lam
        if backend != "numpy":
            lam_chunk = lam_chunk.detach().cpu().numpy()
        lam[start:stop] = np.maximum(np.asarray(lam_chunk, dtype=np.float64), 0.0)
        kkt[start:stop] = res.kkt
    return lam, kkt
