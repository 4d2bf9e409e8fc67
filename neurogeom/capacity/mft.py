"""Replica mean-field theory (MFT) manifold capacity, radius and dimension (Chung et al. PRX 2018).

The pipeline follows the paper and the public reference (``mftma``): global centering,
optional center-correlation removal (:mod:`.centers`), per-manifold normalization by the center
norm, reduction of each manifold to its own span plus a constant "center" coordinate, and for
each Gaussian sample t the anchor point of the projection QP (solved batched by :mod:`.qp`).

Two entry points: :func:`manifold_capacity` takes an assembly and ``by=`` and returns an
``xarray.Dataset``; :func:`mft_analysis` takes the reference's input (a list of N × M_i arrays)
for users porting code, and returns a tuple-unpackable :class:`MFTResult`.
"""

from __future__ import annotations

import warnings
import zlib
from typing import NamedTuple, Sequence

import numpy as np
import xarray as xr

from .._backend import get_namespace, resolve
from .._blas import single_threaded_blas
from .._params import check_finite, check_int, check_memory, check_nonnegative, check_seed, scale_exponent
from .._results import build_result
from ..assembly import manifolds as group_manifolds
from ..assembly import validate
from ..errors import AnalysisError, format_list
from .centers import center_subspace, mean_abs_cosine
from .qp import solve_nonneg_qp

DIMENSIONS = ("rank", "reference")

__all__ = ["manifold_capacity", "mft_analysis", "MFTResult", "DIMENSIONS"]


class MFTResult(NamedTuple):
    """Per-manifold MFT results; unpacks like the reference's 5-tuple
    ``capacity, radius, dimension, rho_c, K = mft_analysis(...)``, plus diagnostics."""

    capacity: np.ndarray          # α_M per manifold
    radius: np.ndarray            # R_M
    dimension: np.ndarray         # D_M
    center_correlation: float     # ρ_c: mean |cos| between centers before removal
    K: int                        # dimensions of the center subspace projected out
    embedding_dim: np.ndarray     # D of each manifold's reduced coordinates (before the +1)
    interior_fraction: np.ndarray  # fraction of samples t needing no QP
    max_kkt: np.ndarray           # worst QP KKT residual per manifold
    residual_correlations: np.ndarray  # mean |cos| after removing K = 1..tried
    # overall capacity (harmonic mean) with the kept center subspace, then with each evaluated
    # alternative optimum of the center step (see :func:`mft_analysis`, "center step spread")
    center_step_capacities: np.ndarray = np.zeros(0)
    center_step_spread: float = 0.0   # (max − min) of center_step_capacities / the first one


#: Besides the kept one, the center step's lowest distinct optima at the chosen K whose
#: capacities enter ``center_step_spread``.
SPREAD_ALTERNATIVES = 3
#: Gaussian samples per manifold on which the spread's optima are compared (common samples).
SPREAD_SAMPLES = 50


def _manifold_seed(seed: int, key) -> np.random.Generator:
    """One independent stream per manifold, keyed by its label, so that reordering manifolds
    reorders results exactly instead of reshuffling the Gaussian samples."""
    spawn = zlib.crc32(str(key).encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(spawn,)))


class _LazySamples:
    """The Gaussian samples of every manifold, drawn on access from its keyed stream (the same
    array every time), so only the samples of the chunk being solved are held in memory."""

    def __init__(self, seed, keys, dims, n_t):
        self.seed, self.keys, self.dims, self.n_t = seed, list(keys), list(dims), n_t
        # with keep_first = n: a copy of the first n samples of each array drawn, by index
        self.keep_first, self.first = 0, {}

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, i):
        t = _manifold_seed(self.seed, self.keys[i]).standard_normal(
            (self.dims[i] + 1, self.n_t))
        if self.keep_first:
            self.first[i] = t[:, :self.keep_first].copy()
        return t


def _reduce(gram: np.ndarray, n_features: int, dimension: str, rank_tol: float) -> np.ndarray:
    """Coordinates (D × M) of a centered, normalized manifold in its own span, from its Gram
    matrix (M × M) of point inner products.

    The coordinates are diag(σ) Wᵀ from the eigendecomposition of the Gram matrix, each row's
    sign fixed so that its largest entry is positive: they depend only on inner products, so
    rotating the ambient space or permuting the points leaves the computation unchanged.
    ``"rank"`` keeps the r = rank directions (eigenvalues above ``rank_tol`` × the largest).
    ``"reference"`` pads them with zero rows to min(N, M) rows, which is what ``mftma``'s thin
    QR does (centered points have rank ≤ M − 1, so at least one of its M rows is empty when
    N > M); the padded rows are what bias its D_M.
    """
    M = gram.shape[0]
    w, W = np.linalg.eigh(gram)
    w, W = w[::-1], W[:, ::-1]
    scale = w[0] if w.size and w[0] > 0 else 0.0
    keep = w > rank_tol * scale if scale > 0 else np.zeros(w.shape, dtype=bool)
    coords = np.sqrt(w[keep])[:, None] * W[:, keep].T
    if coords.size:
        pivot = np.argmax(np.abs(coords), axis=1)
        coords = coords * np.sign(coords[np.arange(coords.shape[0]), pivot])[:, None]
    if dimension == "reference":
        rows = min(n_features, M)
        coords = np.vstack([coords, np.zeros((rows - coords.shape[0], M))])
    return coords


def _check_points(points: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
    if len(points) < 2:
        raise AnalysisError(f"MFT capacity needs at least 2 manifolds, got {len(points)}"
                            + (f" ({format_list(names)})" if names else ""))
    out, N = [], None
    for X, name in zip(points, names):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise AnalysisError(f"manifold {name} must be a 2-d (features × points) array, got "
                                f"shape {X.shape}")
        if X.shape[1] == 0:
            raise AnalysisError(f"manifold {name} has no points")
        if N is None:
            N = X.shape[0]
            if N == 0:
                raise AnalysisError(f"manifold {name} has no features (0 neuroids): MFT capacity "
                                    "needs at least one neuroid")
        elif X.shape[0] != N:
            raise AnalysisError(f"manifold {name} has {X.shape[0]} features, the first has {N}")
        if not np.isfinite(X).all():
            raise AnalysisError(f"manifold {name} contains NaN or infinite values")
        out.append(X)
    return out


def mft_analysis(manifolds: Sequence[np.ndarray], kappa: float = 0.0, n_t: int = 200, *,
                 seed: int = 0, center_correlations: bool = True, dimension: str = "rank",
                 t_vectors: Sequence[np.ndarray] | None = None, backend=None,
                 device=None, n_reps: int = 32, keys: Sequence | None = None,
                 rank_tol: float = 1e-12, qp_tol: float = 1e-10,
                 max_chunk_bytes: int = 64 * 2**20, progress: bool | None = None,
                 spread_optima: int = SPREAD_ALTERNATIVES) -> MFTResult:
    """MFT capacity of manifolds given in the reference's layout (list of N × M_i arrays).

    Parameters
    ----------
    manifolds : sequence of ndarray (N, M_i)
        Points of each manifold as columns (features × points), as ``mftma`` takes them.
    kappa : float
        Margin κ ≥ 0.
    n_t : int
        Number of Gaussian samples t per manifold.
    seed : int
        Seeds the samples t (one stream per manifold, keyed by ``keys``) and the
        center-correlation optimizer's starts.
    center_correlations : bool
        Remove the low-rank structure of the centers first (reference default: on).
    dimension : {"rank", "reference"}
        Reduce each manifold to the rank of its centered points (default; unbiased D_M) or keep
        the reference's min(N, M) rows (zero-padded), which biases D_M (a 2-point segment gives
        2(2/π)² ≈ 0.81 instead of 1) but reproduces the reference's numbers in distribution
        (its QR basis is not reproduced, so its own ``t_vecs`` give other per-sample values).
    t_vectors : sequence of ndarray (D_i + 1, n_t), optional
        The Gaussian samples, one array per manifold, columns are samples (the reference's
        ``t_vecs``). D_i is the reduced dimension (:attr:`MFTResult.embedding_dim`; with
        ``dimension="reference"`` it is min(N, M_i)). Overrides ``n_t`` and ``seed`` for t.
    backend, device
        Array backend and device of the QP solver (:mod:`neurogeom._backend`: default numpy on
        the CPU; ``device="cuda:0"`` alone runs torch on that GPU).
    n_reps : int
        Uniformly random starts per K of the center-correlation optimizer, besides its (up to
        four) deterministic and reference-style ones (:func:`~neurogeom.capacity.centers.center_subspace`;
        the reference uses 10 random starts).
    keys : sequence, optional
        One hashable per manifold naming its random stream (default: the index).
    rank_tol : float
        Eigenvalues of a manifold's Gram matrix below ``rank_tol`` × the largest count as zero
        (``dimension="rank"``).
    qp_tol : float
        KKT tolerance of the QP solver.
    max_chunk_bytes : int
        QPs are built and solved for as many manifolds at a time as fit in about this many
        bytes of solver state, so memory holds the data plus one chunk.
    progress : bool or None
        A progress bar over the manifolds' QPs (tqdm): None shows it only on a terminal.
    spread_optima : int
        How many of the center step's other optima (below) are evaluated for
        ``center_step_spread`` (default 3; 0 skips it and reports the spread as NaN, "not
        computed").

    Returns
    -------
    MFTResult

    Notes
    -----
    **Center step spread.** The center-correlation cost is non-convex; its restarts (see
    :func:`~neurogeom.capacity.centers.center_subspace`) reach several distinct local optima, of
    which the lowest is kept. ``center_step_capacities`` holds the overall capacity
    α = 1/mean_μ(1/α_M) with the kept subspace, then with each of the ``spread_optima``
    lowest *other* distinct proper optima reached at the chosen K, and ``center_step_spread`` =
    (max − min)/α_kept over them: how much the answer would move had the optimizer stopped
    in another optimum, as a single random start (the reference's procedure) may. It is 0
    when every restart reached the same optimum or nothing was removed (K = 0,
    ``center_correlations=False``). A large spread says the centers' low-rank structure is
    ill-determined (e.g. near the frame-potential floor of the cost), not that the kept answer
    is seed-dependent: with the default restarts the kept optimum is the same for every seed on
    the data we tested. The other optima's capacities are estimated as α_kept · α_other(s) /
    α_kept(s), where (s) means computed on the first ``SPREAD_SAMPLES`` = 50 of the Gaussian
    samples t per manifold, the same for both (common random numbers: the ratio is accurate to
    about 1% where α itself would move 3% between sample sets). α_kept(s) comes from the QPs
    of α itself (the same problems); the other optima add ``spread_optima`` × 50 QPs per
    manifold, solved in one batch, and only their capacities are computed (at the default 3
    optima and n_t = 200, three quarters of the QPs of α itself). ``center_step_spread`` is a
    diagnostic of the center step's landscape; it does not enter α, R_M or D_M.
    """
    get_namespace(backend, device)   # a bad backend/device fails before any work
    coords, T, rho_c, K, residuals, alternative_coords = _prepare(
        manifolds, kappa, n_t, seed, center_correlations, dimension, t_vectors, n_reps, keys,
        rank_tol, spread_optima)
    dims = np.array([S.shape[0] for S in coords])
    n_full = T.n_t if isinstance(T, _LazySamples) else T[0].shape[1]
    n_sub = min(n_full, SPREAD_SAMPLES)
    if isinstance(T, _LazySamples) and alternative_coords:
        T.keep_first = n_sub    # the spread's samples, kept from the draws of the main QPs
    capacity, radius, dimension_m, interior, max_kkt, kept_sub = _solve_and_measure(
        coords, T, kappa, backend, device, qp_tol, max_chunk_bytes, progress,
        n_sub=n_sub if alternative_coords else None)
    overall = [_harmonic_mean(capacity)]
    if alternative_coords:
        # The other optima are evaluated on the first SPREAD_SAMPLES samples per manifold, and
        # so is the kept one (read off its QPs above: the same problems): with common random
        # numbers the ratio of two capacities is precise from few samples (on the CNN
        # benchmark data, 50 samples give the ratio to ~1% of α while α itself moves ~3%), and
        # it scales the full-sample α of the kept optimum.
        keys = list(keys) if keys is not None else list(range(len(coords)))

        firsts = T.first if isinstance(T, _LazySamples) else dict(enumerate(T))

        def subsamples(cs):
            return [firsts[i][:, :n_sub] if firsts[i].shape[0] == S.shape[0] + 1 else
                    _manifold_seed(seed, keys[i]).standard_normal(
                        (S.shape[0] + 1, n_full))[:, :n_sub]
                    for i, S in enumerate(cs)]

        # every alternative in one batched solve (one QP batch instead of one per optimum: the
        # passes are small, so per-call overhead dominated)
        caps = _solve_and_measure([S for cs in alternative_coords for S in cs],
                                  [t for cs in alternative_coords for t in subsamples(cs)], kappa,
                                  backend, device, qp_tol, max_chunk_bytes, False,
                                  capacity_only=True)[0]
        sub = _harmonic_mean(kept_sub)
        overall += [overall[0] * _harmonic_mean(c) / sub
                    for c in caps.reshape(len(alternative_coords), len(coords))]
    overall = np.asarray(overall)
    if center_correlations and K and not spread_optima:
        spread = float("nan")     # not computed (documented)
    else:
        spread = float((overall.max() - overall.min()) / overall[0]) if overall[0] > 0 else 0.0
    return MFTResult(capacity, radius, dimension_m, float(rho_c), int(K), dims, interior,
                     max_kkt, residuals, overall, spread)


def _harmonic_mean(capacity):
    return float(1.0 / np.mean(1.0 / capacity))


def _prepare(manifolds, kappa, n_t, seed, center_correlations, dimension, t_vectors, n_reps,
             keys, rank_tol, spread_optima=0):
    """Steps 1–5 of the pipeline up to the QPs: validated inputs → (reduced coordinates per
    manifold, Gaussian samples per manifold, ρ_c, K, residual correlations, and the reduced
    coordinates under each of the first ``spread_optima`` other optima of the center step)."""
    names = [repr(k) for k in keys] if keys is not None else [str(i) for i in
                                                              range(len(manifolds))]
    points = _check_points(manifolds, names)
    kappa = check_nonnegative(kappa, "kappa")
    seed = check_seed(seed)
    n_reps = check_int(n_reps, "n_reps")
    spread_optima = check_int(spread_optima, "spread_optima", minimum=0)
    if dimension not in DIMENSIONS:
        raise AnalysisError(f"dimension must be one of {DIMENSIONS}, got {dimension!r}")
    if t_vectors is None:
        n_t = check_int(n_t, "n_t (number of Gaussian samples)")
        # the QPs of one manifold at least must fit: its samples, its Gram matrix, and the
        # solver's (n_t, M) working arrays (duals, gradients, active sets: about 8 of them)
        worst = max(points, key=lambda X: X.shape[1])
        M, D = worst.shape[1], min(worst.shape)
        check_memory(8.0 * (n_t * (D + 1 + 8 * M) + M * M),
                     f"MFT capacity with n_t={n_t} Gaussian samples per manifold "
                     f"({M} points in {worst.shape[0]} features)", "lower n_t")
    if t_vectors is not None and len(t_vectors) != len(points):
        raise AnalysisError(f"t_vectors has {len(t_vectors)} arrays for {len(points)} manifolds")
    # Capacity, radius and dimension do not depend on the data's scale: divide
    # by a common power of two (exact) so that nothing below overflows or underflows.
    # Each manifold is scaled when it is used, so no scaled copy of all the data is kept.
    exponent = scale_exponent(*points)

    def scaled(X):
        return np.ldexp(X, -exponent) if exponent else X

    P = len(points)
    keys = list(keys) if keys is not None else list(range(P))

    # 1. global centering and centers (reference pipeline step 1); one pass over the data
    n_total = sum(X.shape[1] for X in points)
    sums = [scaled(X).sum(axis=1) for X in points]
    origin = sum(sums) / n_total
    centers = np.stack([s / X.shape[1] for s, X in zip(sums, points)]) - origin   # (P, N)
    check_finite(centers, "the manifold centers")
    spread = np.abs(centers - centers.mean(axis=0)).max()
    if spread <= 1e-12 * (np.abs(centers).max() + np.abs(origin).max() + 1e-300):
        raise AnalysisError(
            "all manifolds have the same center: MFT normalizes every manifold by its center's "
            "distance from the global mean, which is zero here (degenerate input, e.g. identical "
            "manifolds)")

    # 2. center-correlation removal
    alternatives = []
    if center_correlations:
        cs = center_subspace(centers, seed=seed, n_reps=n_reps, keys=keys)
        rho_c, K, V, residuals = cs["rho_c"], cs["K"], cs["V"], np.asarray(cs["residuals"])
        alternatives = cs["alternatives"][:spread_optima]
    else:
        rho_c = mean_abs_cosine(centers - centers.mean(axis=0))
        K, V, residuals = 0, np.zeros((centers.shape[1], 0)), np.zeros(0)

    # 3–4. project out V, normalize by the center norm, reduce to the manifold's span. Only
    # the Gram matrix of each normalized manifold is needed, so no projected copy of the data
    # is made: with Y the manifold's centered points, ||(I − VVᵀ)Y||-Gram = YᵀY − (VᵀY)ᵀ(VᵀY).
    N = centers.shape[1]

    # YᵀY of each manifold's centered points Y, computed once for the kept subspace and the
    # spread's other optima (small matrices: single-threaded BLAS, threads only cost)
    point_grams = []
    with single_threaded_blas():
        for X in points:
            X = scaled(X)
            Y = X - X.mean(axis=1, keepdims=True)
            point_grams.append((Y.T @ Y, float(np.sum(Y * Y)) / Y.shape[1]))

    def reduced(V):
        grams = []
        with single_threaded_blas():
            for X, (YtY, spread2), c, name in zip(points, point_grams, centers, names):
                B = V.T @ scaled(X)
                B -= B.mean(axis=1, keepdims=True)          # Vᵀ Y without a copy of Y
                c_ns = c - V @ (V.T @ c)          # center in the null space of V, explicitly (no
                norm2 = float(c_ns @ c_ns)        # cancellation when the center lies mostly in V)
                check_finite(norm2, f"manifold {name}'s squared center norm")
                if norm2 <= 1e-24 * (float(c @ c) + spread2 + 1e-300):
                    raise AnalysisError(
                        f"manifold {name}'s center coincides with the global mean"
                        + (" after removing the center-correlation subspace" if K else "")
                        + ": its capacity is undefined (MFT normalizes by the center norm)")
                grams.append((YtY - B.T @ B) / norm2)
                check_finite(grams[-1], f"manifold {name}'s normalized Gram matrix")
            return [_reduce(g, N, dimension, rank_tol) for g in grams]

    coords = reduced(V)
    alternative_coords = []
    for Va in alternatives:
        try:
            alternative_coords.append(reduced(Va))
        except AnalysisError:   # an optimum that sends a center to the mean: no capacity
            continue

    # 5. Gaussian samples and the batched QPs, grouped by number of points
    dims = np.array([S.shape[0] for S in coords])
    if t_vectors is None:
        T = _LazySamples(seed, keys, dims, int(n_t))
    else:
        T = []
        for i, (t, d) in enumerate(zip(t_vectors, dims)):
            t = np.asarray(t, dtype=np.float64)
            if t.ndim != 2 or t.shape[0] != d + 1 or not np.isfinite(t).all():
                raise AnalysisError(
                    f"t_vectors[{i}] (manifold {names[i]}) must be a finite ({d + 1}, n_t) array "
                    f"(reduced dimension D = {d} plus the center coordinate), got shape "
                    f"{t.shape}")
            T.append(t)
    return coords, T, rho_c, K, residuals, alternative_coords


def _solve_and_measure(coords, T, kappa, backend, device, qp_tol, max_chunk_bytes,
                       progress=None, n_sub=None, capacity_only=False):
    """Step 5–6: the batched QPs of every manifold (grouped by number of points and samples,
    chunked) and the per-manifold capacity, radius, dimension, interior fraction, max KKT;
    with ``n_sub``, also the capacity from the first ``n_sub`` samples alone (else None);
    ``capacity_only``: radius and dimension are left NaN."""
    P = len(coords)
    capacity, radius, dimension_m = np.zeros(P), np.zeros(P), np.zeros(P)
    sub_capacity = None if n_sub is None else np.zeros(P)
    interior, max_kkt = np.zeros(P), np.zeros(P)
    xp = get_namespace(backend, device)
    by_m: dict[tuple[int, int], list[int]] = {}
    for i, S in enumerate(coords):
        n_samples = T.n_t if isinstance(T, _LazySamples) else T[i].shape[1]
        by_m.setdefault((S.shape[1], n_samples), []).append(i)
    from tqdm.auto import tqdm

    bar = tqdm(total=P, desc="manifold capacity (QPs)", unit="manifold", leave=False,
               disable=None if progress is None else not progress)
    with bar, single_threaded_blas():   # small matrices: threads only cost
        for (M, nt), group in by_m.items():
            # bounded memory: G, q and λ of at most ~max_chunk_bytes worth of manifolds at a time
            per_manifold = 8 * (M * M + 3 * nt * M)
            step = max(1, int(max_chunk_bytes // per_manifold))
            for start in range(0, len(group), step):
                members = group[start:start + step]
                Tc = {i: T[i] for i in members}   # lazily drawn samples: one chunk in memory
                # G = SᵀS with S = [coords; 1] needs only the points' Gram matrix: XᵀX + 11ᵀ.
                G = np.stack([coords[i].T @ coords[i] + 1.0 for i in members])          # (p, M, M)
                # reference sign convention: constraints s·v ≤ −κ, dual q = −(Sᵀt + κ)
                # (PRX 2018 eq. 15 with t ↦ −t)
                q = np.stack([(coords[i].T @ Tc[i][:-1] + Tc[i][-1]).T for i in members])
                q += kappa
                np.negative(q, out=q)
                res = solve_nonneg_qp(xp.asarray(G), xp.asarray(q), tol=qp_tol, backend=backend,
                                      device=device, max_chunk_bytes=max_chunk_bytes)
                lam = np.asarray(xp.to_numpy(res.lam))                                # (p, nt, M)
                for j, i in enumerate(members):
                    out = _manifold_measures(coords[i], Tc[i], lam[j], kappa, n_sub,
                                             capacity_only)
                    capacity[i], radius[i], dimension_m[i], interior[i] = out[:4]
                    max_kkt[i] = res.kkt[j].max()
                    if n_sub is not None:
                        sub_capacity[i] = out[4]
                bar.update(len(members))
    return capacity, radius, dimension_m, interior, max_kkt, sub_capacity


def _manifold_measures(X, T, lam, kappa, n_sub=None, capacity_only=False):
    """Capacity, radius and dimension of one manifold from its QP duals (PRX 2018), and its
    interior fraction; with ``n_sub``, also the capacity from the first ``n_sub`` samples
    alone (a fifth value); ``capacity_only`` leaves radius and dimension NaN.

    X (D, M) reduced coordinates, T (D+1, n_t) samples, lam (n_t, M) duals.
    """
    D, M = X.shape
    Sfull = np.vstack([X, np.ones((1, M))])
    sl = Sfull @ lam.T                                   # t − v* = Sλ, (D+1, n_t)
    total = sl[-1]                                       # Σλ (last coordinate of S is 1)
    # samples whose projection moved t by (numerically) nothing are interior: the anchor is
    # the manifold point of largest projection (the reference's ``maxproj``)
    moved = np.sqrt(np.sum(sl ** 2, axis=0)) >= 1e-8
    best = np.argmax(X.T @ T[:-1], axis=0) if D else np.zeros(T.shape[1], dtype=int)
    anchors = np.where(moved[None, :], sl / np.where(moved, total, 1.0)[None, :], Sfull[:, best])
    # 1/α_M = mean_t max(t·s̃ + κ, 0)² / ||s̃||²   (PRX 2018 eqs. 16–17)
    proj = np.maximum(np.sum(T * anchors, axis=0) + kappa, 0.0)
    terms = proj ** 2 / np.sum(anchors ** 2, axis=0)
    capacity = _inverse(np.mean(terms))
    extra = () if n_sub is None else (_inverse(np.mean(terms[:n_sub])),)
    if D == 0:  # points: no extent
        return (capacity, 0.0, 0.0, float(np.mean(~moved)), *extra)
    if capacity_only:
        return (capacity, np.nan, np.nan, float(np.mean(~moved)), *extra)
    # R_M: spread of the anchors' manifold coordinates (PRX 2018 eq. 28)
    ds = (anchors[:-1] - anchors[:-1].mean(axis=1, keepdims=True)) / anchors[-1]
    radius = float(np.sqrt(np.mean(np.sum(ds ** 2, axis=0))))
    # D_M = D (E t̂·ŝ)² over the first D coordinates (PRX 2018 eq. 29); a zero anchor
    # contributes 0 instead of 0/0
    tn = np.linalg.norm(T[:-1], axis=0)
    sn = np.linalg.norm(anchors[:-1], axis=0)
    cos = np.sum(T[:-1] * anchors[:-1], axis=0) / np.where(tn * sn > 0, tn * sn, np.inf)
    dim = float(D * np.mean(cos) ** 2)
    return (capacity, radius, dim, float(np.mean(~moved)), *extra)


def _inverse(inv_alpha):
    return 1.0 / inv_alpha if inv_alpha > 0 else np.inf


#: A manifold with at least this many points, and more than twice as many points as the
#: space has dimensions, gets a warning before its QPs are solved.
MANY_POINTS = 500


def _warn_many_points(groups, n_neuroids: int, n_t: int) -> None:
    """Warn when the largest manifold has many more points than dimensions (slow QPs)."""
    most = max(len(p) for _, p in groups)
    if most >= MANY_POINTS and most > 2 * n_neuroids:
        warnings.warn(
            f"manifold_capacity: manifolds of up to {most} points in {n_neuroids} dimensions: "
            f"each of the {n_t} samples per manifold solves a QP with one variable per point, "
            "which can take minutes. Single trials as points? Average the repetitions first "
            "(average_repetitions, or --average-repetitions); or lower n_t, or pass a GPU "
            "device", stacklevel=3)


def manifold_capacity(a: xr.DataArray, by: str, *, kappa: float = 0.0, n_t: int = 200,
                      seed: int = 0, center_correlations: bool = True, dimension: str = "rank",
                      t_vectors: Sequence[np.ndarray] | None = None, backend=None,
                      device=None, n_reps: int = 32, progress: bool | None = None,
                      spread_optima: int = SPREAD_ALTERNATIVES) -> xr.Dataset:
    """Replica MFT manifold capacity, radius and dimension of the manifolds ``by`` labels.

    Parameters
    ----------
    a : xarray.DataArray
        A ``(presentation, neuroid)`` or ``(time, neuroid)`` assembly (see
        :func:`neurogeom.assembly.validate`). Average repetitions first if each stimulus should
        be one point.
    by : str
        Coord on the sample dim whose labels define the manifolds (e.g. ``"object_name"``).
    kappa : float
        Margin κ ≥ 0.
    n_t : int
        Number of Gaussian samples t per manifold (default 200, as in the other capacity
        analyses; the Monte-Carlo error of one manifold's capacity is ≈ 2/√n_t relative).
    seed : int
        Seeds the samples (one stream per manifold label) and the center-correlation starts.
    center_correlations : bool
        Remove the center-correlation subspace first (the reference's default).
    dimension : {"rank", "reference"}
        ``"rank"`` reduces each manifold to the rank of its centered points; ``"reference"``
        reproduces the reference's zero-padded reduction (biased D_M).
    t_vectors : sequence of ndarray (D_i + 1, n_t), optional
        The Gaussian samples per manifold (sorted label order), for exact comparisons.
    backend : {None, "numpy", "torch"}
        Array library of the QP solver; None is numpy unless ``device`` names a GPU (the
        convention of :mod:`neurogeom._backend`, shared by every analysis).
    device : None, str or torch.device
        None or ``"cpu"``: the CPU; ``"cuda:0"``…: that GPU (torch).
    n_reps : int
        Uniformly random starts per K of the center-correlation optimizer, besides its (up to
        four) deterministic and reference-style ones (reference: 10 random starts).
    progress : bool or None
        A progress bar over the manifolds (None: only on a terminal). Manifolds with many more
        points than dimensions (:data:`MANY_POINTS`) also get a warning: each of the ``n_t``
        QPs per manifold has one variable per point, so the time grows with the points.
    spread_optima : int
        Other optima of the center step evaluated for ``center_step_spread`` (default 3; 0: not
        computed, NaN). See :func:`mft_analysis`, Notes.

    Returns
    -------
    xarray.Dataset
        On dim ``manifold`` (the labels): ``capacity`` (α_M), ``radius`` (R_M), ``dimension``
        (D_M), ``n_points``, ``embedding_dim``, ``interior_fraction``, ``qp_max_kkt``.
        Scalars: ``capacity_overall`` (harmonic mean), ``radius_overall``, ``dimension_overall``
        (means), ``center_correlation`` (ρ_c), ``K``, ``center_step_spread`` ((max − min)/α
        of the overall capacity over the kept and the evaluated other optima of the
        center-correlation step: how fragile the answer is to that non-convex step; see
        :func:`mft_analysis`, Notes) and, on dim ``optimum``, ``center_step_capacity`` (those
        overall capacities, the kept one first). Attrs: ``analysis``, every parameter,
        the input's provenance, ``neurogeom_version`` and ``references`` (see
        :mod:`neurogeom._results`).

    Raises
    ------
    AssemblyError
        Unknown ``by`` (lists the available coords), NaN/inf values, empty labels.
    AnalysisError
        Fewer than 2 manifolds, kappa < 0, identical manifolds (all centers equal), bad
        ``t_vectors`` shapes, unknown ``dimension``/``backend``.

    Examples
    --------
    >>> import loaders, neurogeom as ng
    >>> a = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=30)
    >>> res = ng.manifold_capacity(ng.average_repetitions(a), by="object_name", n_t=50)
    >>> sorted(res.data_vars)[:3]
    ['K', 'capacity', 'capacity_overall']

    References
    ----------
    .. [1] Chung, Lee & Sompolinsky (2018). Classification and geometry of general perceptual
       manifolds. Phys. Rev. X 8, 031003.
    .. [2] Cohen, Chung, Lee & Sompolinsky (2020). Separability and geometry of object
       manifolds in deep neural networks. Nat. Commun. 11, 746.
    """
    backend, device = resolve(backend, device)   # bad options fail first; attrs record these
    validate(a)
    groups = group_manifolds(a, by, min_points=1)
    labels = [label for label, _ in groups]
    _warn_many_points(groups, a.sizes["neuroid"], n_t)
    result = mft_analysis([pts.T for _, pts in groups], kappa, n_t, seed=seed,
                          center_correlations=center_correlations, dimension=dimension,
                          t_vectors=t_vectors, backend=backend, device=device, n_reps=n_reps,
                          keys=labels, progress=progress, spread_optima=spread_optima)
    cap = result.capacity
    ds = build_result(
        {
            "capacity": ("manifold", cap),
            "radius": ("manifold", result.radius),
            "dimension": ("manifold", result.dimension),
            "n_points": ("manifold", np.array([len(p) for _, p in groups])),
            "embedding_dim": ("manifold", result.embedding_dim),
            "interior_fraction": ("manifold", result.interior_fraction),
            "qp_max_kkt": ("manifold", result.max_kkt),
            "capacity_overall": ((), 1.0 / np.mean(1.0 / cap)),
            "radius_overall": ((), float(np.mean(result.radius))),
            "dimension_overall": ((), float(np.mean(result.dimension))),
            "center_correlation": ((), result.center_correlation),
            "K": ((), result.K),
            "residual_center_correlation": ("k", result.residual_correlations),
            "center_step_spread": ((), result.center_step_spread),
            "center_step_capacity": ("optimum", result.center_step_capacities),
        },
        coords={"manifold": np.asarray(labels),
                "k": np.arange(1, len(result.residual_correlations) + 1),
                "optimum": np.arange(len(result.center_step_capacities))},
        analysis="manifold_capacity",
        parameters={
            "by": str(by), "kappa": float(kappa),
            "n_t": int(n_t if t_vectors is None else np.asarray(t_vectors[0]).shape[1]),
            "seed": int(seed), "center_correlations": bool(center_correlations),
            "dimension": dimension, "t_vectors": "given" if t_vectors is not None
            else "sampled", "backend": backend, "device": str(device), "n_reps": int(n_reps),
            "spread_optima": int(spread_optima),
        },
        inputs={"input": a},
        references=("mft", "mft_dnn"),
        details={
            "method": "replica mean-field theory, one QP per manifold and Gaussian sample t",
            "capacity_overall_is": "harmonic mean of per-manifold capacity",
            "sign_convention": "constraints s.v <= -kappa (reference mftma)",
        },
    )
    ds["capacity"].attrs["long_name"] = "MFT capacity alpha_M"
    ds["radius"].attrs["long_name"] = "manifold radius R_M relative to center norm"
    ds["dimension"].attrs["long_name"] = "manifold dimension D_M"
    ds["center_correlation"].attrs["long_name"] = "mean |cos| between centers before removal"
    ds["center_step_spread"].attrs["long_name"] = (
        "(max - min) / capacity_overall of the overall capacity over the kept and the other "
        "evaluated optima of the center-correlation step (NaN: not computed, spread_optima=0)")
    ds["center_step_capacity"].attrs["long_name"] = (
        "overall capacity with each center-step optimum; optimum 0 is the kept one")
    return ds
