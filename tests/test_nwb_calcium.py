"""loaders.calcium_responses on two-photon files, including the layouts other tools write.

Loaded window means are compared with a direct mean over the writer's ground-truth dF/F
samples whose times fall in each window.
"""

import shutil

import h5py
import numpy as np
import pytest

import loaders
from loaders.synthetic import nwb as syn
from neurogeom.errors import LoaderError

from nwb_files import sha256


def brute_means(dff, times, onsets, edges):
    out = np.zeros((len(onsets), dff.shape[1], len(edges) - 1))
    for p, onset in enumerate(onsets):
        for k in range(len(edges) - 1):
            inside = (times >= onset + edges[k]) & (times < onset + edges[k + 1])
            out[p, :, k] = dff[inside].mean(axis=0)
    return out


# float64 sums of <= 30 samples of O(1) values: cumulative-sum differences agree with direct
# means to ~1e-13 relative; 1e-9 absolute leaves room for the cumulative sum over ~4000 samples
ATOL = 1e-9


def test_window_means_match_direct_mean(twophoton):
    before = sha256(twophoton.path)
    resp = loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                     window=(0.0, 0.5))
    dff, times = twophoton.extra["dff"], twophoton.extra["times"]
    expected = brute_means(dff, times, twophoton.onsets, [0.0, 0.5])[..., 0]
    np.testing.assert_allclose(resp.values, expected, atol=ATOL, rtol=0)
    assert resp.attrs["units"] == "dF/F"
    assert resp.attrs["series"] == "processing/ophys/DfOverF/RoiResponseSeries"
    assert set(resp["region"].values) == {"VISp"}
    np.testing.assert_array_equal(resp["roi_id"].values, np.arange(30))
    np.testing.assert_array_equal(resp["stimulus_id"].values, twophoton.stimulus_ids)
    assert sha256(twophoton.path) == before


def test_baseline_and_bins(twophoton):
    edges = np.array([0.0, 0.2, 0.4, 0.6])
    resp = loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                     bins=edges, baseline=(-0.3, 0.0), exclude={"frame": -1})
    keep = twophoton.extra["frames"] >= 0
    dff, times = twophoton.extra["dff"], twophoton.extra["times"]
    on = twophoton.onsets[keep]
    expected = brute_means(dff, times, on, edges) - brute_means(dff, times, on, [-0.3, 0.0])
    assert resp.dims == ("presentation", "neuroid", "time_bin")
    np.testing.assert_allclose(resp.values, expected, atol=ATOL, rtol=0)


def test_responses_are_tuned(twophoton):
    """Trial-averaged dF/F follows the generating evoked rates (calcium kernel, not noise)."""
    resp = loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                     window=(0.0, 0.75), baseline=(-0.2, 0.0),
                                     exclude={"frame": -1})
    mean = resp.groupby("stimulus_id").mean()
    truth = twophoton.rates[mean["stimulus_id"].values.astype(int)]
    assert np.corrcoef(mean.values.ravel(), truth.ravel())[0, 1] > 0.6


def test_chunked_reading_equals_in_memory(twophoton):
    whole = loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                      window=(0.0, 0.5))
    chunked = loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                        window=(0.0, 0.5), max_in_memory_bytes=50_000)
    assert chunked.attrs["chunked"] == 1 and whole.attrs["chunked"] == 0
    np.testing.assert_allclose(chunked.values, whole.values, atol=ATOL, rtol=0)


def test_series_above_the_threshold_is_averaged_without_materializing(nwb_dir):
    """A session whose dF/F is 3x the in-memory threshold is reduced chunk by chunk (dask):
    the loader's values (window minus baseline) equal the direct means over the writer's
    ground truth, and the reduction it runs, traced with tracemalloc (numpy registers its
    buffers there), never holds more than a fraction of the series."""
    import tracemalloc

    from loaders.nwb.calcium import chunk_samples_for, window_means

    truth = syn.write_mouse_2p(nwb_dir / "long_2p.nwb", n_rois=100, n_repetitions=2,
                               image_size=8, seed=7)
    dff, times = truth.extra["dff"], truth.extra["times"]
    series_bytes = dff.size * 8                                  # as float64
    threshold = series_bytes // 3
    resp = loaders.calcium_responses(truth.path, "natural_scenes_presentations", "frame",
                                     window=(0.0, 0.5), baseline=(-0.2, 0.0),
                                     max_in_memory_bytes=threshold)
    assert resp.attrs["chunked"] == 1
    expected = brute_means(dff, times, truth.onsets, [0.0, 0.5]) - \
        brute_means(dff, times, truth.onsets, [-0.2, 0.0])
    np.testing.assert_allclose(resp.values, expected[..., 0], atol=ATOL, rtol=0)

    with h5py.File(truth.path, "r") as f:
        data = f["processing/ophys/DfOverF/RoiResponseSeries/data"]
        chunk = chunk_samples_for(data_holder(data), data.shape[0], data.shape[1], threshold)
        edges = truth.onsets[:, None] + np.array([0.0, 0.5])[None, :]
        columns = np.arange(data.shape[1])
        window_means(data, 0, columns, times, edges, chunk)       # warm: dask imports

        def traced(chunk_samples):
            tracemalloc.start()
            try:
                means, _ = window_means(data, 0, columns, times, edges, chunk_samples)
                return means, tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

        means, peak = traced(chunk)
        _, whole_peak = traced(None)
    np.testing.assert_allclose(means[..., 0], resp.values + brute_means(
        dff, times, truth.onsets, [-0.2, 0.0])[..., 0], atol=ATOL, rtol=0)
    # read whole, the float32 series, its float64 copy and its cumulative sum are held at
    # once (> 2x the float64 size); chunked: 12 chunks of a quarter of the threshold (a few in
    # flight on dask's threads), their cumulative sums and a few (presentations x ROIs) partial
    # sums, less than the series itself and less than half the whole read
    assert whole_peak > 2 * series_bytes
    assert peak < series_bytes and peak < whole_peak / 2, (peak, whole_peak, series_bytes)


class data_holder:
    """What chunk_samples_for reads of a series: its ``data`` (dtype)."""

    def __init__(self, data):
        self.data = data


def test_other_tools_layout_transposed_timestamps_acquisition(nwb_dir):
    """rois × time data, explicit timestamps, a DfOverF named 'dff', behaviour in acquisition."""
    truth = syn.write_mouse_2p(nwb_dir / "other_tool.nwb", orientation="rois_by_time",
                               timestamps=True, container="dff", behaviour_in="acquisition",
                               n_rois=12, seed=6)
    with pytest.warns(UserWarning, match="stored rois × time"):
        resp = loaders.calcium_responses(truth.path, "natural_scenes_presentations", "frame",
                                         window=(0.0, 0.5), rois=[0, 3, 5])
    assert resp.attrs["orientation"] == "rois x time (transposed)"
    assert resp.attrs["timing"] == "timestamps"
    assert resp.attrs["series"] == "processing/ophys/dff/RoiResponseSeries"
    expected = brute_means(truth.extra["dff"][:, [0, 3, 5]], truth.extra["times"], truth.onsets,
                           [0.0, 0.5])[..., 0]
    np.testing.assert_allclose(resp.values, expected, atol=ATOL, rtol=0)
    # the dask-chunked reader on the transposed layout and a non-contiguous ROI selection
    with pytest.warns(UserWarning, match="stored rois × time"):
        chunked = loaders.calcium_responses(truth.path, "natural_scenes_presentations", "frame",
                                            window=(0.0, 0.5), rois=[0, 3, 5],
                                            max_in_memory_bytes=20_000)
    assert chunked.attrs["chunked"] == 1
    np.testing.assert_allclose(chunked.values, expected, atol=ATOL, rtol=0)


def test_fluorescence_container_and_series_choice(nwb_dir):
    truth = syn.write_mouse_2p(nwb_dir / "fluo.nwb", container="Fluorescence", n_rois=5,
                               n_objects=2, n_images_per_object=2, seed=7)
    resp = loaders.calcium_responses(truth.path, "natural_scenes_presentations", "frame",
                                     window=(0.0, 0.5))
    assert resp.attrs["units"] == "n.a." and "Fluorescence" in resp.attrs["series"]


def test_several_series_need_a_choice(twophoton):
    raw = loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                    window=(0.0, 0.5), series="RawFluorescence")
    assert raw.attrs["series"] == "processing/ophys/Fluorescence/RawFluorescence"
    with pytest.raises(LoaderError, match="matches none") as err:
        loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                  window=(0.0, 0.5), series="Deconvolved")
    assert "'processing/ophys/DfOverF/RoiResponseSeries'" in str(err.value)


def test_ambiguous_orientation_is_an_error(twophoton, tmp_path):
    path = tmp_path / "square.nwb"
    shutil.copy(twophoton.path, path)
    with h5py.File(path, "r+") as f:  # a writer that stored 30 samples of 30 ROIs, rate only
        name = "processing/ophys/DfOverF/RoiResponseSeries/data"
        attrs = dict(f[name].attrs)
        del f[name]
        f.create_dataset(name, data=np.zeros((30, 30)))
        for k, v in attrs.items():
            f[name].attrs[k] = v
    with pytest.raises(LoaderError, match="cannot tell which axis is time") as err:
        loaders.calcium_responses(path, "natural_scenes_presentations", "frame",
                                  window=(0.0, 0.5), series="DfOverF/RoiResponseSeries")
    assert str(path) in str(err.value)


def test_no_roi_series(macaque):
    with pytest.raises(LoaderError, match="has no RoiResponseSeries") as err:
        loaders.calcium_responses(macaque.path, "trials", "stimulus_presented", window=(0, 0.2))
    assert macaque.path in str(err.value)


def test_window_without_samples(twophoton):
    with pytest.raises(LoaderError, match="holds no sample") as err:
        loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                  window=(0.0, 0.01))
    assert twophoton.path in str(err.value)


def test_window_outside_the_series(twophoton):
    with pytest.raises(LoaderError, match="windows outside the series"):
        loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                  window=(0.0, 100.0))
