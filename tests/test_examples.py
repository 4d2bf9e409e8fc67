"""Every example (a user story the docs point to) runs in-process, and its key numbers are right.

Each ``examples/NN_name.py`` has ``main(out_dir)`` returning the numbers it prints; the bounds
below come from the math of the synthetic data each example builds (known answers in
SCIENCE.md), not from a previous run.
"""

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))

# SCIENCE.md §1, exact D-ball capacities α_B(κ = 0, R, D = 5) (reproduced by the quadrature in
# test_capacity_mft.py::test_ball_capacity_formula_matches_table)
BALL_D5 = {0.3: 0.8525, 1.0: 0.3333}
POINT_CAPACITY = 2.0  # κ = 0: a single point, the most separable manifold there is
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_pictures(paths, out_dir: Path, n_figures: int) -> None:
    """The example wrote its report page and its figures with neurogeom.report: ``paths`` is
    [report.html, *PNG files], all in ``out_dir``; the page embeds the same figures as data
    URIs and every result got its picture (no 'no figure' note)."""
    page, *pngs = paths
    assert page == out_dir / "report.html" and page.is_file()
    text = page.read_text(encoding="utf-8")
    assert text.count("src='data:image/png;base64,") == n_figures
    assert "no figure for this result" not in text
    assert len(pngs) == n_figures and len(set(pngs)) == n_figures
    for png in pngs:
        assert png.parent == out_dir and png.suffix == ".png", png
        data = png.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000, png


def run_example(stem: str, out_dir: Path, **options) -> dict:
    """Import examples/<stem>.py as a module (not as __main__) and run its main(), with
    ``options`` (smaller sizes) where the test asks for them."""
    path = next(p for p in EXAMPLES if p.stem == stem)
    spec = importlib.util.spec_from_file_location(f"example_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(out_dir, **options)


def test_every_example_is_tested_and_runnable_as_a_script():
    tested = {name[len("test_"):] for name in globals() if name.startswith("test_")}
    for path in EXAMPLES:
        text = path.read_text()
        assert "def main(" in text and 'if __name__ == "__main__":' in text, path.name
        assert any(path.stem.split("_", 1)[1] in name for name in tested), path.name


def test_example_runs_as_a_script(tmp_path):
    # the smallest example through the command line, as the docs show it
    script = next(p for p in EXAMPLES if p.stem == "01_assembly_basics")
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "mean_responses.nc").exists()


def test_assembly_basics(tmp_path):
    n = run_example("01_assembly_basics", tmp_path)
    # 4 objects x 10 images x 3 repeats; averaging leaves one row per image
    assert n["presentations"] == 4 * 10 * 3
    assert n["mean_dims"] == {"presentation": 40, "neuroid": 50}
    assert n["manifold_shapes"] == {f"object_{o:02d}": (10, 50) for o in range(4)}
    assert n["round_trip_identical"]


def test_load_nwb(tmp_path):
    n = run_example("02_load_nwb", tmp_path)
    # write_macaque_rsvp's defaults: 48 units split over V4 and IT, 8 objects x 8 images x 4
    # repeats; presentations with a broken fixation are excluded
    assert n["units"] == 48 and n["regions"] == {"IT": 24, "V4": 24}
    assert n["responses"] == {"presentation": n["fixation_correct"], "neuroid": 48}
    assert n["it_manifolds"] == [8] * 8
    # spike counts in the 70-170 ms response window track the evoked rates the file was written
    # with (4 repeats of Poisson counts in 0.1 s: noise ~8 spikes/s against a spread of tuned
    # rates of the same order), on top of each unit's background rate, which the writer draws
    # from 5 x U(0.5, 1.5) spikes/s: the mean excess lies in [2.5, 7.5]
    assert n["rate_correlation"] > 0.6
    assert 2.5 < n["mean_excess_rate"] < 7.5
    # calcium: every non-blank scene presentation, every ROI; binned: (60 - 1) s / 0.1 s
    assert n["calcium"] == {"presentation": n["scenes_shown"], "neuroid": n["rois"]}
    assert n["binned"] == {"time": 590, "neuroid": n["rois"]}


def test_model_activations(tmp_path):
    n = run_example("04_model_activations", tmp_path)
    chance = 0.1  # ten digits
    assert n["accuracy"] > 0.7                       # as test_digits_convnet_learns
    assert n["images"] == 10 * 4 * 9                 # digits x exemplars x positions
    trained, untrained = n["decoding"]["fc"]
    # the trained readout layer carries digit identity across positions; the untrained one
    # barely does (its 10 random units are near chance)
    assert trained > 5 * chance and trained > untrained + 0.3
    assert n["decoding"]["fc"][0] > n["decoding"]["block1.pool"][0]
    assert n["pca_components"] == 20
    assert n["spilled"] and n["spilled_backend"].startswith("dask.array")
    assert n["aligned_presentations"] == n["images"]


def test_manifold_capacity(tmp_path):
    n = run_example("05_manifold_capacity", tmp_path)
    for radius, ball in BALL_D5.items():
        alpha = n[radius]["capacity"]
        # each object is 20 points drawn inside a 5-ball of this radius (relative to a center of
        # norm ~1): a subset of the ball is at least as separable as the ball, and no manifold
        # beats a single point
        assert ball <= alpha < POINT_CAPACITY, (radius, alpha)
        # anchors lie inside the ball (plus the averaged trial noise): R_M stays near or below R
        assert n[radius]["radius"] < 1.2 * radius
    assert n[0.3]["capacity"] > 1.5 * n[1.0]["capacity"]   # wider manifolds: lower capacity
    assert_pictures(n["figures"], tmp_path, 2)              # one capacity figure per radius


def test_capacity_geometry(tmp_path):
    n = run_example("06_capacity_geometry", tmp_path)
    for area in ("compact", "wide"):
        a = n[area]
        low, high = a["simulated_ci"]
        assert low <= a["simulated"] <= high
        # three estimates of the same separability (5 points per object in a 4-ball): at least
        # the 5-ball's capacity, below a point's; the joint-QP estimates agree with the
        # brute-force simulation within 20% (their Monte-Carlo SE is ~5%, the simulation's
        # interval ~±10%, and their hyperplanes through the global mean bias them at P = 20)
        for name in ("glue", "correlated", "simulated"):
            assert BALL_D5[a["radius"]] <= a[name] < POINT_CAPACITY, (area, name, a[name])
        for name in ("glue", "correlated"):
            assert abs(a[name] - a["simulated"]) < 0.2 * a["simulated"], (area, name)
        assert a["glue_radius"] < 1.2 * a["radius"]
    for name in ("glue", "correlated", "simulated"):
        assert n["compact"][name] > n["wide"][name], name
    # the GLUE effective radius explains the drop
    assert n["compact"]["glue_radius"] < n["wide"]["glue_radius"]
    assert_pictures(n["figures"], tmp_path, 6)    # GLUE, correlated, simulated per area


def test_model_to_brain(tmp_path):
    n = run_example("07_model_to_brain", tmp_path)
    # per neuroid, signal variance ≈ gain² (1 + R²·D/(D+2)) = 1.18 gain² against trial noise
    # (0.6 gain)²: the reliability of the mean of 4 repeats is 1.18 / (1.18 + 0.36/4) = 0.93,
    # which the split-half Spearman-Brown ceiling estimates (8 object centers: sampling spread)
    assert 0.85 < n["ceiling"] < 0.97
    good, poor = n["good_layer"], n["poor_layer"]
    for layer in (good, poor):
        # no model predicts held-out means better than the data's own reliability allows:
        # r <= sqrt(ceiling), so r²/ceiling <= 1 (up to the ceiling's estimation error)
        assert 0 < layer["ridge_r"] <= math.sqrt(n["ceiling"]) + 0.02
        assert layer["r2_over_ceiling"] <= 1.03
        # 150 features of 128 stimuli span every centered direction: nothing lies outside
        assert layer["power_outside_span"] == pytest.approx(0.0, abs=1e-9)
        # error-mode geometry: E_g = R_em sqrt(D_em) exactly (SCIENCE.md §7), and the theory
        # matches the empirical ridge error on held-out stimuli
        assert layer["theory_error"] == pytest.approx(
            layer["error_mode_radius"] * math.sqrt(layer["error_mode_dimension"]), rel=1e-6)
        assert abs(layer["theory_error"] - layer["empirical_error"]) < 0.05
    assert good["ridge_r"] > 0.85 and good["r2_over_ceiling"] > 0.85
    assert poor["ridge_r"] < good["ridge_r"] - 0.15 and poor["pls_r"] < good["pls_r"]
    assert good["theory_error"] < poor["theory_error"]
    # the ceiling, then per layer ridge, PLS and spectral: one figure each
    assert_pictures(n["figures"], tmp_path, 7)


def test_latent_dimensionality(tmp_path):
    n = run_example("08_latent_dimensionality", tmp_path)
    # ring model: eigenvalues (4/π²)(2k+1)⁻² in pairs give participation ratio exactly 3
    assert n["ring_participation_ratio"] == pytest.approx(3.0, abs=0.1)
    # a ReLU readout of a point on a circle (d = 2): NCE finds d = 2; the linear views need
    # more (SCIENCE.md §8: RRR ≈ 4 for ReLU, d = 2; the spectrum is not 2-dim either)
    assert n["nce_dimension"] == 2
    assert 3 <= n["rrr_dimension"] <= 5
    assert n["cvpca_dimension"] > 2
    assert_pictures(n.pop("figures"), tmp_path, 2)      # the cvPCA spectrum, d by method
    assert np.isfinite(list(n.values())).all()


def test_batch_sessions(tmp_path):
    n = run_example("09_batch_sessions", tmp_path)
    # every session is a row; the truncated copy is the one failed row and says why
    assert n["status"] == {"site0_compact": "ok", "site1_wide": "ok",
                           "site9_copy_failed": "failed"}
    assert n["error"].startswith("LoaderError: ") and "site9_copy_failed.nwb" in n["error"]
    assert "truncated" in n["error"]
    # the two sites share their tuning directions and differ only in manifold radius: wider
    # object manifolds are less separable (SCIENCE.md §1, alpha_M falls with R_M)
    assert 0 < n["capacity"]["site1_wide"] < n["capacity"]["site0_compact"] < POINT_CAPACITY
    # resume read the finished sessions back and ran no analysis again
    assert n["resumed"] == 2 and n["recomputed"] == 0 and n["same_after_resume"]
    # the batch summary, then the capacity figure of each session that succeeded
    assert_pictures(n["figures"], tmp_path, 1 + 2)
def test_manifold_alignment(tmp_path):
    # small: 4 digits x 3 exemplars x 4 positions, n_t = 50
    n = run_example("10_manifold_alignment", tmp_path, digits=(0, 1, 3, 7), n_exemplars=3,
                    n_t=50)
    assert n["images"] == 4 * 3 * 4
    assert n["cross_dims"]["manifold"] == 4 and n["cross_dims"]["manifold_other"] == 4
    assert 0 <= n["cross_subspace_alignment"] <= 1
    # the trained readout layer separates digit identity across positions; the untrained one
    # does not (as in 04_model_activations)
    assert n["decoding"]["fc"] > n["untrained_decoding"]["fc"] + 0.2
    assert n["decoding"]["fc"] > 2 * n["chance"]
    assert n["capacity"]["fc"] > n["untrained_capacity"]["fc"]
    # the region is a linear mixture of fc plus trial noise: fc predicts it best, and its
    # manifold centers are a linear image of fc's (center-alignment matrices nearly equal)
    assert n["predictivity"]["fc"] == max(n["predictivity"].values())
    assert n["predictivity"]["fc"] > 0.9
    assert n["center_alignment_similarity"]["fc"] > 0.9
    assert n["saved"]
    # three alignment results, the profile (geometry + predictivity), the untrained profile
    assert_pictures(n["figures"], tmp_path, 3 + 2 + 1)
def test_model_geometry(tmp_path):
    import torch
    from neurogeom.io import open as open_result

    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # a tiny CNN: threads only add overhead
    try:
        n = run_example("11_model_geometry", tmp_path, size="small")
    finally:
        torch.set_num_threads(threads)
    r = n["result"]
    xr_ = pytest.importorskip("xarray")
    xr_.testing.assert_identical(open_result(n["path"]), r)
    assert n["loss"][-1] < n["loss"][0]                 # MMCR optimized its objective
    probe = r.probe_accuracy.sel(layer="fc")
    chance = 0.1                                        # ten digits, 30 exemplars each
    # measured (small size): untrained 0.64, MMCR 0.73, supervised 0.91; the SE of a
    # 300-sample accuracy is ≈ 0.03
    assert float(probe.sel(network="supervised")) > float(probe.sel(network="untrained")) + 0.15
    assert float(probe.sel(network="mmcr")) > float(probe.sel(network="untrained"))
    assert float(probe.min()) > 3 * chance
    # class manifolds separate far better after supervised training (measured 0.65 vs 0.18)
    cls = r.class_capacity.sel(layer="fc")
    assert float(cls.sel(network="supervised")) > 2 * float(cls.sel(network="untrained"))
    # PGD at eps = 0.1 moves every image: positive radius; capacities are finite and positive
    assert (r.adversarial_radius > 0).all() and (r.attack_success_rate <= 1).all()
    for key in ("augmentation_capacity", "translation_capacity", "class_capacity",
                "adversarial_capacity"):
        assert np.isfinite(r[key].values).all() and (r[key] > 0).all(), key
    # the report: the combined table (numbers and references), then a layer profile per kind of
    # manifold, each figure one line per network along the layers
    page = n["report"].read_text(encoding="utf-8")
    assert n["report"] == tmp_path / "report.html" and "probe_accuracy" in page
    assert "Yerxa" in page and "Sompolinsky" in page      # MMCR and MFT citations
    assert_pictures(n["figures"], tmp_path, 4)
    from neurogeom import report

    fig = report.layer_profile(n["profiles"]["class_manifolds"])
    assert [ax.get_ylabel() for ax in fig.axes] == ["capacity", "decoding accuracy"]
    capacity_lines = [line for line in fig.axes[0].get_lines() if line.get_label() in
                      ("untrained", "mmcr", "supervised")]
    assert len(capacity_lines) == 3
    np.testing.assert_allclose(capacity_lines[2].get_ydata(),
                               r.class_capacity.sel(network="supervised").values)
    assert "chance" in [line.get_label() for line in fig.axes[1].get_lines()]
