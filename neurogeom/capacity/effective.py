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

from .._params import check_seed
from .._results import build_result
from ..errors import AnalysisError
from ._inputs import ManifoldPoints, check_joint_memory, check_kappa, check_positive_int, gather
from .joint import DICHOTOMIES, check_joint_backend, draw_labels, solve_joint

#: eigenvalues of Gram matrices below this (data normalized to unit RMS center norm) are zero
_ABS_CUTOFF = 1e-12
_REL_CUTOFF = 1e-10


def _quad_pinv(G: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x_nᵀ G_n⁺ x_n`` for a stack of PSD matrices (pseudo-inverse by eigendecomposition)."""
    w, U = np.linalg.eigh(G)
    cut = np.maximum(_ABS_CUTOFF, _REL_CUTOFF * np.abs(w).max(axis=-1, keepdims=True))
    proj = np.einsum("...ij,...i->...j", U, x)
    inv = np.divide(1.0, w, out=np.zeros_like(w), where=w > cut)
    return np.sum(proj ** 2 * inv, axis=-1)


def _pinv(G: np.ndarray) -> np.ndarray:
    w, U = np.linalg.eigh(G)
    cut = max(_ABS_CUTOFF, _REL_CUTOFF * np.abs(w).max())
    inv = np.divide(1.0, w, out=np.zeros_like(w), where=w > cut)
    return (U * inv) @ U.T


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > np.sqrt(_ABS_CUTOFF))


def offdiag_mean(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of a (..., P, P) cosine array over mu != nu: per-manifold (rows) and overall."""
    p = c.shape[-1]
    mask = ~np.eye(p, dtype=bool)
    per = np.sum(np.where(mask, c, 0.0), axis=-1) / (p - 1)
    return per, per.mean(axis=-1)


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
    """
    n, p, _ = anchors.shape
    s0 = anchors.mean(axis=0)                                        # (P, r)
    s1 = anchors - s0                                                # (n, P, r)
    # batched matrix products (BLAS; np.einsum's loops were most of the run time at 100
    # manifolds in 500 dims, and its three-operand form below is O(n P⁴) unoptimized)
    t1 = (s1 @ t[:, :, None])[..., 0]
    g1 = s1 @ s1.transpose(0, 2, 1)
    g0 = s0 @ s0.T
    dim_terms = _quad_pinv(g1, t1)
    # Globally centered data have point-weighted centers summing to zero (sum_mu M_mu c_mu = 0),
    # so G0 is singular along the weights M (only nearly so for the sampled anchor means, which
    # makes G0^+ blow up there). Along that direction both expectations pick up a pure-axis term
    # that does not shrink with R (R_eff biased up by O(1/(P R^2))): R_eff is evaluated on the
    # complement of `null_direction`.
    if null_direction is not None:
        u = np.asarray(null_direction, float)[:, None] / np.linalg.norm(null_direction)
        basis = np.linalg.qr(np.hstack([u, np.eye(p)]))[0][:, 1:p]   # orthonormal complement
    else:
        basis = np.eye(p)
    t1r = t1 @ basis
    g1r = basis.T @ g1 @ basis
    g0r = basis.T @ g0 @ basis
    num = _quad_pinv(g1r + g0r, t1r)
    den = _quad_pinv(g1r + g1r @ _pinv(g0r) @ g1r, t1r)

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

    fold = np.abs if absolute else (lambda x: x)
    u0, u1 = _unit(s0), _unit(s1)
    center_per, center_all = offdiag_mean(fold(u0 @ u0.T))
    axis_per, axis_all = offdiag_mean(fold(u1 @ u1.transpose(0, 2, 1)))
    ca_per, ca_all = offdiag_mean(fold(u0 @ u1.transpose(0, 2, 1)))
    out["center_alignment"] = center_all
    out["axis_alignment"] = axis_all.mean()
    out["center_axis_alignment"] = ca_all.mean()

    per_share = share.mean(axis=0)
    center_norm = np.linalg.norm(s0, axis=1)
    axis_sq = np.mean(np.sum(s1 ** 2, axis=2), axis=0)
    out["per_manifold"] = {
        "capacity": np.divide(1.0, per_share, out=np.full(p, np.inf), where=per_share > 0),
        "radius": np.sqrt(axis_sq) / np.maximum(center_norm, np.sqrt(_ABS_CUTOFF)),
        "dimension": np.mean((u1 @ t[:, :, None])[..., 0] ** 2, axis=0),
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
                       backend=None,
                       device=None) -> xr.Dataset:
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
                      device=device)
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
