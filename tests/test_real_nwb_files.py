"""Real NWB files from other tools (pynapple's test data, fetched by tests/real_nwb.py):
``inspect``, ``binned_activity``, ``spike_responses`` and ``calcium_responses`` on each, with
counts and means equal to direct computations on the file's own datasets read with h5py.

What loads (issue 16 item 5):

=================  ==========================================================================
neurosuite         15 units (ADn 7, CA1 8), epochs, position/head direction, ripples: inspect,
                   binned (whole, ``epochs``, ``position_time_support``, covariates),
                   spike_responses around ripple onsets
phy                3 units, epochs: inspect, binned (whole, ``epochs``, from 0 s)
suite2p            Fluorescence/Neuropil/Deconvolved, 219 ROIs stored rois × time, 10 Hz:
                   inspect, binned at the frame period (Fluorescence by default),
                   calcium_responses
inscopix-cnmfe,    one Fluorescence series of 10 ROIs with timestamps: inspect, binned,
matlab-cnmfe,      calcium_responses
minian
basic              behaviour only (position, head direction, epochs): inspect; binned_activity
                   is a LoaderError saying there is nothing to bin
=================  ==========================================================================
"""

import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

import loaders
from neurogeom.errors import LoaderError

from nwb_files import brute_counts
from real_nwb import PYNAPPLE_FILES

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning",
                                        "ignore::DeprecationWarning")

CALCIUM = ("suite2p", "inscopix-cnmfe", "matlab-cnmfe", "minian")


def spike_trains(path):
    """Every unit's spike times straight from the HDF5 datasets (the independent reading)."""
    with h5py.File(path, "r") as f:
        flat = f["units/spike_times"][()]
        ends = f["units/spike_times_index"][()]
    return [np.sort(flat[a:b]) for a, b in zip(np.r_[0, ends[:-1]], ends)]


def direct_counts(trains, start, end):
    """Counts in [start, end) by direct comparison, bin by bin."""
    return np.array([[np.count_nonzero((t >= s) & (t < e)) for t in trains]
                     for s, e in zip(start, end)])


def check_binned_counts(act, trains):
    start, end = act["bin_start"].values, act["bin_end"].values
    for k in np.unique(act["epoch_index"].values):
        rows = np.flatnonzero(act["epoch_index"].values == k)
        # one edges array per epoch: abutting bins share their edge exactly
        assert np.array_equal(end[rows[:-1]], start[rows[1:]])
        # every spike from the epoch's first edge to its last counted once
        np.testing.assert_array_equal(
            act.values[rows].sum(axis=0),
            [np.count_nonzero((t >= start[rows[0]]) & (t < end[rows[-1]])) for t in trains])
    # bins with a spike exactly on an edge, and a spread of others, counted directly
    spikes = np.concatenate(trains)
    on_edge = np.flatnonzero(np.isin(start, spikes) | np.isin(end, spikes))
    sample = np.union1d(on_edge, np.linspace(0, start.size - 1, 200).astype(int))
    np.testing.assert_array_equal(act.values[sample],
                                  direct_counts(trains, start[sample], end[sample]))
    return on_edge.size


#: files whose tests run only under ``-m slow`` (the same kind of export as a default one)
SLOW = ("inscopix-cnmfe", "matlab-cnmfe")


def by_speed(labels):
    return [pytest.param(k, marks=pytest.mark.slow) if k in SLOW else k for k in labels]


@pytest.mark.parametrize("label", by_speed(PYNAPPLE_FILES))
def test_inspect(pynapple_files, label):
    summary = loaders.nwb_summary(pynapple_files[label])
    if label == "neurosuite":
        assert summary["units"]["count"] == 15
        assert summary["units"]["regions"] == {"adn": 7, "ca1": 8}
        assert set(summary["intervals"]) >= {"epochs", "position_time_support", "sleep_ripples"}
        # ripple events (irregular timestamps) are not a behavioural covariate
        assert "sleep_ripples" not in summary["behaviour"]
        assert "acquisition/sleep_ripples" in summary["other_series"]
    elif label == "phy":
        assert summary["units"]["count"] == 3 and "epochs" in summary["intervals"]
    elif label == "suite2p":
        assert summary["calcium_default"] == "processing/ophys/Fluorescence/Fluorescence"
        assert {e["orientation"] for e in summary["ophys"].values()} == {"rois x time"}
    elif label == "basic":
        assert summary["units"] == {"count": 0} and "x" in summary["behaviour"]
    else:
        assert (summary["calcium_default"]
                == "processing/ophys/Fluorescence/RoiResponseSeries")


def test_neurosuite_bins_epochs_and_tracking_support(pynapple_files):
    path = pynapple_files["neurosuite"]
    trains = spike_trains(path)
    epochs = loaders.binned_activity(path, 0.1, epoch="epochs", rate=False)
    assert epochs.sizes["time"] == 12000    # sleep 0-600 s and wake 600-1200 s
    # spike times sit on a 0.1 ms grid: many lie exactly on 0.1 s edges
    assert check_binned_counts(epochs, trains) > 0
    tracked = loaders.binned_activity(path, 0.1, epoch="position_time_support", rate=False,
                                      covariates=["x", "rz"])
    check_binned_counts(tracked, trains)
    with h5py.File(path, "r") as f:
        t_x, x = f["acquisition/Position/x/timestamps"][()], f["acquisition/Position/x/data"][()]
    np.testing.assert_allclose(tracked["x"].values, np.interp(tracked["time"].values, t_x, x),
                               atol=1e-9, rtol=0)
    # the whole recording with tracking covariates: bins restricted to the tracking
    restricted = loaders.binned_activity(path, 0.5, covariates="x")
    assert restricted["bin_start"].values[0] == t_x[0]
    assert "restricted" in restricted.attrs["covariate_support"]


def test_neurosuite_spike_responses_around_ripples(pynapple_files):
    path = pynapple_files["neurosuite"]
    trains = spike_trains(path)
    with h5py.File(path, "r") as f:
        onsets = f["intervals/sleep_ripples/start_time"][()][:120]
    df = pd.DataFrame({"start_time": onsets, "ripple": np.arange(onsets.size) % 4})
    edges = np.linspace(-0.1, 0.1, 5)
    resp = loaders.spike_responses(path, df, "ripple", window=(-0.1, 0.1), bins=4, rate=False)
    np.testing.assert_array_equal(resp.transpose("presentation", "neuroid", "time_bin").values,
                                  brute_counts(trains, onsets, edges))


def test_phy_epochs_and_window_from_zero(pynapple_files):
    path = pynapple_files["phy"]
    trains = spike_trains(path)
    assert min(t[0] for t in trains) > 0.0          # the first spike comes after 0 s
    check_binned_counts(loaders.binned_activity(path, 0.1, epoch="epochs", rate=False), trains)
    start = loaders.binned_activity(path, 0.25, epoch=(0.0, 30.0), rate=False)
    check_binned_counts(start, trains)


@pytest.mark.parametrize("label", by_speed(CALCIUM))
def test_calcium_exports(pynapple_files, label):
    path = pynapple_files[label]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = loaders.binned_activity(path, 0.1)
    series = act.attrs["series"]
    with h5py.File(path, "r") as f:
        data = f[series + "/data"][()]
        g = f[series]
        if "timestamps" in g:
            times = g["timestamps"][()]
        else:
            st = g["starting_time"]
            times = st[()] + np.arange(max(data.shape)) / st.attrs["rate"]
    if data.shape[0] != times.size:
        data = data.T                                 # suite2p stores rois × time
    dt = np.median(np.diff(times))
    start, end = act["bin_start"].values, act["bin_end"].values
    sample = np.linspace(0, start.size - 1, 150).astype(int)
    tol = 1e-6 * dt      # frames within 1e-6 frame periods below an edge count as on it
    expected = np.array([data[(times >= s - tol) & (times < e - tol)].mean(axis=0)
                         for s, e in zip(start[sample], end[sample])])
    np.testing.assert_allclose(act.values[sample], expected, rtol=1e-6, atol=1e-9)
    onsets = times[10] + np.arange(8) * 1.3
    df = pd.DataFrame({"start_time": onsets, "cue": np.arange(8) % 2})
    resp = loaders.calcium_responses(path, df, "cue", window=(0.0, 0.5), series=series)
    expected = np.array([data[(times >= t) & (times < t + 0.5)].mean(axis=0) for t in onsets])
    np.testing.assert_allclose(resp.values, expected, rtol=1e-6, atol=1e-9)


#: pynwb back-compatibility files checked by default (all 27 under -m slow)
BACK_COMPAT_FAST = ("1.0.2_nwbfile.nwb", "3.0.0_decompositionseries_bands_dynamic_table.nwb",
                    "3.0.0_electrodes_dynamic_table.nwb", "3.0.0_fiber_photometry_extension.nwb",
                    "3.0.0_optogenetics_extension.nwb")


def test_inspect_pynwb_back_compat_files(pynwb_back_compat):
    """Back-compatibility files inspect; their series are shown in the right section."""
    assert len(pynwb_back_compat) == 27
    summaries = {n: loaders.nwb_summary(pynwb_back_compat[n]) for n in BACK_COMPAT_FAST}
    ephys = summaries["3.0.0_electrodes_dynamic_table.nwb"]
    assert list(ephys["ecephys"]) == ["acquisition/ElectricalSeries"]
    decomposition = summaries["3.0.0_decompositionseries_bands_dynamic_table.nwb"]
    assert "LFPSpectralAnalysis" not in decomposition["behaviour"]
    assert "processing/test_mod/LFPSpectralAnalysis" in decomposition["other_series"]
    fiber = summaries["3.0.0_fiber_photometry_extension.nwb"]
    assert fiber["behaviour"] == {}
    assert "acquisition/fiber_photometry_response_series" in fiber["other_series"]


@pytest.mark.slow
def test_inspect_every_pynwb_back_compat_file(pynwb_back_compat):
    for name, path in pynwb_back_compat.items():
        summary = loaders.nwb_summary(path)
        assert summary["units"]["count"] == (1 if "electrodes" in name else 0), name


def test_behaviour_only_file_says_there_is_nothing_to_bin(pynapple_files):
    with pytest.raises(LoaderError, match="no units table and no RoiResponseSeries"):
        loaders.binned_activity(pynapple_files["basic"], 0.1)
