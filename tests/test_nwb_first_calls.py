"""The first natural calls on files written by other tools (issue 16 items 2-4): the default
imaging series, the recording's extent, covariates that start late, one-ROI series."""

import warnings

import numpy as np
import pytest

import loaders
from neurogeom.errors import LoaderError

from nwb_files import write_plain_units, write_roi_series

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
