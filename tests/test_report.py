"""neurogeom.report: each figure on real results (axes, labels, lines/points), the HTML report
and the ``neurogeom report`` command.

Results of the existing analyses are computed here at small sizes; results of the analyses
built in parallel (manifold_alignment, decoding_accuracy, layer_profile, map_recordings) are
small Datasets following the contract agreed with their authors.
"""

import base64
import re
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import loaders
import neurogeom as ng
from neurogeom import report
from neurogeom.errors import AnalysisError

from cli_runs import env

MANIFOLDS = [f"object_{i:02d}" for i in range(4)]


@pytest.fixture(scope="module")
def results():
    """Real results of every existing analysis, small."""
    a = loaders.synthetic.object_manifolds(4, 6, 20, n_repetitions=1, seed=0)
    r = loaders.synthetic.object_manifolds(4, 8, 12, n_repetitions=4, seed=1)
    mean = ng.average_repetitions(r)
    f = loaders.synthetic.random_features(mean, 30, noise=0.5, seed=0)
    ring = loaders.synthetic.ring_model(30, 400, seed=0)
    return {
        "manifold_capacity": ng.manifold_capacity(a, by="object_name", n_t=20),
        "effective_geometry": ng.effective_geometry(a, by="object_name", n_t=20),
        "simulated_capacity": ng.simulated_capacity(a, by="object_name", n_dichotomies=10),
        "neural_predictivity": ng.neural_predictivity(f, r, n_splits=3, seed=1),
        "noise_ceiling": ng.noise_ceiling(r, n_splits=3),
        "spectral_decomposition": ng.spectral_decomposition(f, r, n_trials=2),
        "latent_dimensionality": ng.latent_dimensionality(ring, dims=range(1, 4), n_splits=1,
                                                          methods=("rrr",), n_chunks=5),
        "cvpca": ng.cvpca(loaders.synthetic.power_law_responses(100, 40, seed=0)),
    }


def contract_results():
    """Datasets in the agreed layout of the analyses not in this branch."""
    rng = np.random.default_rng(0)
    m = len(MANIFOLDS)
    sym = rng.uniform(0, 1, (m, m))
    alignment = xr.Dataset(
        {"center_alignment": (("manifold", "manifold_other"), (sym + sym.T) / 2),
         "subspace_alignment": (("manifold", "manifold_other"), rng.uniform(0, 1, (m, m))),
         "principal_angles": (("manifold", "manifold_other", "component"),
                              rng.uniform(0, np.pi / 2, (m, m, 3))),
         "center_axis_alignment": ("manifold", rng.uniform(0, 1, m)),
         "center_norm": ("manifold", rng.uniform(1, 2, m)),
         "center_alignment_mean": 0.4, "subspace_alignment_mean": 0.3,
         "center_axis_alignment_mean": 0.2},
        coords={"manifold": MANIFOLDS, "manifold_other": MANIFOLDS},
        attrs={"analysis": "manifold_alignment"})
    decoding = xr.Dataset(
        {"accuracy": 0.8, "accuracy_std": 0.05, "chance": 0.25,
         "accuracy_split": ("split", [0.75, 0.8, 0.85]),
         "one_vs_rest_accuracy": ("manifold", [0.9, 0.85, 0.8, 0.95]),
         "pairwise_accuracy": (("manifold", "manifold_other"), rng.uniform(0.5, 1, (m, m)))},
        coords={"manifold": MANIFOLDS, "manifold_other": MANIFOLDS, "split": [0, 1, 2]},
        attrs={"analysis": "decoding_accuracy"})
    layers, regions = ["conv1", "conv2", "fc"], ["V4", "IT"]
    profile = xr.Dataset(
        {name: ("layer", rng.uniform(0, 1, 3)) for name in
         ("capacity", "radius", "dimension", "center_correlation", "center_alignment",
          "subspace_alignment", "decoding_accuracy")}
        | {"chance": 0.1, "predictivity": (("layer", "region"), rng.uniform(0, 0.7, (3, 2))),
           "ceiling": ("region", [0.8, 0.75])},
        coords={"layer": layers, "region": regions}, attrs={"analysis": "layer_profile"})
    batch = xr.Dataset(
        {"status": ("recording", ["ok", "failed", "ok"]),
         "error": ("recording", ["", "LoaderError: no units table", ""]),
         "seconds": ("recording", [1.0, 0.1, 1.2]),
         "capacity": (("recording", "manifold"), rng.uniform(0, 1, (3, m))),
         "radius": (("recording", "manifold"), rng.uniform(0, 1, (3, m))),
         "dimension": (("recording", "manifold"), rng.uniform(1, 5, (3, m))),
         "capacity_overall": ("recording", [0.2, np.nan, 0.3]),
         "radius_overall": ("recording", [1.0, np.nan, 1.1]),
         "dimension_overall": ("recording", [3.0, np.nan, 4.0])},
        coords={"recording": ["a.nwb", "b.nwb", "c.nwb"], "manifold": MANIFOLDS,
                "source": ("recording", ["/d/a.nwb", "/d/b.nwb", "/d/c.nwb"])},
        attrs={"analysis": "map_recordings", "recording_analysis": "manifold_capacity"})
    return {"manifold_alignment": alignment, "decoding_accuracy": decoding,
            "layer_profile": profile, "map_recordings": batch}


def lines(ax):
    return [line for line in ax.get_lines() if len(line.get_xdata())]


def test_capacity_geometry_on_mft_and_effective_results(results):
    for kind in ("manifold_capacity", "effective_geometry"):
        fig = report.capacity_geometry(results[kind])
        axes = fig.axes
        assert [ax.get_ylabel() for ax in axes] == ["capacity α_M", "radius R_M",
                                                    "dimension D_M"]
        for ax in axes:
            assert len(ax.patches) == 4     # one bar per manifold (all finite here)
            assert [t.get_text() for t in ax.get_xticklabels()] == MANIFOLDS
        # the overall capacity is the dashed line, at the result's value
        overall = [line for line in lines(axes[0]) if line.get_linestyle() == "--"]
        assert len(overall) == 1
        assert overall[0].get_ydata()[0] == pytest.approx(
            float(results[kind]["capacity_overall"]))


def test_separability_marks_n_star(results):
    ds = results["simulated_capacity"]
    (ax,) = report.separability(ds).axes
    curve, n_star = lines(ax)[0], lines(ax)[1]
    assert len(curve.get_xdata()) == ds.sizes["projection_dim"]
    assert n_star.get_xdata()[0] == pytest.approx(float(ds["n_star"]))
    assert ax.get_xlabel() == "projection dimension n"


def test_predictivity_points_and_ceiling(results):
    ds = results["neural_predictivity"]
    left, right = report.predictivity(ds).axes
    points = lines(left)[0]
    assert len(points.get_ydata()) == ds.sizes["neuroid"]    # one point per neuroid
    ceiling = [line for line in lines(left) if line.get_linestyle() == "--"][0]
    assert ceiling.get_ydata()[0] == pytest.approx(float(ds["ceiling"]))
    assert len(left.patches) == 1                              # the ceiling ± error band
    assert right.get_xlabel() == "neuroid ceiling"
    assert len(lines(right)[0].get_xdata()) == ds.sizes["neuroid"]


def test_noise_ceiling_histogram(results):
    ds = results["noise_ceiling"]
    (ax,) = report.noise_ceiling(ds).axes
    assert sum(p.get_height() for p in ax.patches) == ds.sizes["neuroid"]
    assert lines(ax)[0].get_xdata()[0] == pytest.approx(float(ds["ceiling"]))


def test_spectral_theory_vs_empirical(results):
    ds = results["spectral_decomposition"]
    fig = report.spectral(ds)
    error_ax, spectrum_ax, em_ax = fig.axes[:3]
    theory = lines(error_ax)[0]
    np.testing.assert_allclose(theory.get_ydata(), ds["theory_error"].values)
    assert error_ax.get_xscale() == "log" and error_ax.get_ylabel() == "normalized error E_g(p)"
    assert spectrum_ax.get_xscale() == spectrum_ax.get_yscale() == "log"
    assert em_ax.get_ylabel() == "R_em" and fig.axes[3].get_ylabel() == "D_em"
    assert len(lines(em_ax)[0].get_xdata()) == ds.sizes["p"]


def test_latent_dimensionality_curves_and_estimates(results):
    ds = results["latent_dimensionality"]
    (ax,) = report.latent_dimensionality(ds).axes
    curve = lines(ax)[0]
    assert len(curve.get_xdata()) == ds.sizes["latent_dim"]
    np.testing.assert_allclose(curve.get_ydata(), ds["r2"].sel({"method": "rrr"}).values[:, 0])
    estimate = float(ds["dimension_of_mean"].sel({"method": "rrr"}))
    assert [line.get_xdata()[0] for line in lines(ax)[1:]] == [estimate]
    assert ax.get_xlabel() == "latent dimension d" and ax.get_ylabel() == "test R²"


def test_cvpca_log_log_with_power_law(results):
    ds = results["cvpca"]
    (ax,) = report.cvpca_spectrum(ds).axes
    assert ax.get_xscale() == ax.get_yscale() == "log"
    data, fit = lines(ax)
    assert len(data.get_xdata()) == int((ds["cv_variance"].values > 0).sum())
    # the fitted line is the least-squares power law of the plotted ranks >= 11
    n = fit.get_xdata()
    slope = np.polyfit(np.log(n), np.log(fit.get_ydata()), 1)[0]
    v = ds["cv_variance"].values[n.astype(int) - 1]
    assert slope == pytest.approx(np.polyfit(np.log(n), np.log(v), 1)[0])
    assert "α" in fit.get_label()


def test_alignment_matrices_with_labels():
    ds = contract_results()["manifold_alignment"]
    fig = report.alignment_matrices(ds)
    center, subspace = fig.axes[:2]     # then their two colorbar axes
    for ax, name in ((center, "center_alignment"), (subspace, "subspace_alignment")):
        np.testing.assert_allclose(ax.get_images()[0].get_array(), ds[name].values)
        assert [t.get_text() for t in ax.get_yticklabels()] == MANIFOLDS
        assert ax.get_xlabel() == "manifold_other"
    assert "mean 0.4" in center.get_title()


def test_decoding_against_chance():
    ds = contract_results()["decoding_accuracy"]
    fig = report.decoding(ds)
    ax = fig.axes[0]
    assert len(ax.patches) == 1 + len(MANIFOLDS)       # overall + one vs rest per manifold
    chance = [line for line in lines(ax) if line.get_linestyle() == "--"][0]
    assert chance.get_ydata()[0] == 0.25
    splits = [line for line in lines(ax) if line.get_label() == "splits"]
    assert len(splits[0].get_ydata()) == 3              # the three split accuracies
    assert fig.axes[1].get_title() == "pairwise accuracy"


def test_layer_profile_and_predictivity_across_layers():
    ds = contract_results()["layer_profile"]
    fig = report.layer_profile(ds)
    assert len(fig.axes) == 7
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["conv1", "conv2", "fc"]
    assert fig.axes[-1].get_ylabel() == "decoding accuracy"
    (ax,) = report.predictivity(ds).axes
    assert len(lines(ax)) == 2 + 2          # one line per region + its ceiling line
    assert len(ax.patches) == 2             # one ceiling band per region
    np.testing.assert_allclose(lines(ax)[0].get_ydata(), ds["predictivity"].values[:, 0])


def test_batch_summary_marks_failures():
    ds = contract_results()["map_recordings"]
    (ax,) = report.batch_summary(ds).axes
    assert len(ax.patches) == 2             # the two recordings that succeeded
    failed = [line for line in lines(ax) if line.get_label() == "failed"]
    assert len(failed) == 1 and list(failed[0].get_xdata()) == [1]
    assert ax.get_ylabel() == "capacity overall"
    # figures(): the summary, then each successful recording's own figure
    assert len(report.figures(ds)) == 1 + 2


def test_missing_variables_are_named():
    with pytest.raises(AnalysisError, match=r"no variable\(s\) \['r2'\].*has \['x'\]"):
        report.latent_dimensionality(xr.Dataset({"x": 1.0}))


def test_html_report_is_self_contained(results, tmp_path):
    paths = {}
    for kind, ds in {**results, **contract_results()}.items():
        paths[kind] = ng.io.to_netcdf(ds, tmp_path / f"{kind}.nc")
    unknown = xr.Dataset({"mystery": ("x", [1.0, 2.0])}, attrs={"analysis": "something_new"})
    page = report.html([*paths.values(), unknown], tmp_path / "report.html", title="T")
    text = page.read_text()
    assert text.count("<section") == len(paths) + 1
    images = re.findall(r"<img [^>]*src='([^']*)'", text)
    assert len(images) >= len(paths)
    for src in images:    # every figure a decodable PNG inside the page
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"(src|href)=['\"](?!data:|#)", text)   # nothing external
    assert "<script" not in text
    assert "something_new" in text and "mystery" in text        # the generic section
    assert "Chung, Lee &amp; Sompolinsky (2018)" in text          # references from attrs
    assert "FAILED LoaderError: no units table" in text           # batch failures
    assert not list(tmp_path.glob(".report.html.*"))              # written atomically


def test_report_command(results, tmp_path):
    path = ng.io.to_netcdf(results["manifold_capacity"], tmp_path / "cap.nc")
    out = subprocess.run([sys.executable, "-m", "neurogeom_cli", "report", str(path), "-o",
                          str(tmp_path / "r.html")], capture_output=True, text=True, env=env(),
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "manifold_capacity" in (tmp_path / "r.html").read_text()
    out = subprocess.run([sys.executable, "-m", "neurogeom_cli", "report", str(path), "-o",
                          str(path)], capture_output=True, text=True, env=env(), timeout=120)
    assert out.returncode == 2 and "is the input" in out.stderr


def test_head_direction_session_loads_back_with_its_tuning(tmp_path):
    """write_head_direction: units fire most when the head points at their preferred direction
    (the von Mises peak), and the behaviour loads back as a covariate on the circle."""
    truth = loaders.synthetic.write_head_direction(tmp_path / "hd.nwb", n_units=8,
                                                   duration=60.0, peak_rate=40.0, seed=0)
    hd = loaders.binned_activity(tmp_path / "hd.nwb", bin_size=0.1, covariates=["head_direction"])
    ng.validate(hd)
    assert hd.sizes["neuroid"] == 8
    angle = hd["head_direction"].values
    for u, preferred in enumerate(truth.extra["preferred_direction"]):
        near = np.cos(angle - preferred) > 0.9
        far = np.cos(angle - preferred) < -0.5
        # peak 40 + 1 spikes/s against e^(-2k) * 40 + 1 ~ 1 spikes/s: a wide, noise-proof gap
        assert hd.values[near, u].mean() > 5 * hd.values[far, u].mean()


def test_translated_digits_at_scales():
    images, meta = loaders.synthetic.translated_digits(digits=(3,), n_exemplars=1,
                                                       positions=[(4, 4)], scales=(1.0, 1.5))
    assert list(meta["scale"]) == [1.0, 1.5] and meta["stimulus_id"].is_unique
    # a digit 1.5 times larger covers about 1.5² times the ink area (bilinear resizing)
    ink = (images > 0.25).sum(axis=(1, 2, 3))
    assert 1.6 < ink[1] / ink[0] < 2.9
