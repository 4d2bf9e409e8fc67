"""The first natural calls on files written by other tools (issue 16 items 2-4): the default
imaging series, the recording's extent, covariates that start late, one-ROI series."""

import warnings

import numpy as np
import pytest

import loaders
from neurogeom.errors import LoaderError

from nwb_files import write_plain_units, write_roi_series

pytestmark = pytest.mark.filterwarnings("ignore:.*no brain area found:UserWarning")

SUITE2P = {"Fluorescence": "Fluorescence", "Neuropil": "Fluorescence",
           "Deconvolved": "Fluorescence"}


def frame_means(data, times, start, end):
    """Mean of the frames in each [start, end) bin: the direct reference."""
    return np.array([data[(times >= s) & (times < e)].mean(axis=0) for s, e in zip(start, end)])


# -- item 2: which RoiResponseSeries a call without series= loads ------------------------------

def test_suite2p_layout_loads_fluorescence_and_says_so(tmp_path):
    path, data, times = write_roi_series(tmp_path / "s2p.nwb", SUITE2P)
    with pytest.warns(UserWarning, match=r"Fluorescence/Fluorescence.*Deconvolved.*Neuropil"):
        act = loaders.binned_activity(path, 0.5)
    assert act.attrs["series"] == "processing/ophys/Fluorescence/Fluorescence"
    assert "never neuropil" in act.attrs["series_choice"]
    np.testing.assert_allclose(act.values, frame_means(data["Fluorescence"], times,
                                                       act["bin_start"].values,
                                                       act["bin_end"].values), atol=1e-12)
    # the choice is the Fluorescence series, not the first in path order (Deconvolved)
    assert not np.allclose(act.values, frame_means(data["Deconvolved"], times,
                                                   act["bin_start"].values,
                                                   act["bin_end"].values))
    # an explicit choice is obeyed silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        neuropil = loaders.binned_activity(path, 0.5, series="Neuropil")
    assert neuropil.attrs["series"].endswith("Neuropil/Neuropil")
    assert neuropil.attrs["series_choice"] == "given"
    summary = loaders.nwb_summary(path)
    assert summary["calcium_default"] == "processing/ophys/Fluorescence/Fluorescence"


def test_dff_preferred_over_fluorescence(tmp_path):
    path, data, times = write_roi_series(tmp_path / "dff.nwb",
                                         {"Fluorescence": "Fluorescence", "DfOverF": "DfOverF",
                                          "Neuropil": "Fluorescence"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # dF/F is the unambiguous choice: no warning
        act = loaders.binned_activity(path, 0.5)
    assert act.attrs["series"] == "processing/ophys/DfOverF/DfOverF"
    assert act.attrs["units"] == "dF/F"


def test_only_neuropil_or_two_dff_is_an_error_listing_them(tmp_path):
    path, _, _ = write_roi_series(tmp_path / "np.nwb", {"Neuropil": "Fluorescence",
                                                        "Deconvolved": "Fluorescence"})
    with pytest.raises(LoaderError, match=r"neuropil or deconvolved.*series="):
        loaders.binned_activity(path, 0.5)
    assert loaders.nwb_summary(path)["calcium_default"].startswith("none")
    path, _, _ = write_roi_series(tmp_path / "two.nwb", {"dff_a": "DfOverF", "dff_b": "DfOverF"})
    with pytest.raises(LoaderError, match=r"several DfOverF.*dff_a.*dff_b.*series="):
        loaders.binned_activity(path, 0.5)


def test_inspect_names_units_with_nan_spike_times(tmp_path):
    trains = [np.array([0.5, 1.0, 2.0]), np.array([0.3, np.nan, np.nan, 4.0]),
              np.array([1.5, 2.5]), np.array([np.nan])]
    path = write_plain_units(tmp_path / "nan.nwb", trains, [1.0], with_trials=False)
    summary = loaders.nwb_summary(path)
    note = summary["units"]["nan_spike_times"]
    assert "2 unit(s)" in note and "1: 2" in note and "3: 1" in note


# -- item 3: the recording's extent is the file's ----------------------------------------------

def neurosuite_like(tmp_path, seed=0):
    """Spikes from 0.008 s to 1199.968 s on a 0.1 ms grid; epochs sleep 0–600 s and wake
    600–1200 s; tracking until 27 ms after the last spike (its own time-support table)."""
    rng = np.random.default_rng(seed)
    trains = [np.unique(np.round(rng.uniform(0.008, 1199.968, 3000), 4)) for _ in range(3)]
    trains[0] = np.unique(np.concatenate([trains[0], [0.008, 1199.968, 600.0]]))
    last = max(t[-1] for t in trains)
    path, _, _ = write_roi_series(
        tmp_path / "ns.nwb", {}, units=trains,
        intervals={"epochs": [(0.0, 600.0), (600.0, 1200.0)],
                   "position_time_support": [(670.64, last + 0.027)]},
        timeseries={"position": np.linspace(670.64, last + 0.027, 500)})
    return path, trains


def test_epochs_declared_by_the_file_are_inside_the_recording(tmp_path):
    path, trains = neurosuite_like(tmp_path)
    act = loaders.binned_activity(path, 0.1, epoch="epochs", rate=False)
    assert act.sizes["time"] == 12000 and act["bin_end"].values[-1] == 1200.0
    # every spike of the two epochs counted once (brute force over [0, 1200))
    np.testing.assert_array_equal(act.values.sum(axis=0),
                                  [np.count_nonzero((t >= 0) & (t < 1200.0)) for t in trains])
    tracked = loaders.binned_activity(path, 0.1, epoch="position_time_support", rate=False)
    assert tracked["bin_start"].values[0] == 670.64
    window = loaders.binned_activity(path, 0.5, epoch=(0.0, 10.0), rate=False)
    np.testing.assert_array_equal(window.values.sum(axis=0),
                                  [np.count_nonzero(t < 10.0) for t in trains])


def test_epoch_truly_outside_names_rows_and_how_to_drop_them(tmp_path):
    path, _ = neurosuite_like(tmp_path)
    with pytest.raises(LoaderError) as err:
        loaders.binned_activity(path, 0.1, epoch=[(0.0, 600.0), (1190.0, 1300.0)])
    msg = str(err.value)
    assert "epoch row(s) 1 (" in msg and "(1190.0, 1300.0)" in msg
    assert "[0.000, 1200.000] s" in msg and "intervals/epochs" in msg
    assert "epoch=[(0, 600)]" in msg


def test_bins_restricted_to_the_covariates_support(tmp_path):
    """The README's own call: tracking starts 0.5 s after imaging."""
    from loaders.synthetic import nwb as syn

    rec = syn.write_mouse_2p(tmp_path / "2p.nwb", seed=4, n_objects=2, n_images_per_object=2,
                             n_repetitions=2)
    act = loaders.binned_activity(rec.path, 0.1, covariates=["head_direction", "position"])
    t_b = rec.extra["behaviour_times"]
    assert act["bin_start"].values[0] == t_b[0] and act["bin_end"].values[-1] <= t_b[-1]
    assert "restricted to" in act.attrs["covariate_support"]
    np.testing.assert_allclose(act["position_x"].values,
                               np.interp(act["time"].values, t_b, rec.extra["position"][:, 0]),
                               atol=1e-9, rtol=0)


# -- item 4: one-ROI series, bins one frame period wide ----------------------------------------

def test_one_roi_series_stored_1d(tmp_path):
    path, data, times = write_roi_series(tmp_path / "one.nwb", {"Fluorescence": "Fluorescence"},
                                         n_rois=1)
    act = loaders.binned_activity(path, 0.5)
    assert act.sizes["neuroid"] == 1
    np.testing.assert_allclose(act.values, frame_means(data["Fluorescence"], times,
                                                       act["bin_start"].values,
                                                       act["bin_end"].values), atol=1e-12)


@pytest.mark.parametrize("jitter", [0.0, 0.01])
def test_bins_of_one_frame_period_hold_one_frame_each(tmp_path, jitter):
    """10 Hz frames (rate-based, or timestamps jittered by up to 10 ms), 0.1 s bins."""
    path, data, times = write_roi_series(tmp_path / "f.nwb", {"Fluorescence": "Fluorescence"},
                                         n_frames=2000, jitter=jitter)
    act = loaders.binned_activity(path, 0.1)
    # bins centred on the frames: every frame is its own bin (a last frame that came early
    # leaves less than a whole bin after it: whole bins only)
    n = act.sizes["time"]
    assert n == 2000 or (jitter and n == 1999)
    np.testing.assert_allclose(act.values, data["Fluorescence"][:n], atol=1e-12, rtol=0)
    # centres within the jitter of the nominal frame times (the half frame is the median one)
    np.testing.assert_allclose(act["time"].values, np.arange(n) / 10.0, atol=max(jitter, 1e-9))
    with pytest.raises(LoaderError, match=r"hold no sample.*two frame periods"):
        loaders.binned_activity(path, 0.05)


def write_lfp_only(path):
    """An electrophysiology file with no units: LFP in processing, its spectral decomposition,
    ripple events (irregular timestamps) and one tracked signal (running speed)."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.ecephys import LFP, ElectricalSeries
    from pynwb.misc import DecompositionSeries

    f = NWBFile(session_description="lfp", identifier="lfp",
                session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    group = f.create_electrode_group(name="shank0", description="shank", location="CA1",
                                     device=f.create_device(name="probe"))
    for _ in range(4):
        f.add_electrode(group=group, location="CA1")
    region = f.create_electrode_table_region(region=[0, 1, 2, 3], description="all")
    module = f.create_processing_module("ecephys", "local field potential")
    lfp = ElectricalSeries(name="lfp", data=np.zeros((1250, 4)), electrodes=region,
                           rate=1250.0, starting_time=0.0)
    module.add(LFP(electrical_series=lfp))
    module.add(DecompositionSeries(name="spectrum", data=np.zeros((100, 4, 3)), metric="power",
                                   rate=100.0, source_timeseries=lfp))
    ripples = np.sort(np.random.default_rng(0).uniform(0, 1, 12))
    f.add_acquisition(TimeSeries(name="ripples", data=ripples, unit="s", timestamps=ripples))
    f.add_acquisition(TimeSeries(name="speed", data=np.zeros(50), unit="m/s",
                                 timestamps=np.arange(50) / 50))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(f)
    return str(path)


def test_inspect_shows_lfp_and_keeps_events_out_of_behaviour(tmp_path, capsys):
    """An LFP-only file does not look empty; events and decompositions are not behaviour
    (without the registry's real files: tests/test_real_nwb_files.py checks those)."""
    from neurogeom_cli import main

    path = write_lfp_only(tmp_path / "lfp.nwb")
    summary = loaders.nwb_summary(path)
    lfp = summary["ecephys"]["processing/ecephys/LFP/lfp"]
    assert lfp["type"] == "ElectricalSeries" and lfp["n_channels"] == 4
    assert lfp["rate"] == 1250.0
    assert list(summary["behaviour"]) == ["speed"]
    assert set(summary["other_series"]) == {"processing/ecephys/spectrum", "acquisition/ripples"}
    assert main(["inspect", path]) == 0
    printed = capsys.readouterr().out
    assert "ecephys:\n  processing/ecephys/LFP/lfp:" in printed
    assert "other_series:" in printed
    with pytest.raises(LoaderError, match="nothing to bin"):
        loaders.binned_activity(path, 0.1)


def test_units_obs_intervals_are_part_of_the_recording(tmp_path):
    """The units' own observation intervals (0–20 s) reach past their spikes (1–19 s)."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile

    rng = np.random.default_rng(1)
    trains = [np.sort(rng.uniform(1.0, 19.0, 50)) for _ in range(2)]
    f = NWBFile(session_description="obs", identifier="obs",
                session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    for train in trains:
        f.add_unit(spike_times=train, obs_intervals=[[0.0, 12.0], [12.5, 20.0]])
    path = str(tmp_path / "obs.nwb")
    with NWBHDF5IO(path, "w") as io:
        io.write(f)
    act = loaders.binned_activity(path, 0.5, epoch=(0.0, 20.0), rate=False)
    assert act.sizes["time"] == 40 and act["bin_end"].values[-1] == 20.0
    np.testing.assert_array_equal(act.values.sum(axis=0), [t.size for t in trains])
    with pytest.raises(LoaderError, match=r"epoch row\(s\) 0.*units.obs_intervals"):
        loaders.binned_activity(path, 0.5, epoch=(0.0, 25.0))
