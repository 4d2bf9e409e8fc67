"""Scale invariance: capacity and correlation scores do not depend on the data's overall scale.

SCIENCE.md §1: "scaling all data by a constant ... change[s] nothing" for MFT capacity, radius
and dimension; GLUE and correlated capacity normalize by the RMS center norm, simulated capacity
tests separability (scale-free); Pearson r is invariant to each column's scale, so PLS and OLS
scores do not depend on the features' or the targets' scale, and ridge scores do not depend on
the targets' scale (its penalties are absolute: ridge on (cX, c²α) predicts what (X, α) does).

Tolerances. Multiplying by a power of two is exact in binary floating point and the analyses
divide by a power of two before anything else, so those scales must give bit-identical results.
A decimal scale (1e80) rounds every input entry once, a relative perturbation of at most 2⁻⁵³;
the results are smooth functions of the inputs (QPs solved to KKT residual 1e-10, closed-form
regressions), so they move by that perturbation times a modest condition number. Measured
differences are below 1e-14 (capacity) and 1e-14 (scores); rtol = 1e-9 (1e-8 for the screened
solver of effective/correlated capacity, see RTOL_SCREENED) leaves room for the
conditioning of other data while still catching any real dependence on scale (before the fix,
1e±80 moved MFT capacity by 6% and 1e±200 failed outright).
"""

import warnings

import numpy as np
import pytest

import loaders
import neurogeom as ng
from neurogeom.capacity.correlated import correlated_capacity
from neurogeom.errors import AnalysisError
from neurogeom.regression.ceiling import noise_ceiling

DECIMAL = [1e-200, 1e-80, 1e80, 1e200]
RTOL = 1e-9
#: effective and correlated capacity use the screened joint-QP solver, which accepts a sample's
#: solution at a KKT residual up to 1e-9 (``joint._REFINE_ABOVE``) rather than 1e-10: a 2⁻⁵³
#: input perturbation can end a sample's solve at a different point within that residual, and
#: the capacity (a mean of 1/‖v‖² over samples) moves by a small multiple of it (measured:
#: 1.8e-9 at 1e-200)
RTOL_SCREENED = 1e-8


@pytest.fixture(scope="module")
def manifolds():
    return ng.average_repetitions(loaders.synthetic.object_manifolds(
        n_objects=5, n_images=8, n_neuroids=30, seed=0))


def _quiet(fn, *args, **kwargs):
    """Run ``fn`` turning every warning (overflow, underflow, invalid value) into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            return fn(*args, **kwargs)


CAPACITY = {
    "mft": lambda a: ng.manifold_capacity(a, by="object_name", n_t=100),
    "glue": lambda a: ng.effective_geometry(a, "object_name", n_t=20, n_dichotomies=4),
    "correlated": lambda a: correlated_capacity(a, "object_name", n_t=20, n_dichotomies=4),
    "simulated": lambda a: ng.simulated_capacity(a, "object_name", n_dichotomies=20,
                                                 n_bootstrap=50),
}
MEASURES = {"mft": ("capacity", "radius", "dimension"), "glue": ("capacity", "radius",
                                                                   "dimension"),
            "correlated": ("capacity",), "simulated": ()}


@pytest.mark.parametrize("method", list(CAPACITY))
def test_capacity_is_the_same_at_every_scale(manifolds, method):
    run = CAPACITY[method]
    ref = run(manifolds)
    names = ["capacity_overall"] + [m for m in MEASURES[method]]
    for s in DECIMAL:
        res = _quiet(run, manifolds * s)
        for name in names:
            rtol = RTOL_SCREENED if method in ("glue", "correlated") else RTOL
            np.testing.assert_allclose(np.asarray(res[name]), np.asarray(ref[name]), rtol=rtol,
                                       err_msg=f"{method} {name} at scale {s:g}")
    for k in (-600, 600):   # powers of two: exact, so bit-identical
        res = _quiet(run, manifolds * 2.0 ** k)
        for name in names:
            np.testing.assert_array_equal(np.asarray(res[name]), np.asarray(ref[name]),
                                          err_msg=f"{method} {name} at scale 2**{k}")


def test_mft_known_value_survives_extreme_scales(manifolds):
    # the symptom: 1e±80 moved the capacity, 1e±200 blamed a center at the global mean
    ref = float(ng.manifold_capacity(manifolds, by="object_name", n_t=100).capacity_overall)
    for s in (1e-200, 1e200):
        got = float(_quiet(ng.manifold_capacity, manifolds * s, by="object_name",
                           n_t=100).capacity_overall)
        assert got == pytest.approx(ref, rel=RTOL)


@pytest.mark.parametrize("scale", [1e-200, 1.0, 1e200])
def test_identical_manifolds_are_still_degenerate_at_any_scale(manifolds, scale):
    a = manifolds.copy(data=np.tile(manifolds.values[:1], (manifolds.sizes["presentation"], 1)))
    a = a + 0.0
    with pytest.raises(AnalysisError, match="same center|same points|identical"):
        ng.manifold_capacity(a * scale, by="object_name", n_t=20)
    with pytest.raises(AnalysisError, match="same points|identical"):
        ng.effective_geometry(a * scale, "object_name", n_t=5, n_dichotomies=2)


# ------------------------------------------------------------------------------- regression

@pytest.fixture(scope="module")
def regression_data():
    neural = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=12,
                                                n_repetitions=3, seed=1)
    model = loaders.synthetic.random_features(neural, 60, noise=0.5, seed=2)
    return model, neural


def _scores(ds):
    return np.concatenate([np.atleast_1d(ds["score"].values), ds["r"].values.ravel(),
                           np.atleast_1d(ds["ceiling"].values)])


SCALES = [1e-150, 1e-50, 1e50, 1e150]


@pytest.mark.parametrize("regression", ["pls", "ols"])
def test_predictivity_is_the_same_at_every_feature_and_target_scale(regression_data, regression):
    model, neural = regression_data
    kw = dict(regression=regression, n_components=5, n_splits=4)
    ref = _scores(ng.neural_predictivity(model, neural, **kw))
    for sx in SCALES:
        for sy in (1.0, 1e-150, 1e150):
            got = _scores(_quiet(ng.neural_predictivity, model * sx, neural * sy, **kw))
            np.testing.assert_allclose(got, ref, rtol=RTOL, err_msg=f"features x{sx:g}, "
                                                                     f"targets x{sy:g}")


def test_ridge_is_invariant_to_target_scale_and_equivariant_to_feature_scale(regression_data):
    model, neural = regression_data
    alphas = np.logspace(-2, 7, 10)
    ref_ds = ng.neural_predictivity(model, neural, alphas=alphas, n_splits=4)
    ref = _scores(ref_ds)
    for sy in SCALES:
        got = _scores(_quiet(ng.neural_predictivity, model, neural * sy, alphas=alphas,
                             n_splits=4))
        np.testing.assert_allclose(got, ref, rtol=RTOL, err_msg=f"targets x{sy:g}")
    # ridge penalties are absolute (Brain-Score): (c X, c² α) is the same problem as (X, α),
    # and the chosen alphas are reported in the features' units
    for c in (1e-100, 1e100):
        ds = _quiet(ng.neural_predictivity, model * c, neural, alphas=alphas * c ** 2,
                    n_splits=4)
        np.testing.assert_allclose(_scores(ds), ref, rtol=RTOL, err_msg=f"features x{c:g}")
        np.testing.assert_allclose(ds["alpha"].values, ref_ds["alpha"].values * c ** 2,
                                   rtol=1e-12)


def test_noise_ceiling_is_the_same_at_every_scale(regression_data):
    _, neural = regression_data
    ref = noise_ceiling(neural)["ceiling_split_neuroid"].values
    for s in (1e-200, 1e200):
        got = _quiet(noise_ceiling, neural * s)["ceiling_split_neuroid"].values
        np.testing.assert_allclose(got, ref, rtol=RTOL)


def test_features_at_1e300_are_not_called_constant_but_constant_ones_are(regression_data):
    model, neural = regression_data
    ref = float(ng.neural_predictivity(model, neural, regression="pls", n_components=5,
                                       n_splits=4)["score"])
    got = float(_quiet(ng.neural_predictivity, model * 1e300, neural, regression="pls",
                       n_components=5, n_splits=4)["score"])
    assert got == pytest.approx(ref, rel=RTOL) and got > 0.5
    constant = model.copy(data=np.full(model.shape, 1e300))
    with pytest.raises(AnalysisError, match="constant predictions"):
        ng.neural_predictivity(constant, neural, regression="ols", n_splits=4)
    # a target neuroid that truly is constant is still excluded as constant, at any scale
    flat = neural.copy(data=neural.values.copy())
    flat[:, 0] = 3.0
    with pytest.warns(UserWarning, match="excluding 1 neuroid"):
        ds = ng.neural_predictivity(model, flat * 1e200, regression="ols", n_splits=4)
    assert ds.attrs["n_excluded_constant_neuroids"] == 1


def test_ridge_alphas_negligible_for_huge_features_act_as_ridgeless_with_a_warning(
        regression_data):
    # default alphas (0.01..1e7) against features of 1e300: every penalty is below round-off of
    # X Xᵀ ~ 1e600, so ridge is ridgeless least squares (the minimum-norm OLS solution)
    model, neural = regression_data
    with pytest.warns(UserWarning, match="ridge alphas are below the round-off .* act as no "
                                         "penalty"):
        ridge = float(ng.neural_predictivity(model * 1e300, neural, n_splits=4)["score"])
    ols = float(ng.neural_predictivity(model, neural, regression="ols", n_splits=4)["score"])
    assert ridge == pytest.approx(ols, rel=1e-6)


SPECTRAL_FREE = ("eigenvalue", "theory_error", "theory_error_per_neuroid", "kappa",
                 "empirical_error", "empirical_error_per_neuroid", "error_mode_radius",
                 "error_mode_dimension")


def test_spectral_decomposition_is_the_same_at_every_scale(regression_data):
    """E_g, normalized eigenvalues and error modes are scale-free; raw eigenvalues scale with
    the features' square and alignment weights with the targets' square (1e300 squared is
    beyond float64: reported as inf with a warning, never as a wrong finite number)."""
    model, neural = regression_data
    kw = dict(p=[4, 12, 30], n_trials=2)
    ref = ng.spectral_decomposition(model, neural, **kw)
    for sx, sy in ((1e-150, 1.0), (1.0, 1e150), (1e150, 1e-150), (1e-300, 1e300)):
        if sx * sx == 0 or sy * sy == np.inf:
            with pytest.warns(UserWarning, match="exceed the float64 range"):
                got = ng.spectral_decomposition(model * sx, neural * sy, **kw)
        else:
            got = _quiet(ng.spectral_decomposition, model * sx, neural * sy, **kw)
        where = f"features x{sx:g}, targets x{sy:g}"
        for name in SPECTRAL_FREE:
            np.testing.assert_allclose(got[name].values, ref[name].values, rtol=RTOL, atol=1e-300,
                                       err_msg=f"{name}: {where}")
        np.testing.assert_array_equal(got["in_span"].values, ref["in_span"].values, err_msg=where)
        # the targets lie in the features' span here: the power outside it is round-off (a
        # fraction of ~1e-29), so only its size is compared, at a fraction's round-off level
        assert float(got["power_outside_span"]) < 1e-12 and float(ref["power_outside_span"]) < 1e-12
        if np.isfinite(sy * sy):
            # modes outside the span carry round-off only: compared at that level
            expected = ref["alignment"].values * sy * sy
            np.testing.assert_allclose(got["alignment"].values, expected, rtol=RTOL,
                                       atol=1e-12 * expected.max(), err_msg=where)
        else:
            assert np.isinf(got["alignment"].values[ref["alignment"].values > 0]).all()
        if sx * sx > 0:
            np.testing.assert_allclose(got["eigenvalue_raw"].values,
                                       ref["eigenvalue_raw"].values * sx * sx, rtol=RTOL,
                                       atol=1e-12 * sx * sx * ref["eigenvalue_raw"].values[0])
