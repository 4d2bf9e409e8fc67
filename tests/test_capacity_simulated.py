"""Simulated capacity: exact separability, Cover's theorem, MFT agreement, a bisection that moves."""

import numpy as np
import pytest
from scipy.special import comb

from neurogeom import io as ngio
from neurogeom.capacity.simulated import (interpolate_half, is_separable, separable_fraction,
                                          simulated_capacity)
from neurogeom.capacity._inputs import span_coordinates
from neurogeom.errors import AnalysisError, AssemblyError

from geom_helpers import as_assembly, segments


def test_lp_separability_on_known_configurations():
    xor = np.array([[0.0, 0], [1, 1], [0, 1], [1, 0]])
    assert not is_separable(xor, np.array([1.0, 1, -1, -1]))
    assert is_separable(xor, np.array([1.0, -1, -1, -1]))         # one corner vs the rest
    # needs the bias: all points on one side of the origin, labels split by x > 5
    line = np.array([[4.0], [4.5], [5.5], [6.0]])
    assert is_separable(line, np.array([-1.0, -1, 1, 1]))
    assert not is_separable(line, np.array([-1.0, 1, -1, 1]))
    # duplicate point with both labels: never separable
    assert not is_separable(np.array([[1.0, 2], [1.0, 2], [0, 0]]), np.array([1.0, -1, 1]))


def test_separable_fraction_follows_covers_counting_theorem():
    # P points in general position, i.i.d. fair labels without the two constant ones: with a
    # bias in n dims the separable fraction is exactly (C(P, n+1) - 2) / (2^P - 2),
    # C(P, n+1) = 2 sum_{k<=n} binom(P-1, k) (Cover 1965). Binomial error of K draws.
    rng = np.random.default_rng(0)
    n_points, draws = 12, 300
    coords = span_coordinates(rng.standard_normal((n_points, 40)))
    for n in (3, 5, 7):
        cover = 2 * sum(comb(n_points - 1, k, exact=True) for k in range(n + 1))
        exact = (cover - 2) / (2 ** n_points - 2)
        k = separable_fraction(coords, np.arange(n_points), n, draws, rng, "iid", 40)
        sigma = np.sqrt(exact * (1 - exact) / draws)
        assert abs(k / draws - exact) < 4 * sigma, (n, k / draws, exact)


def test_random_points_in_manifolds_give_n_star_half_the_points():
    # P manifolds of M i.i.d. Gaussian points are P*M unstructured points: n* = (PM - 1)/2 for
    # i.i.d. labels (Cover); balanced manifold labels shift it by about +0.3 (measured with
    # 1500 draws). Monte-Carlo SE of n*: SE(p) = 0.05 at K = 100 over the slope of p(n) at the
    # crossing, binom pmf ~ 1/sqrt(pi (PM-1)/2) = 0.128 per dim, i.e. 0.4 dims. Tolerance 1.5
    # dims ~ 3 SE plus the 0.3 shift.
    rng = np.random.default_rng(1)
    n_manifolds, n_points = 8, 5
    pts = rng.standard_normal((n_manifolds * n_points, 100))
    ds = simulated_capacity(as_assembly(pts, np.repeat(np.arange(n_manifolds), n_points)),
                            by="object_name", n_dichotomies=100, seed=0)
    assert abs(float(ds.n_star) - n_manifolds * n_points / 2) < 1.5
    assert float(ds.capacity_overall) == pytest.approx(n_manifolds / float(ds.n_star))
    assert float(ds.capacity_overall_ci_low) <= float(ds.capacity_overall) <= float(ds.capacity_overall_ci_high)


def test_points_match_mft_capacity_two():
    # MFT (and Cover) give alpha = 2 for points as P -> infinity. At finite P with i.i.d. labels
    # Cover's p(n) = P(Binomial(P-1, 1/2) <= n) crosses 1/2 at n* = (P-2)/2 exactly, so
    # alpha_P = 2P/(P-2) = 2.069 at P = 60 (3.4% above the MFT value; the finite-size effect).
    # Monte-Carlo SE of n*: SE(p) = 0.05 at each bracket end (averaged: 0.035) over the slope
    # 0.104 per dim = 0.34 dims = 1.2% of alpha. Tolerance 4% ~ 3.3 SE.
    rng = np.random.default_rng(2)
    n_manifolds = 60
    a = as_assembly(rng.standard_normal((n_manifolds, 200)), np.arange(n_manifolds))
    ds = simulated_capacity(a, by="object_name", n_dichotomies=100, seed=1, dichotomy="iid")
    finite_size = 2 * n_manifolds / (n_manifolds - 2)
    assert float(ds.capacity_overall) == pytest.approx(finite_size, rel=0.04)
    assert float(ds.capacity_overall) == pytest.approx(2.0, rel=0.034 + 0.04)
    assert ds.bracket_high - ds.bracket_low == 1


def test_segments_match_mft_capacity():
    # Segments of half-length R = 0.5 (relative to a unit center): MFT alpha = 1/(1/2 +
    # (2/pi) arctan R) = 1.2576. The convex hull of a segment is its two end points, so M = 2
    # samples it exactly. Finite-size bias O(1/P) = 2% at P = 50 plus Monte-Carlo SE ~1.2%
    # (slope ~0.1 per dim at n* ~ 40): tolerance 5%.
    rng = np.random.default_rng(3)
    pts, owner = segments(rng, 50, 400, radius=0.5, n_points=2)
    ds = simulated_capacity(as_assembly(pts, owner), by="object_name", n_dichotomies=100, seed=2)
    assert float(ds.capacity_overall) == pytest.approx(1.2576, rel=0.05)


def test_bisection_moves_its_bracket_where_three_fixed_points_fail():
    # Tight clouds (radius 0.05) of M = 6 points: the rank of the data is P*M = 72 but the
    # clouds behave almost like points, n* ~ P/2 = 6, far below the bracket's middle (36). The
    # public script's scheme (evaluate bracket ends and middle once, interpolate) cannot see
    # the transition; a bisection that moves the bracket lands on it.
    rng = np.random.default_rng(4)
    n_manifolds, n_points, n_features = 12, 6, 200
    centers = rng.standard_normal((n_manifolds, n_features)) / np.sqrt(n_features)
    noise = 0.05 * rng.standard_normal((n_manifolds, n_points, n_features)) / np.sqrt(n_features)
    pts = (centers[:, None, :] + noise).reshape(-1, n_features)
    owner = np.repeat(np.arange(n_manifolds), n_points)
    ds = simulated_capacity(as_assembly(pts, owner), by="object_name", n_dichotomies=60, seed=3)
    rank = ds.attrs["rank"]
    assert rank == n_manifolds * n_points - 1          # centered: one dimension fewer
    n_star = float(ds.n_star)
    # truth: close to points (n* = (P-1)/2 ~ 5.5, slightly more for the finite radius)
    assert 4.5 < n_star < 8.5
    p = ds.p_separable.values
    assert np.any((p > 0.1) & (p < 0.9))               # it evaluated inside the transition
    assert ds.projection_dim.values.min() < rank / 8   # the lower end moved far down

    # The three-point scheme on the same data: p at 0 (= 0), the middle and the top, then a
    # linear interpolation, lands far from the transition.
    coords = span_coordinates(pts - pts.mean(0))
    k_mid = separable_fraction(coords, owner, rank // 2, 60, np.random.default_rng(0))
    k_top = separable_fraction(coords, owner, rank, 60, np.random.default_rng(1))
    three = interpolate_half(np.array([0, rank // 2, rank]),
                             np.array([0.0, k_mid / 60, k_top / 60]), np.ones(3))
    assert three > 2 * n_star


def test_interpolation_is_monotone_and_exact_on_a_line():
    n = np.array([0, 10, 20, 30])
    assert interpolate_half(n, np.array([0.0, 0.2, 0.8, 1.0]), np.ones(4)) == pytest.approx(15)
    # a noisy non-monotone curve is pooled first: (0.6, 0.4) -> 0.5 at both dims
    assert interpolate_half(n, np.array([0.0, 0.6, 0.4, 1.0]), np.ones(4)) == pytest.approx(10)


def test_exactly_invariant_to_rotation_scaling_and_order():
    # Samples are drawn in a pivoted-QR basis of the data's span, which rotations and point
    # order do not change when no two residual norms tie (generic data, as here; symmetric
    # constructions with tied norms are invariant in distribution only). Separability is
    # invariant to scaling. So the same seed gives the same n* to rounding.
    rng = np.random.default_rng(5)
    owner = np.repeat(np.arange(10), 3)
    pts = rng.standard_normal((10, 1, 30)) + 0.4 * rng.standard_normal((10, 3, 30))
    pts = pts.reshape(30, 30)
    kw = dict(by="object_name", n_dichotomies=10, precision=0.2)
    ref = simulated_capacity(as_assembly(pts, owner), **kw)
    rot = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    perm = rng.permutation(len(pts))
    for variant, own in ((pts @ rot.T * 7.5, owner), (pts[perm], owner[perm])):
        out = simulated_capacity(as_assembly(variant, own), **kw)
        assert float(out.n_star) == pytest.approx(float(ref.n_star), abs=1e-9)


def test_result_is_self_describing_and_serializable(tmp_path):
    rng = np.random.default_rng(6)
    pts, owner = segments(rng, 6, 20, radius=0.5, n_points=3)
    ds = simulated_capacity(as_assembly(pts, owner), by="object_name", n_dichotomies=20,
                            precision=0.15, dichotomy="one_vs_rest", seed=7)
    assert ds.sizes["manifold"] == 6 and list(ds.n_points.values) == [3] * 6
    for key in ("by", "n_dichotomies", "precision", "dichotomy", "seed", "ci_method",
                "separability_test"):
        assert key in ds.attrs
    back = ngio.open(ngio.to_netcdf(ds, tmp_path / "sim.nc"))
    assert float(back.capacity_overall) == float(ds.capacity_overall)
    again = simulated_capacity(as_assembly(pts, owner), by="object_name", n_dichotomies=20,
                               precision=0.15, dichotomy="one_vs_rest", seed=7)
    assert float(again.capacity_overall) == float(ds.capacity_overall)            # seeded


def test_bad_inputs_are_named():
    rng = np.random.default_rng(7)
    pts, owner = segments(rng, 4, 20, radius=0.5)
    a = as_assembly(pts, owner)
    with pytest.raises(AssemblyError, match="unknown manifold coord by='nope'.*object_name"):
        simulated_capacity(a, by="nope")
    with pytest.raises(AnalysisError, match="at least 2 manifolds"):
        simulated_capacity(as_assembly(pts, np.zeros(len(pts), int)), by="object_name")
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(AssemblyError, match="NaN"):
        simulated_capacity(bad, by="object_name")
    with pytest.raises(AnalysisError, match="dichotomy"):
        simulated_capacity(a, by="object_name", dichotomy="all")
    with pytest.raises(AnalysisError, match="precision"):
        simulated_capacity(a, by="object_name", precision=0.7)
    # duplicate points within a manifold change nothing about separability
    dup = simulated_capacity(as_assembly(np.vstack([pts, pts]), np.r_[owner, owner]),
                             by="object_name", n_dichotomies=10, precision=0.2)
    assert np.isfinite(float(dup.capacity_overall))
    # identical manifolds: no dichotomy is separable, a clear error instead of a number
    same = np.tile(rng.standard_normal((3, 20)), (4, 1))
    with pytest.raises(AnalysisError, match="same points"):
        simulated_capacity(as_assembly(same, np.repeat(np.arange(4), 3)), by="object_name",
                           n_dichotomies=10)
