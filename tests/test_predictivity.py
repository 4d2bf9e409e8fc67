"""neural_predictivity, noise_ceiling and the Brain-Score splits: known answers and bad input."""

import warnings

import numpy as np
import pytest
import xarray as xr
from sklearn.cross_decomposition import PLSRegression as SkPLS
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

import loaders
import neurogeom as ng
from neurogeom.errors import AlignmentError, AnalysisError, AssemblyError
from neurogeom.regression import neural_predictivity, noise_ceiling, stimulus_splits
from neurogeom.regression._stats import spearman_brown

ALPHAS = np.logspace(-2, 4, 7)


@pytest.fixture(scope="module")
def responses():
    return loaders.synthetic.object_manifolds(n_objects=5, n_images=12, n_neuroids=16,
                                              n_repetitions=4, noise=0.5, seed=3)


@pytest.fixture(scope="module")
def features(responses):
    return loaders.synthetic.random_features(responses, 90, noise=0.7, seed=1)


def shuffled(a, seed=0):
    """The same assembly with presentations in a random order (alignment must undo it)."""
    order = np.random.default_rng(seed).permutation(a.sizes["presentation"])
    return a.isel(presentation=order)


# --- splits -----------------------------------------------------------------------------------

def test_brainscore_split_indices(responses, features):
    ds = neural_predictivity(features, responses, alphas=ALPHAS, ceiling=False)
    mean = ng.average_repetitions(responses)
    labels = mean["object_name"].values
    reference = StratifiedShuffleSplit(n_splits=10, train_size=0.9, random_state=1)
    for s, (train, test) in enumerate(reference.split(np.zeros(len(labels)), labels)):
        expected = np.zeros(len(labels), dtype=np.int8)
        expected[test] = 1
        assert np.array_equal(ds["is_test"].values[s], expected)
    assert np.array_equal(ds["stimulus_id"].values, mean["stimulus_id"].values)


def test_split_by_a_coord_with_several_rows_per_value(responses, features):
    """split_by="object_name" (12 stimuli per object): every object lands wholly in train or
    test, each stimulus once, in the split's object order; and the predictions are those of
    sklearn RidgeCV fitted on exactly those rows."""
    ds = neural_predictivity(features, shuffled(responses), split_by="object_name",
                             stratify_by=None, n_splits=3, train_size=0.6, alphas=ALPHAS,
                             ceiling=False, keep_predictions=True)
    mean = ng.average_repetitions(shuffled(responses))
    objects = mean["object_name"].values
    feat = features.isel(presentation=[list(features["stimulus_id"].values).index(s)
                                       for s in mean["stimulus_id"].values])
    for s in range(3):
        test = ds["is_test"].values[s].astype(bool)
        assert not set(objects[test]) & set(objects[~test])
        assert test.sum() == 12 * len(set(objects[test])) and 0 < test.sum() < len(objects)
        ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(feat.values[~test],
                                                                mean.values[~test])
        assert np.allclose(ds["prediction"].values[s][test], ref.predict(feat.values[test]),
                           rtol=0, atol=1e-8)


def test_unstratified_and_kfold_splits():
    splits, stratified = stimulus_splits(30, None, seed=1)
    ref = ShuffleSplit(n_splits=10, train_size=0.9, random_state=1).split(np.zeros(30))
    assert not stratified
    for (a, b), (c, d) in zip(splits, ref):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    labels = np.repeat(["a", "b", "c"], 10)
    folds, _ = stimulus_splits(30, labels, n_splits=5, protocol="kfold", seed=1)
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(30))       # each stimulus tested exactly once


# --- known answers ----------------------------------------------------------------------------

def test_self_regression_is_one(responses):
    mean = ng.average_repetitions(responses)
    ridge = neural_predictivity(mean, mean, alphas=ALPHAS, ceiling=False)
    assert float(ridge["score"]) > 0.9999
    pls = neural_predictivity(mean, mean, regression="pls", n_components=16, ceiling=False)
    # 16 components span all 16 neuroids: exact reproduction, r = 1 up to round-off
    assert float(pls["score"]) == pytest.approx(1.0, abs=1e-10)
    ols = neural_predictivity(mean, mean, regression="ols", ceiling=False)
    assert float(ols["score"]) == pytest.approx(1.0, abs=1e-10)


def test_matches_sklearn_ridgecv_per_split(responses, features):
    ds = neural_predictivity(features, shuffled(responses), alphas=ALPHAS, ceiling=False,
                             keep_predictions=True)
    mean = ng.average_repetitions(shuffled(responses))
    feat = features.isel(presentation=[list(features["stimulus_id"].values).index(s)
                                       for s in mean["stimulus_id"].values])
    X, Y = feat.values, mean.values
    for s in (0, 7):
        test = ds["is_test"].values[s].astype(bool)
        ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(X[~test], Y[~test])
        pred = ref.predict(X[test])
        r = [np.corrcoef(pred[:, j], Y[test, j])[0, 1] for j in range(Y.shape[1])]
        assert np.array_equal(ds["alpha"].values[s], ref.alpha_)
        assert np.allclose(ds["r"].values[s], r, atol=1e-8)
        # predictions of the shared-Gram path equal sklearn's to round-off (scale ~10 spikes/s)
        assert np.allclose(ds["prediction"].values[s][test], pred, rtol=0, atol=1e-8)
        assert np.isnan(ds["prediction"].values[s][~test]).all()


def test_pls_protocol_matches_sklearn_per_split(responses, features):
    ds = neural_predictivity(features, responses, regression="pls", n_components=5,
                             ceiling=False, keep_predictions=True)
    mean = ng.average_repetitions(responses)
    X, Y = features.values, mean.values      # same stimulus order (both first-appearance)
    assert np.array_equal(features["stimulus_id"].values, mean["stimulus_id"].values)
    for s in (0, 4):
        test = ds["is_test"].values[s].astype(bool)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = SkPLS(n_components=5, scale=False, tol=1e-28, max_iter=50000).fit(
                X[~test], Y[~test])
        assert max(ref.n_iter_) < 50000
        assert np.allclose(ds["prediction"].values[s][test], ref.predict(X[test]), atol=1e-6)


def test_score_and_error_definitions(responses, features):
    ds = neural_predictivity(features, responses, regression="pls", n_components=5)
    per_split = np.median(ds["r"].values, axis=1)
    assert np.allclose(ds["score_per_split"], per_split)
    assert float(ds["score"]) == pytest.approx(per_split.mean())
    assert float(ds["error"]) == pytest.approx(per_split.std(ddof=0) / np.sqrt(10))
    c = float(ds["ceiling"])
    assert float(ds["ceiled_score_r2_over_ceiling"]) == pytest.approx(float(ds["score"]) ** 2 / c)
    assert float(ds["ceiled_score_r_over_ceiling_squared"]) == pytest.approx(
        (float(ds["score"]) / c) ** 2)
    assert 0 < float(ds["score"]) < 1


def test_no_test_fold_leak_into_alpha(responses, features):
    """Poisoning the responses of split 0's test stimuli leaves split 0's alphas unchanged."""
    mean = ng.average_repetitions(responses)
    clean = neural_predictivity(features, mean, alphas=ALPHAS)
    test = clean["is_test"].values[0].astype(bool)
    poisoned = mean.copy(data=mean.values.copy())
    poisoned.values[test] = 1e4 * np.random.default_rng(0).standard_normal(
        (test.sum(), mean.sizes["neuroid"]))
    dirty = neural_predictivity(features, poisoned, alphas=ALPHAS)
    assert np.array_equal(clean["alpha"].values[0], dirty["alpha"].values[0])
    assert not np.array_equal(clean["alpha"].values, dirty["alpha"].values)   # others see it


def test_result_round_trips(tmp_path, responses, features):
    ds = neural_predictivity(features, responses, alphas=ALPHAS)
    back = ng.io.open(ng.io.to_netcdf(ds, tmp_path / "r.nc"))
    xr.testing.assert_identical(back, ds)


# --- noise ceiling ----------------------------------------------------------------------------

def test_spearman_brown_values():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.8) == pytest.approx(0.8888888889)
    assert spearman_brown(1.0) == 1.0


def test_identical_repeats_give_ceiling_one(responses):
    clean = responses.copy(data=np.tile(responses.values[:60], (4, 1)))
    ds = noise_ceiling(clean)
    assert np.allclose(ds["ceiling_split_neuroid"], 1.0)
    assert float(ds["ceiling"]) == pytest.approx(1.0)


def test_ceiling_matches_reliability_theory():
    """Signal variance s2, trial noise sigma2, k repeats per half: r_half = s2/(s2 + sigma2/k)."""
    rng = np.random.default_rng(0)
    n_stim, n_rep, n_neur = 2000, 4, 30
    signal = rng.standard_normal((n_stim, n_neur))
    values = np.tile(signal, (n_rep, 1)) + 1.5 * rng.standard_normal((n_stim * n_rep, n_neur))
    a = xr.DataArray(values, dims=("presentation", "neuroid"),
                     coords={"stimulus_id": ("presentation", np.tile(np.arange(n_stim).astype(str), n_rep)),
                             "repetition": ("presentation", np.repeat(np.arange(n_rep), n_stim)),
                             "neuroid_id": ("neuroid", np.arange(n_neur).astype(str))})
    r_half = 1 / (1 + 1.5 ** 2 / 2)
    expected = spearman_brown(r_half)
    ds = noise_ceiling(a)
    # 2000 stimuli: sampling sd of r is ~(1-r^2)/sqrt(2000) ~ 0.01 per neuroid; the median over
    # 30 neuroids and mean over splits shrink it further.
    assert float(ds["ceiling"]) == pytest.approx(expected, abs=0.01)


def test_ceiling_uses_brainscore_half_splits(responses):
    ds = noise_ceiling(responses)
    halves = list(ShuffleSplit(n_splits=10, train_size=0.5, test_size=0.5,
                               random_state=1).split(np.zeros((4, 1))))
    first, second = halves[3]
    reps = responses["repetition"].values
    a = ng.average_repetitions(responses.isel(presentation=np.isin(reps, first)))
    b = ng.average_repetitions(responses.isel(presentation=np.isin(reps, second)))
    r = [np.corrcoef(a.values[:, j], b.values[:, j])[0, 1] for j in range(16)]
    assert np.allclose(ds["consistency"].values[3], r)


# --- bad input --------------------------------------------------------------------------------

def test_stimulus_sets_that_do_not_match_are_listed(responses, features):
    partial = features.isel(presentation=slice(5, None))
    with pytest.raises(AlignmentError, match=r"no features for 5 of the 60 target stimuli: "
                                             r"'object_00/image_000'"):
        neural_predictivity(partial, responses)


def test_fewer_stimuli_than_splits(responses, features):
    few = responses.isel(presentation=np.isin(responses["image_index"], [0]))
    with pytest.raises(AnalysisError, match="5 stimuli cannot make 10 splits"):
        neural_predictivity(features, few, stratify_by=None)


def test_stratification_coord_missing(responses, features):
    bad = responses.drop_vars("object_name")
    with pytest.raises(AnalysisError, match="stratify_by='object_name' is not a presentation "
                                            "coord.*'stimulus_id'"):
        neural_predictivity(features, bad, alphas=ALPHAS)
    with pytest.warns(UserWarning, match="unstratified"):
        ds = neural_predictivity(features, bad, alphas=ALPHAS, stratify_fallback=True)
    assert ds.attrs["stratified"] == 0


def test_stratification_classes_too_small(responses, features):
    names = responses["object_name"].values.copy()
    names[responses["stimulus_id"].values == "object_00/image_000"] = "lonely"
    bad = responses.assign_coords(object_name=("presentation", names))
    with pytest.raises(AnalysisError, match="single member.*'lonely'"):
        neural_predictivity(features, bad, alphas=ALPHAS)
    with pytest.warns(UserWarning, match="falling back to unstratified"):
        neural_predictivity(features, bad, alphas=ALPHAS, stratify_fallback=True)


def test_ceiling_without_repetitions(responses, features):
    mean = ng.average_repetitions(responses)
    with pytest.raises(AnalysisError, match="every stimulus_id appears once"):
        noise_ceiling(mean.drop_vars("n_repetitions"))
    ds = neural_predictivity(features, mean, alphas=ALPHAS)
    assert "ceiling" not in ds


def test_constant_neuroids_are_excluded_and_counted(responses, features):
    values = responses.values.copy()
    values[:, 2] = 7.0
    flat = responses.copy(data=values)
    with pytest.warns(UserWarning, match="excluding 1 neuroid.*'synthetic/IT/2'"):
        ds = neural_predictivity(features, flat, alphas=ALPHAS)
    assert ds.sizes["neuroid"] == 15
    assert ds.attrs["n_excluded_constant_neuroids"] == 1
    assert ds.attrs["excluded_constant_neuroids"] == ["synthetic/IT/2"]
    assert np.isfinite(ds["r"].values).all()


def test_nan_responses_rejected(responses, features):
    values = responses.values.copy()
    values[3, 4] = np.nan
    with pytest.raises(AssemblyError, match="NaN.*synthetic/IT/4"):
        neural_predictivity(features, responses.copy(data=values))
    with pytest.raises(AssemblyError, match="NaN"):
        noise_ceiling(responses.copy(data=values))


def test_bad_parameters(responses, features):
    with pytest.raises(AnalysisError, match="unknown regression 'lasso'"):
        neural_predictivity(features, responses, regression="lasso")
    with pytest.raises(AnalysisError, match="protocol must be one of"):
        neural_predictivity(features, responses, protocol="random")
    with pytest.raises(AnalysisError, match="split_by='image' is not a presentation coord"):
        neural_predictivity(features, responses, split_by="image")
    with pytest.raises(AnalysisError, match="dims"):
        neural_predictivity(features, responses.expand_dims(time_bin=1, axis=2).assign_coords(
            time_bin_start=("time_bin", [0.0]), time_bin_end=("time_bin", [0.1])))


def test_torch_device_gives_the_same_result(responses, features):
    pytest.importorskip("torch")
    for regression in ("ridge", "pls"):
        a = neural_predictivity(features, responses, regression=regression, alphas=ALPHAS,
                                n_components=5, ceiling=False)
        b = neural_predictivity(features, responses, regression=regression, alphas=ALPHAS,
                                n_components=5, ceiling=False, backend="torch")
        assert np.allclose(a["r"], b["r"], atol=1e-9)
        assert (b.attrs["backend"], b.attrs["device"]) == ("torch", "cpu")
        assert (a.attrs["backend"], a.attrs["device"]) == ("numpy", "cpu")
    spec_np = ng.spectral_decomposition(features, responses, p=[5, 20], n_trials=2)
    spec_t = ng.spectral_decomposition(features, responses, p=[5, 20], n_trials=2,
                                       backend="torch")
    for name in ("eigenvalue", "alignment", "theory_error", "empirical_error"):
        assert np.allclose(spec_np[name], spec_t[name], rtol=1e-8, atol=1e-12)
