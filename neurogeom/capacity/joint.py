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

From 2000 points on, the screened path solves each sample by a primal-dual active set
(:func:`_solve_pdas`; the same exact solution): per sample an inverse Cholesky factor of its
working set's Gram block, extended by new points' columns, points that left removed by
bordering; the samples of a dichotomy split among threads (numpy releases the GIL), the first
working sets guessed from the joint solution of the manifolds' centers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dtrtrs as _trtrs

from .._backend import resolve
from .._blas import blas_threads, single_threaded_blas, threaded_map
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
#: the primal-dual active set (:func:`_solve_pdas`) runs from this many points on; below, its
#: ~10-20 rounds of per-sample Python work cost more than the ~3.5 rounds of compiled NNLS of
#: :func:`_solve_screened` (480 points: 2-3x slower; 5000 points: 4-17x faster)
_PDAS_MIN_POINTS = 2000
#: the screened solver hands a kappa = 0 problem with fewer than _PDAS_MIN_POINTS points to one
#: full-size NNLS per sample when the data's rank reaches this fraction of the points
_FULL_NNLS_RANK = 0.75
#: points per violated manifold in a sample's first working set (its most violated at the
#: centers' joint solution, :func:`_center_guess`)
_PDAS_FIRST = 1
#: points per manifold that join a working set in a round (its most violated outside the set)
_PDAS_PER_ROUND = 1
#: samples whose screened solution has a larger KKT residual are re-solved at full size
_REFINE_ABOVE = 1e-9


@dataclass
class JointSolution:
    """Solutions of the joint QP for ``n_dichotomies x n_t`` samples (flattened: ``n``)."""

    t: np.ndarray            # (n, r) Gaussian samples
    labels: np.ndarray       # (n, P) the dichotomy of each sample
    anchors: np.ndarray | None  # (n, P, r) unsigned anchor points (None: not asked for; a
                                # SparseAnchors with anchors="sparse")
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
                max_chunk_bytes: int = 64 * 2**20, anchors: bool | str = True,
                low_rank: tuple | None = None, progress: bool | None = None) -> JointSolution:
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
        like the others; at kappa = 0 with a data rank of at least ``_FULL_NNLS_RANK`` (3/4)
        of the points and below ``_PDAS_MIN_POINTS`` points, the per-sample full-size NNLS of
        ``"active_set"`` instead, faster there). ``"active_set"``: :func:`active_set_qp` per sample on all m points
        (exact; at kappa = 0 the same Lawson–Hanson iteration from ``scipy.optimize.nnls``;
        kept as the baseline of ``benchmarks/capacity.py --analysis``), or the shared batched
        solver :func:`neurogeom.capacity.qp.solve_nonneg_qp` (``backend``/``device`` apply, with
        the convention of :mod:`neurogeom._backend`).
    low_rank : tuple (X, eps, blocks), optional
        The points' Gram matrix as ``coords coordsᵀ = X Xᵀ + eps blockdiag(B_mu)``, with X
        (m, r') and ``blocks`` a list of (index or slice of manifold mu's points, B_mu). When the
        coordinates have many more columns than X (whitened points: one per center and axis),
        the Gram matrix and its products come from X (:func:`_gram_products`); the answer is
        the same.
    anchors : bool or "sparse"
        Compute the anchor points (default). ``False`` leaves ``JointSolution.anchors`` None
        (callers that need only the shares, such as the correlated capacity, skip an
        ``(n, P, r)`` array and its products); ``"sparse"`` gives a :class:`SparseAnchors`,
        the same anchors as dual weights times points, dense only by blocks of samples (what
        :func:`neurogeom.capacity.effective.effective_geometry` uses).
    progress : bool or None
        A progress bar over the dichotomies (tqdm): None shows it only on a terminal.
    """
    backend, device = check_joint_backend(solver, backend, device)
    n_dich, n_t, rank = t.shape
    from tqdm.auto import tqdm

    bar = tqdm(total=n_dich, desc="joint QP", unit="dichotomy", leave=False,
               disable=None if progress is None else not progress)
    proj = None
    m = coords.shape[0]
    n_manifolds = labels.shape[1]
    if kappa > 0 and solver != "screened":
        _check_feasible(coords, owner, labels, kappa)
    # data rank (without the whitening's ridge dimensions) against the number of points
    data_rank = low_rank[0].shape[1] if low_rank is not None else coords.shape[1]
    if (solver == "screened" and kappa == 0 and m < _PDAS_MIN_POINTS
            and data_rank >= _FULL_NNLS_RANK * m):
        # nearly as many dimensions as points (e.g. 450 CNN activations in 512 features): the
        # restricted sets approach the rank and turn ill-conditioned, so restricting does not
        # pay; one compiled full-size NNLS per sample is faster (block1.pool of the digits
        # CNN: 8.9 s instead of 43 s for 4 x 100 samples)
        with bar, single_threaded_blas():
            lam, kkt = _solve_active_set(coords, owner, labels, t, kappa, tol, bar)
    elif solver == "screened":
        # every restricted problem it solves is feasible, and an infeasible full problem ends
        # in dependent rows the margin cannot meet: the LP that names the dichotomy runs then
        # (it costs about as much as the whole screened solve, so not up front)
        # the points' Gram matrix, shared by every dichotomy (signs flip rows and columns);
        # one large product, so with the BLAS threads
        m = coords.shape[0]
        gram0 = (_gram_matrix(coords, low_rank) if 8 * m * m <= _GRAM_MAX_BYTES else None)
        try:
            if gram0 is not None and m >= _PDAS_MIN_POINTS:
                proj = t @ coords.T                                  # (n_dich, n_t, m), z . t
                with bar:
                    lam, kkt = _solve_pdas_refined(coords, owner, labels, t, kappa, tol, gram0,
                                                   proj, low_rank, bar)
            else:
                products = (_gram_products(coords, gram0, low_rank) if gram0 is not None
                            else None)
                with bar, single_threaded_blas():
                    lam, kkt = _solve_screened(coords, owner, labels, t, kappa, tol, gram0,
                                               products, bar)
        except ConvergenceError:
            if kappa > 0:
                _check_feasible(coords, owner, labels, kappa)
            raise
        if kappa > 0 and np.max(kkt) > 1e-6:
            _check_feasible(coords, owner, labels, kappa)
    elif solver == "active_set":
        with bar, single_threaded_blas():
            lam, kkt = _solve_active_set(coords, owner, labels, t, kappa, tol, bar)
    else:
        with bar:
            lam, kkt = _solve_shared(coords, owner, labels, t, kappa, tol, backend, device,
                                     max_chunk_bytes, bar)
    if np.max(kkt) > 1e-6:
        raise ConvergenceError(f"the joint QP did not converge: worst KKT residual "
                               f"{np.max(kkt):.2e} (tolerance 1e-6)")

    lam = lam.reshape(n_dich * n_t, m)
    t_flat = t.reshape(n_dich * n_t, rank)
    y = np.repeat(labels, n_t, axis=0)                               # (n, P)
    if proj is None:
        proj = t_flat @ coords.T
    share, active, anchor_pts = _shares_and_anchors(lam, proj.reshape(n_dich * n_t, m), t_flat,
                                                    y, coords, owner, n_manifolds, kappa, anchors)
    return JointSolution(t_flat, y, anchor_pts, share, active, kkt.reshape(-1))


def _shares_and_anchors(lam, proj, t, y, coords, owner, p, kappa, anchors):
    """Per-manifold shares of ``||v* - t||²``, active flags and anchors from the duals.

    A solution keeps few points active per sample (at most about r+1 of the m), so every sum
    runs over the nonzero duals only: the shares ``-sum_{i in mu} lam_i q_i`` and masses
    ``Lam_mu = sum_{i in mu} lam_i`` are bincounts, the anchors one sparse product ``W X`` with
    ``W`` holding ``lam_i / Lam_mu`` at ((sample, manifold), point). A manifold with no active
    point gets its point nearest the margin, ``argmin_i y_mu x_i . v*``, with
    ``v* = t + Zᵀ lam`` (sparse as well) and the margins of that manifold's points only.
    """
    n, m = lam.shape
    rows, cols = np.nonzero(lam)
    vals = lam[rows, cols]
    mu = owner[cols]
    key = rows * p + mu                                              # (sample, manifold)
    sign = y[rows, mu]
    share = np.bincount(key, vals * (kappa - sign * proj[rows, cols]),
                        minlength=n * p).reshape(n, p)               # -lam_i q_i summed
    mass = np.bincount(key, vals, minlength=n * p).reshape(n, p)     # Lam_mu
    active = mass > 0
    if not anchors:
        return share, active, None
    # anchors: dual-weighted means of each manifold's points, sum_i (lam_i / Lam_mu) x_i
    share_of_mass = np.divide(vals, mass.ravel()[key], out=np.zeros_like(vals),
                              where=active.ravel()[key])
    if not np.all(active):
        # inactive manifolds: the point nearest the margin, argmin y_mu x . v* (weight 1)
        v = t + scipy.sparse.csr_array((vals * sign, (rows, cols)), shape=(n, m)) @ coords
        extra_key, extra_col = [], []
        with single_threaded_blas():                                 # one small product each
            for k in np.flatnonzero(~np.all(active, axis=0)):
                free = np.flatnonzero(~active[:, k])
                idx = np.flatnonzero(owner == k)
                margin = (v[free] @ coords[idx].T) * y[free, k][:, None]
                extra_key.append(free * p + k)
                extra_col.append(idx[np.argmin(margin, axis=1)])
        n_extra = sum(len(e) for e in extra_key)
        key = np.concatenate([key, *extra_key])
        cols = np.concatenate([cols, *extra_col])
        share_of_mass = np.concatenate([share_of_mass, np.ones(n_extra)])
    weights = scipy.sparse.csr_array((share_of_mass, (key, cols)), shape=(n * p, m))
    lazy = SparseAnchors(weights, coords, n, p)
    return share, active, (lazy if anchors == "sparse" else lazy[:])


class SparseAnchors:
    """The anchors ``(n, P, r)`` of a joint solution, kept as ``W X``: ``W`` (n P, m) sparse
    (each (sample, manifold) row holds its points' dual weights ``lam_i / Lam_mu``, or a 1 at
    the point nearest the margin for an inactive manifold) and the points X (m, r).

    Supports what :func:`neurogeom.capacity.effective.geometry_from_anchors` reads —
    ``shape``, ``mean(axis=0)`` and blocks of samples ``a[i:j]`` (dense (j - i, P, r)) — so
    that the (n, P, r) array (1.5 GB at 4000 samples of 100 manifolds in 500 dimensions) is
    never made; ``np.asarray`` makes it.
    """

    def __init__(self, weights, coords: np.ndarray, n: int, p: int):
        self.weights, self.coords = weights, coords
        self.shape = (n, p, coords.shape[1])
        self.ndim, self.dtype = 3, coords.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        n, p, r = self.shape
        rows = np.arange(n)[key]
        if np.ndim(rows) == 0:
            return self[int(rows):int(rows) + 1][0]
        if isinstance(key, slice) and (key.step in (None, 1)):
            sub = self.weights[rows[0] * p:(rows[-1] + 1) * p] if len(rows) else \
                self.weights[:0]
        else:
            sub = self.weights[(rows[:, None] * p + np.arange(p)).ravel()]
        return np.asarray(sub @ self.coords).reshape(len(rows), p, r)

    def mean(self, axis=0) -> np.ndarray:
        if axis != 0:
            raise ValueError("SparseAnchors.mean takes axis=0 (over samples) only")
        n, p, _ = self.shape
        w = self.weights.tocoo()
        mean_w = np.zeros((p, w.shape[1]))
        np.add.at(mean_w, (w.row % p, w.col), w.data)
        return (mean_w / n) @ self.coords

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _gram_matrix(coords, low_rank):
    """``coords coordsᵀ``, from ``low_rank = (X, eps, blocks)`` when given (see
    :func:`_gram_products`): ``X Xᵀ`` plus the ridge blocks, a tenth of the work for whitened
    points."""
    if low_rank is None:
        return coords @ coords.T
    x_mat, eps, blocks = low_rank
    gram = x_mat @ x_mat.T
    if eps:
        for idx, block in blocks:
            gram[(idx, idx) if isinstance(idx, slice) else np.ix_(idx, idx)] += eps * block
    return gram


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


def _solve_active_set(coords, owner, labels, t, kappa, tol, bar=None):
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
        if bar is not None:
            bar.update(1)
    return lam, kkt


def _restricted_duals(z: np.ndarray, idx: np.ndarray, gram: np.ndarray, slack: np.ndarray,
                      t: np.ndarray, kappa: float, tol: float) -> np.ndarray:
    """Exact duals of the joint QP restricted to the constraint rows ``zc = z[idx]`` (k, r).

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
    k = len(idx)
    max_iter = 50 * k + 100
    # LAPACK directly: these are k x k with k ~ tens, where the checks of the scipy.linalg
    # wrappers cost more than the factorization
    r, info = _potrf(gram, lower=0, clean=1)
    diag = np.abs(np.diag(r))
    if info == 0 and diag.min() > 1e-6 * diag.max():
        b, info = _trtrs(r, -slack, lower=0, trans=1)
        if info == 0:
            return scipy.optimize.nnls(r, b, maxiter=max_iter)[0]
    q, r = np.linalg.qr(z[idx].T)
    tr = q.T @ t
    if kappa == 0:
        return scipy.optimize.nnls(r, -tr, maxiter=max_iter)[0]
    c = 1e4 * (1.0 + kappa) * (1.0 + np.abs(tr).max())
    a = np.vstack([r, np.full((1, k), -kappa / c)])
    lam0 = scipy.optimize.nnls(a, np.append(-tr, c), maxiter=max_iter)[0]
    return active_set_qp(r.T, tr, kappa, tol=tol, lam0=lam0)


def _most_violated(slack: np.ndarray, limit: np.ndarray, groups, per_group: int) -> np.ndarray:
    """(n, m) mask: in each row and group, the up to ``per_group`` smallest slacks below limit."""
    n, m = slack.shape
    size = len(groups[0])
    if (size > per_group and size * len(groups) == m
            and all(idx[0] == i * size and idx[-1] == (i + 1) * size - 1
                    for i, idx in enumerate(groups))):
        # equal contiguous groups (the usual layout): one call on an (n, P, M) view
        s = slack.reshape(n, len(groups), size)
        keep = (np.argmin(s, axis=2)[..., None] if per_group == 1 else
                np.argpartition(s, per_group - 1, axis=2)[..., :per_group])
        sub = np.zeros(s.shape, dtype=bool)
        np.put_along_axis(sub, keep, True, axis=2)
        lim = np.asarray(limit).reshape(-1, 1, 1) if np.ndim(limit) else limit
        return (sub & (s < lim)).reshape(n, m)
    mask = np.zeros(slack.shape, dtype=bool)
    for idx in groups:
        s = slack[:, idx]
        if len(idx) > per_group:
            keep = (np.argmin(s, axis=1)[:, None] if per_group == 1 else
                    np.argpartition(s, per_group - 1, axis=1)[:, :per_group])
            sub = np.zeros(s.shape, dtype=bool)
            np.put_along_axis(sub, keep, True, axis=1)
        else:
            sub = np.ones(s.shape, dtype=bool)
        mask[:, idx] = sub & (s < limit)
    return mask


def _solve_screened(coords, owner, labels, t, kappa, tol, gram0=None, products=None,
                    bar=None):
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
            v = td[todo].copy() if products is None else None
            for j, b in enumerate(todo):
                idx = np.flatnonzero(cand[b])
                if gram0 is not None:
                    gram = _gram_block(gram0, idx, idx) * np.outer(sign[idx], sign[idx])
                else:
                    gram = z[idx] @ z[idx].T
                lam_b = _restricted_duals(z, idx, gram, slack[b, idx], td[b], kappa, tol)
                lam[d, b] = 0.0
                lam[d, b, idx] = lam_b
                if v is not None:
                    v[j] += lam_b @ z[idx]
            if v is None:                  # G lam + q, from the duals (sparse)
                new_slack = products(lam[d, todo] * sign) * sign + slack[todo]
            else:
                new_slack = v @ z.T - kappa
            free = lam[d, todo] > 0
            new_slack[free] = np.inf
            viol = _most_violated(new_slack, -scale[todo, None], groups, per_manifold)
            again = viol.any(axis=1)
            # keep the free points, drop the others (their restricted solution does not change
            # without them, so |v - t|² still grows every round: no cycling), add the violators
            cand[todo[again]] = free[again] | viol[again]
            todo = todo[again]
        kkt[d] = _refined_kkt(z, td, (td @ z.T) - kappa, lam[d], kappa, tol)
        if bar is not None:
            bar.update(1)
    return lam, kkt


def _refined_kkt(z, td, q, lam_d, kappa, tol):
    """KKT residuals of one dichotomy's duals ``lam_d`` (n_t, m), slacks ``q`` at v = t; a
    sample above ``_REFINE_ABOVE`` (a restricted solve that lost accuracy: a nearly dependent
    set) is re-solved in place by the full-size active set, as ``solver="active_set"`` does."""
    kkt = _factored_kkt(z, q, lam_d)
    for b in np.flatnonzero(kkt > _REFINE_ABOVE):
        lam_d[b] = (scipy.optimize.nnls(z.T, -td[b])[0] if kappa == 0
                    else active_set_qp(z, td[b], kappa, tol=tol))
        kkt[b] = _factored_kkt(z, q[b], lam_d[b][None])[0]
    return kkt


#: points per step when an inverse Cholesky factor is built afresh (:func:`_extend_inverse`)
_CHUNK = 64
#: a sample's factor is rebuilt when more than this fraction of its points left the set
_REFACTOR_FRACTION = 0.25


def _gram_block(gram0, rows, cols):
    """``gram0[np.ix_(rows, cols)]`` by one flat ``take`` (half the time of the fancy index on
    a Gram matrix of thousands of points, where every entry is a cache miss)."""
    return gram0.ravel().take(rows[:, None] * gram0.shape[1] + cols[None, :])


def _extend_inverse(t_old, g_old, gram0, sign, idx, p):
    """Inverse Cholesky factor and block of ``D G0 D`` on ``idx``, given them on ``idx[:p]``.

    Returns ``(T, G)``: ``G`` the signed Gram block of ``idx`` (kept per sample, so that only
    new columns are read from the large Gram matrix ``G0``) and ``T = R⁻¹``, the inverse of a
    factor ``G = RᵀR`` (so ``G⁻¹ = T Tᵀ``; upper triangular when built afresh, block upper
    triangular when ``t_old`` is any square factor, e.g. from :func:`_drop_points`, since the
    steps below need only ``T11 T11ᵀ = G11⁻¹``); T is None when the block is not
    numerically positive definite (a Cholesky failure, or diagonal ratio of R below 1e-6, i.e.
    condition > 1e12). Appending columns ``[B; C]`` to a factored block: ``R12 = R11⁻ᵀ B =
    T11ᵀ B``, ``R22 = chol(C - R12ᵀ R12)``, ``T22 = R22⁻¹``, ``T12 = -T11 R12 T22``; a block
    without ``t_old`` is built the same way in chunks of ``_CHUNK`` points. Every step is a
    matrix product or a small numpy factorization, which release the GIL (the per-sample
    solves of a round run on threads; scipy's LAPACK wrappers hold it), and the solves
    that follow are matrix-vector products.
    """
    k = len(idx)
    rest = idx[p:]
    g = np.empty((k, k))
    if p:
        g[:p, :p] = g_old
    if rest.size:
        cols = _gram_block(gram0, idx, rest) * np.outer(sign[idx], sign[rest])   # (k, a)
        g[:, p:] = cols
        g[p:, :p] = cols[:p].T
    t = np.zeros((k, k))
    if t_old is not None:
        t[:p, :p] = t_old
    else:
        p = 0
    while p < k:
        e = min(k, p + _CHUNK)
        c = g[p:e, p:e]
        if p:
            r12 = t[:p, :p].T @ g[:p, p:e]
            c = c - r12.T @ r12
        try:
            t22 = np.linalg.inv(np.linalg.cholesky(c)).T           # R22⁻¹ (R22 = Lᵀ)
        except np.linalg.LinAlgError:
            return None, g
        t[p:e, p:e] = t22
        if p:
            t[:p, p:e] = -(t[:p, :p] @ r12) @ t22
        p = e
    diag = np.abs(np.diag(t))                                       # 1 / diag(R)
    if diag.max() >= 1e6 * diag.min():
        return None, g
    return t, g


def _drop_points(t, keep, drop):
    """A factor ``F`` with ``F Fᵀ = G_SS⁻¹`` for the kept positions S of a block whose inverse
    factor T (``T Tᵀ = G⁻¹``) is known, or None. With J the dropped positions, the inverse of
    a principal block is a Schur complement of the inverse: ``G_SS⁻¹ = (G⁻¹)_SS - (G⁻¹)_SJ
    ((G⁻¹)_JJ)⁻¹ (G⁻¹)_JS``, all from rows of T (``(G⁻¹)_AB = T_A T_Bᵀ``); F is its lower
    Cholesky factor. A few matrix products instead of refactoring S from its Gram block (any
    square F with ``F Fᵀ = G_SS⁻¹`` extends as :func:`_extend_inverse` needs; G_SS is a
    principal block of a well-conditioned G, so no worse conditioned). None when the Schur
    complement is not numerically positive definite (then S is refactored).
    """
    ts, tj = t[keep], t[drop]
    cross = ts @ tj.T
    try:
        h = ts @ ts.T - cross @ np.linalg.solve(tj @ tj.T, cross.T)
        return np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        return None


def _bordered_solve(b, sets, upto, factors, grams, gram0, sign, q, mark):
    """Equality duals ``G_SS x = -q_S`` of sample ``b``'s working set ``S = sets[b]``.

    Kept: ``U = upto[b]`` with ``T = R⁻¹``, the inverse upper Cholesky factor of ``G_UU``
    (``factors[b]``), and ``G_UU`` itself (``grams[b]``, signed). Points of S not in U are
    appended to U and T (:func:`_extend_inverse`: only their columns). Points of U not in S
    (positions J) are removed by bordering: x solves ``G_UU x = -q_U + E_J y`` with
    ``x_J = 0``, i.e. ``y = -(E_Jᵀ G⁻¹ E_J)⁻¹ (G⁻¹ (-q_U))_J``, where ``E_Jᵀ G⁻¹ E_J = T_J T_Jᵀ``
    for the rows ``T_J`` of T: ``O(k |J|²)`` instead of refactoring. When J grows past a
    quarter of U (or 16 points), U is refactored from S (its block taken from ``grams[b]``, not
    the large Gram matrix). Returns x in the order of S (``sets[b]`` is reordered to U's
    order), or None when the block is ill-conditioned. ``mark`` is an all-False boolean scratch
    array over the points (membership tests; left all-False; one per thread).
    """
    s_set = sets[b]
    u = upto[b]
    mark[u] = True
    new = s_set[~mark[s_set]]
    mark[u] = False
    mark[s_set] = True
    inside = mark[u]
    mark[s_set] = False
    if factors[b] is None:
        t, g = _extend_inverse(None, None, gram0, sign, s_set, 0)
        u = s_set
    elif int(np.sum(~inside)) > max(16, int(_REFACTOR_FRACTION * len(u))):
        # refactor on S: the kept points' block from the cached one, the new ones' columns;
        # the kept points' factor from the old one (:func:`_drop_points`) where it can
        pos = np.flatnonzero(inside)
        u = np.concatenate([u[pos], new])
        kept = _drop_points(factors[b], pos, np.flatnonzero(~inside))
        t, g = _extend_inverse(kept, grams[b][np.ix_(pos, pos)], gram0, sign, u, pos.size)
    elif new.size:
        p = len(u)
        u = np.concatenate([u, new])
        t, g = _extend_inverse(factors[b], grams[b], gram0, sign, u, p)
    else:
        t, g = factors[b], grams[b]
    if t is None:
        return None
    factors[b], grams[b], upto[b] = t, g, u
    mark[s_set] = True
    keep = mark[u]
    mark[s_set] = False
    x = -(t @ (q[u] @ t))                                           # G_UU⁻¹ (-q_U)
    jpos = np.flatnonzero(~keep)
    if jpos.size:
        tj = t[jpos]                                                # T_J
        y = -np.linalg.solve(tj @ tj.T, x[jpos])
        x += t @ (y @ tj)
        x[jpos] = 0.0
    sets[b] = u[keep]
    return x[keep]


def _gram_products(coords, gram0, low_rank):
    """``x -> x G`` for rows ``x`` (n, m) of duals, ``G = coords coordsᵀ`` the points' Gram
    matrix, by the cheapest route: ``(x X) Xᵀ`` through the coordinates X, or, with
    ``low_rank = (X, eps, blocks)`` (``G = X Xᵀ + eps blockdiag(B_mu)``, ``blocks``: (index,
    B_mu) per manifold; e.g. whitened points, whose coordinates outnumber X's columns ten to
    one), through that X plus one small block per manifold; the Gram rows at the nonzero duals
    (sparse) when the points have more than m/4 coordinates and no ``low_rank``. The first
    product is dense although the duals are sparse (a few hundred nonzeros among thousands of
    points): with one BLAS thread it is as fast as scipy's sparse product here, and it
    releases the GIL (:func:`_solve_pdas` runs it on several threads).
    """
    if low_rank is not None:
        x_mat, eps, blocks = low_rank

        def apply(x):
            out = (x @ x_mat) @ x_mat.T
            if eps:
                for idx, block in blocks:
                    out[:, idx] += eps * (x[:, idx] @ block)
            return out
        return apply
    if coords.shape[1] > coords.shape[0] // 4:
        return lambda x: np.asarray(scipy.sparse.csr_matrix(x) @ gram0)
    return lambda x: (x @ coords) @ coords.T


def _gram_kkt(products, diag, sign, q, lam):
    """:func:`_factored_kkt` for duals ``lam`` (n, m) of one dichotomy (``sign`` per point),
    the products ``G lam`` by :func:`_gram_products`."""
    mu = products(lam * sign) * sign + q                              # G lam + q
    r = np.abs(np.minimum(diag * lam, mu)).max(axis=-1)
    return r / (1.0 + np.abs(q).max(axis=-1))


def _solver_threads() -> int:
    """Threads for the per-sample solves: the BLAS thread limit in force (the process's cores,
    or what the user or :func:`neurogeom.map_recordings` set for each worker, e.g. 1), at most
    4."""
    return max(1, min(4, blas_threads()))


def _solve_pdas(coords, owner, labels, t, kappa, tol, gram0, proj, products,
                max_iter=100, bar=None):
    """Per-sample exact duals by a primal-dual active set (semismooth Newton) on the support.

    For each sample, a working set ``S`` (first: each manifold's most violated point at the
    joint solution of the centers alone, :func:`_center_guess`) gets the equality solution ``G_SS lam_S = -q_S``; points of ``S`` with
    ``lam <= 0`` leave it and the most violated point of each manifold outside it joins (the
    primal-dual active set step of Hintermüller, Ito & Kunisch 2002, with additions limited to
    one per manifold so that ``G_SS`` stays below the rank). A sample stops when every
    ``lam_S > 0`` and no slack is below ``-tol (1 + |t| + kappa)``: then ``lam`` satisfies the
    full KKT conditions and is the exact solution (the same as the other solvers'). Work shared
    between samples and rounds: the slacks ``G lam + q`` of a group of samples come from two
    matrix products (``products``, :func:`_gram_products`), and each round reuses the sample's
    inverse Cholesky factor and Gram block (:func:`_bordered_solve`: new points' columns
    appended, points that left removed by bordering, a refactor once a quarter has left).

    The samples of each dichotomy are split among :func:`_solver_threads` threads, each
    running all rounds for its share with one-thread BLAS (numpy's products and
    factorizations release the GIL; OpenBLAS's own threads thrash on these sizes when the
    cores are busy); every sample's arithmetic is its own, so the result does not depend on
    the number of threads. Returns ``lam`` and a mask of the samples that did not finish (an
    ill-conditioned working set, or ``max_iter`` rounds); the caller solves those with
    :func:`_solve_screened`.
    """
    n_dich, n_t, _ = t.shape
    m = coords.shape[0]
    groups = [np.flatnonzero(owner == mu) for mu in range(labels.shape[1])]
    lam = np.zeros((n_dich, n_t, m))
    failed = np.zeros((n_dich, n_t), dtype=bool)
    n_threads = min(_solver_threads(), n_t)
    shares = [(d, np.arange(i, n_t, n_threads)) for d in range(n_dich) for i in range(n_threads)]
    local = threading.local()
    # the manifolds' centers as point weights and their Gram matrix (for _center_guess)
    weights = np.zeros((m, len(groups)))
    for mu, idx in enumerate(groups):
        weights[idx, mu] = 1.0 / max(len(idx), 1)
    with single_threaded_blas():
        centers = (weights, products(weights.T) @ weights)

    parts_left = [n_threads] * n_dich
    lock = threading.Lock()

    def task(share):
        d, samples = share
        if not hasattr(local, "mark"):
            local.mark = np.zeros(m, dtype=bool)
        _pdas_share(d, samples, labels[d][owner], proj, t, kappa, tol, gram0, products,
                    groups, lam, failed, local.mark, max_iter, centers)
        with lock:                         # a dichotomy is done when all its shares are
            parts_left[d] -= 1
            if parts_left[d] == 0 and bar is not None:
                bar.update(1)

    threaded_map(task, shares, max_workers=n_threads)
    return lam, failed


def _center_guess(q, sign, groups, centers, products):
    """Slacks at a first guess of v*: the joint QP of the manifolds' centers alone (P
    constraints ``y_mu c_mu . v >= kappa``, solved for all samples at once), its ``v`` plugged
    into every point's constraint. Only the first working sets come from it (the solution is
    exact whatever they are)."""
    weights, gram_c = centers
    qc = q @ weights                                                 # y_mu c_mu . t - kappa
    sc = np.array([sign[idx[0]] if len(idx) else 1.0 for idx in groups])
    res = solve_nonneg_qp(gram_c * np.outer(sc, sc), qc, tol=1e-6)
    lam_c = np.maximum(np.asarray(res.lam), 0.0) * sc                # signed center duals
    return products(lam_c @ weights.T) * sign + q


def _pdas_share(d, samples, sign, proj, t, kappa, tol, gram0, products, groups, lam, failed,
                mark, max_iter, centers):
    """All rounds of :func:`_solve_pdas` for ``samples`` of dichotomy ``d`` (one thread's
    share): duals into ``lam[d, samples]``, unfinished samples marked in ``failed``."""
    q = proj[d, samples] * sign - kappa                              # slacks at v = t
    scale = tol * (1.0 + np.abs(t[d, samples]).max(axis=1) + kappa)
    first = _most_violated(_center_guess(q, sign, groups, centers, products), -scale[:, None],
                           groups, _PDAS_FIRST)
    n = len(samples)
    # per sample (by position j in `samples`): its working set S, the ordered points U whose
    # inverse Cholesky factor and Gram block are kept (S plus points that left since the last
    # refactor, removed by bordering), the factor and the block
    sets = [np.flatnonzero(row) for row in first]
    upto: list = [np.empty(0, dtype=int) for _ in range(n)]
    factors: list = [None] * n
    grams: list = [None] * n
    out = np.zeros((n, lam.shape[2]))
    todo = [j for j in range(n) if sets[j].size]
    for _ in range(max_iter):
        ok = []
        for j in todo:
            x = _bordered_solve(j, sets, upto, factors, grams, gram0, sign, q[j], mark)
            out[j] = 0.0
            if x is None:
                failed[d, samples[j]] = True
                continue
            out[j, sets[j]] = x
            ok.append(j)
        todo = ok
        if not todo:
            break
        mu = products(out[todo] * sign) * sign + q[todo]             # G lam + q
        for i, j in enumerate(todo):
            mu[i, sets[j]] = np.inf
        viol = _most_violated(mu, -scale[todo, None], groups, _PDAS_PER_ROUND)
        again = []
        for i, j in enumerate(todo):
            idx = sets[j]
            neg = out[j, idx] <= 0
            add = np.flatnonzero(viol[i])
            if not neg.any() and add.size == 0:
                continue
            out[j, idx[neg]] = 0.0
            sets[j] = np.concatenate([idx[~neg], add])
            again.append(j)
        todo = again
        if not todo:
            break
    out[todo] = 0.0
    failed[d, samples[todo]] = True
    lam[d, samples] = out


def _solve_pdas_refined(coords, owner, labels, t, kappa, tol, gram0, proj, low_rank=None,
                        bar=None):
    """:func:`_solve_pdas`, its unfinished samples by :func:`_solve_screened`, then the KKT
    residuals (from :func:`_gram_products`), and the full-size active set for any above
    ``_REFINE_ABOVE`` (as :func:`_refined_kkt` does)."""
    products = _gram_products(coords, gram0, low_rank)
    lam, failed = _solve_pdas(coords, owner, labels, t, kappa, tol, gram0, proj, products,
                              bar=bar)
    kkt = np.empty(failed.shape)
    diag = np.diag(gram0).copy()
    for d in range(len(labels)):
        bad = np.flatnonzero(failed[d])
        sign = labels[d][owner]
        if bad.size:
            with single_threaded_blas():
                lam[d, bad] = _solve_screened(coords, owner, labels[d:d + 1], t[d:d + 1, bad],
                                              kappa, tol, gram0, products)[0][0]
        q = proj[d] * sign - kappa
        kkt[d] = _gram_kkt(products, diag, sign, q, lam[d])
        worse = np.flatnonzero(kkt[d] > _REFINE_ABOVE)
        if worse.size:
            with single_threaded_blas():
                lam_w = lam[d, worse]
                kkt[d, worse] = _refined_kkt(coords * sign[:, None], t[d, worse], q[worse],
                                             lam_w, kappa, tol)
                lam[d, worse] = lam_w
    return lam, kkt


def _factored_kkt(z, q, lam):
    """The natural KKT residual of :func:`neurogeom.capacity.qp.kkt_residual` for G = Z Zᵀ,
    computed from the factor (never forms the m x m Gram matrix)."""
    mu = (lam @ z) @ z.T + q                                        # G lam + q
    diag = np.sum(z ** 2, axis=1)
    r = np.abs(np.minimum(diag * lam, mu)).max(axis=-1)
    return r / (1.0 + np.abs(q).max(axis=-1))


def _solve_shared(coords, owner, labels, t, kappa, tol, backend, device, max_chunk_bytes,
                  bar=None):
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
        if bar is not None:
            bar.update(stop - start)
    return lam, kkt
