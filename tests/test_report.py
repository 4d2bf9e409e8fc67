"""neurogeom.report: each figure on real results (axes, labels, lines/points), the HTML report
and the ``neurogeom report`` command.

Every figure is drawn from a real result of its analysis, computed here at small sizes on
synthetic data (no hand-built Datasets).
"""

import base64
import re
import subprocess
import sys
import warnings

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


class _CapacityOrFail:
    """The analysis of a batch: MFT capacity, except for the recording named ``fail_on``."""

    def __init__(self, fail_on):
        self.fail_on = fail_on

    def __call__(self, a):
        if a.attrs["session_key"] == self.fail_on:
            raise RuntimeError("no units table")
        return ng.manifold_capacity(a, by="object_name", n_t=20)


@pytest.fixture(scope="module")
def more_results():
    """Real results of the alignment, decoding, layer-profile, correlated-capacity and
    map_recordings analyses, small: two "layers" of random features of the same stimuli and
    two "regions" (halves of one synthetic recording with repetitions)."""
    a = loaders.synthetic.object_manifolds(4, 6, 20, n_repetitions=1, seed=0)
    r = loaders.synthetic.object_manifolds(4, 8, 12, n_repetitions=4, seed=1)
    mean = ng.average_repetitions(r)
    layers = {"conv": loaders.synthetic.random_features(mean, 20, noise=2.0, seed=0),
              "fc": loaders.synthetic.random_features(mean, 30, noise=0.5, seed=1)}
    regions = {"V4": r.isel(neuroid=slice(0, 6)), "IT": r.isel(neuroid=slice(6, 12))}
    profile = ng.layer_profile(layers, regions, by="object_name", n_t=20, n_splits=3,
                               analyses=("capacity", "alignment", "decoding", "predictivity"))
    sessions = []
    for i in range(3):
        s = loaders.synthetic.object_manifolds(4, 6, 15, n_repetitions=1, seed=10 + i)
        s.attrs["session_key"] = f"s{i}"
        s.name = f"s{i}"
        sessions.append(s)
    batch = ng.map_recordings(sessions, _CapacityOrFail("s1"), retries=0, progress=False)
    spectra = []
    for i in range(2):
        s = loaders.synthetic.power_law_responses(100, 40, seed=i)
        s.attrs["session_key"] = f"p{i}"
        s.name = f"p{i}"
        spectra.append(s)
    ring = loaders.synthetic.ring_model(30, 400, seed=0)
    with warnings.catch_warnings():     # a short NCE fit: it warns it could train longer
        warnings.simplefilter("ignore", UserWarning)
        latent = ng.latent_dimensionality(ring, dims=range(1, 5), n_splits=1, n_chunks=5,
                                          nce_params=dict(hidden=(32,), max_epochs=100,
                                                          n_threads=1), progress=False)
    by_layer = xr.concat([ng.neural_predictivity(f, r, n_splits=3, seed=1)
                          for f in layers.values()], dim="layer").assign_coords(
        layer=list(layers))
    return {"latent_nce_rrr": latent, "predictivity_by_layer": by_layer,
            "manifold_alignment": ng.manifold_alignment(a, by="object_name"),
            "decoding_accuracy": ng.decoding_accuracy(a, by="object_name", n_splits=3),
            "layer_profile": profile,
            "correlated_capacity": ng.correlated_capacity(a, by="object_name", n_t=20,
                                                          n_dichotomies=5),
            "map_recordings": batch,
            "svca": ng.map_recordings(spectra, ng.svca, progress=False)}


def lines(ax):
    return [line for line in ax.get_lines() if len(line.get_xdata())]


def test_capacity_geometry_on_mft_and_effective_results(results):
    for kind in ("manifold_capacity", "effective_geometry"):
        fig = report.capacity_geometry(results[kind])
        axes = fig.axes
        assert [ax.get_ylabel() for ax in axes] == ["capacity α_M", "radius R_M",
                                                    "dimension D_M"]
        for ax in axes:
            (bars,) = ax.containers         # one bar per manifold (all finite here)
            assert len(bars) == 4
            assert [t.get_text() for t in ax.get_xticklabels()] == MANIFOLDS
        # the overall capacity is the dashed line, at the result's value
        ds = results[kind]
        overall = [line for line in lines(axes[0]) if line.get_linestyle() == "--"]
        assert len(overall) == 1
        assert overall[0].get_ydata()[0] == pytest.approx(float(ds["capacity_overall"]))
        # its sampling SE (effective geometry reports one; MFT does not) is a band around it
        bands = [p for p in axes[0].patches if p not in axes[0].containers[0].patches]
        if "capacity_overall_se" in ds:
            (band,) = bands
            low, high = band.get_y(), band.get_y() + band.get_height()
            se = float(ds["capacity_overall_se"])
            assert (low, high) == pytest.approx((float(ds["capacity_overall"]) - se,
                                                 float(ds["capacity_overall"]) + se))
        else:
            assert kind == "manifold_capacity" and bands == []


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


def test_latent_dimensionality_nce_against_rrr(more_results):
    """Both methods of one result: a mean R² curve each (labelled), and a vertical line at each
    finite 95% estimate in the method's colour."""
    ds = more_results["latent_nce_rrr"]
    (ax,) = report.latent_dimensionality(ds).axes
    curves = [line for line in lines(ax) if len(line.get_xdata()) == ds.sizes["latent_dim"]]
    assert [line.get_label() for line in curves] == ["NCE", "RRR"]
    for line, method in zip(curves, ("nce", "rrr")):
        np.testing.assert_allclose(line.get_ydata(),
                                   ds["r2"].sel({"method": method}).mean("split").values)
    estimates = {m: float(ds["dimension_of_mean"].sel({"method": m})) for m in ("nce", "rrr")}
    marks = [line for line in lines(ax) if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in marks] == [v for v in estimates.values()
                                                       if np.isfinite(v)]
    assert all("d₉₅" in line.get_label() for line in marks) and len(marks) >= 1


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


def test_capacity_geometry_of_correlated_capacity(more_results):
    ds = more_results["correlated_capacity"]
    fig = report.capacity_geometry(ds)
    assert [ax.get_ylabel() for ax in fig.axes][0] == "capacity α_M"
    overall = [line for line in lines(fig.axes[0]) if line.get_linestyle() == "--"]
    assert overall[0].get_ydata()[0] == pytest.approx(float(ds["capacity_overall"]))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[1].startswith("± SE") and "sampling" in legend[1]
    if "manifold" in ds["capacity"].dims:
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == MANIFOLDS


def test_capacity_geometry_across_recordings_with_the_spread(more_results):
    """A result with a recording dim: the overall value is one line along the recordings, the
    spread over manifolds a band; the failed recording is a gap (NaN), not a crash."""
    ds = more_results["map_recordings"]
    fig = report.capacity_geometry(ds)
    assert [ax.get_ylabel() for ax in fig.axes] == ["capacity α_M", "radius R_M",
                                                    "dimension D_M"]
    for ax, name in zip(fig.axes, ("capacity", "radius", "dimension")):
        assert ax.get_xlabel() == "recording"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["s0", "s1", "s2"]
        (overall,) = lines(ax)
        np.testing.assert_allclose(overall.get_ydata(), ds[f"{name}_overall"].values)
        assert len(ax.collections) == 1          # the manifold range band
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["overall",
                                                                        "manifold range"]


def test_capacity_geometry_across_layers_with_sampling_error_bars(results):
    """Effective geometry stacked along ``layer``: the overall capacity with its sampling SE as
    error bars at each layer."""
    one = results["effective_geometry"]
    stacked = xr.concat([one, one.assign(capacity_overall_se=2 * one["capacity_overall_se"])],
                        dim="layer").assign_coords(layer=["conv", "fc"])
    ax = report.capacity_geometry(stacked).axes[0]
    assert ax.get_xlabel() == "layer"
    (bars,) = ax.containers                          # the error bars of the overall line
    _, _, (segments,) = bars.lines
    heights = [abs(seg[1][1] - seg[0][1]) / 2 for seg in segments.get_segments()]
    se = float(one["capacity_overall_se"])
    assert heights == pytest.approx([se, 2 * se])
    assert "overall ± SE" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_spectra_of_a_batch_one_line_and_fit_per_recording(more_results):
    """SVCA of two sessions through map_recordings: one figure draws both shared-variance
    spectra with their power-law fits; figures() adds each session's own."""
    ds = more_results["svca"]
    (ax,) = report.cvpca_spectrum(ds).axes
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_xlabel() == "mode (rank)"
    data = [line for line in lines(ax) if line.get_linestyle() == "None"]
    fits = [line for line in lines(ax) if line.get_linestyle() == "-"]
    assert [line.get_label() for line in data] == ["p0", "p1"]
    assert len(fits) == 2 and all("α" in line.get_label() for line in fits)
    for line, key in zip(data, ("p0", "p1")):
        values = ds["shared_variance"].sel(recording=key).values
        np.testing.assert_allclose(line.get_ydata(), values[values > 0])
    assert len(report.figures(ds)) == 1 + 2


def test_alignment_matrices_with_labels(more_results):
    ds = more_results["manifold_alignment"]
    fig = report.alignment_matrices(ds)
    center, subspace = fig.axes[:2]     # then their two colorbar axes
    assert len(fig.axes) == 4
    for ax, name in ((center, "center_alignment"), (subspace, "subspace_alignment")):
        np.testing.assert_allclose(ax.get_images()[0].get_array(), ds[name].values)
        assert [t.get_text() for t in ax.get_yticklabels()] == MANIFOLDS
        assert [t.get_text() for t in ax.get_xticklabels()] == MANIFOLDS
        assert ax.get_xlabel() == "manifold_other" and ax.get_ylabel() == "manifold"
    assert f"mean {float(ds['center_alignment_mean']):.3g}" in center.get_title()


def test_decoding_against_chance(more_results):
    ds = more_results["decoding_accuracy"]
    fig = report.decoding(ds)
    ax = fig.axes[0]
    assert len(ax.patches) == 1 + len(MANIFOLDS)       # overall + one vs rest per manifold
    assert [p.get_height() for p in ax.patches] == pytest.approx(
        [float(ds["accuracy"]), *ds["one_vs_rest_accuracy"].values])
    chance = [line for line in lines(ax) if line.get_linestyle() == "--"][0]
    assert chance.get_ydata()[0] == pytest.approx(float(ds["chance"]))
    splits = [line for line in lines(ax) if line.get_label() == "splits"]
    assert len(splits[0].get_ydata()) == ds.sizes["split"]
    assert ax.get_ylabel() == "accuracy"
    assert fig.axes[1].get_title() == "pairwise accuracy"
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == MANIFOLDS


def test_layer_profile_and_predictivity_across_layers(more_results):
    ds = more_results["layer_profile"]
    fig = report.layer_profile(ds)
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "capacity", "radius", "dimension", "center correlation", "center alignment",
        "subspace alignment", "decoding accuracy"]
    capacity_ax = fig.axes[0]
    assert [t.get_text() for t in capacity_ax.get_xticklabels()] == ["conv", "fc"]
    model, v4, it = lines(capacity_ax)           # the layers' line, then one line per region
    np.testing.assert_allclose(model.get_ydata(), ds["capacity"].values)
    assert (v4.get_label(), it.get_label()) == ("V4", "IT")
    assert v4.get_ydata()[0] == pytest.approx(float(ds["neural_capacity"].sel(region="V4")))
    decoding_ax = fig.axes[-1]
    assert "chance" in [line.get_label() for line in lines(decoding_ax)]
    (ax,) = report.predictivity(ds).axes
    assert len(lines(ax)) == 2 + 2          # one line per region + its ceiling line
    assert len(ax.patches) == 2             # one ceiling band per region
    np.testing.assert_allclose(lines(ax)[0].get_ydata(),
                               ds["predictivity"].transpose("layer", "region").values[:, 0])
    assert ax.get_ylabel() == "predictivity (median r)"
    # one region picked: one line and its ceiling
    (ax,) = report.predictivity(ds, region="IT").axes
    np.testing.assert_allclose(lines(ax)[0].get_ydata(),
                               ds["predictivity"].sel(region="IT").values)
    assert lines(ax)[1].get_ydata()[0] == pytest.approx(float(ds["ceiling"].sel(region="IT")))


def test_predictivity_per_layer_with_neuroid_spread_and_ceiling_band(more_results):
    """neural_predictivity of one region from each layer, stacked along ``layer``: every
    neuroid's r at each layer, the median line with its error, the ceiling band."""
    ds = more_results["predictivity_by_layer"]
    (ax,) = report.predictivity(ds).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv", "fc"]
    points = [line for line in lines(ax) if line.get_label() == "neuroids"][0]
    assert len(points.get_ydata()) == ds.sizes["layer"] * ds.sizes["neuroid"]
    np.testing.assert_allclose(np.sort(points.get_ydata()),
                               np.sort(ds["r_per_neuroid"].values.ravel()))
    (median,) = ax.containers                        # the median r with its error bars
    assert median.get_label() == "median r"
    np.testing.assert_allclose(median.lines[0].get_ydata(), ds["score"].values)
    ceiling = [line for line in lines(ax) if line.get_linestyle() == "--"][0]
    assert ceiling.get_ydata()[0] == pytest.approx(float(ds["ceiling"].mean()))
    assert len(ax.patches) == 1                      # the ceiling ± error band
    assert ax.get_xlabel() == "layer" and ax.get_ylabel() == "Pearson r (held-out stimuli)"
    assert len(report.figures(ds)) == 1


def test_batch_summary_marks_failures(more_results):
    ds = more_results["map_recordings"]
    assert list(ds["status"].values) == ["ok", "failed", "ok"]
    (ax,) = report.batch_summary(ds).axes
    assert len(ax.patches) == 2             # the two recordings that succeeded
    assert [p.get_height() for p in ax.patches] == pytest.approx(
        ds["capacity_overall"].values[[0, 2]])
    failed = [line for line in lines(ax) if line.get_label() == "failed"]
    assert len(failed) == 1 and list(failed[0].get_xdata()) == [1]
    assert ax.get_ylabel() == "capacity overall" and ax.get_xlabel() == "recording"
    # figures(): the summary, then each successful recording's own figure
    figs = report.figures(ds)
    assert len(figs) == 1 + 2
    assert [f.get_suptitle() for f in figs[1:]] == ["s0: manifold_capacity",
                                                   "s2: manifold_capacity"]


def test_plots_pick_one_recording_layer_or_region(more_results, results):
    batch = more_results["map_recordings"]
    fig = report.capacity_geometry(batch, recording="s2")       # bars of that recording
    assert len(fig.axes[0].patches) == len(MANIFOLDS)
    np.testing.assert_allclose([p.get_height() for p in fig.axes[0].patches],
                               batch["capacity"].sel(recording="s2").values)
    assert fig.get_suptitle().endswith("recording s2")
    with pytest.raises(AnalysisError, match=r"recording 'nope' is not in the result; its "
                                            r"recording labels are \['s0', 's1', 's2'\]"):
        report.capacity_geometry(batch, recording="nope")
    with pytest.raises(AnalysisError, match=r"has no 'region' dim"):
        report.capacity_geometry(batch, region="IT")
    with pytest.raises(AnalysisError, match=r"draws along 'layer'"):
        report.layer_profile(more_results["layer_profile"], layer="fc")
    # a function that draws one label at a time names the dim and its labels
    stacked = xr.concat([results["latent_dimensionality"]] * 2, dim="recording")
    stacked = stacked.assign_coords(recording=["a.nwb", "b.nwb"])
    with pytest.raises(AnalysisError, match=r"one recording at a time.*\['a.nwb', 'b.nwb'\]"):
        report.latent_dimensionality(stacked)
    (ax,) = report.latent_dimensionality(stacked, recording="b.nwb").axes
    assert len(lines(ax)[0].get_xdata()) == stacked.sizes["latent_dim"]
    # a layer profile's geometry for one region: that region's own line only
    fig = report.layer_profile(more_results["layer_profile"], region="V4")
    assert [line.get_label() for line in lines(fig.axes[0])] == ["model", "V4"]


def test_missing_variables_are_named():
    with pytest.raises(AnalysisError, match=r"no variable\(s\) \['r2'\].*has \['x'\]"):
        report.latent_dimensionality(xr.Dataset({"x": 1.0}))


def test_html_report_is_self_contained(results, more_results, tmp_path):
    paths = {}
    for kind, ds in {**results, **more_results}.items():
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
    # per section: headline numbers, parameters, input provenance and versions from the attrs
    for heading in ("Headline numbers", "Parameters", "Input provenance", "Versions"):
        assert text.count(f"<h3>{heading}</h3>") == len(paths) + 1, heading
    capacity = text[text.index("manifold_capacity.nc"):]
    capacity = capacity[:capacity.index("</section>")]
    assert "<tr><td>n_t</td><td>20</td></tr>" in capacity
    assert "<tr><td>capacity_overall</td><td>" in capacity
    assert "<tr><td>input_region</td><td>IT</td></tr>" in capacity
    assert "<tr><td>neurogeom_version</td><td>" in capacity
    assert "FAILED RuntimeError: no units table" in text          # batch failures
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
