"""First calls of the analysis commands (issue 16 item 4): suspicious ceiled scores are flagged,
capacity says when single trials are the points, compare's default stratification works on
any assembly, latents caps its default dims, inspect prints a result's numbers, --help is light.
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import loaders
import neurogeom as ng
from neurogeom import assembly as asm
from neurogeom import io as ngio
from neurogeom.regression.predictivity import ceiling_flags
from neurogeom_cli import main

from cli_runs import ROOT, env


def test_ceiling_flags_known_values():
    # the demo: model r 0.588 over a ceiling of 0.470: (r/c)^2 = 1.565 > 1, r^2/c < 1
    note = ceiling_flags(0.588, 0.470)
    assert "(score / ceiling)**2 = 1.57" in note and "score**2 / ceiling = 0.736" in note
    assert "underestimated" in ceiling_flags(0.9, 0.5)      # r^2 / c = 1.62
    assert "<= 0" in ceiling_flags(0.3, -0.236)
    assert ceiling_flags(0.3, 0.5) == ""        # 0.18 and 0.36: ordinary fractions


def noisy_session(tmp_path, drop_object=False):
    """Two noisy repeats (a low ceiling) and a 'model' that is the repeat average itself."""
    neural = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=12,
                                                n_repetitions=2, noise=3.0, seed=1)
    if drop_object:
        neural = neural.drop_vars("object_name")
    model = asm.average_repetitions(neural)
    model = model.assign_coords(neuroid_id=("neuroid", [f"m{i}" for i in range(12)]))
    return neural, model


def test_predictivity_flags_a_ceiled_score_above_one(tmp_path):
    neural, model = noisy_session(tmp_path)
    with pytest.warns(UserWarning, match="ceiled score above 1"):
        ds = ng.neural_predictivity(model, neural)
    assert float(ds["ceiled_score_r2_over_ceiling"]) > 1
    assert "ceiled score above 1" in ds.attrs["suspicious"]
    written = ngio.open(ngio.to_netcdf(ds, tmp_path / "p.nc"))
    assert written.attrs["suspicious"] == ds.attrs["suspicious"]


def test_compare_default_stratification_and_printed_flag(tmp_path, capsys):
    neural, model = noisy_session(tmp_path, drop_object=True)
    m = ngio.to_netcdf(model, tmp_path / "model.nc")
    n = ngio.to_netcdf(neural, tmp_path / "neural.nc")
    assert main(["compare", str(m), str(n), "-o", str(tmp_path / "o.nc")]) == 0
    out = capsys.readouterr().out
    assert "unstratified (no object_name coord)" in out
    assert "warning: ceiled score above 1" in out
    # asking for a coord it lacks: the error names the flags, not Python arguments
    code = main(["compare", str(m), str(n), "--stratify-by", "object_name",
                 "-o", str(tmp_path / "p.nc")])
    err = capsys.readouterr().err
    assert code == 2 and "--stratify-by none" in err and "--stratify-fallback" in err
    assert "stratify_by" not in err


def test_capacity_warns_about_single_trials(tmp_path, capsys):
    a = loaders.synthetic.object_manifolds(n_objects=3, n_images=4, n_neuroids=20,
                                           n_repetitions=3, seed=2)
    path = ngio.to_netcdf(a, tmp_path / "a.nc")
    out = tmp_path / "c.nc"
    assert main(["capacity", str(path), "--by", "object_name", "--n-t", "20",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "3 per stimulus_id" in err and "--average-repetitions" in err
    assert ngio.open(out).attrs["points"] == "single trials (3 per stimulus_id)"
    assert main(["capacity", str(path), "--by", "object_name", "--n-t", "20",
                 "--average-repetitions", "-o", str(tmp_path / "d.nc")]) == 0
    assert "warning" not in capsys.readouterr().err
    # inspect prints the result's scalar numbers as numbers
    assert main(["inspect", str(out), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert isinstance(results["capacity_overall"], float)
    assert results["capacity_overall"] == pytest.approx(float(ngio.open(out)["capacity_overall"]))


def test_latents_default_dims_capped_by_the_data(tmp_path, capsys):
    a = loaders.synthetic.random_feature_latents(2, n_neuroids=48, n_stimuli=60, noise=0.3,
                                                 n_repetitions=2)
    path = ngio.to_netcdf(a, tmp_path / "a.nc")
    out = tmp_path / "l.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["latents", str(path), "--methods", "rrr", "--splits", "1", "--quiet",
                     "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "latent dimensions 1:16" in printed       # 16 sources and 32 targets of 48
    np.testing.assert_array_equal(ngio.open(out)["latent_dim"].values, np.arange(1, 17))


def test_help_imports_nothing_heavy():
    code = ("import sys, neurogeom_cli; neurogeom_cli.build_parser(); "
            "print([m for m in ('numpy', 'xarray', 'torch', 'scipy', 'h5py', 'pynwb', "
            "'pandas', 'neurogeom', 'loaders') if m in sys.modules])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env(), cwd=ROOT, timeout=60)
    assert run.stdout.strip() == "[]", run.stderr


def test_manifold_capacity_progress_and_many_points_note(capsys):
    rng = np.random.default_rng(3)
    n_points, n_dims = 500, 4
    import xarray as xr

    a = xr.DataArray(rng.standard_normal((2 * n_points, n_dims)) + np.repeat([[3.0], [-3.0]],
                                                                               n_points, 0),
                     dims=("presentation", "neuroid"),
                     coords={"stimulus_id": ("presentation", [f"s{i}" for i in range(2 * n_points)]),
                             "object_name": ("presentation", np.repeat(["a", "b"], n_points)),
                             "neuroid_id": ("neuroid", [f"n{i}" for i in range(n_dims)])})
    with pytest.warns(UserWarning, match=r"up to 500 points in 4 dimensions.*average"):
        ng.manifold_capacity(a, "object_name", n_t=2, center_correlations=False, progress=True)
    assert "manifold capacity (QPs)" in capsys.readouterr().err
    small = a.isel(presentation=np.r_[0:20, n_points:n_points + 20])
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # few points: no note
        ng.manifold_capacity(small, "object_name", n_t=5, center_correlations=False)
    assert "manifold capacity" not in capsys.readouterr().err   # not a terminal: no bar


def test_negative_noise_ceiling_is_flagged():
    """Repeats that disagree (the second is minus the first, plus noise): the half-vs-half
    consistency r is near -0.9, and Spearman-Brown 2r/(1+r) is negative."""
    rng = np.random.default_rng(0)
    n_stim, n_neur = 30, 10
    first = rng.standard_normal((n_stim, n_neur))
    second = -first + 0.5 * rng.standard_normal((n_stim, n_neur))
    import xarray as xr

    a = xr.DataArray(np.concatenate([first, second]), dims=("presentation", "neuroid"),
                     coords={"stimulus_id": ("presentation", [f"s{i}" for i in range(n_stim)] * 2),
                             "repetition": ("presentation", np.repeat([0, 1], n_stim)),
                             "neuroid_id": ("neuroid", [f"n{i}" for i in range(n_neur)])})
    with pytest.warns(UserWarning, match="<= 0"):
        ds = ng.noise_ceiling(a)
    assert float(ds["ceiling"]) < 0 and "<= 0" in ds.attrs["suspicious"]
