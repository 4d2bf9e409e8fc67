"""``neurogeom compare``: writes a self-describing result and reports bad input in one line."""

import numpy as np

import loaders
from neurogeom import io as ngio
from neurogeom_cli import main


def write_inputs(tmp_path, drop=0):
    neural = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=12,
                                                n_repetitions=3, seed=1)
    model = loaders.synthetic.random_features(neural, 60, noise=0.5, seed=2)
    model = model.isel(presentation=slice(drop, None))
    return (ngio.to_netcdf(model, tmp_path / "model.nc"),
            ngio.to_netcdf(neural, tmp_path / "neural.nc"))


def test_compare_pls_with_spectral(tmp_path, capsys):
    model, neural = write_inputs(tmp_path)
    out = tmp_path / "out.nc"
    assert main(["compare", str(model), str(neural), "--regression", "pls", "--n-components",
                 "5", "--spectral", "--n-trials", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pls predictivity" in printed and "noise ceiling" in printed and "spectral" in printed
    ds = ngio.open(out)
    assert ds.attrs["regression"] == "pls" and ds.attrs["n_components"] == 5
    assert 0 < float(ds["score"]) <= 1
    assert {"ceiling", "ceiled_score_r2_over_ceiling", "spectral_theory_error",
            "spectral_empirical_error", "spectral_eigenvalue"} <= set(ds.data_vars)
    assert ds.attrs["spectral_analysis"] == "spectral_decomposition"
    assert np.isfinite(ds["spectral_theory_error"]).all()


def test_compare_mismatched_stimuli_is_one_line(tmp_path, capsys):
    model, neural = write_inputs(tmp_path, drop=3)
    assert main(["compare", str(model), str(neural), "-o", str(tmp_path / "o.nc")]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert "no features for 3 of the 40 target stimuli" in err
    assert not (tmp_path / "o.nc").exists()
