"""loaders.spike_responses on the macaque RSVP and Allen Neuropixels layouts and their variants.

Every loaded count is compared with a brute-force count (a loop over presentations, units and
bins on the writer's ground-truth spike trains), so the vectorized kernel, the ragged-array
read and the presentation/unit bookkeeping are all checked against an independent reference.
"""

import numpy as np
import pandas as pd
import pytest

import loaders
from loaders.synthetic import nwb as syn
from neurogeom import assembly as asm
from neurogeom.errors import LoaderError

from nwb_files import brute_counts, sha256, write_plain_units


def test_macaque_counts_match_brute_force(macaque):
    before = sha256(macaque.path)
    resp = loaders.spike_responses(macaque.path, "trials", "stimulus_presented",
                                   window=(0.07, 0.17), rate=False)
    assert resp.dims == ("presentation", "neuroid")
    assert resp.dtype.kind == "i"
    expected = brute_counts(macaque.spike_times, macaque.onsets, [0.07, 0.17])[..., 0]
    np.testing.assert_array_equal(resp.values, expected)
    assert sha256(macaque.path) == before  # read-only: the file is byte-identical


def test_macaque_rates_and_coords(macaque):
    resp = loaders.spike_responses(macaque.path, "trials", "stimulus_presented",
                                   window=(0.07, 0.17))
    counts = brute_counts(macaque.spike_times, macaque.onsets, [0.07, 0.17])[..., 0]
    # rate = count / window length, exactly (0.1 s); rtol covers float division only
    np.testing.assert_allclose(resp.values, counts / 0.1, rtol=1e-12)
    assert resp.attrs["units"] == "spikes/s" and resp.attrs["species"] == "Macaca mulatta"
    # stimulus_presented indexes order_of_images, not pynwb's alphabetical image order
    np.testing.assert_array_equal(resp["stimulus_id"].values, macaque.stimulus_ids)
    alphabetical = np.sort(macaque.extra["image_names"])
    assert not np.array_equal(alphabetical[macaque.extra["order"]], macaque.stimulus_ids)
    np.testing.assert_array_equal(resp["object_name"].values, macaque.object_names)
    np.testing.assert_array_equal(resp["fixation_correct"].values, macaque.extra["fixation_correct"])
    for col in ("trial_index", "stimulus_order_in_trial", "start_time", "stop_time",
                "presentation_id", "repetition"):
        assert col in resp.coords
    np.testing.assert_array_equal(resp["region"].values, macaque.regions)
    assert resp.attrs["region_source"] == "units.electrodes -> electrodes.location"
    assert resp["neuroid_id"].values[0] == "synthetic-macaque-rsvp-1/0"
    # derived repetitions: each image shown 4 times, numbered 0..3 in time order
    reps = pd.DataFrame({"s": resp["stimulus_id"].values, "r": resp["repetition"].values,
                         "t": resp["start_time"].values})
    for _, g in reps.groupby("s"):
        assert g.sort_values("t")["r"].tolist() == [0, 1, 2, 3]


def test_macaque_responses_are_tuned_object_manifolds(macaque):
    """Repetition-averaged rates recover the generating tuning (the file is not noise)."""
    resp = loaders.spike_responses(macaque.path, "trials", "stimulus_presented",
                                   window=(0.07, 0.17))
    avg = asm.average_repetitions(resp, ignore=["stimulus_presented", "fixation_correct"])
    groups = asm.manifolds(avg, by="object_name")
    assert len(groups) == 8 and all(len(p) == 8 for _, p in groups)
    names = macaque.extra["image_names"]
    truth = macaque.rates[[int(np.flatnonzero(names == s)[0]) for s in avg["stimulus_id"].values]]
    # evoked + background; 4 repeats of a 0.1 s window: Poisson noise sd ~ sqrt(r/0.4) ~ 7 Hz
    # against a tuning spread of ~8 Hz, so the correlation is well above chance but not 1
    r = np.corrcoef(avg.values.ravel(), truth.ravel())[0, 1]
    assert r > 0.6


def test_allen_layout_peak_channel_regions_and_bins(allen):
    edges = np.array([0.0, 0.05, 0.1, 0.2, 0.25])
    resp = loaders.spike_responses(allen.path, "natural_scenes_presentations", "frame",
                                   bins=edges, rate=False)
    assert resp.dims == ("presentation", "neuroid", "time_bin")
    np.testing.assert_array_equal(resp["time_bin_start"].values, edges[:-1])
    np.testing.assert_array_equal(resp.values, brute_counts(allen.spike_times, allen.onsets, edges))
    np.testing.assert_array_equal(resp["unit_id"].values, allen.unit_ids)
    assert resp["unit_id"].values.min() > 950_000_000
    np.testing.assert_array_equal(resp["region"].values, allen.regions)
    assert resp.attrs["region_source"] == \
        "units.peak_channel_id -> electrodes.id -> electrodes.location"
    np.testing.assert_array_equal(resp["stimulus_id"].values, allen.stimulus_ids)
    assert "-1" in set(resp["stimulus_id"].values)  # blanks are kept unless excluded


def test_allen_exclude_blanks_and_int_bins(allen):
    resp = loaders.spike_responses(allen.path, "natural_scenes_presentations", "frame",
                                   window=(0.05, 0.25), bins=4, exclude={"frame": -1})
    keep = allen.extra["frames"] >= 0
    assert resp.sizes["presentation"] == keep.sum()
    edges = np.linspace(0.05, 0.25, 5)
    expected = brute_counts(allen.spike_times, allen.onsets[keep], edges) / np.diff(edges)
    np.testing.assert_allclose(resp.values, expected, rtol=1e-12)
    assert resp.attrs["exclude"] == "frame=-1"


def test_other_intervals_table_and_overlapping_windows(allen):
    """Windows longer than the spacing of onsets overlap: the unsorted-edges path."""
    resp = loaders.spike_responses(allen.path, "flashes_presentations", "color",
                                   window=(-0.5, 2.5), rate=False)
    onsets = allen.extra["flash_onsets"]
    np.testing.assert_array_equal(resp.values[..., ] if resp.ndim == 2 else resp.values,
                                  brute_counts(allen.spike_times, onsets, [-0.5, 2.5])[..., 0])
    assert set(resp["stimulus_id"].values) == {"1", "-1"}


def test_selection_by_unit_and_region(allen):
    some = allen.unit_ids[[3, 0, 7]]
    resp = loaders.spike_responses(allen.path, "natural_scenes_presentations", "frame",
                                   window=(0.0, 0.25), units=some, rate=False)
    assert sorted(resp["unit_id"].values.tolist()) == sorted(some.tolist())
    rows = [int(np.flatnonzero(allen.unit_ids == u)[0]) for u in resp["unit_id"].values]
    expected = brute_counts([allen.spike_times[r] for r in rows], allen.onsets, [0.0, 0.25])
    np.testing.assert_array_equal(resp.values, expected[..., 0])
    visp = loaders.spike_responses(allen.path, "natural_scenes_presentations", "frame",
                                   window=(0.0, 0.25), region="VISp")
    assert set(visp["region"].values) == {"VISp"}
    assert visp.sizes["neuroid"] == int((allen.regions == "VISp").sum())


def test_dataframe_of_onsets(macaque):
    df = pd.DataFrame({"start_time": macaque.onsets[::5], "image": macaque.stimulus_ids[::5]})
    resp = loaders.spike_responses(macaque.path, df, "image", window=(0.07, 0.17), rate=False)
    expected = brute_counts(macaque.spike_times, macaque.onsets[::5], [0.07, 0.17])[..., 0]
    np.testing.assert_array_equal(resp.values, expected)
    np.testing.assert_array_equal(resp["stimulus_id"].values, macaque.stimulus_ids[::5])


@pytest.mark.parametrize("variant", ["units_location", "electrode_group"])
def test_region_from_other_tools(nwb_dir, variant):
    kw = ({"units_location": True} if variant == "units_location"
          else {"region_source": "electrode_group"})
    truth = syn.write_macaque_rsvp(nwb_dir / f"macaque_{variant}.nwb", n_objects=2,
                                   n_images_per_object=2, n_repetitions=2, n_units=6,
                                   regions=("V4", "pIT", "aIT"), seed=4, **kw)
    resp = loaders.spike_responses(truth.path, "trials", "stimulus_presented", window=(0.07, 0.17),
                                   rate=False)
    np.testing.assert_array_equal(resp["region"].values, truth.regions)
    assert set(truth.regions) == {"V4", "pIT", "aIT"}
    expected = {"units_location": "units.location",
                "electrode_group": "units.electrode_group.location"}[variant]
    assert resp.attrs["region_source"] == expected
    np.testing.assert_array_equal(
        resp.values, brute_counts(truth.spike_times, truth.onsets, [0.07, 0.17])[..., 0])
    from loaders.nwb.source import NWBSource

    with loaders.open_nwb(truth.path) as rec:  # the same through pynwb objects (zarr's path)
        other = loaders.spike_responses(NWBSource(rec.name, "zarr", nwbfile=rec.nwbfile),
                                        "trials", "stimulus_presented", window=(0.07, 0.17),
                                        rate=False)
    assert other.identical(resp)


def test_no_region_anywhere_warns_unknown(nwb_dir):
    rng = np.random.default_rng(0)
    trains = [np.sort(rng.uniform(0, 10, 50)) for _ in range(3)]
    path = write_plain_units(nwb_dir / "plain.nwb", trains, onsets=[1.0, 2.0, 3.0, 4.0])
    with pytest.warns(UserWarning, match="unknown"):
        resp = loaders.spike_responses(path, "trials", "stimulus", window=(0.0, 0.5), rate=False)
    assert set(resp["region"].values) == {"unknown"}
    np.testing.assert_array_equal(
        resp.values, brute_counts(trains, [1.0, 2.0, 3.0, 4.0], [0.0, 0.5])[..., 0])


def test_open_nwb_is_a_lazy_context_manager(macaque):
    with loaders.open_nwb(macaque.path) as rec:
        assert rec.kind == "local"
        dataset = rec.nwbfile.units["spike_times"].target.data
        assert type(dataset).__name__ == "Dataset"  # h5py dataset: nothing read yet
        a = loaders.spike_responses(rec, "trials", "stimulus_presented", window=(0.07, 0.17))
        b = loaders.spike_responses(rec, "trials", "stimulus_presented", window=(0.1, 0.2))
    assert a.shape == b.shape
    assert not dataset.id.valid  # closed on exit


# --------------------------------------------------------------------------------------------
# bad input: each a LoaderError naming the file and the part at fault
# --------------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nope.nwb"
    with pytest.raises(LoaderError, match="no such file") as err:
        loaders.spike_responses(path, "trials", "x", window=(0, 1))
    assert str(path) in str(err.value)


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.nwb"
    path.write_text("this is not HDF5\n" * 10)
    with pytest.raises(LoaderError, match="not an HDF5/NWB file") as err:
        loaders.spike_responses(path, "trials", "x", window=(0, 1))
    assert str(path) in str(err.value)


def test_hdf5_but_not_nwb(tmp_path):
    import h5py

    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(LoaderError, match="HDF5 file but not an NWB file") as err:
        loaders.spike_responses(path, "trials", "x", window=(0, 1))
    assert str(path) in str(err.value) and "'data'" in str(err.value)


def test_truncated_file(macaque, tmp_path):
    raw = open(macaque.path, "rb").read()
    path = tmp_path / "truncated.nwb"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(LoaderError, match="truncated or corrupt") as err:
        loaders.spike_responses(path, "trials", "stimulus_presented", window=(0, 0.1))
    assert str(path) in str(err.value)


def test_no_units_table(nwb_dir):
    truth = syn.write_mouse_2p(nwb_dir / "no_units.nwb", n_objects=2, n_images_per_object=2,
                               n_repetitions=1, n_rois=3, seed=5)
    with pytest.raises(LoaderError, match=r"no units table \(/units\)") as err:
        loaders.spike_responses(truth.path, "natural_scenes_presentations", "frame",
                                window=(0, 0.2))
    assert truth.path in str(err.value)


def test_unknown_intervals_table_lists_available(allen):
    with pytest.raises(LoaderError, match="no intervals table 'trials'") as err:
        loaders.spike_responses(allen.path, "trials", "frame", window=(0, 0.2))
    msg = str(err.value)
    assert allen.path in msg
    assert "'flashes_presentations', 'natural_scenes_presentations'" in msg


def test_unknown_stimulus_column_lists_columns(macaque):
    with pytest.raises(LoaderError, match="no stimulus column 'image_id'") as err:
        loaders.spike_responses(macaque.path, "trials", "image_id", window=(0, 0.2))
    msg = str(err.value)
    assert macaque.path in msg and "intervals table 'trials'" in msg
    assert "'stimulus_presented'" in msg and "'object_name'" in msg


def test_unknown_exclude_column(macaque):
    with pytest.raises(LoaderError, match="no column 'blank' to exclude on") as err:
        loaders.spike_responses(macaque.path, "trials", "stimulus_presented", window=(0, 0.2),
                                exclude={"blank": True})
    assert macaque.path in str(err.value)


@pytest.mark.parametrize("window", [(0.2, 0.1), (0.1, 0.1)])
def test_window_start_not_before_stop(macaque, window):
    with pytest.raises(LoaderError, match="window start must be < stop"):
        loaders.spike_responses(macaque.path, "trials", "stimulus_presented", window=window)


def test_nan_spike_times_name_the_unit(nwb_dir):
    trains = [np.array([0.5, 1.0, 2.0]), np.array([0.2, np.nan, 3.0]), np.array([1.5, 4.0])]
    path = write_plain_units(nwb_dir / "nan.nwb", trains, onsets=[1.0, 2.0])
    with pytest.warns(UserWarning, match="unknown"), \
            pytest.raises(LoaderError, match=r"unit 1 \(row 1\) has 1 NaN spike time") as err:
        loaders.spike_responses(path, "trials", "stimulus", window=(0, 0.5))
    assert path in str(err.value) and "units table" in str(err.value)


def test_unsorted_spike_times_are_sorted_with_a_warning(nwb_dir):
    trains = [np.array([3.0, 0.5, 1.2, 2.1, 1.1, 5.0]), np.array([0.3, 1.05, 2.2, 5.1])]
    path = write_plain_units(nwb_dir / "unsorted.nwb", trains, onsets=[1.0, 2.0, 3.0])
    before = sha256(path)
    with pytest.warns(UserWarning) as record:
        resp = loaders.spike_responses(path, "trials", "stimulus", window=(0, 0.5), rate=False)
    unsorted = [w for w in record if "unit 0 (row 0) are not sorted" in str(w.message)]
    assert len(unsorted) == 1 and unsorted[0].filename == __file__  # points at the caller
    expected = brute_counts([np.sort(t) for t in trains], [1.0, 2.0, 3.0], [0, 0.5])[..., 0]
    np.testing.assert_array_equal(resp.values, expected)
    assert sha256(path) == before  # sorted in memory, never in the file


def test_empty_selection(allen):
    with pytest.raises(LoaderError, match="empty selection") as err:
        loaders.spike_responses(allen.path, "natural_scenes_presentations", "frame",
                                window=(0, 0.2), units=[])
    assert allen.path in str(err.value)
    with pytest.raises(LoaderError, match="no presentations left") as err:
        loaders.spike_responses(allen.path, "flashes_presentations", "color", window=(0, 0.2),
                                exclude={"color": [1.0, -1.0]})
    assert "flashes_presentations" in str(err.value)
    with pytest.raises(LoaderError, match=r"unknown units id\(s\) 12") as err:
        loaders.spike_responses(allen.path, "natural_scenes_presentations", "frame",
                                window=(0, 0.2), units=[12])
    with pytest.raises(LoaderError, match=r"no units in region\(s\) 'V1'") as err:
        loaders.spike_responses(allen.path, "natural_scenes_presentations", "frame",
                                window=(0, 0.2), region="V1")
    assert "'VISp'" in str(err.value)


def test_infinite_onsets_are_named(macaque):
    df = pd.DataFrame({"start_time": [1.0, np.inf, 2.0], "stimulus": ["a", "b", "c"]})
    with pytest.raises(LoaderError, match=r"start_time is NaN or infinite in rows 1") as err:
        loaders.spike_responses(macaque.path, df, "stimulus", window=(0, 0.2))
    assert macaque.path in str(err.value)


def test_presentations_outside_the_recording(macaque):
    df = pd.DataFrame({"start_time": [1.0, 2.0, 1e5], "stimulus": ["a", "b", "c"]})
    with pytest.raises(LoaderError, match=r"1 presentation\(s\) have windows outside the "
                                          r"recording") as err:
        loaders.spike_responses(macaque.path, df, "stimulus", window=(0, 0.2))
    assert macaque.path in str(err.value) and "presentation_id 2" in str(err.value)


@pytest.mark.parametrize("layout", ["macaque", "allen"])
def test_pynwb_table_path_equals_hdf5_path(layout, macaque, allen):
    """Zarr stores are read through pynwb objects (tables.PynwbTable); run that path on the same
    files and require the same assembly as the direct-HDF5 path."""
    from loaders.nwb.source import NWBSource

    truth, args = {"macaque": (macaque, ("trials", "stimulus_presented")),
                   "allen": (allen, ("natural_scenes_presentations", "frame"))}[layout]
    direct = loaders.spike_responses(truth.path, *args, window=(0.05, 0.2), rate=False)
    with loaders.open_nwb(truth.path) as rec:
        through_pynwb = NWBSource(rec.name, "zarr", nwbfile=rec.nwbfile)
        assert through_pynwb.units().__class__.__name__ == "PynwbTable"
        other = loaders.spike_responses(through_pynwb, *args, window=(0.05, 0.2), rate=False)
        summary = loaders.nwb_summary(through_pynwb)
    assert other.identical(direct)
    assert summary["units"]["count"] == len(truth.spike_times)


def test_image_index_out_of_range_warns_and_keeps_raw_values(macaque):
    df = pd.DataFrame({"start_time": macaque.onsets[:3], "stimulus_presented": [0, 1, 999]})
    with pytest.warns(UserWarning, match="does not index the 64 images"):
        resp = loaders.spike_responses(macaque.path, df, "stimulus_presented", window=(0, 0.1))
    assert resp["stimulus_id"].values.tolist() == ["0", "1", "999"]
    assert "stimulus_map" not in resp.attrs
    ok = loaders.spike_responses(macaque.path, df.iloc[:2], "stimulus_presented", window=(0, 0.1))
    assert ok["stimulus_id"].values.tolist() == macaque.extra["image_names"][[0, 1]].tolist()


def test_window_and_bin_edges_must_agree(macaque):
    with pytest.raises(LoaderError, match="disagrees with the bin edges"):
        loaders.spike_responses(macaque.path, "trials", "stimulus_presented", window=(0, 0.2),
                                bins=[0.0, 0.1, 0.3])
    with pytest.raises(LoaderError, match="bin edges must increase"):
        loaders.spike_responses(macaque.path, "trials", "stimulus_presented",
                                bins=[0.0, 0.2, 0.1])


def test_region_falls_back_per_unit(nwb_dir):
    """A units `location` column left empty for some units: those fall back to their
    electrodes' location (the next rule), the others keep the column's value."""
    import h5py

    truth = syn.write_macaque_rsvp(nwb_dir / "partial_location.nwb", n_objects=2,
                                   n_images_per_object=2, n_repetitions=2, n_units=6,
                                   regions=("V4", "IT"), units_location=True, seed=10)
    with h5py.File(truth.path, "r+") as f:  # another tool left three entries empty
        loc = f["units/location"][()].astype(str).astype(object)
        loc[[1, 4, 5]] = ""
        loc[0] = "V4d"
        attrs = dict(f["units/location"].attrs)
        del f["units/location"]
        f.create_dataset("units/location", data=loc.astype(object), dtype=h5py.string_dtype())
        for k, v in attrs.items():
            f["units/location"].attrs[k] = v
    resp = loaders.spike_responses(truth.path, "trials", "stimulus_presented", window=(0, 0.1))
    expected = truth.regions.copy().astype(object)
    expected[0] = "V4d"
    np.testing.assert_array_equal(resp["region"].values, expected.astype(str))
    assert resp.attrs["region_source"] == \
        "units.location + units.electrodes -> electrodes.location"


# --------------------------------------------------------------------------------------------
# the counting kernel (loaders.nwb.counting) against the brute-force count, on adversarial
# inputs, through each of its paths
# --------------------------------------------------------------------------------------------

def _adversarial_trains(rng, abs_edges, n_units=6, n_random=300):
    """Spike trains that sit on the edges, one ulp either side of them, outside every window,
    and in bursts; plus an empty train and a one-spike train."""
    flat = abs_edges.ravel()
    lo, hi = flat.min(), flat.max()
    span = hi - lo
    trains = [np.array([]), np.array([flat[len(flat) // 2]])]
    for _ in range(n_units - 2):
        on = rng.choice(flat, size=min(flat.size, 60))
        parts = [on, np.nextafter(on, -np.inf), np.nextafter(on, np.inf),
                 rng.uniform(lo - 0.1 * span, hi + 0.1 * span, n_random),  # some outside all
                 [lo, hi, lo - 1.0, hi + 1.0],
                 rng.choice(flat, 3)[:, None] + rng.uniform(0, 1e-3, (3, 20))]  # bursts
        trains.append(np.sort(np.concatenate([np.ravel(p) for p in parts])))
    return trains


def _counted(trains, abs_edges, dtype=np.int64, n_threads=1):
    from loaders.nwb.counting import count_spikes, new_counts

    out = new_counts(abs_edges.shape[0], len(trains), abs_edges.shape[1] - 1, dtype)
    return count_spikes(trains, abs_edges, out, n_threads=n_threads)


def _grid_of(abs_edges):
    from loaders.nwb.counting import EdgeGrid

    return EdgeGrid(np.unique(abs_edges))


# name -> (onsets, relative edges); each exercises one path of count_spikes (checked below)
def _cases(rng):
    sorted_onsets = np.cumsum(rng.uniform(0.15, 0.4, 150))
    return {
        # non-overlapping windows in time order, no shared edge: the strided-view path
        "windows": (sorted_onsets, np.array([0.07, 0.17])),
        # abutting bins and windows (stop of one == start of the next): tied edges
        "abutting": (np.arange(100) * 0.25 + 3.0, np.array([0.0, 0.05, 0.125, 0.25])),
        # windows longer than the onset spacing, onsets in random order: the cumsum path
        "overlapping unsorted": (rng.permutation(sorted_onsets), np.array([-0.3, 0.1, 0.6])),
        # many narrow bins in short windows far apart: cells shared by several edges
        "clustered": (np.arange(40) * 50.0 + rng.uniform(0, 1, 40),
                      np.linspace(0.0, 0.002, 9)),
        # one dense cluster and one far outlier: cells too full for the comparison passes
        "cluster and outlier": (np.concatenate([rng.uniform(0, 1, 60), [5e4]]),
                                np.array([0.0, 1e-4, 3e-4])),
    }


@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("method", ["chosen", "grid", "search"])
@pytest.mark.parametrize("case", ["windows", "abutting", "overlapping unsorted", "clustered",
                                  "cluster and outlier"])
def test_counting_kernel_matches_brute_force(monkeypatch, case, method, n_threads):
    """Every train through the grid, every train searched for the edges, or each as chosen by
    the cost model, in one thread or several: the same counts as the brute-force loop."""
    from loaders.nwb import counting

    cost = {"chosen": counting.SEARCH_STEP_COST, "grid": 1e300, "search": 0.0}[method]
    monkeypatch.setattr(counting, "SEARCH_STEP_COST", cost)
    rng = np.random.default_rng(7)
    onsets, edges = _cases(rng)[case]
    abs_edges = onsets[:, None] + edges[None, :]
    trains = _adversarial_trains(rng, abs_edges)
    expected = brute_counts(trains, onsets, edges)
    np.testing.assert_array_equal(_counted(trains, abs_edges, n_threads=n_threads), expected)
    rates = _counted(trains, abs_edges, np.float64)  # a float output is filled the same
    np.testing.assert_array_equal(rates, expected.astype(np.float64))


def test_counting_kernel_cases_reach_every_path():
    """The cases above are not all the easy path: check which machinery each one uses."""
    cases = _cases(np.random.default_rng(7))
    grids = {name: _grid_of(o[:, None] + e[None, :]) for name, (o, e) in cases.items()}
    assert grids["windows"].n_passes == 1
    flat = (cases["abutting"][0][:, None] + cases["abutting"][1][None, :]).ravel()
    assert np.unique(flat).size < flat.size  # shared edges
    assert grids["clustered"].n_passes > 1
    assert grids["cluster and outlier"].crowded_values is not None


@pytest.mark.parametrize("cap", [16, 64, 1 << 20])
@pytest.mark.parametrize("passes, multi_share", [(1, 0.0), (2, 0.0), (3, 0.0), (3, 1.0)])
def test_counting_kernel_with_coarse_grids(monkeypatch, cap, passes, multi_share):
    """Coarse grids (few cells for many edges) force multi-edge cells, the comparison passes
    and the direct count of bins with an edge in a crowded cell; the counts must not change."""
    from loaders.nwb import counting

    monkeypatch.setattr(counting, "MIN_CELL_CAP", cap)
    monkeypatch.setattr(counting, "MAX_CELLS_PER_EDGE", 1)
    monkeypatch.setattr(counting, "CELLS_PER_EDGE", 1)
    monkeypatch.setattr(counting, "MAX_PASSES", passes)
    monkeypatch.setattr(counting, "MULTI_PASS_SHARE", multi_share)
    monkeypatch.setattr(counting, "SEARCH_STEP_COST", 1e300)  # every train through the grid
    rng = np.random.default_rng(cap + passes)
    onsets = np.sort(rng.uniform(0, 30, 120))
    edges = np.array([0.0, 0.01, 0.02, 0.2, 0.21])
    for order in (np.arange(onsets.size), rng.permutation(onsets.size)):  # both output paths
        abs_edges = onsets[order, None] + edges[None, :]
        trains = _adversarial_trains(rng, abs_edges)
        np.testing.assert_array_equal(_counted(trains, abs_edges),
                                      brute_counts(trains, onsets[order], edges))
    grid = _grid_of(abs_edges)
    assert grid.n_passes <= (1 if multi_share else passes)
    if cap == 16:  # 16 cells for 600 edges: full cells whatever the passes
        assert grid.n_passes == (1 if multi_share else passes)
        assert grid.crowded_values is not None


def test_edge_grid_cumulative_counts_are_exact():
    """Spikes before each edge, read off the grid's histogram, equal searchsorted exactly, for
    spikes on the edges, one ulp either side and everywhere between: for every edge, bar those
    the grid declares crowded (whose bins count directly)."""
    from loaders.nwb.counting import EdgeGrid

    rng = np.random.default_rng(3)
    values = np.unique(np.concatenate([np.cumsum(rng.exponential(1.0, 500)),
                                       1e3 + rng.uniform(0, 1e-6, 50)]))  # a tight cluster
    grid = EdgeGrid(values)
    assert grid.crowded_values is not None and grid.crowded_values.sum() >= 50
    t = np.sort(np.concatenate([values, np.nextafter(values, -np.inf),
                                np.nextafter(values, np.inf),
                                rng.uniform(values[0], values[-1], 5000)]))
    before = np.cumsum(grid.histogram(t, grid.workspace(t.size)))[:values.size]
    a = np.searchsorted(t, values[0], side="left")  # spikes before the first edge are left out
    expected = np.searchsorted(t, values, side="left") - a
    exact = ~grid.crowded_values
    np.testing.assert_array_equal(before[exact], expected[exact])


def test_spikes_exactly_on_window_edges_through_a_file(nwb_dir):
    """All the way from a file: spikes on onset + start count, spikes on onset + stop do not."""
    onsets = np.array([1.0, 1.5, 2.0, 2.25])
    window = (0.0, 0.25)
    on_edges = (onsets[:, None] + np.array(window)[None, :]).ravel()
    trains = [np.sort(np.concatenate([on_edges, np.nextafter(on_edges, -np.inf)])),
              np.array([]), np.array([0.1, 9.0])]
    path = write_plain_units(nwb_dir / "edges.nwb", trains, onsets=onsets)
    with pytest.warns(UserWarning, match="unknown"):
        resp = loaders.spike_responses(path, "trials", "stimulus", window=window, rate=False)
    np.testing.assert_array_equal(resp.values, brute_counts(trains, onsets, window)[..., 0])


@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_threads_report_the_first_bad_unit_and_warn_in_row_order(n_threads):
    """Trains are checked where they are counted, possibly in worker threads: the NaN error
    still names the lowest selected unit, and the sorting warnings come from the caller's
    thread, in row order, whatever the threads' timing."""
    from loaders.nwb.counting import count_spikes, new_counts
    from loaders.nwb.spikes import UnitTrains

    rng = np.random.default_rng(5)
    lengths = rng.integers(2, 40, 24)
    lengths[[2, 9]] = [0, 1]  # an empty train and a one-spike train, left out of the selection
    ends = np.cumsum(lengths)
    starts = ends - lengths
    flat = np.sort(rng.uniform(0, 10, ends[-1]))
    flat[starts[3]:ends[3]] = flat[starts[3]:ends[3]][::-1].copy()  # unsorted
    flat[starts[17]:ends[17]] = flat[starts[17]:ends[17]][::-1].copy()
    ids = np.arange(24) * 10
    edges = np.arange(1.0, 9.0, 0.5)[:, None] + np.array([0.0, 0.25])[None, :]
    rows = np.flatnonzero(lengths > 1)
    trains = UnitTrains(flat.copy(), starts, ends, rows, ids, "f.nwb: units table")
    out = count_spikes(trains, edges, new_counts(edges.shape[0], rows.size, 1, np.int64),
                       n_threads=n_threads)
    sorted_trains = [np.sort(flat[starts[r]:ends[r]]) for r in rows]
    np.testing.assert_array_equal(out, brute_counts(sorted_trains, edges[:, 0], [0.0, 0.25]))
    with pytest.warns(UserWarning) as record:
        trains.warn_sorted()
    assert [str(w.message) for w in record] == [
        f"f.nwb: units table: spike times of unit {ids[r]} (row {r}) are not sorted; sorting them"
        for r in (3, 17)]
    bad = flat.copy()
    bad[starts[rows[-2]]] = np.nan  # in another thread than rows[5] (interleaved units)
    bad[starts[rows[5]] + 1] = np.nan  # the lowest selected unit with a NaN
    trains = UnitTrains(bad, starts, ends, rows, ids, "f.nwb: units table")
    with pytest.raises(LoaderError, match=rf"unit {ids[rows[5]]} \(row {rows[5]}\) has 1 NaN"):
        count_spikes(trains, edges, new_counts(edges.shape[0], rows.size, 1, np.int64),
                     n_threads=n_threads)


def test_image_names_from_reference_addresses_equal_dereferencing(macaque):
    """order_of_images is resolved by matching reference addresses in bulk; dereferencing each
    reference (the slow, obvious way) must give the same names in the same order."""
    import h5py

    from loaders.nwb.source import _reference_names, _reference_names_slowly

    with h5py.File(macaque.path, "r") as f:
        group = f["stimulus/presentation"][next(iter(f["stimulus/presentation"]))]
        refs = group["order_of_images"]
        fast = _reference_names(f, group, refs)
        slow = _reference_names_slowly(f, group, refs[()])
    assert fast == slow and len(fast) == len(set(fast)) > 1
