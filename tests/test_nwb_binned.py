"""loaders.binned_activity: spike counts / calcium samples in time bins with behaviour coords."""

import numpy as np
import pytest

import loaders
from loaders.synthetic import nwb as syn
from neurogeom.errors import LoaderError

from nwb_files import sha256


def brute_bin_counts(trains, starts, width):
    return np.array([[np.count_nonzero((t >= s) & (t < s + width)) for t in trains]
                     for s in starts])


def test_spike_counts_in_bins_match_brute_force(allen):
    before = sha256(allen.path)
    act = loaders.binned_activity(allen.path, 0.25, epoch=[(5.0, 15.0), (20.0, 22.6)],
                                  rate=False, covariates="running_speed")
    assert act.dims == ("time", "neuroid")
    starts = np.concatenate([5.0 + 0.25 * np.arange(40), 20.0 + 0.25 * np.arange(10)])
    np.testing.assert_allclose(act["bin_start"].values, starts, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(act["epoch_index"].values, np.repeat([0, 1], [40, 10]))
    np.testing.assert_array_equal(act.values, brute_bin_counts(allen.spike_times, starts, 0.25))
    speed_t = np.arange(allen.extra["running_speed"].size) / allen.extra["running_rate"]
    # linear interpolation of a uniformly sampled series: exact up to float rounding
    np.testing.assert_allclose(act["running_speed"].values,
                               np.interp(starts + 0.125, speed_t, allen.extra["running_speed"]),
                               rtol=0, atol=1e-9)
    assert act.attrs["covariates"] == ["processing/running/running_speed"]
    assert sha256(allen.path) == before


def test_rates_whole_recording_and_intervals_epochs(allen):
    act = loaders.binned_activity(allen.path, 0.5, region="VISp")
    assert set(act["region"].values) == {"VISp"}
    assert act.attrs["units"] == "spikes/s" and act.attrs["epoch"] == "whole recording"
    rows = np.flatnonzero(allen.regions == "VISp")
    expected = brute_bin_counts([allen.spike_times[r] for r in rows], act["bin_start"].values,
                                0.5) / 0.5
    np.testing.assert_allclose(act.values, expected, rtol=1e-12)
    per_flash = loaders.binned_activity(allen.path, 0.05, epoch="flashes_presentations",
                                        rate=False)
    assert per_flash.sizes["time"] == 5 * allen.extra["flash_onsets"].size


def wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def test_calcium_bins_with_head_direction_and_position(twophoton):
    t_b = twophoton.extra["behaviour_times"]
    act = loaders.binned_activity(twophoton.path, 0.13, epoch=(1.0, t_b[-1] - 0.2),
                                  covariates=["CompassDirection", "Position"])
    assert act.attrs["units"] == "dF/F"
    centers = act["time"].values
    # calcium: mean of the samples in each bin
    dff, times = twophoton.extra["dff"], twophoton.extra["times"]
    starts, ends = act["bin_start"].values, act["bin_end"].values
    # each bin is [bin_start, bin_end): the next bin's start, not bin_start + 0.13 recomputed;
    # a frame within 1e-6 frame periods below an edge counts as on it (float rounding of k/rate)
    tol = 1e-6 / twophoton.extra["frame_rate"]
    expected = np.array([dff[(times >= s - tol) & (times < e - tol)].mean(axis=0)
                         for s, e in zip(starts, ends)])
    np.testing.assert_allclose(act.values, expected, atol=1e-9, rtol=0)
    chunked = loaders.binned_activity(twophoton.path, 0.13, epoch=(1.0, t_b[-1] - 0.2),
                                      max_in_memory_bytes=50_000)
    np.testing.assert_allclose(chunked.values, expected, atol=1e-9, rtol=0)
    pos = twophoton.extra["position"]
    np.testing.assert_allclose(act["position_x"].values, np.interp(centers, t_b, pos[:, 0]),
                               atol=1e-9, rtol=0)
    np.testing.assert_allclose(act["position_y"].values, np.interp(centers, t_b, pos[:, 1]),
                               atol=1e-9, rtol=0)
    # head direction: reference = linear interpolation along the shortest arc. Interpolating
    # cos/sin and taking atan2 differs from it by O(delta^3) for a step of delta radians between
    # samples (chord vs arc); delta^3 / 4 bounds that term for |delta| < 1.
    hd = twophoton.extra["head_direction"]
    i = np.searchsorted(t_b, centers, side="right") - 1
    w = (centers - t_b[i]) / (t_b[i + 1] - t_b[i])
    step = wrap(hd[i + 1] - hd[i])
    reference = wrap(hd[i] + w * step)
    tol = np.abs(step).max() ** 3 / 4 + 1e-12
    assert np.abs(step).max() < 1
    assert np.abs(wrap(act["head_direction"].values - reference)).max() <= tol
    assert np.any(np.abs(np.diff(hd)) > np.pi)  # the walk crosses the ±pi wrap at least once


def test_behaviour_in_acquisition(nwb_dir):
    truth = syn.write_mouse_2p(nwb_dir / "acq.nwb", behaviour_in="acquisition", n_rois=4,
                               n_objects=2, n_images_per_object=2, seed=8)
    act = loaders.binned_activity(truth.path, 0.5, epoch=(1.0, 5.0), covariates="head_direction")
    assert act.attrs["covariates"] == ["acquisition/CompassDirection/head_direction"]
    assert act.sizes["time"] == 8


def test_unknown_covariate_lists_available(twophoton):
    with pytest.raises(LoaderError, match="unknown covariate 'speed'") as err:
        loaders.binned_activity(twophoton.path, 0.5, epoch=(1.0, 5.0), covariates="speed")
    msg = str(err.value)
    assert twophoton.path in msg and "'head_direction'" in msg and "'Position'" in msg


def test_covariate_not_covering_the_bins(twophoton):
    # tracking starts 0.5 s after imaging: bins from 0 s have no head direction (by default
    # the bins are restricted to the covariates' support: tests/test_nwb_first_calls.py)
    with pytest.raises(LoaderError, match="covariate 'head_direction' covers") as err:
        loaders.binned_activity(twophoton.path, 0.1, epoch=(0.0, 5.0),
                                covariates="head_direction", within_covariates=False)
    assert "restrict the bins with epoch=" in str(err.value)


def test_bad_epochs_and_bins(allen, twophoton):
    with pytest.raises(LoaderError, match="no intervals table 'epochs'") as err:
        loaders.binned_activity(allen.path, 0.5, epoch="epochs")
    assert "'natural_scenes_presentations'" in str(err.value)
    with pytest.raises(LoaderError, match="outside the recording"):
        loaders.binned_activity(allen.path, 0.5, epoch=(0.0, 1e6))
    with pytest.raises(LoaderError, match="hold no sample"):
        loaders.binned_activity(twophoton.path, 0.01, epoch=(1.0, 2.0))
    with pytest.raises(LoaderError, match="bin_size must be a positive"):
        loaders.binned_activity(allen.path, 0.0)


def test_unsorted_spike_times_are_sorted_before_the_extent_and_the_counts(nwb_dir):
    """The whole-recording epoch comes from each unit's first and last spike: those of the
    sorted train, not of the file's order."""
    from nwb_files import write_plain_units

    trains = [np.array([3.0, 0.5, 1.2, 2.1, 1.1, 5.0, 0.25]), np.array([0.3, 1.05, 2.2, 4.9])]
    path = write_plain_units(nwb_dir / "unsorted_binned.nwb", trains, onsets=[1.0],
                             with_trials=False)
    with pytest.warns(UserWarning) as record:
        act = loaders.binned_activity(path, 0.25, rate=False)
    assert any("unit 0 (row 0) are not sorted" in str(w.message) for w in record)
    starts = act["bin_start"].values
    assert starts[0] == 0.25 and act.sizes["time"] == int((5.0 - 0.25) / 0.25)
    np.testing.assert_array_equal(act.values,
                                  brute_bin_counts([np.sort(t) for t in trains], starts, 0.25))
