"""Synthetic files are valid NWB; nwb_summary, `neurogeom inspect` and `neurogeom load` on them."""

import json

import numpy as np

import loaders
from loaders.synthetic import nwb as syn
from neurogeom import io as ngio
from neurogeom_cli import main

from nwb_files import sha256

#: nwbinspector checks that flag exactly the quirk the rois × time variant reproduces.
ORIENTATION_CHECKS = {"check_roi_response_series_dims", "check_data_orientation",
                      "check_timestamps_match_first_dimension"}


def critical(path):
    from nwbinspector import Importance, inspect_nwbfile

    return [m for m in inspect_nwbfile(nwbfile_path=str(path))
            if m.importance == Importance.CRITICAL]


def test_synthetic_layouts_are_valid_nwb(macaque, allen, twophoton):
    from pynwb import validate

    for truth in (macaque, allen, twophoton):
        assert validate(path=truth.path) == [], truth.path
        assert critical(truth.path) == [], truth.path


def test_other_tool_variants_are_valid_nwb(nwb_dir):
    from pynwb import validate

    variants = [
        syn.write_macaque_rsvp(nwb_dir / "v1.nwb", n_objects=2, n_images_per_object=2,
                               n_units=4, units_location=True, seed=9),
        syn.write_macaque_rsvp(nwb_dir / "v2.nwb", n_objects=2, n_images_per_object=2,
                               n_units=4, region_source="electrode_group", seed=9),
        syn.write_mouse_2p(nwb_dir / "v3.nwb", n_objects=2, n_images_per_object=2, n_rois=4,
                           timestamps=True, container="dff", behaviour_in="acquisition", seed=9),
    ]
    for truth in variants:
        assert validate(path=truth.path) == [], truth.path
        assert critical(truth.path) == [], truth.path
    odd = syn.write_mouse_2p(nwb_dir / "v4.nwb", n_objects=2, n_images_per_object=2, n_rois=4,
                             orientation="rois_by_time", seed=9)
    assert validate(path=odd.path) == []
    # the deliberately mis-oriented file is flagged by nwbinspector for its orientation only
    found = {m.check_function_name for m in critical(odd.path)}
    assert found and found <= ORIENTATION_CHECKS


def test_summary_macaque(macaque):
    s = loaders.nwb_summary(macaque.path)
    json.dumps(s)  # JSON-ready
    assert s["subject"]["species"] == "Macaca mulatta"
    assert s["units"]["count"] == 48 and s["units"]["regions"] == {"IT": 24, "V4": 24}
    assert s["units"]["n_spikes"] == sum(len(t) for t in macaque.spike_times)
    trials = s["intervals"]["trials"]
    assert trials["rows"] == 256 and "object_name" in trials["columns"]
    assert trials["values"]["object_name"]["n_unique"] == 8
    assert s["stimuli"]["n_images"] == 64
    assert s["ophys"] == {} and s["behaviour"] == {}


def test_summary_allen_and_2p(allen, twophoton):
    a = loaders.nwb_summary(allen.path)
    assert set(a["intervals"]) == {"flashes_presentations", "natural_scenes_presentations"}
    assert a["units"]["region_source"].startswith("units.peak_channel_id")
    assert a["behaviour"]["running_speed"]["rate"] == 60.0
    p = loaders.nwb_summary(twophoton.path)
    dff = p["ophys"]["processing/ophys/DfOverF/RoiResponseSeries"]
    assert dff["n_rois"] == 30 and dff["orientation"] == "time x rois" and dff["region"] == "VISp"
    assert dff["rate"] == 30.0
    assert set(p["behaviour"]) == {"head_direction", "position"}
    assert p["behaviour"]["head_direction"]["container"] == "CompassDirection"


def test_cli_inspect_nwb(macaque, capsys):
    assert main(["inspect", macaque.path, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["units"]["count"] == 48
    assert main(["inspect", macaque.path]) == 0
    out = capsys.readouterr().out
    assert "species: Macaca mulatta" in out and "trials:" in out


def test_cli_load_spikes_calcium_binned(macaque, twophoton, tmp_path, capsys):
    before = sha256(macaque.path)
    out = tmp_path / "spikes.nc"
    assert main(["load", macaque.path, "--spikes", "--intervals", "trials", "--stimulus",
                 "stimulus_presented", "--window", "0.07", "0.17", "--exclude",
                 "fixation_correct=false", "-o", str(out)]) == 0
    back = ngio.open(out)
    direct = loaders.spike_responses(macaque.path, "trials", "stimulus_presented",
                                     window=(0.07, 0.17), exclude={"fixation_correct": False})
    np.testing.assert_array_equal(back.values, direct.values)
    np.testing.assert_array_equal(back["stimulus_id"].values, direct["stimulus_id"].values)
    assert bool(back["fixation_correct"].values.all())
    assert sha256(macaque.path) == before

    out = tmp_path / "calcium.nc"
    assert main(["load", twophoton.path, "--calcium", "--intervals",
                 "natural_scenes_presentations", "--stimulus", "frame", "--window", "0", "0.5",
                 "--baseline", "-0.2", "0", "--exclude", "frame=-1", "-o", str(out)]) == 0
    back = ngio.open(out)
    assert back.attrs["units"] == "dF/F" and "-1" not in set(back["stimulus_id"].values)

    out = tmp_path / "binned.nc"
    assert main(["load", twophoton.path, "--binned", "--bin-size", "0.05", "--epoch",
                 "natural_scenes_presentations", "--covariates", "head_direction",
                 "-o", str(out)]) == 0
    back = ngio.open(out)
    assert back.dims == ("time", "neuroid") and "head_direction" in back.coords
    assert "wrote" in capsys.readouterr().out


def test_cli_load_errors_are_one_line(macaque, tmp_path, capsys):
    assert main(["load", macaque.path, "--spikes", "--intervals", "trials", "--stimulus",
                 "image", "--window", "0", "0.1", "-o", str(tmp_path / "x.nc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no stimulus column 'image'" in err
    assert main(["load", macaque.path, "--spikes", "-o", str(tmp_path / "x.nc")]) == 2
    assert "needs --intervals and --stimulus and --window" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()
