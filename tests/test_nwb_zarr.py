"""NWB zarr stores (read with hdmf-zarr): every loader gives what it gives on the HDF5 file.

Each synthetic layout is written as HDF5 and exported to a zarr store with
``loaders.synthetic.to_zarr``; the loaders then read the store through pynwb objects
(``PynwbTable``), a path independent of the raw-h5py one HDF5 files take, so equality with the
HDF5 result plus the brute-force counts checks both.
"""

import contextlib
import hashlib
import json
import os

import numpy as np
import pytest
import xarray as xr

import loaders
from loaders.synthetic import nwb as syn
from neurogeom import io as ngio
from neurogeom_cli import main
from neurogeom.errors import LoaderError

from nwb_files import brute_counts

pytest.importorskip("hdmf_zarr")


def tree_hashes(folder):
    """sha256 of every file under ``folder``, by relative path (a store is many files)."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@contextlib.contextmanager
def unchanged(*stores):
    """Assert that loading inside the block leaves every file of every store byte-identical."""
    before = [tree_hashes(s) for s in stores]
    assert all(before)
    yield
    assert [tree_hashes(s) for s in stores] == before


def same(zarr_result, h5_result):
    """Identical data, coords and attrs; only ``source`` (the path) differs."""
    assert zarr_result.attrs["source"].endswith(".zarr")
    xr.testing.assert_identical(zarr_result,
                                h5_result.assign_attrs(source=zarr_result.attrs["source"]))


@pytest.fixture(scope="module")
def stores(nwb_dir, macaque, allen, twophoton):
    return {name: syn.to_zarr(truth.path, nwb_dir / f"{name}.nwb.zarr")
            for name, truth in (("macaque", macaque), ("allen", allen),
                                ("twophoton", twophoton))}


def test_export_is_a_complete_nwb_zarr_store(stores, nwb_dir):
    for store in stores.values():
        assert os.path.isfile(os.path.join(store, ".zgroup"))
        with loaders.open_nwb(store) as rec:
            assert rec.kind == "zarr"
            assert rec.nwbfile.identifier  # pynwb object tree built from the store
    # written into a temporary folder renamed into place: nothing else left beside the stores
    assert not [p for p in os.listdir(nwb_dir) if p.endswith(".tmp")]


def test_spikes_from_zarr_match_hdf5_and_brute_force(stores, macaque, allen):
    with unchanged(stores["macaque"], stores["allen"]):
        args = ("trials", "stimulus_presented")
        z = loaders.spike_responses(stores["macaque"], *args, window=(0.07, 0.17), rate=False)
        h = loaders.spike_responses(macaque.path, *args, window=(0.07, 0.17), rate=False)
        np.testing.assert_array_equal(
            z.values, brute_counts(macaque.spike_times, macaque.onsets, [0.07, 0.17])[..., 0])
        np.testing.assert_array_equal(z["stimulus_id"].values, macaque.stimulus_ids)
        # regions through units.electrodes -> electrodes.location (a DynamicTableRegion in zarr)
        np.testing.assert_array_equal(z["region"].values, macaque.regions)
        same(z, h)
        # binned windows, a region selection and an exclusion on an intervals column
        kw = dict(bins=[0.0, 0.1, 0.2, 0.3], region="IT", exclude={"fixation_correct": False})
        same(loaders.spike_responses(stores["macaque"], *args, **kw),
             loaders.spike_responses(macaque.path, *args, **kw))

        args = ("natural_scenes_presentations", "frame")
        z = loaders.spike_responses(stores["allen"], *args, window=(0.05, 0.25), rate=False)
        h = loaders.spike_responses(allen.path, *args, window=(0.05, 0.25), rate=False)
        np.testing.assert_array_equal(
            z.values, brute_counts(allen.spike_times, allen.onsets, [0.05, 0.25])[..., 0])
        # regions through units.peak_channel_id -> electrodes.id -> electrodes.location
        np.testing.assert_array_equal(z["region"].values, allen.regions)
        same(z, h)


def test_calcium_and_binned_from_zarr_match_hdf5(stores, allen, twophoton):
    with unchanged(stores["twophoton"], stores["allen"]):
        kw = dict(window=(0.0, 0.5), baseline=(-0.2, 0.0), exclude={"frame": -1})
        args = ("natural_scenes_presentations", "frame")
        z = loaders.calcium_responses(stores["twophoton"], *args, **kw)
        same(z, loaders.calcium_responses(twophoton.path, *args, **kw))
        assert np.isfinite(z.values).all() and z.sizes["presentation"] > 0

        kw = dict(epoch=(1.0, 5.0), covariates="head_direction")
        z = loaders.binned_activity(stores["twophoton"], 0.5, **kw)
        same(z, loaders.binned_activity(twophoton.path, 0.5, **kw))
        assert z.sizes["time"] == 8 and "head_direction" in z.coords

        z = loaders.binned_activity(stores["allen"], 0.25, epoch=(1.0, 3.0), rate=False)
        same(z, loaders.binned_activity(allen.path, 0.25, epoch=(1.0, 3.0), rate=False))
        # bins [1.0, 1.25), …, [2.75, 3.0): the direct count of every unit in every bin
        edges = np.arange(1.0, 3.0 + 1e-9, 0.25) - 1.0
        np.testing.assert_array_equal(z.values,
                                      brute_counts(allen.spike_times, [1.0], edges)[0].T)


def test_summary_inspect_and_load_on_zarr(stores, macaque, allen, twophoton, tmp_path, capsys):
    with unchanged(*stores.values()):
        for name, truth in (("macaque", macaque), ("allen", allen), ("twophoton", twophoton)):
            z, h = loaders.nwb_summary(stores[name]), loaders.nwb_summary(truth.path)
            assert z.pop("format") == "NWB (zarr)" and h.pop("format") == "NWB (HDF5)"
            assert z.pop("source") == stores[name]
            h.pop("source")
            assert z == h, name

        assert main(["inspect", stores["macaque"], "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["units"]["count"] == len(macaque.spike_times) == 48

        out = tmp_path / "spikes.nc"
        assert main(["load", stores["macaque"], "--spikes", "--intervals", "trials",
                     "--stimulus", "stimulus_presented", "--window", "0.07", "0.17",
                     "-o", str(out)]) == 0
        same(ngio.open(out), loaders.spike_responses(macaque.path, "trials", "stimulus_presented",
                                                    window=(0.07, 0.17)))
        out = tmp_path / "calcium.nc"
        assert main(["load", stores["twophoton"], "--calcium", "--intervals",
                     "natural_scenes_presentations", "--stimulus", "frame", "--window", "0",
                     "0.5", "-o", str(out)]) == 0
        same(ngio.open(out), loaders.calcium_responses(
            twophoton.path, "natural_scenes_presentations", "frame", window=(0.0, 0.5)))
        out = tmp_path / "binned.nc"
        assert main(["load", stores["allen"], "--binned", "--bin-size", "0.05", "--epoch",
                     "natural_scenes_presentations", "-o", str(out)]) == 0
        same(ngio.open(out), loaders.binned_activity(allen.path, 0.05,
                                                    epoch="natural_scenes_presentations"))


@pytest.mark.filterwarnings("ignore:Inferred dtype:UserWarning")  # hdmf-zarr on a non-NWB group
def test_zarr_bad_inputs_name_the_store(tmp_path, stores):
    import zarr

    missing = tmp_path / "missing.nwb.zarr"
    with pytest.raises(LoaderError, match="no such zarr store") as err:
        loaders.nwb_summary(missing)
    assert str(missing) in str(err.value)

    plain = tmp_path / "notes.zarr"  # a folder named like a store, holding no zarr group
    plain.mkdir()
    (plain / "readme.txt").write_text("not zarr\n")
    with pytest.raises(LoaderError, match=r"not an NWB zarr store.*'readme.txt'") as err:
        loaders.spike_responses(plain, "trials", "x", window=(0, 1))
    assert str(plain) in str(err.value)

    v3 = tmp_path / "v3.zarr"  # zarr format 3 metadata: hdmf-zarr reads format 2 only
    v3.mkdir()
    (v3 / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    with pytest.raises(LoaderError, match="zarr format 3 store") as err:
        loaders.nwb_summary(v3)
    assert str(v3) in str(err.value)

    other = tmp_path / "features.zarr"  # a zarr group, but not NWB
    zarr.open_group(str(other), mode="w").create_dataset("x", data=np.arange(3))
    with pytest.raises(LoaderError, match="not an NWB zarr store: its root's .zattrs do not "
                                          "make it an 'NWBFile'") as err:
        loaders.nwb_summary(other)
    assert str(other) in str(err.value)

    # a known store still reports the tables it has when asked for one it has not
    with pytest.raises(LoaderError, match=r"no intervals table 'trials'.*natural_scenes"):
        loaders.spike_responses(stores["allen"], "trials", "frame", window=(0, 0.1))


def test_pickle_coded_references_are_refused_not_unpickled(tmp_path):
    """hdmf-zarr's default codec for object references is Pickle; loading must not unpickle."""
    from hdmf_zarr.nwb import NWBZarrIO
    from pynwb import NWBHDF5IO

    truth = syn.write_macaque_rsvp(tmp_path / "small.nwb", n_objects=2, n_images_per_object=2,
                                   n_units=4, seed=5)
    store = tmp_path / "pickled.nwb.zarr"
    with NWBHDF5IO(truth.path, "r") as src, NWBZarrIO(str(store), mode="w") as out:
        out.export(src_io=src, write_args={"link_data": False})
    with unchanged(store):
        with pytest.raises(LoaderError, match="Pickle codec") as err:
            loaders.nwb_summary(store)
    assert str(store) in str(err.value)


def test_other_tool_variants_from_zarr(tmp_path):
    """Region only on the electrode group (object references in zarr) and ROI traces stored
    rois × time (detected, transposed, one warning naming the store) load as from HDF5."""
    small = dict(n_objects=2, n_images_per_object=2, seed=9)
    truth = syn.write_macaque_rsvp(tmp_path / "group.nwb", n_units=4,
                                   region_source="electrode_group", **small)
    store = syn.to_zarr(truth.path, tmp_path / "group.nwb.zarr")
    args = ("trials", "stimulus_presented")
    with unchanged(store):
        z = loaders.spike_responses(store, *args, window=(0.07, 0.17), rate=False)
    np.testing.assert_array_equal(z["region"].values, truth.regions)
    np.testing.assert_array_equal(
        z.values, brute_counts(truth.spike_times, truth.onsets, [0.07, 0.17])[..., 0])
    same(z, loaders.spike_responses(truth.path, *args, window=(0.07, 0.17), rate=False))

    truth = syn.write_mouse_2p(tmp_path / "odd.nwb", n_rois=4, orientation="rois_by_time",
                               **small)
    store = syn.to_zarr(truth.path, tmp_path / "odd.nwb.zarr")
    args = ("natural_scenes_presentations", "frame")
    with unchanged(store), pytest.warns(UserWarning, match="rois × time") as record:
        z = loaders.calcium_responses(store, *args, window=(0.0, 0.5))
    assert [str(store) in str(w.message) for w in record] == [True]
    with pytest.warns(UserWarning, match="rois × time"):
        same(z, loaders.calcium_responses(truth.path, *args, window=(0.0, 0.5)))
