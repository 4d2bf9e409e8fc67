"""Correlated capacity: ball capacities, whitening, the sphere duality table of Wakhloo et al."""

import numpy as np
import pytest

from neurogeom import io as ngio
from neurogeom.capacity.correlated import ball_capacity, correlated_capacity, whitened_points
from neurogeom.errors import AnalysisError, AssemblyError

from geom_helpers import as_assembly, segments


def test_ball_capacity_reproduces_the_known_answers():
    # SCIENCE.md §1: points at kappa, segments, R = 1 balls and the D-ball table
    for kappa, alpha in ((0.0, 2.0), (0.5, 0.9612), (1.0, 0.5196), (2.0, 0.2002)):
        assert ball_capacity(kappa, 0.0, 1) == pytest.approx(alpha, abs=1e-4)
    for radius, alpha in ((0.1, 1.7748), (0.5, 1.2576), (1.0, 1.0)):
        assert ball_capacity(0, radius, 1) == pytest.approx(alpha, abs=1e-4)
        assert alpha == pytest.approx(1 / (0.5 + 2 / np.pi * np.arctan(radius)), abs=1e-4)
    for dim in (2, 5, 10, 20, 50):
        assert ball_capacity(0, 1.0, dim) == pytest.approx(2 / (dim + 1), rel=1e-6)
    for (radius, dim), alpha in {(0.1, 2): 1.6544, (0.3, 10): 0.6043, (0.5, 5): 0.5765,
                                 (2.0, 50): 0.0249, (0.3, 20): 0.3949}.items():
        assert ball_capacity(0, radius, dim) == pytest.approx(alpha, abs=1e-4)


def test_whitened_points_keep_the_gram_matrix():
    # x~ = L^T e has Gram e^T C e = the data's Gram (no ridge needed when N > P(D+1))
    rng = np.random.default_rng(0)
    pts, owner = segments(rng, 6, 40, 0.5, n_points=4, rho_center=0.3, rho_axis=0.2)
    white, info = whitened_points(pts, owner)
    assert info["ridge"] == 0 and white.shape == (24, 12) and list(info["dims"]) == [1] * 6
    np.testing.assert_allclose(white @ white.T, pts @ pts.T, atol=1e-10)


def _duality_case(n_manifolds, rho_c, rho_a, n_t, n_dichotomies, seed=0):
    rng = np.random.default_rng(seed)
    pts, owner = segments(rng, n_manifolds, 1000, 0.5, n_points=2, rho_center=rho_c,
                          rho_axis=rho_a)
    ds = correlated_capacity(as_assembly(pts, owner), by="object_name", n_t=n_t,
                             n_dichotomies=n_dichotomies, center=False, seed=seed)
    predicted = ball_capacity(0, 0.5 * np.sqrt((1 - rho_a) / (1 - rho_c)), 1)
    return ds, predicted


def test_center_and_axis_correlations_move_capacity_as_predicted():
    # Small default-run version of the §3 check (P = 20 segments, R = 0.5; the table's values
    # for P = 50 are the thermodynamic-limit predictions and do not depend on P). 400 samples
    # per case: SE ~1.5% (reported as capacity_overall_se); tolerance 4 SE. The same seed gives common
    # random numbers, so the ordering is much sharper than each value.
    values = {}
    for rho_c, rho_a, table in ((0.5, 0.0, 1.121), (0.0, 0.5, 1.396), (0.0, 0.0, 1.258)):
        ds, predicted = _duality_case(20, rho_c, rho_a, 20, 20)
        assert predicted == pytest.approx(table, abs=1e-3)
        assert float(ds.capacity_overall) == pytest.approx(predicted, abs=4 * float(ds.capacity_overall_se))
        assert float(ds.center_correlation) == pytest.approx(rho_c, abs=1e-9)
        assert float(ds.axis_correlation) == pytest.approx(rho_a, abs=1e-9)
        values[(rho_c, rho_a)] = float(ds.capacity_overall)
    assert values[(0.5, 0.0)] < values[(0.0, 0.0)] < values[(0.0, 0.5)]


@pytest.mark.parametrize("rho_c,rho_a,table", [(0.0, 0.0, 1.258), (0.5, 0.0, 1.121),
                                               (0.0, 0.5, 1.396), (0.5, 0.5, 1.258)])
def test_sphere_duality_table(rho_c, rho_a, table):
    # SCIENCE.md §3 simulation check: segments, P = 50, N = 1000, R = 0.5. 2000 samples per
    # case: SE ~0.7%; tolerance 4 SE (~3%), well below the 11% gaps between table rows.
    ds, predicted = _duality_case(50, rho_c, rho_a, 50, 40, seed=1)
    assert predicted == pytest.approx(table, abs=1e-3)
    assert float(ds.capacity_overall) == pytest.approx(predicted, abs=4 * float(ds.capacity_overall_se))


def test_ridge_when_vectors_outnumber_dimensions(tmp_path):
    # 30 segments need 60 center/axis vectors but the data span only 25 dimensions: the tensor
    # is singular, a ridge is added (and reported); refusing the ridge is a clear error.
    rng = np.random.default_rng(2)
    centers = rng.standard_normal((30, 25)) / 5
    axes = rng.standard_normal((30, 25)) / 10
    pts = np.concatenate([centers + axes, centers - axes])
    owner = np.concatenate([np.arange(30), np.arange(30)])
    a = as_assembly(pts, owner)
    ds = correlated_capacity(a, by="object_name", n_t=5, n_dichotomies=4)
    assert ds.attrs["ridge_used"] > 0 and ds.attrs["tensor_rank"] < ds.attrs["tensor_size"]
    assert np.isfinite(float(ds.capacity_overall)) and float(ds.capacity_overall) > 0
    with pytest.raises(AnalysisError, match="singular and needs ridge > 0"):
        correlated_capacity(a, by="object_name", n_t=5, n_dichotomies=4, ridge=0)
    back = ngio.open(ngio.to_netcdf(ds, tmp_path / "corr.nc"))
    assert float(back.capacity_overall) == float(ds.capacity_overall)


def test_bad_inputs_are_named():
    rng = np.random.default_rng(3)
    pts, owner = segments(rng, 4, 20, 0.5)
    a = as_assembly(pts, owner)
    with pytest.raises(AssemblyError, match="unknown manifold coord"):
        correlated_capacity(a, by="label")
    with pytest.raises(AnalysisError, match="kappa"):
        correlated_capacity(a, by="object_name", kappa=-1)
    with pytest.raises(AnalysisError, match="ridge"):
        correlated_capacity(a, by="object_name", ridge=-1e-3)
    with pytest.raises(AnalysisError, match="at least 2 manifolds"):
        correlated_capacity(as_assembly(pts[:2], [0, 0]), by="object_name")
    with pytest.raises(AnalysisError, match="same points"):
        correlated_capacity(as_assembly(np.tile(pts[:2], (3, 1)), np.repeat([0, 1, 2], 2)),
                            by="object_name")


def test_axis_overlap_equals_the_pairwise_norms():
    # axis_correlation's overlaps come from grouped products of all axes (the upper triangle);
    # the same as ||A_mu A_nuᵀ||_F / sqrt(D_mu D_nu) pair by pair, manifolds without axes 0
    from neurogeom.capacity.correlated import _axis_overlap
    rng = np.random.default_rng(0)
    dims = [3, 0, 5, 1, 2, 7, 4, 0, 6]
    axes = [np.linalg.qr(rng.standard_normal((40, d)))[0].T if d else np.zeros((0, 40))
            for d in dims]
    ref = np.zeros((9, 9))
    for i in range(9):
        for j in range(9):
            if dims[i] and dims[j]:
                ref[i, j] = np.linalg.norm(axes[i] @ axes[j].T) / np.sqrt(dims[i] * dims[j])
    np.testing.assert_allclose(_axis_overlap(axes), ref, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(_axis_overlap([np.zeros((0, 5))] * 3), np.zeros((3, 3)))
