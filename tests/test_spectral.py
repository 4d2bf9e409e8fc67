"""Spectral theory of neural prediction: known answers, identities, theory vs simulation."""

import numpy as np
import pytest
import xarray as xr

import neurogeom as ng
from neurogeom.errors import AlignmentError, AnalysisError
from neurogeom.regression.spectral import error_mode_geometry, solve_kappa, theory_errors


def assembly(values, prefix):
    P = values.shape[0]
    return xr.DataArray(values, dims=("presentation", "neuroid"),
                        coords={"stimulus_id": ("presentation", [f"s{i}" for i in range(P)]),
                                "neuroid_id": ("neuroid", [f"{prefix}{i}"
                                                           for i in range(values.shape[1])])})


def power_law_data(P=1200, N=150, C=8, exponent=1.3, noise=0.3, seed=0):
    """Gaussian features with spectrum i^-exponent and a target partly outside their span."""
    rng = np.random.default_rng(seed)
    spectrum = np.arange(1, N + 1) ** -exponent
    X = rng.standard_normal((P, N)) * np.sqrt(spectrum)
    Y = X @ rng.standard_normal((N, C)) + noise * rng.standard_normal((P, C))
    return assembly(X, "f"), assembly(Y, "n")


def test_kappa_solves_self_consistency():
    lam = np.arange(1, 201) ** -1.5
    lam /= lam.sum()
    p = np.array([1, 10, 100, 199, 201, 1000])
    for ridge in (1e-14, 1e-3):
        kappa = solve_kappa(lam, p, ridge)
        rhs = p * ridge + kappa * (lam[None, :] / (p[:, None] * lam[None, :] + kappa[:, None])).sum(1)
        assert np.allclose(kappa, rhs, rtol=1e-10, atol=0)
        assert (kappa > 0).all()


def test_error_is_one_without_data():
    lam = np.arange(1, 101) ** -1.0
    lam /= lam.sum()
    mode_error, _, _ = theory_errors(lam, [1e-9], 1e-14)
    assert np.allclose(mode_error, 1.0, atol=1e-6)


def test_white_spectrum_one_minus_p_over_n():
    N = 100
    lam = np.r_[np.full(N, 1 / N), np.zeros(40)]          # 40 modes outside the span
    p = np.array([5, 30, 60, 90])
    mode_error, kappa, gamma = theory_errors(lam, p, 1e-14)
    # in-span modes: E = 1 - p/N exactly in the ridgeless limit (errors O(ridge*p*N))
    assert np.allclose(mode_error[:, :N], (1 - p / N)[:, None], atol=1e-9)
    assert np.allclose(kappa, 1 - p / N, atol=1e-9)
    assert np.allclose(gamma, p / N, atol=1e-9)


def test_ridgeless_overparameterized_amplifies_outside_power():
    N = 50
    lam = np.r_[np.full(N, 1 / N), np.zeros(10)]
    p = np.array([60, 100, 500])
    mode_error, _, _ = theory_errors(lam, p, 1e-14)
    assert np.allclose(mode_error[:, N:], (p / (p - N))[:, None], rtol=1e-9)
    assert np.allclose(mode_error[:, :N], 0.0, atol=1e-9)          # the span is learned


def test_error_mode_geometry_identity():
    lam = np.arange(1, 81) ** -1.2
    lam /= lam.sum()
    weights = np.random.default_rng(0).exponential(size=80)
    mode_error, _, _ = theory_errors(lam, [3, 30, 300], 1e-6)
    radius, dimension = error_mode_geometry(mode_error, weights)
    expected = mode_error @ weights / weights.sum()
    assert np.allclose(radius * np.sqrt(dimension), expected, rtol=1e-12)


def test_alignment_and_span_bookkeeping():
    X, Y = power_law_data(P=300, N=40, C=3)
    ds = ng.spectral_decomposition(X, Y, p=[10], n_trials=1)
    Yc = Y.values - Y.values.mean(0)
    # sum_i W_i = ||Y||_F^2 / P (all P modes, in span or not)
    assert float(ds["alignment"].sum()) == pytest.approx((Yc ** 2).sum() / 300, rel=1e-10)
    assert ds.attrs["rank"] == 40
    assert float(ds["eigenvalue"].sum()) == pytest.approx(1.0)
    # a target orthogonal to the span of X (and centered) has all its power outside
    Xc = X.values - X.values.mean(0)
    Q = np.linalg.qr(np.c_[np.ones(300), Xc])[0]
    rand = np.random.default_rng(1).standard_normal((300, 2))
    outside = rand - Q @ (Q.T @ rand)
    ds2 = ng.spectral_decomposition(X, assembly(outside, "o"), p=[10], n_trials=1)
    assert float(ds2["power_outside_span"]) == pytest.approx(1.0, abs=1e-10)
    # a target inside the span has none
    ds3 = ng.spectral_decomposition(X, assembly(Xc[:, :2], "i"), p=[10], n_trials=1)
    assert float(ds3["power_outside_span"]) == pytest.approx(0.0, abs=1e-10)


def test_empirical_error_matches_theory_on_gaussian_power_law():
    X, Y = power_law_data()
    ds = ng.spectral_decomposition(X, Y, p=[10, 40, 120], n_trials=12, seed=3)
    theory = ds["theory_error"].values
    empirical = ds["empirical_error"].values
    sem = ds["empirical_error_sem"].values
    # Trial noise (3 standard errors) plus a 3% allowance for the finite-size (P=1200, N=150)
    # corrections the asymptotic theory neglects; sampling without replacement is O(p/P) ≤ 10%
    # of the points and they are included in the error, which the theory also treats as test
    # points, so that effect is inside the allowance.
    assert np.all(np.abs(empirical - theory) <= 3 * sem + 0.03 * theory), (empirical, theory)
    assert np.all(np.diff(theory) < 0)                     # more data, less error
    # per-neuroid errors average to the pooled ones when weighted by variance
    w = ds["alignment_per_neuroid"].sum("mode").values
    assert np.allclose(ds["theory_error_per_neuroid"].values @ w / w.sum(), theory)


def test_result_attrs_and_round_trip(tmp_path):
    X, Y = power_law_data(P=200, N=30, C=2)
    ds = ng.spectral_decomposition(X, Y, n_trials=2)
    assert ds["p"].values.max() == 100 and ds["p"].values.min() == 2
    back = ng.io.open(ng.io.to_netcdf(ds, tmp_path / "s.nc"))
    xr.testing.assert_identical(back, ds)


def test_bad_input():
    X, Y = power_law_data(P=100, N=20, C=2)
    with pytest.raises(AnalysisError, match=r"p must lie in \[1, 100\]"):
        ng.spectral_decomposition(X, Y, p=[0, 10])
    with pytest.raises(AnalysisError, match="ridge must be > 0"):
        ng.spectral_decomposition(X, Y, ridge=0.0)
    with pytest.raises(AnalysisError, match="n_trials must be >= 1"):
        ng.spectral_decomposition(X, Y, n_trials=0)
    with pytest.raises(AlignmentError, match="no features for 10 of the 100"):
        ng.spectral_decomposition(X.isel(presentation=slice(10, None)), Y)
    with pytest.raises(AnalysisError, match="no variance"):
        ng.spectral_decomposition(X.copy(data=np.ones((100, 20))), Y)
