"""Bad parameters and empty data fail at the door with one AnalysisError naming the parameter,
the value that arrived and what is allowed (issue 12, items 6 and 11), in the library and as
one line with exit code 2 on the command line."""

import math

import numpy as np
import pytest
import xarray as xr

import loaders
import neurogeom as ng
from neurogeom import _params
from neurogeom import io as ngio
from neurogeom.capacity.correlated import correlated_capacity
from neurogeom.errors import AnalysisError
from neurogeom.latent.nce import NCEConvergenceWarning, NeuralCrossEncoder
from neurogeom_cli import main

# ------------------------------------------------------------------------- shared validators

@pytest.mark.parametrize("check, value, message", [
    (lambda v: _params.check_seed(v), -1, r"seed must be an integer in \[0, 4294967295\], got -1"),
    (lambda v: _params.check_seed(v), 2**32, "seed must be an integer in"),
    (lambda v: _params.check_seed(v), 1.5, "seed must be an integer in"),
    (lambda v: _params.check_seed(v), True, "seed must be an integer in"),
    (lambda v: _params.check_int(v, "n_t"), 0, "n_t must be an integer >= 1, got 0"),
    (lambda v: _params.check_int(v, "n_t"), 2.5, "n_t must be an integer >= 1, got 2.5"),
    (lambda v: _params.check_int(v, "n_t"), math.nan, "n_t must be an integer >= 1, got nan"),
    (lambda v: _params.check_int(v, "n_t"), "7", "n_t must be an integer >= 1, got '7'"),
    (lambda v: _params.check_positive(v, "lr"), -1.0, "lr must be a finite number > 0, got -1.0"),
    (lambda v: _params.check_positive(v, "lr"), math.nan, "lr must be a finite number > 0"),
    (lambda v: _params.check_positive(v, "lr"), math.inf, "lr must be a finite number > 0"),
    (lambda v: _params.check_positive(v, "lr"), 0.0, "lr must be a finite number > 0"),
    (lambda v: _params.check_nonnegative(v, "kappa"), -0.1, "kappa must be a finite number >= 0"),
    (lambda v: _params.check_fraction(v, "f"), math.nan, r"f must be a number in \(0, 1\]"),
    (lambda v: _params.check_fraction(v, "f"), 0.0, r"f must be a number in \(0, 1\]"),
    (lambda v: _params.check_fraction(v, "f", include_one=False), 1.0,
     r"f must be a number in \(0, 1\)"),
])
def test_validators_name_parameter_value_and_range(check, value, message):
    with pytest.raises(AnalysisError, match=message):
        check(value)


def test_validators_pass_good_values_through():
    assert _params.check_seed(np.int64(7)) == 7 and _params.check_seed(2**32 - 1) == 2**32 - 1
    assert _params.check_int(3.0, "n") == 3 and _params.check_fraction(1, "f") == 1.0
    assert _params.check_positive(np.float32(0.5), "lr") == 0.5
    assert _params.check_nonnegative(0, "kappa") == 0.0


def test_unit_scale_is_exact_and_check_finite_names_the_intermediate():
    x = np.array([[3.0, -1e-3], [0.25, 7.5]])
    scaled, e = _params.unit_scale(x * 2.0 ** 900)
    assert 0.5 <= np.abs(scaled).max() < 1 and np.array_equal(np.ldexp(scaled, e - 900), x)
    assert _params.unit_scale(np.zeros(3))[1] == 0
    with pytest.raises(AnalysisError, match="the manifold centers became non-finite"):
        _params.check_finite(np.array([1.0, np.inf]), "the manifold centers")


def test_memory_check_says_what_is_needed_and_available(monkeypatch):
    monkeypatch.setattr(_params, "available_memory", lambda: 2**30)
    with pytest.raises(AnalysisError, match=r"needs about 2 GiB of memory but only 1 GiB is "
                                            r"available; lower n_t"):
        _params.check_memory(2 * 2**30, "the thing", "lower n_t")
    _params.check_memory(2**29, "the thing", "lower n_t")   # fits: no error


# ------------------------------------------------------------------------------- capacity

@pytest.fixture(scope="module")
def objects():
    return ng.average_repetitions(loaders.synthetic.object_manifolds(
        n_objects=4, n_images=6, n_neuroids=12, seed=0))


CAPACITY = {
    "mft": lambda a, **kw: ng.manifold_capacity(a, by="object_name", **kw),
    "glue": lambda a, **kw: ng.effective_geometry(a, "object_name", **kw),
    "correlated": lambda a, **kw: correlated_capacity(a, "object_name", **kw),
    "simulated": lambda a, **kw: ng.simulated_capacity(a, "object_name", **kw),
}


@pytest.mark.parametrize("method", list(CAPACITY))
def test_capacity_rejects_zero_neuroids_and_negative_seeds(objects, method):
    with pytest.raises(AnalysisError, match=r"no (neuroids|features) \(0"):
        CAPACITY[method](objects.isel(neuroid=slice(0, 0)))
    with pytest.raises(AnalysisError, match=r"seed must be an integer in \[0, 4294967295\], "
                                            r"got -1"):
        CAPACITY[method](objects, seed=-1)


@pytest.mark.parametrize("method", ["mft", "glue", "correlated"])
def test_capacity_estimates_memory_before_sampling(objects, method, monkeypatch):
    monkeypatch.setattr(_params, "available_memory", lambda: 2**30)
    with pytest.raises(AnalysisError, match=r"n_t=100000000 .*needs about [\d.e+]+ GiB of "
                                            r"memory but only 1 GiB is available; lower n_t"):
        CAPACITY[method](objects, n_t=10**8)


def test_mft_rejects_bad_counts_and_margins(objects):
    for kw, message in ((dict(n_t=0), "n_t .* must be an integer >= 1, got 0"),
                        (dict(kappa=math.nan), "kappa must be a finite number >= 0, got nan"),
                        (dict(n_reps=0), "n_reps must be an integer >= 1, got 0")):
        with pytest.raises(AnalysisError, match=message):
            ng.manifold_capacity(objects, by="object_name", **kw)


# ----------------------------------------------------------------------------- regression

@pytest.fixture(scope="module")
def pair():
    neural = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=12,
                                                n_repetitions=3, seed=1)
    return loaders.synthetic.random_features(neural, 30, noise=0.5, seed=2), neural


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=-1), r"seed must be an integer in \[0, 4294967295\], got -1"),
    (dict(n_splits=0), "n_splits must be an integer >= 1, got 0"),
    (dict(train_size=math.nan), r"train_size must be a number in \(0, 1\), got nan"),
    (dict(train_size=1.0), r"train_size must be a number in \(0, 1\), got 1.0"),
])
def test_predictivity_rejects_bad_parameters(pair, kwargs, message):
    with pytest.raises(AnalysisError, match=message):
        ng.neural_predictivity(*pair, **kwargs)


def test_predictivity_rejects_empty_sides(pair):
    model, neural = pair
    with pytest.raises(AnalysisError, match="the source has 40 presentations and 0 neuroids"):
        ng.neural_predictivity(model.isel(neuroid=slice(0, 0)), neural)
    with pytest.raises(AnalysisError, match="the target has 120 presentations and 0 neuroids"):
        ng.neural_predictivity(model, neural.isel(neuroid=slice(0, 0)))


# --------------------------------------------------------------------------------- latents

@pytest.fixture(scope="module")
def latents():
    return loaders.synthetic.random_feature_latents(2, 30, 120, seed=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=-1), r"seed must be an integer in \[0, 4294967295\], got -1"),
    (dict(source_fraction=math.nan), r"source_fraction must be a number in \(0, 1\), got nan"),
    (dict(threshold=0.0), r"threshold must be a number in \(0, 1\], got 0.0"),
    (dict(n_splits=0), "n_splits must be an integer >= 1, got 0"),
    (dict(dims=[0, 1]), r"each of dims \(latent dimensions\) must be an integer >= 1, got 0"),
    (dict(nce_params=dict(max_epochs=0)), "max_epochs must be an integer >= 1, got 0"),
    (dict(nce_params=dict(batch_size=0)), "batch_size must be an integer >= 1, got 0"),
    (dict(nce_params=dict(lr=-1.0)), r"lr \(learning rate\) must be a finite number > 0, got -1"),
    (dict(nce_params=dict(lr=math.nan)), r"lr \(learning rate\) must be a finite number > 0"),
    (dict(nce_params=dict(hidden=(0,))), r"hidden \(encoder layer widths\) must be a sequence "
                                         r"of integers >= 1 .*got \(0,\)"),
    (dict(nce_params=dict(bogus=1)), "nce_params: .*bogus"),
])
def test_latent_dimensionality_rejects_bad_parameters_before_fitting(latents, kwargs, message):
    with pytest.raises(AnalysisError, match=message):
        ng.latent_dimensionality(latents, **{"dims": [1, 2], **kwargs})


def test_latent_dimensionality_rejects_zero_presentations(latents):
    with pytest.raises(AnalysisError, match="has 0 presentation samples and 30 neuroids"):
        ng.latent_dimensionality(latents.isel(presentation=slice(0, 0)), dims=[1])


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_epochs=0), "max_epochs must be an integer >= 1, got 0"),
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(lr=math.nan), r"lr \(learning rate\) must be a finite number > 0, got nan"),
    (dict(hidden=(8, 0)), r"hidden \(encoder layer widths\)"),
    (dict(betas=(0.9, 1.0)), r"betas \(Adam\) must be two numbers in \[0, 1\)"),
    (dict(seed=-3), "seed must be an integer in"),
])
def test_nce_fit_rejects_bad_options(kwargs, message):
    x = np.random.default_rng(0).standard_normal((40, 5))
    with pytest.raises(AnalysisError, match=message):
        NeuralCrossEncoder(2, progress=False, **kwargs).fit(x, x)


def test_nce_reports_whether_it_converged():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200, 2))
    x, y = z @ rng.standard_normal((2, 8)), z @ rng.standard_normal((2, 8))
    with pytest.warns(NCEConvergenceWarning, match="did not converge within max_epochs=2"):
        nce = NeuralCrossEncoder(2, hidden=(8,), max_epochs=2, progress=False).fit(x, y)
    assert nce.converged_ is False and nce.n_epochs_ == 2
    nce = NeuralCrossEncoder(2, hidden=(8,), max_epochs=500, patience=2, lr=1e-2,
                             progress=False).fit(x, y)
    assert nce.converged_ is True and nce.n_epochs_ < 500


def test_unconverged_nce_is_not_reported_as_no_information(latents):
    # five epochs of a tiny NCE: test R² <= 0 because training stopped, not because the
    # sources (which determine the targets through 2 latents) carry no information
    with pytest.raises(AnalysisError) as info:
        ng.latent_dimensionality(latents, dims=[1, 2], n_splits=1, methods=("nce",),
                                 nce_params=dict(hidden=(8,), max_epochs=1, lr=1e-5))
    message = str(info.value)
    assert "did not converge within max_epochs=1" in message and "raise max_epochs" in message
    assert "not evidence that the sources carry no information" in message


def test_no_information_only_when_every_fit_converged():
    rng = np.random.default_rng(1)
    n = 90
    noise = xr.DataArray(
        rng.standard_normal((n, 12)), dims=("presentation", "neuroid"),
        coords={"stimulus_id": ("presentation", [f"s{i}" for i in range(n)]),
                "neuroid_id": ("neuroid", [f"n{i}" for i in range(12)])})
    with pytest.raises(AnalysisError, match="every fit having converged .*carry no information"):
        ng.latent_dimensionality(noise, dims=[1, 2], n_splits=1, methods=("rrr",),
                                 alphas=(1e-3,))


# ---------------------------------------------------------------------------- command line

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    neural = loaders.synthetic.object_manifolds(n_objects=4, n_images=6, n_neuroids=12,
                                                n_repetitions=3, seed=1)
    model = loaders.synthetic.random_features(neural, 30, noise=0.5, seed=2)
    lat = loaders.synthetic.random_feature_latents(2, 30, 120, seed=0)
    out = {"neural": neural, "model": model, "lat": lat,
           "neural0": neural.isel(neuroid=slice(0, 0)), "model0": model.isel(neuroid=slice(0, 0)),
           "lat0": lat.isel(presentation=slice(0, 0))}
    return {k: str(ngio.to_netcdf(v, d / f"{k}.nc")) for k, v in out.items()}, d


CLI_CASES = [
    ("capacity {neural0} --by object_name", "no features (0 neuroids)"),
    ("capacity {neural} --by object_name --seed -1", "seed must be an integer in [0, 4294967295], got -1"),
    ("capacity {neural} --by object_name --n-t 1000000000000", "needs about"),
    ("capacity {neural} --by object_name --method glue --seed -1", "seed must be an integer"),
    ("capacity {neural} --by object_name --method simulated --seed -1", "seed must be an integer"),
    ("capacity {neural0} --by object_name --method glue", "no neuroids (0 features)"),
    ("compare {model0} {neural} -o {out}", "the source has 24 presentations and 0 neuroids"),
    ("compare {model} {neural0} -o {out}", "the target has 72 presentations and 0 neuroids"),
    ("compare {model} {neural} --seed -1 -o {out}", "seed must be an integer"),
    ("latents {lat0} -o {out} --dims 1:2", "has 0 presentation samples"),
    ("latents {lat} -o {out} --dims 1:2 --seed -1", "seed must be an integer"),
    ("latents {lat} -o {out} --dims 1:2 --source-fraction nan", "source_fraction must be a number in (0, 1), got nan"),
    ("latents {lat} -o {out} --dims 1:2 --max-epochs 0", "max_epochs must be an integer >= 1, got 0"),
    ("latents {lat} -o {out} --dims 1:2 --batch-size 0", "batch_size must be an integer >= 1, got 0"),
    ("latents {lat} -o {out} --dims 1:2 --lr -1", "lr (learning rate) must be a finite number > 0, got -1.0"),
    ("latents {lat} -o {out} --dims 1:2 --lr nan", "lr (learning rate) must be a finite number > 0, got nan"),
    ("latents {lat} -o {out} --dims 1:2 --hidden 0", "hidden (encoder layer widths) must be a sequence of integers >= 1"),
]


@pytest.mark.parametrize("command, expected", CLI_CASES, ids=[c for c, _ in CLI_CASES])
def test_cli_bad_input_is_one_line_exit_2(files, capsys, command, expected):
    paths, d = files
    out = d / "out.nc"
    argv = command.format(out=out, **paths).split()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert expected in err
    assert not out.exists()
