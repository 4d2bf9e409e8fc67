"""Effective geometry (GLUE): sphere reductions, Cover's 2, margins, invariances, the joint QP."""

import numpy as np
import pytest
import scipy.optimize
from scipy.stats import norm

from neurogeom import io as ngio
from neurogeom.capacity.effective import effective_geometry
from neurogeom.capacity.joint import active_set_qp, solve_joint
from neurogeom.errors import AnalysisError, AssemblyError

from geom_helpers import as_assembly, circles


def _clouds(rng, n_manifolds=6, n_points=5, n_features=40, radius=0.5):
    centers = rng.standard_normal((n_manifolds, 1, n_features))
    pts = centers + radius * rng.standard_normal((n_manifolds, n_points, n_features))
    return pts.reshape(-1, n_features), np.repeat(np.arange(n_manifolds), n_points)


# --- the joint QP solver ------------------------------------------------------------------------

def test_active_set_matches_nnls_and_the_shared_solver():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 12))            # more constraints than dimensions
    z[:, 0] += 3.0                               # all on one side: feasible with a margin
    for _ in range(5):
        t = rng.standard_normal(12)
        lam = active_set_qp(z, t, 0.0)
        # kappa = 0: the dual is NNLS min ||t + Z^T lam|| (scipy's Lawson-Hanson, independent)
        ref, _ = scipy.optimize.nnls(z.T, -t)
        np.testing.assert_allclose(z.T @ lam, z.T @ ref, atol=1e-9)
        # kappa > 0: KKT conditions of min ||v - t||^2 s.t. Z v >= kappa, checked directly
        lam = active_set_qp(z, t, 0.7)
        v = t + z.T @ lam
        slack = z @ v - 0.7
        assert lam.min() >= 0 and slack.min() > -1e-9
        assert np.max(np.abs(lam * slack)) < 1e-9
    # the whole joint problem: per-sample active set == batched shared ADMM solver, same t
    pts, owner = _clouds(rng, 4, 3, 20)
    coords = pts          # 12 points in general position in 20 dims: feasible at any margin
    labels = rng.choice([-1.0, 1.0], size=(3, 4))
    t = rng.standard_normal((3, 6, 20))
    a = solve_joint(coords, owner, labels, t, 0.3, solver="active_set")
    b = solve_joint(coords, owner, labels, t, 0.3, solver="shared")
    np.testing.assert_allclose(a.share, b.share, atol=1e-6)
    np.testing.assert_allclose(a.anchors, b.anchors, atol=1e-6)
    assert a.kkt.max() < 1e-9 and b.kkt.max() < 1e-6
    c = solve_joint(coords, owner, labels, t, 0.3, solver="shared", backend="torch")
    np.testing.assert_allclose(c.share, a.share, atol=1e-6)
    d = solve_joint(coords, owner, labels, t, 0.0)                   # the NNLS path
    e = solve_joint(coords, owner, labels, t, 0.0, solver="shared")
    np.testing.assert_allclose(d.share, e.share, atol=1e-6)
    np.testing.assert_allclose(d.anchors, e.anchors, atol=1e-6)


# --- known answers --------------------------------------------------------------------------------

def test_uncorrelated_circles_reduce_to_sphere_values():
    # Mutually orthogonal circles (D = 2) of radius R around orthogonal unit centers: the joint
    # QP splits exactly into the per-manifold MFT problems, anchors lie on the circle (|s1| = R)
    # along t's axis part, so R_eff = R and D_eff = D = 2 (SCIENCE.md §2). No global centering:
    # P centered vectors cannot all be orthogonal (they would correlate at -1/(P-1)).
    # Tolerances: M = 32 samples put anchors on a polygon, |s1| in [R cos(pi/32), R] =
    # [0.995 R, R]; t is interior to the ball ("embedded" anchors with |s1| < R) with
    # probability ~ (1 - a/sqrt(1+a^2))/2 = 2% for a = 1/R = 3.3 -> R_eff within 3% below R.
    # D_eff averages P*n = 4000 values of (t . s1_hat)^2 ~ chi2_2 (sd 2): SE 0.032 -> 5% (3 SE).
    # Capacity: the MFT value of the disc, alpha_B(R=0.3, D=2) = 1.2055 (the 32-gon is a hair
    # larger), Monte-Carlo SE ~2% (reported): tolerance 7%.
    rng = np.random.default_rng(1)
    radius = 0.3
    pts, owner = circles(rng, 8, 30, radius, 32)
    ds = effective_geometry(as_assembly(pts, owner), by="object_name", n_t=50,
                            n_dichotomies=10, center=False, seed=0)
    assert 0.97 * radius < float(ds.radius_overall) <= 1.0001 * radius
    assert float(ds.dimension_overall) == pytest.approx(2.0, rel=0.05)
    assert float(ds.capacity_overall) == pytest.approx(1.2055, rel=0.07)
    assert float(ds.capacity_overall_se) < 0.03 * float(ds.capacity_overall)
    np.testing.assert_allclose(ds.radius, radius, rtol=0.03)
    # anchor means: the center plus Monte-Carlo noise of order R/sqrt(n) along the axes
    np.testing.assert_allclose(ds.center_norm, 1.0, atol=0.01)
    for name in ("center_alignment", "axis_alignment", "center_axis_alignment"):
        assert abs(float(ds[name + "_overall"])) < 1e-9
    # the per-manifold shares add up to the total: the harmonic mean is the capacity
    assert 1 / np.mean(1 / ds.capacity.values) == pytest.approx(float(ds.capacity_overall))


def test_globally_centered_circles_keep_the_sphere_radius():
    # Centering P orthogonal unit centers leaves norm sqrt(1 - 1/P) and correlation
    # rho_c = -1/(P-1): relative radius R / sqrt(1 - 1/P), and the correlated-sphere duality
    # (SCIENCE.md §3) gives R_eff = R_rel sqrt(1/(1 - rho_c)) = R exactly. The centered centers
    # sum to zero, so G0 is singular; without leaving that direction out, R_eff came out 0.53
    # for R = 0.2 here. Tolerance as for uncorrelated circles (embedded anchors, polygon): 4%.
    rng = np.random.default_rng(7)
    radius = 0.2
    pts, owner = circles(rng, 10, 40, radius, 32)
    ds = effective_geometry(as_assembly(pts, owner), by="object_name", n_t=50,
                            n_dichotomies=10, seed=4)
    assert ds.attrs["center"] == 1
    assert float(ds.radius_overall) == pytest.approx(radius, rel=0.04)
    np.testing.assert_allclose(ds.radius, radius / np.sqrt(0.9), rtol=0.03)
    assert float(ds.dimension_overall) == pytest.approx(2.0, rel=0.05)


def test_random_points_have_capacity_two():
    # P < N points in general position, i.i.d. random dichotomies: E ||v* - t||^2 = P/2 exactly
    # (the sum over dichotomies of the chambers' statistical dimensions is P 2^(P-1)), so alpha
    # = 2 in expectation. Per sample Var ||v*-t||^2 ~ 1.25 P, so SE(alpha) ~ 2 sqrt(1.25/(P n))
    # = 0.035 for P = 20, n = 1000 samples (clustered by 10 per dichotomy): tolerance 0.14.
    rng = np.random.default_rng(2)
    pts = rng.standard_normal((20, 50))
    ds = effective_geometry(as_assembly(pts, np.arange(20)), by="object_name", n_t=10,
                            n_dichotomies=100, center=False, seed=1)
    assert float(ds.capacity_overall) == pytest.approx(2.0, abs=0.14)
    assert float(ds.radius_overall) == 0.0 and float(ds.dimension_overall) == 0.0     # points: no axes
    assert np.isinf(float(ds.capacity_approx_overall))


@pytest.mark.parametrize("kappa,alpha", [(0.5, 0.9612), (1.0, 0.5196)])
def test_orthogonal_points_with_margin_match_the_mft_formula(kappa, alpha):
    # Orthogonal unit points decouple: each is the 1-d MFT problem, 1/alpha = E (kappa - t)_+^2
    # = (1 + k^2) Phi(k) + k phi(k). Per-sample sd of (kappa - t)_+^2 <= 2.3 over P n = 4000
    # values: SE <= 2%; tolerance 6%.
    rng = np.random.default_rng(3)
    pts = np.linalg.qr(rng.standard_normal((20, 20)))[0]
    exact = 1 / ((1 + kappa ** 2) * norm.cdf(kappa) + kappa * norm.pdf(kappa))
    assert exact == pytest.approx(alpha, abs=1e-4)
    ds = effective_geometry(as_assembly(pts, np.arange(20)), by="object_name", n_t=20,
                            n_dichotomies=10, center=False, kappa=kappa, seed=2)
    assert float(ds.capacity_overall) == pytest.approx(exact, rel=0.06)


# --- invariances ----------------------------------------------------------------------------------

def test_invariant_to_rotation_scaling_and_point_order():
    # Samples are drawn in a pivoted-QR basis of the span (rotation covariant, order free for
    # generic data) and the data are scaled to unit RMS center norm: same seed, same numbers.
    rng = np.random.default_rng(4)
    pts, owner = _clouds(rng)
    kw = dict(by="object_name", n_t=10, n_dichotomies=4, kappa=0.2, seed=3)
    ref = effective_geometry(as_assembly(pts, owner), **kw)
    rot = np.linalg.qr(rng.standard_normal((40, 40)))[0]
    perm = rng.permutation(len(pts))
    for variant, own in ((3.7 * pts @ rot.T, owner), (pts[perm], owner[perm])):
        out = effective_geometry(as_assembly(variant, own), **kw)
        for name in ("capacity_overall", "radius_overall", "dimension_overall",
                     "center_alignment_overall", "axis_alignment_overall",
                     "center_axis_alignment_overall", "capacity", "radius", "dimension"):
            np.testing.assert_allclose(out[name], ref[name], rtol=1e-7, err_msg=name)


def test_one_vs_rest_and_serialization(tmp_path):
    rng = np.random.default_rng(5)
    pts, owner = _clouds(rng, 4, 4, 20)
    ds = effective_geometry(as_assembly(pts, owner), by="object_name", dichotomy="one_vs_rest",
                            n_t=5, seed=0)
    assert ds.attrs["n_dichotomies"] == 4 and ds.attrs["dichotomy"] == "one_vs_rest"
    assert ds.attrs["absolute_alignment"] == 1
    assert ds.sizes["manifold"] == 4
    back = ngio.open(ngio.to_netcdf(ds, tmp_path / "glue.nc"))
    assert float(back.radius_overall) == float(ds.radius_overall)
    signed = effective_geometry(as_assembly(pts, owner), by="object_name", n_t=5,
                                n_dichotomies=3, absolute_alignment=False)
    assert signed.attrs["absolute_alignment"] == 0


def test_bad_inputs_are_named():
    rng = np.random.default_rng(6)
    pts, owner = _clouds(rng, 3, 3, 10)
    a = as_assembly(pts, owner)
    with pytest.raises(AssemblyError, match="unknown manifold coord by='obj'"):
        effective_geometry(a, by="obj")
    with pytest.raises(AnalysisError, match="kappa"):
        effective_geometry(a, by="object_name", kappa=-0.1)
    with pytest.raises(AnalysisError, match="at least 2 manifolds"):
        effective_geometry(as_assembly(pts, np.zeros(len(pts), int)), by="object_name")
    bad = a.copy()
    bad[1, 1] = np.inf
    with pytest.raises(AssemblyError, match="infinite"):
        effective_geometry(bad, by="object_name")
    same = np.tile(pts[:3], (3, 1))
    with pytest.raises(AnalysisError, match="same points"):
        effective_geometry(as_assembly(same, owner), by="object_name")
    with pytest.raises(AnalysisError, match="dichotomy"):
        effective_geometry(a, by="object_name", dichotomy="balanced")
    # duplicate points are legitimate: duals split between copies, anchors stay unique
    dup = effective_geometry(as_assembly(np.vstack([pts, pts[:3]]), np.r_[owner, owner[:3]]),
                             by="object_name", n_t=5, n_dichotomies=3)
    assert np.isfinite(float(dup.capacity_overall)) and np.isfinite(float(dup.radius_overall))
    # a margin with more points than dimensions: some dichotomy is not separable at all
    crowded = as_assembly(rng.standard_normal((30, 4)), np.arange(30))
    with pytest.raises(AnalysisError, match="infeasible.*kappa=0"):
        effective_geometry(crowded, by="object_name", kappa=0.5, n_t=2, n_dichotomies=5)
