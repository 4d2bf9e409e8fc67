"""Eigenspectrum analyses against the known answers of SCIENCE.md §9 and direct references."""

import numpy as np
import pytest
import xarray as xr
from threadpoolctl import threadpool_limits

import loaders
from neurogeom import AnalysisError, AssemblyError
from neurogeom.latent.eigenspectrum import (cvpca, cvpca_spectrum, participation_ratio, power_law_exponent,
                                svca)


@pytest.fixture(autouse=True)
def one_blas_thread():
    # small decompositions are much slower with threaded BLAS on a shared 2-core machine
    with threadpool_limits(1):
        yield


def ring_eigenvalues(n):
    """(4/π²)(2⌊(n−1)/2⌋+1)⁻²: covariance eigenvalues per neuron of the ±1 ring model."""
    n = np.asarray(n)
    return 4 / np.pi ** 2 / (2 * ((n - 1) // 2) + 1) ** 2


def covariance_eigenvalues(a):
    x = a.values - a.values.mean(axis=0)
    return np.linalg.eigvalsh(x.T @ x / (len(x) - 1))[::-1]


def test_ring_model_eigenvalues_and_participation_ratio():
    # 20,000 random latents: a covariance entry has relative sampling error ~ sqrt(2/T) ≈ 1%,
    # well inside the 3% the issue allows; N = 200 neurons alias harmonics ≥ 199 (negligible).
    a = loaders.synthetic.ring_model(200, 20000, readout="sign", seed=0)
    ev = covariance_eigenvalues(a) / a.sizes["neuroid"]
    n = np.arange(1, 13)
    np.testing.assert_allclose(ev[:12], ring_eigenvalues(n), rtol=0.03)
    assert participation_ratio(a) == pytest.approx(3.0, abs=0.03)
    # the 0/1 step readout has half the amplitude: a quarter of the eigenvalues, same PR
    step = loaders.synthetic.ring_model(200, 20000, readout="step", seed=0)
    np.testing.assert_allclose(covariance_eigenvalues(step)[:12] / 200,
                               ring_eigenvalues(n) / 4, rtol=0.03)
    assert participation_ratio(step) == pytest.approx(3.0, abs=0.03)
    assert a["latent_0"].dims == ("time",) and "latent_1" in a.coords


def test_ring_model_linear_pca_needs_about_8_components():
    # evenly spaced latents make the spectrum exact up to aliasing (relative error < 1e-3);
    # 8 PCs hold (8/π²)(1 + 1/9 + 1/25 + 1/49) = 94.96% of the variance, 9 PCs 95.46%
    a = loaders.synthetic.ring_model(1000, 4000, readout="sign", latents="grid")
    ev = covariance_eigenvalues(a)
    cumulative = np.cumsum(ev) / ev.sum()
    exact = 8 / np.pi ** 2 * (1 + 1 / 9 + 1 / 25 + 1 / 49)
    assert cumulative[7] == pytest.approx(exact, abs=1e-3)
    assert np.argmax(cumulative >= 0.95) + 1 in (8, 9)
    assert participation_ratio(a) == pytest.approx(3.0, abs=1e-3)


@pytest.mark.parametrize("alpha", [0.5, 1.04, 2.0])
def test_power_law_exact(alpha):
    spectrum = np.arange(1, 1001, dtype=float) ** -alpha * 3.7
    assert power_law_exponent(spectrum) == pytest.approx(alpha, abs=1e-6)
    assert power_law_exponent(spectrum, ranks=(2, 50)) == pytest.approx(alpha, abs=1e-6)


def test_power_law_weights_are_one_over_n():
    # a spectrum with a kink: weighted least squares with weights 1/n, solved directly
    n = np.arange(1, 301, dtype=float)
    lam = np.where(n < 50, n ** -1.0, 50.0 ** 1.0 * n ** -2.0)
    x, y, w = np.log(n[10:]), np.log(lam[10:]), 1 / n[10:]
    design = np.stack([np.ones_like(x), x], 1)
    slope = np.linalg.solve(design.T @ (design * w[:, None]), design.T @ (w * y))[1]
    assert power_law_exponent(lam, ranks=(11, 300)) == pytest.approx(-slope, abs=1e-10)


def test_participation_ratio_known_values():
    # n⁻²: (Σn⁻²)²/Σn⁻⁴ → ζ(2)²/ζ(4) = 2.5; truncating at N lowers Σn⁻² by < 1/N, so the
    # finite-N value is within 2/(N ζ(2)) · 2.5 ≈ 3e-6 of the limit for N = 10⁶
    n = np.arange(1, 10 ** 6 + 1, dtype=float)
    assert participation_ratio(n ** -2.0) == pytest.approx(2.5, abs=1e-5)
    # n⁻¹, N = 1000: H_1000² / Σ_{n≤1000} n⁻² = 34.08 (SCIENCE.md §9, 2 decimals)
    assert participation_ratio(n[:1000] ** -1.0) == pytest.approx(34.08, abs=0.005)
    # isotropic: PR = N; scale free
    assert participation_ratio(np.full(17, 0.3)) == pytest.approx(17.0)
    assert participation_ratio(5 * n[:100] ** -1.0) == pytest.approx(
        participation_ratio(n[:100] ** -1.0))


def test_participation_ratio_of_assembly_matches_its_covariance_spectrum():
    a = loaders.synthetic.random_feature_latents(3, 40, 300, seed=1)
    x = a.values - a.values.mean(0)
    ev = np.linalg.eigvalsh(np.cov(x.T))
    assert participation_ratio(a) == pytest.approx(ev.sum() ** 2 / (ev ** 2).sum(), rel=1e-10)


def direct_cvpca(r1, r2):
    """Reference: SVD of centered R1, project both repeats, multiply (Stringer et al. 2019)."""
    r1 = r1 - r1.mean(0)
    r2 = r2 - r2.mean(0)
    _, _, vt = np.linalg.svd(r1, full_matrices=False)
    k = min(r1.shape[0] - 1, r1.shape[1])
    return np.sum((r1 @ vt[:k].T) * (r2 @ vt[:k].T), axis=0)


@pytest.mark.parametrize("shape", [(30, 80), (80, 30)])
def test_cvpca_kernel_matches_direct_reference(shape):
    rng = np.random.default_rng(0)
    r1 = rng.standard_normal(shape) @ np.diag(np.linspace(3, 0.1, shape[1]))
    r2 = r1 + 0.5 * rng.standard_normal(shape)
    ours = cvpca_spectrum(r1, r2, n_shuffles=1)[0]
    np.testing.assert_allclose(ours, direct_cvpca(r1, r2), rtol=1e-8, atol=1e-8)
    # a later shuffle swaps the repeats of some stimuli: same as swapping the rows by hand
    both = cvpca_spectrum(r1, r2, n_shuffles=2, seed=3)
    swap = np.random.default_rng(3).random(shape[0]) < 0.5
    a = np.where(swap[:, None], r2, r1)
    b = np.where(swap[:, None], r1, r2)
    np.testing.assert_allclose(both[1], direct_cvpca(a, b), rtol=1e-8, atol=1e-8)


def test_cvpca_recovers_power_law_where_naive_pca_is_biased():
    # stimulus spectrum n^-1, randomly rotated; trial noise with total variance equal to the
    # signal's (the hardest case the issue allows). Ranks 11..100 of 1,000 stimuli x 500
    # neurons: the cross-validated estimate is within 0.05 of 1, while PCA of one noisy repeat
    # sees the flat noise floor (0.014 per dim, above λ_n for n > 73) and flattens to ~0.5.
    a = loaders.synthetic.power_law_responses(1000, 500, alpha=1.0, noise=1.0, seed=0)
    ds = cvpca(a, n_shuffles=5)
    alpha_cv = power_law_exponent(ds, ranks=(11, 100))
    one_repeat = a.values[a["repetition"].values == 0]
    naive = np.linalg.svd(one_repeat - one_repeat.mean(0), compute_uv=False) ** 2
    alpha_naive = power_law_exponent(naive, ranks=(11, 100))
    assert abs(alpha_cv - 1.0) < 0.05
    assert abs(alpha_naive - 1.0) > 0.3
    assert ds["cv_variance_normalized"].sum() == pytest.approx(1.0)
    assert ds.attrs["n_stimuli"] == 1000 and ds.sizes["mode"] == 500


def test_cvpca_is_unbiased_for_pure_noise():
    # independent repeats share no signal: the cross-validated variance is ~0 (PCA's is not)
    rng = np.random.default_rng(2)
    r1, r2 = rng.standard_normal((2, 400, 50))
    ss = cvpca_spectrum(r1, r2, n_shuffles=3).mean(0)
    naive = np.linalg.svd(r1 - r1.mean(0), compute_uv=False) ** 2
    assert abs(ss.sum()) < 0.05 * naive.sum()


def test_cvpca_needs_two_repeats():
    a = loaders.synthetic.random_feature_latents(2, 20, 50, seed=0)   # one repeat
    with pytest.raises(AnalysisError, match="at least 2 repeats"):
        cvpca(a)


def test_cvpca_rejects_nan():
    a = loaders.synthetic.power_law_responses(20, 10, seed=0)
    a[3, 2] = np.nan
    with pytest.raises(AssemblyError, match="NaN"):
        cvpca(a)


def test_power_law_bad_input():
    with pytest.raises(AnalysisError, match="not positive at rank"):
        power_law_exponent(np.array([1.0, 0.5, 0.2, -0.1, 0.05]), ranks=(1, 5))
    with pytest.raises(AnalysisError, match="at least 3"):
        power_law_exponent(np.ones(5), ranks=(11, 500))
    with pytest.raises(AnalysisError, match="NaN"):
        participation_ratio(np.array([1.0, np.nan]))


def test_svca_recovers_shared_variance():
    # 3 shared latent signals (variances 4, 2, 1) on orthogonal neuron patterns plus private
    # unit noise: only 3 components carry variance shared between the two neuron halves; the
    # rest estimate 0 (test-time covariance of independent noise), and shared variance is
    # ordered like the latents'.
    rng = np.random.default_rng(0)
    n_t, n = 4000, 200
    latents = rng.standard_normal((n_t, 3)) * np.sqrt([4.0, 2.0, 1.0])
    weights = np.linalg.qr(rng.standard_normal((n, 3)))[0] * np.sqrt(n / 2)
    x = latents @ weights.T + rng.standard_normal((n_t, n))
    a = xr.DataArray(x, dims=("time", "neuroid"),
                     coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(n)])})
    ds = svca(a, n_components=10, chunk=20)
    shared = ds["shared_variance"].values
    assert (shared[:3] > 10 * np.abs(shared[3:]).max()).all()
    assert np.all(np.diff(shared[:3]) < 0)
    assert (ds["reliable_fraction"].values[:3] > 0.9).all()
    assert set(ds["neuron_set"].values.tolist()) == {"A", "B"}
