"""Capacity of correlated manifolds (Wakhloo, Sussman & Chung, PRL 2023).

Each manifold mu is written as its center ``u^mu_0`` plus axes ``u^mu_i`` (the
principal directions of its centered points, scaled by their singular values), so every point is
``x = u^mu_0 + sum_i s_i u^mu_i``. The covariance tensor ``C^{mu i}_{nu j} = <u^mu_i, u^nu_j>``
holds every correlation between centers and axes of different manifolds. With ``C = L Lᵀ``
(Cholesky; a ridge ``eps I`` is added when the vectors are linearly dependent, e.g. when
N <= P(D+1)), the whitened points ``x~ = Lᵀ (e_mu0 + sum_i s_i e_mui)`` have the data's Gram
matrix and live in ``R^{P(D+1)}``; the capacity is the joint QP (:mod:`.joint`) there, with
``t ~ N(0, I_{P(D+1)})``: ``1/alpha = (1/P) E ||v* - t||²``.

For spheres of radius R and dimension D whose centers correlate with rho_c and axes with rho_a,
``alpha = alpha_Ball(kappa/sqrt(1-rho_c), R sqrt((1-rho_a)/(1-rho_c)), D)``;
:func:`ball_capacity` gives ``alpha_Ball`` (Chung et al. PRX 2018) for that prediction.

Notes: small P (issue 15)
-------------------------
That formula is the thermodynamic limit (P, N -> infinity at fixed P/N). At a few manifolds
the capacity itself is larger, and ``correlated_capacity`` follows the capacity, not the
formula. Check (segments = 1-balls, D = 1, R = 0.5, rho_c = 0.5, rho_a = 0, kappa = 0.5,
uncentered, ``center=False``; formula ``alpha_Ball(0.707, 0.707, 1) = 0.5061``):

=====  ==========================  ====================================  ===========
P      correlated_capacity         exact simulation (2 datasets)         excess
=====  ==========================  ====================================  ===========
8      0.5435 (sd 0.008, 3 sets)   0.5458, 0.5505                        +7.4% / +8.3%
16     0.5203 (sd 0.003)           0.5275, 0.5255                        +2.8% / +4.0%
32     0.5170 (sd 0.001)           0.5150, 0.5223                        +2.2% / +2.5%
=====  ==========================  ====================================  ===========

(correlated_capacity: n_t = 200, 20 dichotomies per dataset, Monte-Carlo SE ~0.5%.) The exact
simulation is the definition of capacity at finite size: random Gaussian projections to n
dimensions (entries N(0, 1/n), so center norms stay ~1), i.i.d. fair labels per manifold, 200
draws per n, and a draw counts as separable when the maximum margin of a hyperplane through
the origin, scaled as the MFT field (``||w||² = n``), is at least kappa — the distance from
the origin to the convex hull of the signed points, an exact convex problem (a heavily
weighted NNLS); ``n*`` is where the isotonic fit of p(n) crosses 1/2 and alpha = P / n*.
(:func:`neurogeom.capacity.simulated_capacity` tests LP separability with a bias and no
margin, so it cannot run this kappa > 0 case; the check above is its margin version, and is
in ``tests/test_capacity_small_p.py``.)

So the 8–10% excess at P = 8 is a finite-size property of the capacity that the estimator
reproduces, not a bias of the estimator: both shrink together, roughly as ``1 + c/P`` with
``c ≈ 0.6–0.7`` (8 x 8.3% = 0.66, 16 x 4.0% = 0.65, 32 x 2.5% = 0.8, within the simulation's
~1% error). No correction is applied: ``P / E||v* - t||²`` at the data's own P estimates the
capacity of those P manifolds; compare it with the formula only for P of a few dozen or more.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.linalg
import xarray as xr
from scipy.stats import chi, norm

from .._blas import single_threaded_blas
from .._params import check_seed
from .._results import build_result
from ..errors import AnalysisError
from ._inputs import check_joint_memory, check_kappa, check_positive_int, gather
from .effective import offdiag_mean
from .joint import DICHOTOMIES, check_joint_backend, draw_labels, solve_joint


def ball_capacity(kappa: float, radius: float, dimension: int) -> float:
    """Exact MFT capacity of D-balls of radius R (relative to a unit center) at margin kappa.

    1/alpha_B = E_{r ~ chi_D} [ int_{kappa - r/R}^{kappa + R r} Dt (R r - t + kappa)² / (1 + R²)
    + int_{-inf}^{kappa - r/R} Dt ((t - kappa)² + r²) ]   (PRX 2018). The
    Gaussian integrals are closed-form; the chi_D expectation is by quadrature.
    """
    kappa, radius = float(kappa), float(radius)
    if radius <= 0:
        return 1.0 / ((1 + kappa ** 2) * norm.cdf(kappa) + kappa * norm.pdf(kappa))

    def moments(a, b):
        # int_a^b phi(t) [1, t, t^2] dt (a, b may be -inf)
        pa, pb = (norm.pdf(a) if np.isfinite(a) else 0.0), norm.pdf(b)
        apa = a * pa if np.isfinite(a) else 0.0
        m0 = norm.cdf(b) - norm.cdf(a)
        return m0, pa - pb, m0 + apa - b * pb

    def inner(r):
        c = radius * r + kappa
        lo, hi = kappa - r / radius, kappa + radius * r
        m0, m1, m2 = moments(lo, hi)
        touching = (c * c * m0 - 2 * c * m1 + m2) / (1 + radius ** 2)
        e0, e1, e2 = moments(-np.inf, lo)
        embedded = e2 - 2 * kappa * e1 + (kappa ** 2 + r * r) * e0
        return (touching + embedded) * chi.pdf(r, dimension)

    inv, _ = scipy.integrate.quad(inner, 0, np.inf, limit=200)
    return 1.0 / inv


def whitened_points(coords: np.ndarray, owner: np.ndarray, ridge: float | None = None,
                    rank_tol: float = 1e-10):
    """Whitened coordinates of all points from the center/axis covariance tensor.

    Returns
    -------
    points : ndarray (m, K)
        ``x~`` for every point, K = sum_mu (1 + D_mu).
    info : dict
        ``dims`` (D_mu), ``centers`` (P, r), ``axes`` (list of (D_mu, r) unit directions),
        ``radius`` (RMS distance to the center / center norm, per manifold), ``ridge`` (the
        absolute ridge added, 0 when none), ``tensor_rank``, and ``low_rank``: the points' Gram
        matrix as ``(X, eps, blocks)`` for :func:`neurogeom.capacity.joint.solve_joint` —
        ``x~_i . x~_j = e_iᵀ (C + eps I) e_j = x_i . x_j + eps e_i . e_j`` with ``x_i = Wᵀ e_i``
        the point rebuilt from its center/axis coefficients (W: the stacked center and axis
        vectors), and the ridge term block-diagonal (coefficients of one manifold only).
    """
    n_manifolds = int(owner.max()) + 1
    vectors, blocks, dims, centers, axes, radius = [], [], [], [], [], []
    scale = np.abs(coords).max()
    with single_threaded_blas():     # P small SVDs: BLAS threads only add synchronization
        for mu in range(n_manifolds):
            x = coords[owner == mu]
            c = x.mean(axis=0)
            u, s, vt = np.linalg.svd(x - c, full_matrices=False)
            d = int(np.sum(s > rank_tol * max(scale, 1e-300) * np.sqrt(len(x))))
            vectors.append(np.vstack([c[None], s[:d, None] * vt[:d]]))      # (1 + d, r)
            blocks.append(np.hstack([np.ones((len(x), 1)), u[:, :d]]))      # coefficients
            dims.append(d)
            centers.append(c)
            axes.append(vt[:d])
            radius.append(np.sqrt(np.sum(s ** 2) / len(x)) / max(np.linalg.norm(c), 1e-300))
    w = np.vstack(vectors)                                               # (K, r)
    k = w.shape[0]
    tensor = w @ w.T                                                     # C^{mu i}_{nu j}
    tensor_rank = int(np.linalg.matrix_rank(w))
    eps = 0.0
    if tensor_rank < k:
        rel = 1e-6 if ridge is None else float(ridge)
        if rel <= 0:
            raise AnalysisError(
                f"the {k} center/axis vectors span only {tensor_rank} dimensions (N <= P(D+1) "
                "or dependent manifolds): the covariance tensor is singular and needs ridge > 0")
        eps = rel * float(np.mean(np.diag(tensor)))
    elif ridge:
        eps = float(ridge) * float(np.mean(np.diag(tensor)))
    tensor[np.diag_indices(k)] += eps                                    # C + eps I (in place)
    chol = scipy.linalg.cholesky(tensor, lower=True, overwrite_a=True,
                                 check_finite=False)                     # C + eps I = L L^T
    # rows e^T L = (L^T e)^T, one manifold at a time: its coefficients touch only its own
    # 1 + D_mu rows of L (the block-diagonal coefficient matrix times L as one dense product
    # was the largest cost at 5000 points)
    points = np.empty((len(owner), k))
    rebuilt = np.empty((len(owner), w.shape[1]))                         # x_i = Wᵀ e_i
    ridge_blocks = []
    start = 0
    for mu, block in enumerate(blocks):
        rows = np.flatnonzero(owner == mu)
        if rows.size and rows[-1] - rows[0] == rows.size - 1:
            rows = slice(int(rows[0]), int(rows[-1]) + 1)
        points[rows] = block @ chol[start:start + block.shape[1]]
        rebuilt[rows] = block @ vectors[mu]
        ridge_blocks.append((rows, block @ block.T))
        start += block.shape[1]
    return points, {"dims": np.array(dims), "centers": np.array(centers), "axes": axes,
                    "radius": np.array(radius), "ridge": eps, "tensor_rank": tensor_rank,
                    "tensor_size": k, "low_rank": (rebuilt, eps, ridge_blocks)}


def _axis_overlap(axes) -> np.ndarray:
    """``||A_mu A_nuᵀ||_F / sqrt(D_mu D_nu)`` for every pair of manifolds (unit axis directions
    A_mu, (D_mu, r); 0 where a manifold has no axes): products of all axes (the upper
    triangle, in groups of manifolds), their squared entries summed block by block."""
    dims = np.array([len(a) for a in axes])
    p = len(axes)
    overlap = np.zeros((p, p))
    have = np.flatnonzero(dims)
    if have.size == 0:
        return overlap
    stacked = np.vstack([axes[i] for i in have])                     # (sum D, r)
    ends = np.cumsum(dims[have])
    starts = ends - dims[have]
    blocks = np.empty((have.size, have.size))
    # manifolds in groups whose rows of the product take at most ~32 MB
    per_group = max(1, int(2**22 // max(len(stacked), 1) // max(dims.max(), 1)))
    for lo in range(0, have.size, per_group):
        hi = min(have.size, lo + per_group)
        # the upper triangle of blocks (symmetric): columns from this group on
        sq = (stacked[starts[lo]:ends[hi - 1]] @ stacked[starts[lo]:].T) ** 2
        rows = np.add.reduceat(sq, starts[lo:hi] - starts[lo], axis=0)
        blocks[lo:hi, lo:] = np.add.reduceat(rows, starts[lo:] - starts[lo], axis=1)
        blocks[lo:, lo:hi] = blocks[lo:hi, lo:].T
    overlap[np.ix_(have, have)] = np.sqrt(blocks) / np.sqrt(np.outer(dims[have], dims[have]))
    return overlap


def correlated_capacity(a, by: str, *, kappa: float = 0.0, n_t: int = 200,
                        n_dichotomies: int | None = None, dichotomy: str = "random",
                        seed: int = 0, ridge: float | None = None, center: bool = True,
                        solver: str = "screened", backend=None,
                        device=None, progress: bool | None = None) -> xr.Dataset:
    """Capacity of correlated manifolds by whitening with the center/axis covariance tensor.

    Parameters
    ----------
    a : xarray.DataArray
        ``(presentation, neuroid)`` or ``(time, neuroid)`` assembly.
    by : str
        Coord naming the manifolds.
    kappa : float
        Margin (>= 0), in units of the RMS center norm (the data are scaled to make it 1).
    n_t : int
        Number of Gaussian samples t per dichotomy (default 200, as in
        :func:`neurogeom.manifold_capacity`).
    n_dichotomies : int, optional
        Dichotomies (default 20 for ``"random"``, P for ``"one_vs_rest"``).
    dichotomy : {"random", "one_vs_rest"}
        I.i.d. fair signs per manifold (the MFT ensemble) or one manifold positive in turn.
    seed : int
        Seed of the dichotomies and samples.
    ridge : float, optional
        Relative ridge (times the mean diagonal of the tensor) added before the Cholesky
        factorization. Default: none when the center/axis vectors are linearly independent,
        1e-6 when they are not (N <= P(D+1)). The absolute value used is in attrs.
    center : bool
        Subtract the global mean first (default; at kappa = 0 this removes the shared center
        component that a center correlation rho_c > 0 adds, which the theory shows is what
        rho_c does there). Set False to follow the uncentered theory exactly.
    solver, backend, device
        Joint-QP solver options (:func:`neurogeom.capacity.joint.solve_joint`); ``backend`` and
        ``device`` (:mod:`neurogeom._backend`) apply to ``solver="shared"``.
    progress : bool or None
        A progress bar over the dichotomies' joint QPs (tqdm): None shows it only on a terminal.

    Notes
    -----
    For spheres with correlated centers the result approaches
    ``alpha_Ball(kappa/sqrt(1-rho_c), R sqrt((1-rho_a)/(1-rho_c)), D)`` only for many manifolds:
    at P = 8, 16, 32 (rho_c = 0.5, kappa = 0.5, R = 0.5, D = 1) it is 7.4%, 2.8%, 2.2% above
    it, and the exact finite-size capacity (random projections, exact maximum-margin
    separability) is 8.3%, 4.0%, 2.5% above it: the excess is the capacity's finite-P
    correction, not a bias of this estimator (module notes).

    Returns
    -------
    xarray.Dataset
        ``capacity_overall`` and ``capacity_overall_se``; ``center_correlation`` (mean pairwise
        cosine of the centers, signed) and ``axis_correlation`` (mean over manifold pairs of
        ``||A_mu A_nuᵀ||_F / sqrt(D_mu D_nu)`` for unit axis directions A: |cos| for D = 1);
        on dim ``manifold``: ``capacity`` (1 / E of its share of ``||v* - t||²``), ``radius``
        (RMS distance to the center / center norm), ``dimension`` (rank of the centered
        points), ``n_points``. Attrs: ``analysis``, every parameter, the input's provenance,
        ``neurogeom_version`` and ``references`` (see :mod:`neurogeom._results`).

    Raises
    ------
    AnalysisError
        Unknown ``by``, fewer than 2 manifolds, NaN/inf, kappa < 0, identical manifolds, bad
        parameters, a singular tensor with ``ridge=0``, or a margin no hyperplane reaches.

    Examples
    --------
    >>> import loaders
    >>> a = loaders.synthetic.object_manifolds(n_objects=5, n_images=4, n_repetitions=1)
    >>> ds = correlated_capacity(a, by="object_name", n_t=10, n_dichotomies=4)
    >>> float(ds.capacity_overall) > 0
    True

    References
    ----------
    .. [1] Wakhloo, Sussman & Chung (2023). Linear classification of neural manifolds with
       correlated variability. Phys. Rev. Lett. 131, 027301.
    .. [2] Chung, Lee & Sompolinsky (2018). Classification and geometry of general perceptual
       manifolds. Phys. Rev. X 8, 031003.
    """
    kappa = check_kappa(kappa)
    n_t = check_positive_int("n_t", n_t, 2)
    seed = check_seed(seed)
    if dichotomy not in DICHOTOMIES:
        raise AnalysisError(f"dichotomy must be one of {DICHOTOMIES}, got {dichotomy!r}")
    if ridge is not None and (not np.isfinite(ridge) or ridge < 0):
        raise AnalysisError(f"ridge must be a finite number >= 0, got {ridge}")
    backend, device = check_joint_backend(solver, backend, device)   # attrs record these
    data = gather(a, by, center=center, normalize=True)
    if n_dichotomies is None:
        n_dichotomies = data.n_manifolds if dichotomy == "one_vs_rest" else 20
    n_dichotomies = check_positive_int("n_dichotomies", n_dichotomies)
    check_joint_memory(data, n_dichotomies, n_t, "correlated capacity")
    points, info = whitened_points(data.coords, data.owner, ridge)

    rng = np.random.default_rng(seed)
    labels = draw_labels(rng, data.n_manifolds, n_dichotomies, dichotomy)
    t = rng.standard_normal((n_dichotomies, n_t, points.shape[1]))
    sol = solve_joint(points, data.owner, labels, t, kappa, solver=solver, backend=backend,
                      device=device, anchors=False, low_rank=info["low_rank"],
                      progress=progress)
    total = sol.share.sum(axis=1)
    capacity = data.n_manifolds / total.mean()
    se = capacity * total.std(ddof=1) / np.sqrt(len(total)) / total.mean()
    per_share = sol.share.mean(axis=0)

    unit_c = info["centers"] / np.linalg.norm(info["centers"], axis=1, keepdims=True)
    p = data.n_manifolds
    overlap = _axis_overlap(info["axes"])
    ds = build_result(
        {
            "capacity": ("manifold", np.divide(1.0, per_share, out=np.full(p, np.inf),
                                               where=per_share > 0)),
            "radius": ("manifold", info["radius"]),
            "dimension": ("manifold", info["dims"]),
            "n_points": ("manifold", data.n_points),
            "capacity_overall": ((), float(capacity)),
            "capacity_overall_se": ((), float(se)),
            "center_correlation": ((), float(offdiag_mean(unit_c @ unit_c.T)[1])),
            "axis_correlation": ((), float(offdiag_mean(overlap)[1])),
        },
        coords={"manifold": np.asarray(data.labels)},
        analysis="correlated_capacity",
        parameters={
            "by": by, "kappa": kappa, "n_t": n_t, "n_dichotomies": n_dichotomies,
            "dichotomy": dichotomy, "seed": seed, "ridge": ridge, "center": bool(center),
            "solver": solver, "backend": backend, "device": str(device),
        },
        inputs={"input": a},
        references=("correlated", "mft"),
        details={
            "method": "correlated manifold capacity: joint QP in coordinates whitened by the "
                      "center/axis covariance tensor",
            "ridge_used": info["ridge"], "tensor_size": info["tensor_size"],
            "tensor_rank": info["tensor_rank"],
            "centering": "global mean subtracted" if center else "none",
            "n_manifolds": p, "n_features": data.n_features, "rank": data.rank,
            "n_samples": int(len(total)), "max_kkt_residual": float(sol.kkt.max()),
            "scale": "points divided by the RMS norm of the manifold centers "
                     f"({data.scale:.6g} in the input's units)",
            "correlations": "center_correlation: signed mean cosine; axis_correlation: mean "
                            "normalized Frobenius overlap of unit axis directions (absolute)",
        })
    ds["capacity_overall"].attrs["long_name"] = "1 / ((1/P) E ||v* - t||^2), whitened coordinates"
    return ds
