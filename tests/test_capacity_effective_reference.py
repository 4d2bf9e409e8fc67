"""The fast post-processing of the joint QP (shares, anchors, GLUE measures) against the direct
formulas it replaced: pseudo-inverses by eigendecomposition of every (n, P, P) stack, dense dual
products, a change of basis by QR. Same samples, so the results agree to rounding."""

import numpy as np
import pytest

import neurogeom.capacity.effective as effective
import neurogeom.capacity.joint as joint
from neurogeom.capacity.effective import effective_geometry

from geom_helpers import as_assembly

# --- the direct reference (the implementation before the blocked/Cholesky one) ------------------

_ABS, _REL = 1e-12, 1e-10


def _ref_quad_pinv(G, x):
    w, U = np.linalg.eigh(G)
    cut = np.maximum(_ABS, _REL * np.abs(w).max(axis=-1, keepdims=True))
    proj = np.einsum("...ij,...i->...j", U, x)
    inv = np.divide(1.0, w, out=np.zeros_like(w), where=w > cut)
    return np.sum(proj ** 2 * inv, axis=-1)


def _ref_pinv(G):
    w, U = np.linalg.eigh(G)
    cut = max(_ABS, _REL * np.abs(w).max())
    inv = np.divide(1.0, w, out=np.zeros_like(w), where=w > cut)
    return (U * inv) @ U.T


def _ref_unit(x):
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > np.sqrt(_ABS))


def _ref_offdiag_mean(c):
    p = c.shape[-1]
    per = np.sum(np.where(~np.eye(p, dtype=bool), c, 0.0), axis=-1) / (p - 1)
    return per, per.mean(axis=-1)


def _ref_geometry(anchors, t, share, absolute=True, null_direction=None):
    n, p, _ = anchors.shape
    s0 = anchors.mean(axis=0)
    s1 = anchors - s0
    t1 = (s1 @ t[:, :, None])[..., 0]
    g1 = s1 @ s1.transpose(0, 2, 1)
    g0 = s0 @ s0.T
    dim_terms = _ref_quad_pinv(g1, t1)
    if null_direction is not None:
        u = np.asarray(null_direction, float)[:, None] / np.linalg.norm(null_direction)
        basis = np.linalg.qr(np.hstack([u, np.eye(p)]))[0][:, 1:p]
    else:
        basis = np.eye(p)
    t1r = t1 @ basis
    g1r = basis.T @ g1 @ basis
    g0r = basis.T @ g0 @ basis
    num = _ref_quad_pinv(g1r + g0r, t1r)
    den = _ref_quad_pinv(g1r + g1r @ _ref_pinv(g0r) @ g1r, t1r)
    total = share.sum(axis=1)
    mean_total = total.mean()
    out = {"capacity": p / mean_total if mean_total > 0 else np.inf,
           "dimension": dim_terms.mean() / p}
    out["capacity_se"] = (out["capacity"] * total.std(ddof=1) / np.sqrt(n) / mean_total
                          if mean_total > 0 and n > 1 else 0.0)
    den_mean = den.mean()
    out["radius"] = np.sqrt(num.mean() / den_mean) if den_mean > _ABS else 0.0
    out["capacity_approx"] = ((1 + out["radius"] ** -2) / out["dimension"]
                              if out["radius"] > 0 and out["dimension"] > 0 else np.inf)
    fold = np.abs if absolute else (lambda x: x)
    u0, u1 = _ref_unit(s0), _ref_unit(s1)
    center_per, center_all = _ref_offdiag_mean(fold(u0 @ u0.T))
    axis_per, axis_all = _ref_offdiag_mean(fold(u1 @ u1.transpose(0, 2, 1)))
    ca_per, ca_all = _ref_offdiag_mean(fold(u0 @ u1.transpose(0, 2, 1)))
    out.update(center_alignment=center_all, axis_alignment=axis_all.mean(),
               center_axis_alignment=ca_all.mean())
    per_share = share.mean(axis=0)
    center_norm = np.linalg.norm(s0, axis=1)
    axis_sq = np.mean(np.sum(s1 ** 2, axis=2), axis=0)
    out["per_manifold"] = {
        "capacity": np.divide(1.0, per_share, out=np.full(p, np.inf), where=per_share > 0),
        "radius": np.sqrt(axis_sq) / np.maximum(center_norm, np.sqrt(_ABS)),
        "dimension": np.mean((u1 @ t[:, :, None])[..., 0] ** 2, axis=0),
        "center_norm": center_norm,
        "center_alignment": center_per,
        "axis_alignment": axis_per.mean(axis=0),
        "center_axis_alignment": ca_per.mean(axis=0),
    }
    return out


def _ref_shares_and_anchors(lam, proj, t, y, coords, owner, p, kappa):
    m = coords.shape[0]
    signed_proj = proj * y[:, owner]
    onehot = np.zeros((m, p))
    onehot[np.arange(m), owner] = 1.0
    share = (lam * (kappa - signed_proj)) @ onehot
    mass = lam @ onehot
    active = mass > 0
    anchors = np.zeros((len(lam), p, coords.shape[1]))
    for mu in range(p):
        idx = np.flatnonzero(owner == mu)
        rows = active[:, mu]
        anchors[rows, mu] = (lam[:, idx][rows] @ coords[idx]) / mass[rows, mu][:, None]
    if not np.all(active):
        v = t + (lam * y[:, owner]) @ coords
        margin = (v @ coords.T) * y[:, owner]
        for mu in range(p):
            rows = np.flatnonzero(~active[:, mu])
            idx = np.flatnonzero(owner == mu)
            if rows.size:
                anchors[rows, mu] = coords[idx[np.argmin(margin[np.ix_(rows, idx)], axis=1)]]
    return share, active, anchors


# --- comparisons ----------------------------------------------------------------------------------

def _close(got, want):
    # 1e-9 relative; 1e-12 absolute for values near 0 (rounding of sums of O(1) terms)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def _run(monkeypatch, a, **kw):
    """effective_geometry with the solver's duals and the geometry inputs recorded."""
    seen = {}
    shares = joint._shares_and_anchors
    geometry = effective.geometry_from_anchors
    calls = {"eigh": 0}
    quad = effective._quad_pinv

    def spy_shares(*args):
        seen["shares_args"] = args
        seen["shares"] = shares(*args)
        return seen["shares"]

    def spy_geometry(*args, **kwargs):
        seen["geometry_args"] = (args, kwargs)
        return geometry(*args, **kwargs)

    def spy_quad(G, x):
        calls["eigh"] += len(G)
        return quad(G, x)
    monkeypatch.setattr(joint, "_shares_and_anchors", spy_shares)
    monkeypatch.setattr(effective, "geometry_from_anchors", spy_geometry)
    monkeypatch.setattr(effective, "_quad_pinv", spy_quad)
    ds = effective_geometry(a, by="object_name", **kw)
    return ds, seen, calls["eigh"]


def _check_against_reference(ds, seen, absolute=True):
    lam, proj, t, y, coords, owner, p, kappa, _ = seen["shares_args"]
    share, active, anchors = seen["shares"]
    ref_share, ref_active, ref_anchors = _ref_shares_and_anchors(lam, proj, t, y, coords, owner,
                                                                 p, kappa)
    np.testing.assert_array_equal(active, ref_active)
    _close(share, ref_share)
    _close(anchors, ref_anchors)
    args, kwargs = seen["geometry_args"]
    ref = _ref_geometry(ref_anchors, t, ref_share, absolute, kwargs.get("null_direction"))
    for name in ("capacity", "radius", "dimension", "capacity_approx", "center_alignment",
                 "axis_alignment", "center_axis_alignment"):
        _close(ds[f"{name}_overall"].item(), ref[name])
    _close(ds["capacity_overall_se"].item(), ref["capacity_se"])
    for name, values in ref["per_manifold"].items():
        _close(ds[name].values, values)
    np.testing.assert_array_equal(ds["fraction_active"].values, ref_active.mean(axis=0))
    return active


def _clouds(rng, n_manifolds, n_points, n_features, radius=0.5):
    centers = rng.standard_normal((n_manifolds, 1, n_features))
    pts = centers + radius * rng.standard_normal((n_manifolds, n_points, n_features))
    return as_assembly(pts.reshape(-1, n_features), np.repeat(np.arange(n_manifolds), n_points))


@pytest.mark.parametrize("center,absolute", [(True, True), (False, True), (True, False)])
def test_clouds_match_the_direct_formulas(monkeypatch, center, absolute):
    a = _clouds(np.random.default_rng(3), 12, 6, 40)
    ds, seen, eigh = _run(monkeypatch, a, n_t=40, n_dichotomies=5, center=center,
                          absolute_alignment=absolute)
    active = _check_against_reference(ds, seen, absolute)
    assert not active.all()                  # inactive manifolds (nearest-point anchors) occur
    assert eigh == 0                         # every sample took the certified Cholesky path


def test_the_large_problem_path_and_a_margin(monkeypatch):
    # the primal-dual active set (forced below its size threshold) hands over z . t itself
    monkeypatch.setattr(joint, "_PDAS_MIN_POINTS", 0)
    # (40 points in 60 dims, not centered: every dichotomy is separable with a margin)
    a = _clouds(np.random.default_rng(4), 10, 4, 60)
    ds, seen, _ = _run(monkeypatch, a, n_t=30, n_dichotomies=3, kappa=0.2, center=False)
    _check_against_reference(ds, seen)


def test_two_manifolds_match(monkeypatch):
    a = _clouds(np.random.default_rng(5), 2, 7, 12)
    ds, seen, _ = _run(monkeypatch, a, n_t=60, n_dichotomies=4)
    _check_against_reference(ds, seen)


@pytest.mark.parametrize("center", [True, False])
def test_point_manifolds_take_the_eigendecomposition(monkeypatch, center):
    # one point per manifold: s1 = 0, every G1 singular (no certificate): radius 0 as before
    rng = np.random.default_rng(6)
    a = as_assembly(rng.standard_normal((9, 20)), np.arange(9))
    ds, seen, eigh = _run(monkeypatch, a, n_t=25, n_dichotomies=3, center=center)
    _check_against_reference(ds, seen)
    assert eigh > 0 and ds.radius_overall.item() == 0.0


def test_mixed_point_and_cloud_manifolds(monkeypatch):
    # some manifolds are single points: rank-deficient G1 in every sample, the fallback path
    rng = np.random.default_rng(8)
    pts = [rng.standard_normal((1, 25)) + 0.4 * rng.standard_normal((k, 25))
           for k in (1, 1, 5, 6, 4, 1, 7)]
    owner = np.repeat(np.arange(len(pts)), [len(x) for x in pts])
    ds, seen, eigh = _run(monkeypatch, as_assembly(np.vstack(pts), owner), n_t=30,
                          n_dichotomies=3)
    _check_against_reference(ds, seen)
    assert eigh > 0


def test_certified_forms_equal_the_pseudo_inverse_near_the_cutoff():
    # G with one small eigenvalue: far above the cutoff (the Cholesky path), within the margin
    # (eigendecomposition) and under it (cut). Same as the direct pseudo-inverse each time,
    # to the conditioning of G (a relative error of ~cond(G) eps is in both).
    rng = np.random.default_rng(9)
    p = 8
    for small in (1e-3, 1.5e-10, 1e-11, 0.0):
        q = np.linalg.qr(rng.standard_normal((p, p)))[0]
        w = np.r_[small, rng.uniform(0.5, 1.0, p - 1)]
        g1 = ((q * w) @ q.T)[None]
        t1 = rng.standard_normal((1, p))
        shift = 2.0 * max(_ABS, _REL * np.trace(g1[0]))
        regular = effective._eigenvalues_above(g1, np.array([shift]))
        assert regular[0] == (small > shift)
        if regular[0]:
            dim, on_complement, _ = effective._regular_forms(g1, g1, t1, t1, None)
            cond = w.max() / small
            np.testing.assert_allclose(dim, _ref_quad_pinv(g1, t1), rtol=100 * cond * 2e-16)
            np.testing.assert_allclose(on_complement, dim)
