"""Effective manifold geometry from the joint capacity QP (GLUE / GCMC measures).

Chou, Wakhloo, Canatar, Chung et al. (bioRxiv 2024; official code not public, so the
formulas are a reconstruction, verified here to reduce to the PRX sphere results). For Gaussian
``t`` in the span of the data and dichotomies ``y``, the joint QP (:mod:`.joint`) gives one
anchor point ``s_mu`` per manifold. With the anchor centers ``s0_mu = E s_mu``, axis parts
``s1_mu = s_mu - s0_mu``, ``G0 = s0 s0ᵀ``, ``G1 = s1 s1ᵀ`` and ``t1 = s1 t``:

- capacity:   1/alpha = (1/P) E ||v* - t||²
- dimension:  D_eff = (1/P) E[t1ᵀ G1⁺ t1]
- radius:     R_eff² = E[t1ᵀ (G1 + G0)⁺ t1] / E[t1ᵀ (G1 + G1 G0⁺ G1)⁺ t1], evaluated on the
              range of G0 (identical when G0 has full rank; globally centered data make it
              rank P-1, see :func:`geometry_from_anchors`)
- alignments: mean over manifold pairs of |cos| between centers, between axes, center–axis.

For uncorrelated (mutually orthogonal) spheres with anchors on the sphere, R_eff = R and
D_eff = D exactly, and alpha ≈ (1 + R_eff⁻²) / D_eff.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dtrtrs as _trtrs

from .._blas import threaded_map
from .._params import check_seed
from .._results import build_result
from ..errors import AnalysisError
from ._inputs import ManifoldPoints, check_joint_memory, check_kappa, check_positive_int, gather
from .joint import DICHOTOMIES, check_joint_backend, draw_labels, solve_joint

#: eigenvalues of Gram matrices below this (data normalized to unit RMS center norm) are zero
_ABS_CUTOFF = 1e-12
_REL_CUTOFF = 1e-10
#: the Cholesky path of the quadratic forms needs every eigenvalue above this multiple of the
#: cutoff (a margin far above rounding, ~P eps trace(G) ≪ 1e-10 trace(G))
_CERTIFICATE_MARGIN = 2.0
#: the R_eff denominator comes from a difference of two forms (see geometry_from_anchors) only
#: where it keeps at least this fraction of the first (at most 2 digits lost to cancellation)
_MIN_DIFFERENCE = 1e-2
#: geometry_from_anchors works through the samples in blocks of about this many bytes of
#: (block, P, r) axis parts, so that its temporaries stay bounded (not n x P x r each)
_BLOCK_BYTES = 8 * 2**20


def _quad_pinv(G: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x_nᵀ G_n⁺ x_n`` for a stack of PSD matrices (pseudo-inverse by eigendecomposition)."""
    w, U = np.linalg.eigh(G)
    cut = np.maximum(_ABS_CUTOFF, _REL_CUTOFF * np.abs(w).max(axis=-1, keepdims=True))
    proj = np.einsum("...ij,...i->...j", U, x)
    inv = np.divide(1.0, w, out=np.zeros_like(w), where=w > cut)
    return np.sum(proj ** 2 * inv, axis=-1)


def _pinv_factor(G: np.ndarray) -> np.ndarray:
    """``F`` with ``F Fᵀ = G⁺`` (pseudo-inverse with the cutoff of :func:`_quad_pinv`)."""
    w, U = np.linalg.eigh(G)
    keep = w > max(_ABS_CUTOFF, _REL_CUTOFF * np.abs(w).max())
    return U[:, keep] / np.sqrt(w[keep])


def _complement(null_direction):
    """``(G, x) -> (Qᵀ G Q, Qᵀ x)`` for a stack, ``Q`` an orthonormal basis of the complement of
    ``null_direction`` (identity when None).

    ``Q`` is the last P-1 columns of the Householder reflection ``H = I - β w wᵀ`` that maps the
    direction to a multiple of ``e_1`` (``w = u + sign(u_1) e_1``, so ``w_{2..P} = u_{2..P}``):
    ``H G H`` is ``G`` plus rank-1 terms, O(P²) per matrix instead of two P x P products. The
    quadratic forms below do not depend on which orthonormal basis of the complement is used.
    """
    if null_direction is None:
        return lambda G, x: (G, x)
    u = np.asarray(null_direction, float) / np.linalg.norm(null_direction)
    w = u.copy()
    w[0] += 1.0 if u[0] >= 0 else -1.0
    beta = 2.0 / (w @ w)
    tail = w[1:]

    def reduce(G, x):
        gw = G @ w                                                   # (..., P)
        a = beta * gw[..., 1:] - (0.5 * beta ** 2) * (gw @ w)[..., None] * tail
        # (H G H)[1:, 1:] = G[1:, 1:] - tail aᵀ - a tailᵀ
        g = G[..., 1:, 1:] - tail[:, None] * a[..., None, :] - a[..., :, None] * tail
        return g, x[..., 1:] - beta * (x @ w)[..., None] * tail
    return reduce


def _eigenvalues_above(G: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Whether ``G_n - shift_n I`` is positive definite (its Cholesky factorization succeeds),
    i.e. every eigenvalue of ``G_n`` exceeds ``shift_n``."""
    eye = np.eye(G.shape[-1])
    return np.array([_potrf(g - c * eye, lower=1, clean=0)[1] == 0 for g, c in zip(G, shift)],
                    dtype=bool)


def _solve_lower(G: np.ndarray, rhs: np.ndarray):
    """``L⁻¹ rhs`` with ``G = L Lᵀ`` (None if the factorization fails)."""
    c, info = _potrf(G, lower=1, clean=0)
    if info != 0:
        return None
    y, info = _trtrs(c, rhs, lower=1)
    return y if info == 0 else None


def _complement_norm2(y: np.ndarray, u_part) -> float:
    """``|y - (y.b/|b|²) b|²`` (``b = u_part``; ``|y|²`` without one)."""
    if u_part is not None:
        y = y - (y @ u_part) / (u_part @ u_part) * u_part
    return float(y @ y)


def _regular_forms(g1, g_num, t1, q, u):
    """The three quadratic forms of samples whose matrices are certified invertible.

    With ``G = L Lᵀ``, ``xᵀ G⁻¹ x = |L⁻¹ x|²``. On the complement of a unit ``u`` (``Q`` an
    orthonormal basis, ``q = Q Qᵀ t1``), block inversion of ``[u Q]ᵀ G [u Q]`` gives
    ``(Qᵀt1)ᵀ (Qᵀ G Q)⁻¹ (Qᵀt1) = qᵀG⁻¹q - (uᵀG⁻¹q)²/(uᵀG⁻¹u)``, the squared norm of
    ``L⁻¹q`` orthogonal to ``L⁻¹u``: P x P factorizations, no change of basis. Returns
    ``(dim, on_complement, num)`` per sample, NaN where a factorization fails.
    """
    n = len(t1)
    out = np.full((3, n), np.nan)
    rhs1 = np.stack([t1, q] + ([np.broadcast_to(u, q.shape)] if u is not None else []), -1)
    rhs_num = rhs1[:, :, 1:]
    for k in range(n):
        y = _solve_lower(g1[k], rhs1[k])
        z = _solve_lower(g_num[k], rhs_num[k])
        if y is None or z is None:
            continue
        b1, bn = (y[:, 2], z[:, 1]) if u is not None else (None, None)
        out[:, k] = (y[:, 0] @ y[:, 0], _complement_norm2(y[:, 1], b1),
                     _complement_norm2(z[:, 0], bn))
    return out


def _inverse_norm(norm: np.ndarray) -> np.ndarray:
    """``1/norm``, 0 for norms of (numerically) zero vectors."""
    return np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > np.sqrt(_ABS_CUTOFF))


def offdiag_mean(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of a (..., P, P) cosine array over mu != nu: per-manifold (rows) and overall."""
    p = c.shape[-1]
    mask = ~np.eye(p, dtype=bool)
    per = np.sum(np.where(mask, c, 0.0), axis=-1) / (p - 1)
    return per, per.mean(axis=-1)


def _offdiag_row_mean(c: np.ndarray) -> np.ndarray:
    """Per-row part of :func:`offdiag_mean` for a (b, P, P) stack (its diagonal set to 0 in
    place: the same sums, without a masked copy)."""
    p = c.shape[-1]
    c[:, np.arange(p), np.arange(p)] = 0.0
    return np.sum(c, axis=-1) / (p - 1)


def geometry_from_anchors(anchors: np.ndarray, t: np.ndarray, share: np.ndarray,
                          absolute: bool = True, null_direction=None) -> dict:
    """The GLUE measures from joint-QP anchors (numpy kernel; see the module docstring).

    Parameters
    ----------
    anchors : ndarray (n, P, r)
    t : ndarray (n, r)
    share : ndarray (n, P)
        Per-manifold parts of ``||v* - t||²``.
    absolute : bool
        Average ``|cos|`` (True) or signed cosines in the alignments.
    null_direction : ndarray (P,), optional
        A known null direction of the center Gram matrix (the points per manifold, for globally
        centered data), left out of the R_eff expectations.

    Notes
    -----
    Per sample, everything comes from P x P matrices: ``G1 = s1 s1ᵀ``, ``s0 s1ᵀ`` (the cosines
    divide them by the norms ``sqrt(diag G1)`` and ``|s0|``) and ``s1 t``, computed in blocks
    of samples so that no further (n, P, r) array is made.

    The pseudo-inverse forms (eigenvalues under ``max(1e-12, 1e-10 λ_max)`` cut) are
    inverses wherever no eigenvalue is cut; a Cholesky factorization of ``G1 - c I`` shows that
    for all three at once (``c`` twice the largest cutoff, from trace bounds): the eigenvalues
    of ``Qᵀ G1 Q`` interlace those of ``G1``, and adding the PSD ``G0r`` or ``G1r G0r⁻¹ G1r``
    does not lower them. Then, with ``M = Qᵀ G1 Q``,
    ``(M + M G0r⁻¹ M)⁻¹ = M⁻¹ - (M + G0r)⁻¹``: the denominator is a difference of the
    numerator and ``xᵀ M⁻¹ x``, all from Cholesky factors (:func:`_regular_forms`). The other
    samples (point manifolds, ill-conditioned or degenerate ``G1``) take the eigendecompositions.
    """
    n, p, r = anchors.shape
    s0 = anchors.mean(axis=0)                                        # (P, r)
    g0 = s0 @ s0.T
    # Globally centered data have point-weighted centers summing to zero (sum_mu M_mu c_mu = 0),
    # so G0 is singular along the weights M (only nearly so for the sampled anchor means, which
    # makes G0^+ blow up there). Along that direction both expectations pick up a pure-axis term
    # that does not shrink with R (R_eff biased up by O(1/(P R^2))): R_eff is evaluated on the
    # complement of `null_direction`.
    reduce = _complement(null_direction)
    g0r = reduce(g0, np.zeros(p))[0]
    f0 = _pinv_factor(g0r)                                           # G0r⁺ = f0 f0ᵀ
    w0 = np.linalg.eigvalsh(g0r)
    g0r_invertible = w0[0] > _CERTIFICATE_MARGIN * max(_ABS_CUTOFF, _REL_CUTOFF * w0[-1])
    if null_direction is None:
        u, g0_full = None, g0
    else:
        # Q G0r Qᵀ = Π G0 Π (Π = I - u uᵀ); plus a multiple of u uᵀ, positive definite in P dims
        u = np.asarray(null_direction, float) / np.linalg.norm(null_direction)
        proj = np.eye(p) - np.outer(u, u)
        g0_full = proj @ g0 @ proj + (np.trace(g0r) / (p - 1)) * np.outer(u, u)
    center_norm = np.linalg.norm(s0, axis=1)
    inv0 = _inverse_norm(center_norm)
    fold = np.abs if absolute else (lambda x: x)

    # per-sample terms, filled block by block
    dim_terms, num, den = np.empty(n), np.empty(n), np.empty(n)
    axis_sq, dim_per = np.empty((n, p)), np.empty((n, p))
    axis_per, ca_per = np.empty((n, p)), np.empty((n, p))

    def block(lo: int) -> None:
        k = slice(lo, min(n, lo + step))
        s1 = anchors[k] - s0                                         # (b, P, r)
        t1 = (s1 @ t[k, :, None])[..., 0]                            # s1 t
        g1 = s1 @ s1.transpose(0, 2, 1)                              # G1 = s1 s1ᵀ
        c01 = (s0 @ s1.reshape(-1, r).T).reshape(p, -1, p)           # [mu, ., nu] s0_mu . s1_nu
        del s1
        sq = np.diagonal(g1, axis1=1, axis2=2).copy()                # |s1_mu|²
        inv1 = _inverse_norm(np.sqrt(sq))
        axis_sq[k] = sq
        dim_per[k] = (t1 * inv1) ** 2                                # (t . s1/|s1|)²
        cos = g1 * inv1[:, :, None]
        cos *= inv1[:, None, :]
        axis_per[k] = _offdiag_row_mean(fold(cos))
        cos = c01.transpose(1, 0, 2) * inv0[:, None]
        cos *= inv1[:, None, :]
        ca_per[k] = _offdiag_row_mean(fold(cos))

        regular = np.zeros(len(g1), dtype=bool)
        if g0r_invertible:
            # largest eigenvalues: of G1 <= its trace, of M + G0r <= that + trace G0r, of
            # M + M G0r⁻¹ M <= that + |G1|_F² / λ_min(G0r)
            trace1 = np.trace(g1, axis1=1, axis2=2)
            bound = trace1 + np.maximum(w0.sum(), np.sum(g1 ** 2, axis=(1, 2)) / w0[0])
            shift = _CERTIFICATE_MARGIN * np.maximum(_ABS_CUTOFF, _REL_CUTOFF * bound)
            regular = _eigenvalues_above(g1, shift)
        if regular.any():
            idx = np.flatnonzero(regular)
            q = t1[idx] if u is None else t1[idx] - np.outer(t1[idx] @ u, u)
            dim_k, on_complement, num_k = _regular_forms(g1[idx], g1[idx] + g0_full, t1[idx], q,
                                                         u)
            den_k = on_complement - num_k
            good = den_k >= _MIN_DIFFERENCE * on_complement           # False where NaN
            regular[idx[~good]] = False
            rows = lo + idx[good]
            dim_terms[rows], num[rows], den[rows] = dim_k[good], num_k[good], den_k[good]
        if not regular.all():                                        # eigendecompositions
            idx = np.flatnonzero(~regular)
            g1r, t1r = reduce(g1[idx], t1[idx])
            b = (g1r.reshape(-1, g1r.shape[-1]) @ f0).reshape(len(idx), -1, f0.shape[1])
            rows = lo + idx
            dim_terms[rows] = _quad_pinv(g1[idx], t1[idx])
            num[rows] = _quad_pinv(g1r + g0r, t1r)
            den[rows] = _quad_pinv(g1r + b @ b.transpose(0, 2, 1), t1r)   # G1 + G1 G0⁺ G1

    # blocks of samples keep the (b, P, r) axis parts small (in cache, no n x P x r temporaries)
    step = max(1, _BLOCK_BYTES // (8 * p * r))
    threaded_map(block, range(0, n, step))

    total = share.sum(axis=1)                                        # ||v* - t||^2
    mean_total = total.mean()
    out: dict = {}
    out["capacity"] = p / mean_total if mean_total > 0 else np.inf
    out["capacity_se"] = (out["capacity"] * total.std(ddof=1) / np.sqrt(n) / mean_total
                          if mean_total > 0 and n > 1 else 0.0)
    out["dimension"] = dim_terms.mean() / p
    den_mean = den.mean()
    # point manifolds have s1 = 0: both expectations vanish and the radius is 0 (its limit)
    out["radius"] = np.sqrt(num.mean() / den_mean) if den_mean > _ABS_CUTOFF else 0.0
    out["capacity_approx"] = ((1 + out["radius"] ** -2) / out["dimension"]
                              if out["radius"] > 0 and out["dimension"] > 0 else np.inf)

    u0 = s0 * inv0[:, None]
    center_per, center_all = offdiag_mean(fold(u0 @ u0.T))
    out["center_alignment"] = center_all
    out["axis_alignment"] = axis_per.mean(axis=1).mean()
    out["center_axis_alignment"] = ca_per.mean(axis=1).mean()

    per_share = share.mean(axis=0)
    out["per_manifold"] = {
        "capacity": np.divide(1.0, per_share, out=np.full(p, np.inf), where=per_share > 0),
        "radius": np.sqrt(axis_sq.mean(axis=0)) / np.maximum(center_norm, np.sqrt(_ABS_CUTOFF)),
        "dimension": dim_per.mean(axis=0),
        "center_norm": center_norm,
        "center_alignment": center_per,
        "axis_alignment": axis_per.mean(axis=0),
        "center_axis_alignment": ca_per.mean(axis=0),
    }
    return out


def effective_geometry(a, by: str, *, dichotomy: str = "random", n_t: int = 200,
                       n_dichotomies: int | None = None, kappa: float = 0.0, seed: int = 0,
                       center: bool = True,
                       absolute_alignment: bool = True, solver: str = "screened",
                       backend=None, device=None,
                       progress: bool | None = None) -> xr.Dataset:
    """GLUE effective geometry: capacity, effective radius and dimension, alignments.

    The points are centered on the global mean and divided by the RMS norm of the manifold
    centers (so ``kappa`` is in units of a typical center norm and the result does not depend on
    the data's scale), then expressed in a rotation-covariant orthonormal basis of their span
    where the Gaussian samples ``t`` are drawn (so a rotation of the ambient space gives the
    same result for the same seed). For each of ``n_dichotomies`` dichotomies, ``n_t`` samples
    are drawn and the joint QP over all points is solved (:mod:`neurogeom.capacity.joint`).

    Parameters
    ----------
    a : xarray.DataArray
        ``(presentation, neuroid)`` or ``(time, neuroid)`` assembly.
    by : str
        Coord naming the manifolds.
    dichotomy : {"random", "one_vs_rest"}
        ``"random"``: i.i.d. fair signs per manifold (the MFT ensemble). ``"one_vs_rest"``: one
        manifold positive, cycling through the manifolds.
    n_t : int
        Number of Gaussian samples t per dichotomy (default 200, as in
        :func:`neurogeom.manifold_capacity`).
    n_dichotomies : int, optional
        Dichotomies (default 20 for ``"random"``, P for ``"one_vs_rest"``).
    kappa : float
        Margin (>= 0), in units of the RMS center norm.
    seed : int
        Seed of the dichotomies and samples.
    center : bool
        Subtract the global mean first (default, as the MFT pipeline; hyperplanes then pass
        through the data's mean). P centered vectors cannot all be orthogonal: centering gives
        mutually orthogonal unit centers a correlation of -1/(P-1).
    absolute_alignment : bool
        Average ``|cos|`` (default) or signed cosines in the alignments; recorded in attrs.
    solver : {"screened", "active_set", "shared"}
        Joint-QP solver (:func:`neurogeom.capacity.joint.solve_joint`): ``"screened"`` (default,
        exact, constraint generation with compiled NNLS per sample), ``"active_set"`` (the
        previous default, exact, one full-size Lawson–Hanson per sample), ``"shared"`` (the
        batched ADMM solver of :mod:`neurogeom.capacity.qp`; torch/GPU).
    backend, device
        Array backend and device of ``solver="shared"`` (:mod:`neurogeom._backend`; e.g.
        ``device="cuda:0"``). The active-set solver runs in numpy/scipy: with it, a torch
        backend or a GPU device is an error (as with ``"screened"``).
    progress : bool or None
        A progress bar over the dichotomies' joint QPs (tqdm): None shows it only on a terminal.

    Returns
    -------
    xarray.Dataset
        Overall values (suffix ``_overall``, as in :func:`neurogeom.capacity.manifold_capacity`):
        ``capacity_overall`` (with ``capacity_overall_se``, the Monte-Carlo standard error),
        ``radius_overall`` (R_eff), ``dimension_overall`` (D_eff), ``capacity_approx_overall``
        = (1 + R_eff⁻²)/D_eff, ``center_alignment_overall``, ``axis_alignment_overall``,
        ``center_axis_alignment_overall``. On dim ``manifold``: ``capacity`` (1 / E of the
        manifold's share of ``||v* - t||²``; their harmonic mean is ``capacity_overall``),
        ``radius`` (sqrt(E|s1|²)/|s0|), ``dimension`` (E (t . s1/|s1|)²), ``center_norm``,
        ``fraction_active``, the alignments with the other manifolds, ``n_points``. Point
        manifolds (one point each) have zero axis parts: radius and dimension 0,
        ``capacity_approx_overall`` inf. Attrs: ``analysis``, every parameter, the input's
        provenance, ``neurogeom_version`` and ``references`` (see :mod:`neurogeom._results`).

    Raises
    ------
    AnalysisError
        Unknown ``by``, fewer than 2 manifolds, NaN/inf, kappa < 0, bad parameters, or all
        points identical.

    Examples
    --------
    >>> import loaders
    >>> a = loaders.synthetic.object_manifolds(n_objects=5, n_images=8, n_repetitions=1)
    >>> ds = effective_geometry(a, by="object_name", n_t=20, n_dichotomies=5)
    >>> ds.capacity.dims, ds.capacity_overall.dims
    (('manifold',), ())

    References
    ----------
    .. [1] Chou, Wakhloo, Canatar, Chung et al. (2024). Neural manifold capacity captures
       representation geometry, correlations, and task-efficiency across species and behaviors.
       bioRxiv (v1 'GCMC', v2 'GLUE'). The formulas are a reconstruction (no official code is
       public), verified to reduce to the sphere results of [2].
    .. [2] Chung, Lee & Sompolinsky (2018). Classification and geometry of general perceptual
       manifolds. Phys. Rev. X 8, 031003.
    """
    kappa = check_kappa(kappa)
    n_t = check_positive_int("n_t", n_t, 2)
    seed = check_seed(seed)
    if dichotomy not in DICHOTOMIES:
        raise AnalysisError(f"dichotomy must be one of {DICHOTOMIES}, got {dichotomy!r}")
    backend, device = check_joint_backend(solver, backend, device)   # attrs record these
    data = gather(a, by, center=center, normalize=True)
    if n_dichotomies is None:
        n_dichotomies = data.n_manifolds if dichotomy == "one_vs_rest" else 20
    n_dichotomies = check_positive_int("n_dichotomies", n_dichotomies)
    check_joint_memory(data, n_dichotomies, n_t, "effective geometry")
    rng = np.random.default_rng(seed)
    labels = draw_labels(rng, data.n_manifolds, n_dichotomies, dichotomy)
    t = rng.standard_normal((n_dichotomies, n_t, data.rank))
    sol = solve_joint(data.coords, data.owner, labels, t, kappa, solver=solver, backend=backend,
                      device=device, anchors="sparse", progress=progress)
    geo = geometry_from_anchors(sol.anchors, sol.t, sol.share, absolute_alignment,
                                null_direction=data.n_points if center else None)
    return _dataset(geo, sol, data, a, {
        "by": by, "dichotomy": dichotomy, "n_t": n_t, "n_dichotomies": n_dichotomies,
        "kappa": kappa, "seed": seed, "center": bool(center),
        "absolute_alignment": bool(absolute_alignment), "solver": solver, "backend": backend,
        "device": str(device),
    })


def _dataset(geo: dict, sol, data: ManifoldPoints, a, parameters: dict) -> xr.Dataset:
    per = geo["per_manifold"]
    ds = build_result(
        {
            "capacity": ("manifold", per["capacity"]),
            "radius": ("manifold", per["radius"]),
            "dimension": ("manifold", per["dimension"]),
            "center_norm": ("manifold", per["center_norm"]),
            "fraction_active": ("manifold", sol.active.mean(axis=0)),
            "center_alignment": ("manifold", per["center_alignment"]),
            "axis_alignment": ("manifold", per["axis_alignment"]),
            "center_axis_alignment": ("manifold", per["center_axis_alignment"]),
            "n_points": ("manifold", data.n_points),
            "capacity_overall": ((), float(geo["capacity"])),
            "capacity_overall_se": ((), float(geo["capacity_se"])),
            "radius_overall": ((), float(geo["radius"])),
            "dimension_overall": ((), float(geo["dimension"])),
            "capacity_approx_overall": ((), float(geo["capacity_approx"])),
            "center_alignment_overall": ((), float(geo["center_alignment"])),
            "axis_alignment_overall": ((), float(geo["axis_alignment"])),
            "center_axis_alignment_overall": ((), float(geo["center_axis_alignment"])),
        },
        coords={"manifold": np.asarray(data.labels)},
        analysis="effective_geometry", parameters=parameters, inputs={"input": a},
        references=("glue", "mft"),
        details={
            "method": "effective geometry (GLUE): joint QP over all manifolds per (t, dichotomy)",
            "centering": "global mean subtracted" if parameters["center"] else "none",
            "alignments": "mean over manifold pairs of "
                          + ("|cos|" if parameters["absolute_alignment"] else "signed cos"),
            "n_manifolds": data.n_manifolds, "n_features": data.n_features, "rank": data.rank,
            "n_samples": int(sol.t.shape[0]), "max_kkt_residual": float(sol.kkt.max()),
            "scale": "points divided by the RMS norm of the centered manifold centers "
                     f"({data.scale:.6g} in the input's units)",
            "samples": "t ~ N(0, I) in a pivoted-QR orthonormal basis of the data's span",
            "anchors": "dual-weighted mean of each manifold's points; inactive manifolds: the "
                       "point nearest the margin",
            "formulas": "GLUE measures as reconstructed from Chou et al. 2024 (official code "
                        "not public; unconfirmed in detail), reducing to PRX 2018 for spheres",
        })
    ds["capacity_overall"].attrs["long_name"] = "1 / ((1/P) E ||v* - t||^2)"
    ds["radius_overall"].attrs["long_name"] = "effective radius R_eff"
    ds["dimension_overall"].attrs["long_name"] = "effective dimension D_eff"
    ds["capacity"].attrs["long_name"] = "1 / E (the manifold's share of ||v* - t||^2)"
    return ds
