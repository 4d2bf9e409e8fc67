"""Latent dimensionality: ridge RRR against a direct reference, the NCE on random-feature data
with known latent dimension (SCIENCE.md §8), the split protocol, the CLI and bad inputs."""

import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import loaders
from neurogeom import AnalysisError, AssemblyError
from neurogeom import io as ngio
from neurogeom_cli import main
from neurogeom.latent import (NeuralCrossEncoder, ReducedRankRegression, crossed_pairs,
                              latent_dimensionality, sample_sets, time_window)
from neurogeom.latent.nce import NCEConvergenceWarning, fit_models


@pytest.fixture(autouse=True)
def one_blas_thread():
    # small decompositions are much slower with threaded BLAS on a shared 2-core machine
    with threadpool_limits(1):
        yield


# --------------------------------------------------------------------------------- RRR

def reference_rrr(x, y, alpha, rank):
    """sklearn ridge, then truncate its fitted values to their top ``rank`` principal axes."""
    ridge = Ridge(alpha=alpha).fit(x, y)
    fitted = ridge.predict(x)
    mean = fitted.mean(0)                       # = mean of y (ridge with an intercept)
    v = np.linalg.svd(fitted - mean, full_matrices=False)[2][:rank].T
    return lambda xn: (ridge.predict(xn) - mean) @ v @ v.T + mean


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 40))
    w = rng.standard_normal((40, 5)) @ rng.standard_normal((5, 60))
    y = x @ w + rng.standard_normal((300, 60)) + 2.0
    xt = rng.standard_normal((100, 40))
    yt = xt @ w + rng.standard_normal((100, 60)) + 2.0
    return x, y, xt, yt


@pytest.mark.parametrize("rank", [1, 3, 7, 40])
def test_rrr_matches_ridge_plus_svd_reference(regression_data, rank):
    x, y, xt, _ = regression_data
    model = ReducedRankRegression(rank=rank, alphas=[3.0]).fit(x, y)
    np.testing.assert_allclose(model.predict(xt), reference_rrr(x, y, 3.0, rank)(xt),
                               rtol=1e-9, atol=1e-9)


def test_rrr_all_ranks_from_one_fit_equal_per_rank_scores(regression_data):
    x, y, xt, yt = regression_data
    model = ReducedRankRegression(alphas=[3.0]).fit(x, y)
    curve = model.score_ranks(xt, yt)
    per_rank = [ReducedRankRegression(rank=r, alphas=[3.0]).fit(x, y).score(xt, yt)
                for r in range(1, model.max_rank_ + 1)]
    np.testing.assert_allclose(curve, per_rank, rtol=1e-10, atol=1e-12)
    # full rank is plain ridge; the signal has rank 5, so the curve saturates there
    ridge = Ridge(alpha=3.0).fit(x, y)
    np.testing.assert_allclose(model.predict(xt), ridge.predict(xt), atol=1e-9)
    assert curve[4] > curve[3] + 0.02 and abs(curve[-1] - curve[4]) < 0.02


def test_rrr_alpha_selection(regression_data):
    x, y, xt, yt = regression_data
    alphas = [1e-2, 1.0, 1e2, 1e4]
    chosen = ReducedRankRegression(alphas=alphas).fit(x, y, validation=(xt, yt)).alpha_
    best = max(alphas, key=lambda a: -np.sum((Ridge(alpha=a).fit(x, y).predict(xt) - yt) ** 2))
    assert chosen == best
    # leave-one-out without a validation set avoids the crushing penalty
    assert ReducedRankRegression(alphas=alphas).fit(x, y).alpha_ < 1e4


@pytest.mark.parametrize("alphas, message", [
    ([-1.0], r"alphas must be finite and >= 0, got \[-1.0\]"),
    ([1.0, float("nan")], "alphas must be finite and >= 0"),
    ([], "alphas must be a non-empty 1-d sequence"),
])
def test_rrr_alphas_checked_by_the_shared_rule(regression_data, alphas, message):
    """RRR validates ``alphas`` with the check ridge uses (neurogeom._params.check_alphas), but
    accepts 0: the unpenalized fit, equal to ordinary least squares plus the SVD truncation."""
    x, y, xt, yt = regression_data
    with pytest.raises(AnalysisError, match=message):
        ReducedRankRegression(alphas=alphas).fit(x, y)
    full = ReducedRankRegression(alphas=[0.0]).fit(x, y)
    ols = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
    np.testing.assert_allclose(full.predict(xt), np.c_[xt, np.ones(len(xt))] @ ols,
                               rtol=1e-8, atol=1e-8)


def test_rrr_bad_input(regression_data):
    x, y, _, _ = regression_data
    with pytest.raises(AnalysisError, match="rank must be an integer in 1..40"):
        ReducedRankRegression(rank=41).fit(x, y)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(AnalysisError, match="NaN"):
        ReducedRankRegression().fit(bad, y)
    with pytest.raises(AnalysisError, match="samples"):
        ReducedRankRegression().fit(x[:10], y)


# --------------------------------------------------------------------------------- NCE

@pytest.fixture(scope="module")
def relu_d2():
    """ReLU random features of a latent on the circle (d = 2), noiseless, 300 neurons.

    Small on purpose (the full known-answer set is further down): 750 training stimuli, the
    NCE at its default settings, d = 1 and 2 fitted together as one stacked model.
    """
    a = loaders.synthetic.random_feature_latents(2, 300, 1500, readout="relu", seed=0)
    x = a.values
    rng = np.random.default_rng(0)
    perm = rng.permutation(300)
    src, tgt = perm[:100], perm[100:]
    s = rng.permutation(1500)
    parts = {name: (x[idx][:, src], x[idx][:, tgt], idx)
             for name, idx in (("train", s[:750]), ("val", s[750:1050]), ("test", s[1050:]))}
    latents = np.stack([a["latent_0"].values, a["latent_1"].values], axis=1)
    models = fit_models([NeuralCrossEncoder(d, seed=0, progress=False, n_threads=1)
                         for d in (1, 2)], parts["train"][0], parts["train"][1],
                        validation=parts["val"][:2])
    fits = dict(zip((1, 2), models))
    rrr = ReducedRankRegression().fit(parts["train"][0], parts["train"][1], parts["val"][:2])
    return parts, latents, fits, rrr


def test_nce_reaches_95_percent_at_true_d_where_rrr_needs_more(relu_d2):
    parts, _, fits, rrr = relu_d2
    xs, ys, _ = parts["test"]
    nce = {d: fits[d].score(xs, ys) for d in fits}
    linear = rrr.score_ranks(xs, ys, np.arange(1, 9))
    best = max(max(nce.values()), linear.max())
    assert nce[2] >= 0.95 * best                     # NCE: d = 2, the true dimension
    assert nce[1] < 0.95 * best                      # one latent cannot trace a circle
    rrr_dim = int(np.argmax(linear >= 0.95 * best)) + 1
    assert linear.max() >= 0.95 * best and rrr_dim == 4   # SCIENCE.md §8: RRR needs ≈ 4
    assert fits[2].exponent_ == pytest.approx(1.0, abs=0.2)   # ReLU readout: p ≈ 1


def test_nce_latents_are_an_affine_map_of_the_true_latents(relu_d2):
    parts, latents, fits, _ = relu_d2
    xs, _, idx = parts["test"]
    z = fits[2].transform(xs)
    true = latents[idx]
    q1 = np.linalg.qr(z - z.mean(0))[0]
    q2 = np.linalg.qr(true - true.mean(0))[0]
    canonical = np.linalg.svd(q1.T @ q2, compute_uv=False)
    assert canonical.min() >= 0.95


def test_nce_is_deterministic_and_predicts_in_target_units():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 6))
    y = 50 + 10 * np.maximum(x[:, :2] @ rng.standard_normal((2, 8)), 0)
    kw = dict(hidden=(16,), max_epochs=3, progress=False, n_threads=1)
    threads = torch.get_num_threads()
    p1 = NeuralCrossEncoder(2, seed=4, **kw).fit(x, y).predict(x)
    p2 = NeuralCrossEncoder(2, seed=4, **kw).fit(x, y).predict(x)
    p3 = NeuralCrossEncoder(2, seed=5, **kw).fit(x, y).predict(x)
    np.testing.assert_array_equal(p1, p2)
    assert not np.allclose(p1, p3)
    assert torch.get_num_threads() == threads            # thread setting restored
    # targets with a large offset and scale are learned in their own units
    model = NeuralCrossEncoder(2, seed=0, hidden=(16,), lr=1e-2, batch_size=16, max_epochs=60,
                               progress=False, n_threads=1).fit(x, y)
    assert model.score(x, y) > 0.9


def test_nce_crossed_loss_with_repeats():
    a = loaders.synthetic.random_feature_latents(2, 30, 200, noise=0.2, n_repetitions=2, seed=0)
    rep = a["repetition"].values
    data = np.stack([a.values[rep == r] for r in (0, 1)])    # (repeats, stimuli, neurons)
    src, tgt = data[..., :10], data[..., 10:]
    model = NeuralCrossEncoder(2, hidden=(16,), max_epochs=5, progress=False,
                               n_threads=1).fit(src, tgt)
    pred = model.predict(src)
    assert pred.shape == tgt.shape and model.transform(src).shape == (2, 200, 2)
    # the crossed score compares repeat r's prediction with repeat r' ≠ r's targets
    ps, ys = crossed_pairs(pred, tgt)
    expected = 1 - np.sum((ys - ps) ** 2) / np.sum((ys - ys.mean(0)) ** 2)
    assert model.score(src, tgt) == pytest.approx(expected)
    with pytest.raises(AnalysisError, match="at least 2 repeats"):
        NeuralCrossEncoder(2, progress=False).fit(src[:1], tgt[:1])


def test_nce_warm_start_distills_rrr():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 10))
    y = x[:, :2] @ rng.standard_normal((2, 12))
    model = NeuralCrossEncoder(2, hidden=(32,), warm_start="rrr", distill_epochs=30, lr=1e-2,
                               batch_size=16, max_epochs=1, progress=False,
                               n_threads=1).fit(x, y)
    assert model.warm_start_alpha_ > 0
    assert model.score(x, y) > 0.9     # the linear RRR solution (R² = 1) was distilled


@pytest.mark.parametrize("case", ["plain", "crossed, warm start, noise"])
def test_stacked_sweep_equals_one_fit_per_d(case):
    """fit_models trains every d as one stacked network; each model must be the network that
    its own fit (same seed: same initialization and batches) gives. Independent reference:
    NeuralCrossEncoder.fit of one d at a time. Float32 products batched over models round
    differently from single products (relative 1e-7 per operation), amplified over a few dozen
    Adam steps: agreement to 1e-4 of the targets' scale, far below any training effect."""
    rng = np.random.default_rng(2)
    z = rng.standard_normal((160, 3))
    if case == "plain":
        x = z @ rng.standard_normal((3, 12))
        y = np.maximum(z @ rng.standard_normal((3, 20)), 0)
        kw = dict(hidden=(16, 8), batch_size=32, max_epochs=12, patience=2, lr_patience=1,
                  tol=0.05)
        val = (x[:40] + 0.1, y[:40])
    else:
        signal = np.maximum(z @ rng.standard_normal((3, 32)), 0)
        data = signal + 0.3 * rng.standard_normal((2, 160, 32))     # (repeats, stimuli, ·)
        x, y = data[..., :12], data[..., 12:]
        kw = dict(hidden=(16,), batch_size=32, max_epochs=4, warm_start="rrr",
                  distill_epochs=2, noise=0.1)
        val = None
    kw.update(progress=False, n_threads=1, seed=3)
    dims = [1, 2, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NCEConvergenceWarning)
        stacked = fit_models([NeuralCrossEncoder(d, **kw) for d in dims], x, y, validation=val)
        single = [NeuralCrossEncoder(d, **kw).fit(x, y, validation=val) for d in dims]
    if case == "plain":   # the models stopped at different epochs and left the stack
        assert len({m.n_epochs_ for m in stacked}) > 1
    for a, b in zip(stacked, single):
        assert (a.n_epochs_, a.best_epoch_, a.converged_) == (b.n_epochs_, b.best_epoch_,
                                                              b.converged_)
        np.testing.assert_allclose(a.predict(x), b.predict(x), atol=1e-4 * np.std(y))
        np.testing.assert_allclose(a.train_loss_, b.train_loss_, rtol=1e-4)
        assert a.transform(x).shape == x.shape[:-1] + (a.n_latents,)


def test_sweep_progress_bar_shows_d_and_validation_r2(capsys):
    a = loaders.synthetic.random_feature_latents(2, 30, 120, noise=0.1, seed=0)
    kw = dict(dims=[1, 2], n_splits=1, methods=("nce", "rrr"),
              nce_params=dict(hidden=(8,), max_epochs=2, n_threads=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        latent_dimensionality(a, progress=True, **kw)
        shown = capsys.readouterr().err
        latent_dimensionality(a, **kw)          # progress=None: quiet when not a terminal
        quiet = capsys.readouterr().err
    assert "latent dimensionality" in shown and "validation R2 by d 1:" in shown
    assert " 2:" in shown
    assert quiet == ""


def test_time_window():
    x = np.arange(12.0).reshape(6, 2)
    w = time_window(x, 3)
    assert w.shape == (6, 6)
    np.testing.assert_array_equal(w[2], np.concatenate([x[1], x[2], x[3]]))
    np.testing.assert_array_equal(w[0], np.concatenate([x[0], x[0], x[1]]))   # edge repeated
    model = NeuralCrossEncoder(1, hidden=(8,), window=3, max_epochs=2, progress=False).fit(
        np.random.default_rng(0).standard_normal((50, 4)),
        np.random.default_rng(1).standard_normal((50, 3)))
    assert model.predict(np.zeros((7, 4))).shape == (7, 3)
    with pytest.raises(AnalysisError, match="continuous"):
        model.predict(np.zeros((2, 7, 4)))


def test_nce_bad_input():
    x = np.random.default_rng(0).standard_normal((40, 3))
    y = np.random.default_rng(1).standard_normal((40, 5))
    with pytest.raises(AnalysisError, match="more latents than neurons"):
        NeuralCrossEncoder(4, progress=False).fit(x, y)
    bad = y.copy()
    bad[1, 1] = np.nan
    with pytest.raises(AnalysisError, match="target contains NaN"):
        NeuralCrossEncoder(2, progress=False).fit(x, bad)
    with pytest.raises(AnalysisError, match="sample"):
        NeuralCrossEncoder(2, progress=False).fit(x, y[:30])
    with pytest.raises(AnalysisError, match="not fitted"):
        NeuralCrossEncoder(2).predict(x)


# ------------------------------------------------------------------ latent_dimensionality

def test_sample_sets_by_stimulus_and_by_time_chunks_with_gaps():
    sets = sample_sets(100, continuous=False, seed=0)
    assert [int((sets == k).sum()) for k in range(3)] == [50, 20, 30]
    t = sample_sets(200, continuous=True, n_chunks=10, gap=2, seed=0)
    # every chunk of 20 loses 2 samples at each end; runs of a set are whole chunks
    assert (t == -1).sum() == 10 * 4
    for k in range(3):
        assert (t == k).sum() % 16 == 0
    # no sample of one set is adjacent to a sample of another
    labelled = np.flatnonzero(t >= 0)
    adjacent = labelled[np.flatnonzero(np.diff(labelled) == 1)]
    assert (t[adjacent] == t[adjacent + 1]).all()


def test_latent_dimensionality_rrr_on_stimulus_data():
    a = loaders.synthetic.random_feature_latents(2, 60, 300, noise=0.1, n_repetitions=2, seed=1)
    ds = latent_dimensionality(a, dims=range(1, 9), n_splits=2, methods=("rrr",))
    assert ds["r2"].dims == ("method", "latent_dim", "split")
    assert ds.attrs["crossed"] == 1 and ds.attrs["n_source"] == 20
    assert float(ds["r2_normalized"].max()) == pytest.approx(1.0)
    # ReLU readout of a circle: RRR needs ≈ 4 dimensions (SCIENCE.md §8), clearly more than 2
    assert set(ds["dimension"].sel({"method": "rrr"}).values.tolist()) <= {3.0, 4.0, 5.0}
    # splits are by stimulus identity and differ between splits; neurons split disjointly
    assert ds["sample_set"].dims == ("split", "stimulus") and ds.sizes["stimulus"] == 300
    assert not (ds["sample_set"][0] == ds["sample_set"][1]).all()
    assert int(ds["is_source"].sum("neuroid")[0]) == 20


def test_latent_dimensionality_both_methods_on_continuous_data(tmp_path):
    """The ring model (a step readout of one angle: latent dimension 2) as continuous activity.

    90 neurons (30 sources place the angle within 1/60 of the circle, so the best model gets
    close to the noise-limited R²), 1,500 time bins in 10 chunks, a window of 2 bins. NCE
    reaches 95% of the best R² at d = 2, the true dimension, or at d = 3: the d = 2 fit of a
    step readout through a 2-unit bottleneck sits at the 95% line (above it in the CI runs
    of 2026-11/12; 0.937 of the best on an AMD EPYC with AVX-512 kernels, where d = 3 gives
    0.956), so which side it falls on depends on the CPU's float kernels, not on the method.
    Linear RRR needs more than NCE (4 measured for splits seeded 0..3; SCIENCE.md §8). Both
    reach 95% within dims 1..5, so neither estimate is NaN and no "never reach 95%" warning is
    raised.
    """
    a = loaders.synthetic.ring_model(90, 1500, noise=0.1, seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*never reach")
        ds = latent_dimensionality(a, dims=range(1, 6), n_splits=1, window=2, n_chunks=10,
                                   nce_params=dict(n_threads=1))   # the NCE's defaults
    assert ds.attrs["split_by"] == "time chunks" and ds.attrs["gap"] == 2
    assert ds["sample_set"].dims == ("split", "time")
    assert (ds["sample_set"].values == "gap").sum() == 10 * 4
    assert np.isfinite(ds["r2"].values).all()
    assert ds["nce_epochs"].values.min() >= 1
    dimension = ds["dimension"].isel(split=0)
    nce, rrr = float(dimension.sel({"method": "nce"})), float(dimension.sel({"method": "rrr"}))
    assert nce in (2.0, 3.0) and rrr >= 3 and nce < rrr
    back = ngio.open(ngio.to_netcdf(ds, tmp_path / "ld.nc"))
    xr.testing.assert_allclose(back["r2"], ds["r2"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(source_fraction=0.0), r"source_fraction must be a number in \(0, 1\), got 0.0"),
    (dict(source_fraction=1.0), r"source_fraction must be a number in \(0, 1\), got 1.0"),
    (dict(source_fraction=0.01), "both sides need at least one"),
    (dict(dims=range(1, 12)), "more latents than neurons"),
    (dict(methods=("pca",)), "unknown method"),
    (dict(crossed=True, dims=[1, 2]), "at least 2 repeats"),
])
def test_latent_dimensionality_bad_input(kwargs, message):
    a = loaders.synthetic.random_feature_latents(2, 30, 60, seed=0)
    with pytest.raises(AnalysisError, match=message):
        latent_dimensionality(a, **{"methods": ("rrr",), **kwargs})


def test_latent_dimensionality_too_few_samples_and_nan():
    a = loaders.synthetic.random_feature_latents(2, 30, 5, seed=0)
    with pytest.raises(AnalysisError, match="too few samples for the split"):
        latent_dimensionality(a, dims=[1, 2], methods=("rrr",))
    b = loaders.synthetic.random_feature_latents(2, 30, 60, seed=0)
    b[4, 4] = np.nan
    with pytest.raises(AssemblyError, match="NaN"):
        latent_dimensionality(b, dims=[1, 2], methods=("rrr",))
    t = loaders.synthetic.ring_model(12, 50)
    with pytest.raises(AnalysisError, match="too few samples"):
        latent_dimensionality(t, dims=[1], methods=("rrr",), n_chunks=2)


# --------------------------------------------------------------------------------- CLI

def test_cli_latents(tmp_path, capsys):
    a = loaders.synthetic.random_feature_latents(2, 45, 200, noise=0.1, n_repetitions=2, seed=2)
    path = ngio.to_netcdf(a, tmp_path / "a.nc")
    out = tmp_path / "latents.nc"
    assert main(["latents", str(path), "--dims", "1:6", "--methods", "rrr", "--splits", "2",
                 "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "rrr: 95% dimension per split" in printed
    ds = ngio.open(out)
    assert ds["latent_dim"].values.tolist() == [1, 2, 3, 4, 5, 6]
    assert ds.attrs["input"] == str(path)
    assert main(["latents", str(path), "--dims", "1:x", "-o", str(out)]) == 2
    assert main(["latents", str(path), "--dims", "1:40", "--methods", "rrr", "-o", str(out)]) == 2
    assert "more latents than neurons" in capsys.readouterr().err


# --------------------------------------------------------------------------------- RNN

def test_solvable_rnn_limit_cycle():
    # Euler steps of 1e-3 and N = 1000 evenly spaced neurons: the reduced dynamics
    # κ̇ = −κ + √2 R(π/4) κ/‖κ‖ are matched to O(dt) + O(1/N) ≈ 2e-3
    a = loaders.synthetic.solvable_rnn(1000, duration=25.0, seed=0)
    kappa = np.stack([a["latent_0"].values, a["latent_1"].values], axis=1)
    late = a["time"].values > 12.0            # transients decay as e^{-t}
    radius = np.linalg.norm(kappa[late], axis=1)
    assert np.abs(radius - 1).max() < 0.01
    angle = np.unwrap(np.arctan2(kappa[late, 1], kappa[late, 0]))
    speed = np.polyfit(a["time"].values[late], angle, 1)[0]
    assert speed == pytest.approx(1.0, abs=0.01)
    # the state lives in the span of cos θ, sin θ after transients (2 latent dimensions)
    x = a.values[late]
    sv = np.linalg.svd(x, compute_uv=False)
    assert sv[2] < 1e-3 * sv[0]


# ------------------------------------------------------------ full known answers (SCIENCE.md §8)

@pytest.mark.parametrize("d, readout, rrr_about", [(2, "step", 16), (2, "relu", 4),
                                                   (3, "relu", 8), (4, "relu", 12)])
def test_nce_known_dimensions_on_random_features(d, readout, rrr_about):
    """SCIENCE.md §8: NCE reaches 95% of the maximum R² at the true d; RRR needs ≈ 16, 4, 8, 12.

    Noiseless responses of 600 neurons (200 sources, 400 targets) to 3,000 stimuli, one split.
    NCE is fitted at d − 1 and d only (larger d cannot lower the estimate below d), RRR at
    every rank up to 24 from one decomposition; both share the neuron and stimulus split.
    """
    a = loaders.synthetic.random_feature_latents(d, 600, 3000, readout=readout, seed=d)
    rrr = latent_dimensionality(a, dims=range(1, 25), n_splits=1, methods=("rrr",))
    nce = latent_dimensionality(a, dims=[d - 1, d], n_splits=1, methods=("nce",),
                                nce_params=dict(n_threads=1))   # the NCE's defaults
    assert (rrr["is_source"] == nce["is_source"]).all()
    r2_rrr = rrr["r2"].sel({"method": "rrr"}).values[:, 0]
    r2_nce = nce["r2"].sel({"method": "nce"}).values[:, 0]
    best = max(r2_rrr.max(), r2_nce.max())
    assert r2_nce[1] >= 0.95 * best and r2_nce[0] < 0.95 * best      # NCE: exactly d
    rrr_dim = int(np.argmax(r2_rrr >= 0.95 * best)) + 1
    print(f"{readout} d={d}: NCE R2 at d-1, d {np.round(r2_nce, 4)}; RRR {np.round(r2_rrr, 4)};"
          f" RRR 95% dimension {rrr_dim}")
    assert r2_rrr.max() >= 0.95 * best
    # "clearly more" than d. The paper's values (rrr_about) depend on population size and on
    # how close the best model gets to R² = 1; at these sizes step d=2 measured 7 (paper 16)
    # and ReLU d=2 measured 4 (paper 4) — see the issue notes; only "clearly more" is asserted.
    assert rrr_dim >= d + 2


@pytest.mark.parametrize("seed", [0, 1])
def test_nce_known_dimension_on_the_ring(seed):
    """SCIENCE.md §8: the ring (one latent angle, step readout: latent dimension 2) at the NCE's
    default settings: NCE reaches 95% of the best R² at d = 2 exactly, linear RRR needs more.

    300 neurons, 3,000 time bins, noise 0.1, one split. Large enough that the estimate is not a
    knife edge: measured d = 2 at 0.988–0.995 of the best and d = 1 at 0.45–0.55 (seeds 0–2;
    RRR 6). The small continuous ring above (90 neurons, 1,500 bins) sits at the 95% line at
    d = 2 (0.937 of the best on an AMD EPYC at these defaults), so it only asserts 2 or 3.
    """
    a = loaders.synthetic.ring_model(300, 3000, noise=0.1, seed=seed)
    rrr = latent_dimensionality(a, dims=range(1, 17), n_splits=1, methods=("rrr",), seed=seed)
    nce = latent_dimensionality(a, dims=[1, 2], n_splits=1, methods=("nce",), seed=seed,
                                nce_params=dict(n_threads=1))   # the NCE's defaults
    assert (rrr["is_source"] == nce["is_source"]).all()
    r2_rrr = rrr["r2"].sel({"method": "rrr"}).values[:, 0]
    r2_nce = nce["r2"].sel({"method": "nce"}).values[:, 0]
    best = max(r2_rrr.max(), r2_nce.max())
    assert r2_nce[1] >= 0.95 * best and r2_nce[0] < 0.95 * best      # NCE: exactly 2
    assert float(nce["dimension"].sel({"method": "nce"}).isel(split=0)) == 2
    rrr_dim = int(np.argmax(r2_rrr >= 0.95 * best)) + 1
    assert r2_rrr.max() >= 0.95 * best and rrr_dim >= 4


# ------------------------------------------------------------- scikit-learn estimator API

# Small, fast NCE settings for the generic checks: one latent (the checks use one target and
# as few as one source feature), a tiny encoder, a few hundred Adam steps.
FAST_NCE = {"n_latents": 1, "hidden": (8,), "max_epochs": 30, "lr": 1e-2, "batch_size": 32,
            "patience": 5, "progress": False, "n_threads": 1}


# Short training is the point of these settings, so NCE's "still improving" warning is expected.
@pytest.mark.filterwarnings("ignore::neurogeom.latent.nce.NCEConvergenceWarning")
@parametrize_with_checks([ReducedRankRegression(), ReducedRankRegression(rank=1, alphas=[1.0]),
                          NeuralCrossEncoder(**FAST_NCE)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.filterwarnings("ignore::neurogeom.latent.nce.NCEConvergenceWarning")
def test_rrr_and_nce_clone_score_and_cross_val_score(regression_data):
    x, y, xt, yt = regression_data
    for est in (ReducedRankRegression(rank=3, alphas=(3.0,)),
                NeuralCrossEncoder(2, hidden=(16,), max_epochs=3, progress=False, n_threads=1)):
        copy = clone(est)
        assert copy.get_params() == est.get_params() and not hasattr(copy, "n_features_in_")
        fitted = clone(est).fit(x, y)
        assert not hasattr(clone(fitted), "n_features_in_")
        # score is R² pooled over targets: sklearn's variance-weighted R²
        pred = fitted.predict(xt)
        assert fitted.score(xt, yt) == pytest.approx(
            r2_score(yt, pred, multioutput="variance_weighted"), rel=1e-12)
        pooled = 1 - np.sum((yt - pred) ** 2) / np.sum((yt - yt.mean(0)) ** 2)
        assert fitted.score(xt, yt) == pytest.approx(pooled, rel=1e-10)
        folds = KFold(3, shuffle=True, random_state=1)
        manual = [r2_score(y[te], clone(est).fit(x[tr], y[tr]).predict(x[te]),
                           multioutput="variance_weighted") for tr, te in folds.split(x)]
        np.testing.assert_allclose(cross_val_score(est, x, y, cv=folds), manual, rtol=1e-10)
    # RRR: one shared predict at the rank of the fit; other ranks from the same fit
    rrr = ReducedRankRegression(rank=3, alphas=(3.0,)).fit(x, y)
    np.testing.assert_allclose(rrr.predict(xt), xt @ rrr.coef_.T + rrr.intercept_, atol=1e-12)
    np.testing.assert_allclose(rrr.predict(xt, rank=2),
                               ReducedRankRegression(rank=2, alphas=(3.0,)).fit(x, y).predict(xt),
                               rtol=1e-10, atol=1e-10)
    assert rrr.set_params(rank=5) is rrr and rrr.get_params()["rank"] == 5
