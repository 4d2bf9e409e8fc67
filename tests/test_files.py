"""Saved features (npy/npz/h5/pt/nc/zarr) and Brain-Score conversion: exact round trips, bad files."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from loaders.files import from_brainscore, read_features, to_brainscore, write_features
from neurogeom import assembly as asm
from neurogeom.errors import LoaderError

from conftest import make_assembly

ROUND_TRIP = ["npz", "h5", "pt", "nc", "zarr"]


@pytest.fixture
def feats():
    a = make_assembly(n_stim=5, n_rep=2, n_neuroids=4).astype(np.float32)
    a.attrs.update({"layers": ["a", "b"], "n_components": 7, "scale": 0.25})
    a.name = "fc"
    return a


def binned(seed=0):
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        rng.standard_normal((4, 3, 2)), dims=("presentation", "neuroid", "time_bin"),
        coords={"stimulus_id": ("presentation", ["im0", "im1", "im2", "im3"]),
                "object_name": ("presentation", ["car", "car", "dog", "dog"]),
                "repetition": ("presentation", [0, 0, 0, 0]),
                "neuroid_id": ("neuroid", ["Chabo.A-1", "Chabo.A-2", "Tito.B-7"]),
                "region": ("neuroid", ["V4", "IT", "IT"]),
                "time_bin_start": ("time_bin", [0.07, 0.17]),
                "time_bin_end": ("time_bin", [0.17, 0.27])},
        attrs={"units": "spikes/s", "source": "test"})


# --- write_features / read_features ---------------------------------------------------------

@pytest.mark.parametrize("fmt", ROUND_TRIP)
def test_round_trip_is_identical(fmt, feats, tmp_path):
    path = write_features(feats, tmp_path / f"f.{fmt}")
    back = read_features(path)
    xr.testing.assert_identical(back.compute(), feats)
    assert back.dtype == feats.dtype
    assert [p.name for p in tmp_path.iterdir()] == [f"f.{fmt}"]  # no temp file left


@pytest.mark.parametrize("fmt", ROUND_TRIP)
def test_round_trip_time_binned(fmt, tmp_path):
    a = binned()
    back = read_features(write_features(a, tmp_path / f"b.{fmt}"))
    xr.testing.assert_identical(back.compute(), a)


@pytest.mark.parametrize("fmt", ROUND_TRIP)
def test_select_stimuli_by_id(fmt, tmp_path):
    a = binned()
    path = write_features(a, tmp_path / f"b.{fmt}")
    sub = read_features(path, stimulus_ids=["im2", "im0"])
    xr.testing.assert_identical(sub.compute(), a.isel(presentation=[2, 0]))
    with pytest.raises(LoaderError, match=r"not in the file: 'im9'.*'im0'"):
        read_features(path, stimulus_ids=["im0", "im9"])


def test_model_activations_round_trip_through_zarr_lazily(tmp_path):
    import loaders
    net = loaders.synthetic.untrained_convnet()
    a = loaders.model_activations(net, torch.rand(6, 1, 8, 8), "block1.conv", progress=False,
                                  memory_budget=1000, spill_dir=tmp_path / "spill")["block1.conv"]
    path = write_features(a, tmp_path / "acts.zarr")
    back = read_features(path)
    import dask.array as da
    assert isinstance(back.data, da.Array)
    xr.testing.assert_identical(back.compute(), a.compute())


def test_npy_holds_values_only(feats, tmp_path):
    with pytest.warns(UserWarning, match="values only"):
        path = write_features(feats, tmp_path / "f.npy")
    with pytest.raises(LoaderError, match="stores no stimulus ids.*10 ids"):
        read_features(path)
    ids = [f"x{i}" for i in range(10)]
    a = read_features(path, stimulus_ids=ids)
    np.testing.assert_array_equal(a.values, feats.values)
    assert list(a["stimulus_id"].values) == ids
    assert list(a["neuroid_id"].values) == ["f.0", "f.1", "f.2", "f.3"]


def test_files_from_other_tools(tmp_path):
    import h5py
    x = np.arange(24, dtype=np.float64).reshape(3, 2, 2, 2)  # rows of conv maps: flattened
    ids = np.array(["a", "b", "c"])
    np.savez(tmp_path / "o.npz", activations=x, stimulus_ids=ids)
    with h5py.File(tmp_path / "o.h5", "w") as f:
        f["feats"] = x
        f["image_id"] = ids.astype(object).astype(h5py.string_dtype())
    torch.save({"features": torch.from_numpy(x), "ids": ids.tolist()}, tmp_path / "o.pt")
    torch.save(torch.from_numpy(x), tmp_path / "bare.pt")
    for a in (read_features(tmp_path / "o.npz"), read_features(tmp_path / "o.h5", key="feats"),
              read_features(tmp_path / "o.pt"),
              read_features(tmp_path / "bare.pt", stimulus_ids=ids)):
        asm.validate(a)
        np.testing.assert_array_equal(a.values, x.reshape(3, 8))
        assert list(a["stimulus_id"].values) == ["a", "b", "c"]
    with pytest.raises(LoaderError, match=r"no features array.*available: 'feats', 'image_id'"):
        read_features(tmp_path / "o.h5")


class Exploit:
    """Unpickling this would run os.mkdir(marker): the test checks it never happens."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pt_with_pickled_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"features": torch.zeros(2, 2), "stimulus_id": ["a", "b"],
                "payload": Exploit(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(LoaderError, match="refused.*weights_only"):
        read_features(tmp_path / "evil.pt")
    assert not marker.exists()


def test_bad_files(feats, tmp_path):
    with pytest.raises(LoaderError, match="unknown feature file type '.csv'"):
        read_features(tmp_path / "f.csv")
    with pytest.raises(LoaderError, match="no such file"):
        read_features(tmp_path / "missing.npz")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(LoaderError, match="pickled objects"):
        read_features(tmp_path / "obj.npy", stimulus_ids=["a"])
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(LoaderError, match="not a readable HDF5"):
        read_features(tmp_path / "junk.h5")
    np.savez(tmp_path / "short.npz", features=np.zeros((3, 2)), stimulus_id=np.array(["a", "b"]))
    with pytest.raises(LoaderError, match="2 stimulus ids for 3 rows"):
        read_features(tmp_path / "short.npz")


def test_zarr_store_layout_and_bad_stores(feats, tmp_path):
    """Feature stores are written with the zarr API (zarr 2 here) in xarray's layout: format 2,
    one array per variable naming its dims, so xarray.open_zarr reads them elsewhere too."""
    import dask.array as da
    import json
    import zarr

    lazy = feats.chunk({"presentation": 4})
    path = write_features(lazy, tmp_path / "f.zarr")
    meta = json.loads((path / "fc" / ".zarray").read_text())
    assert meta["zarr_format"] == 2 and meta["chunks"] == [4, 4]  # dask chunks kept
    attrs = json.loads((path / "fc" / ".zattrs").read_text())
    assert attrs["_ARRAY_DIMENSIONS"] == ["presentation", "neuroid"]
    assert set(attrs["coordinates"].split()) == set(feats.coords) - set(feats.dims)
    back = read_features(path)
    assert isinstance(back.data, da.Array) and back.data.chunks[0] == (4, 4, 2)
    xr.testing.assert_identical(back.compute(), feats)

    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(LoaderError, match="not a readable zarr store") as err:
        read_features(tmp_path / "empty.zarr")
    assert "empty.zarr" in str(err.value)
    raw = zarr.open_group(str(tmp_path / "raw.zarr"), mode="w")
    raw.create_dataset("features", data=np.zeros((2, 2)), shape=(2, 2))
    with pytest.raises(LoaderError, match=r"arrays 'features' do not name their dims"):
        read_features(tmp_path / "raw.zarr")


def test_failed_write_leaves_old_file(feats, tmp_path):
    path = write_features(feats, tmp_path / "f.pt")
    before = path.read_bytes()
    bad = feats.assign_coords(when=("presentation", pd.date_range("2020", periods=10)))
    with pytest.raises(LoaderError, match="datetimes"):
        write_features(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]


# --- Brain-Score ----------------------------------------------------------------------------

def brainio_style():
    """An assembly as BrainIO builds it: MultiIndex dims, neuroid first, image_id, ms bins."""
    rng = np.random.default_rng(1)
    a = xr.DataArray(
        rng.standard_normal((3, 4, 2)), dims=("neuroid", "presentation", "time_bin"),
        coords={"neuroid_id": ("neuroid", ["A-1", "A-2", "B-7"]),
                "region": ("neuroid", ["V4", "IT", "IT"]),
                "animal": ("neuroid", ["Chabo", "Chabo", "Tito"]),
                "image_id": ("presentation", ["i0", "i1", "i0", "i1"]),
                "repetition": ("presentation", [0, 0, 1, 1]),
                "category_name": ("presentation", ["car", "dog", "car", "dog"]),
                "time_bin_start": ("time_bin", [70, 170]),
                "time_bin_end": ("time_bin", [170, 270])},
        attrs={"stimulus_set_identifier": "dicarlo.test", "identifier": "dicarlo.Test2026"})
    a = a.set_index(append=True, neuroid=["neuroid_id", "region", "animal"],
                    presentation=["image_id", "repetition", "category_name"],
                    time_bin=["time_bin_start", "time_bin_end"])
    a.attrs["stimulus_set"] = pd.DataFrame({"stimulus_id": ["i0", "i1"]})
    return a


def load_like_brainio(path):
    """What BrainIO's AssemblyLoader does: open the one variable, MultiIndex every dim's coords."""
    a = xr.open_dataarray(path, engine="h5netcdf").load()
    if "image_id" in a.coords and "stimulus_id" not in a.coords:
        a = a.assign_coords(stimulus_id=("presentation", a["image_id"].values))
    levels = {d: [n for n, c in a.coords.items() if c.dims == (d,) and n != d] for d in a.dims}
    return a.set_index(append=True, **{d: v for d, v in levels.items() if v})


def levels(a):
    return {n: np.asarray(a[n].values) for n, c in a.coords.items() if n not in a.dims}


def test_from_brainscore_multiindex():
    bs = brainio_style()
    a = from_brainscore(bs)
    asm.validate(a)
    assert a.dims == ("presentation", "neuroid", "time_bin")
    assert not any(isinstance(i, pd.MultiIndex) for i in a.indexes.values())
    assert list(a["stimulus_id"].values) == ["i0", "i1", "i0", "i1"]
    assert list(a["image_id"].values) == ["i0", "i1", "i0", "i1"]
    np.testing.assert_array_equal(a["time_bin_start"].values, [0.07, 0.17])
    np.testing.assert_array_equal(a["time_bin_end"].values, [0.17, 0.27])
    np.testing.assert_array_equal(a.values, bs.values.transpose(1, 0, 2))
    assert a.attrs["dropped_attrs"] == ["stimulus_set"]
    assert a.attrs["identifier"] == "dicarlo.Test2026"
    for name in ("neuroid_id", "region", "animal", "repetition", "category_name"):
        np.testing.assert_array_equal(a[name].values, bs[name].values)
    mean = asm.average_repetitions(a)
    assert list(mean["stimulus_id"].values) == ["i0", "i1"]


def test_brainscore_to_ours_to_brainscore_keeps_every_coord_and_value(tmp_path):
    bs = brainio_style()
    path = to_brainscore(from_brainscore(bs), tmp_path / "bs.nc")
    back = load_like_brainio(path)
    assert set(back.dims) == set(bs.dims)
    np.testing.assert_array_equal(back.transpose(*bs.dims).values, bs.values)
    original, loaded = levels(bs), levels(back)
    for name, values in original.items():
        np.testing.assert_array_equal(loaded[name], values, err_msg=name)  # ms, exactly
    assert set(loaded) - set(original) == {"stimulus_id"}  # BrainIO's own legacy alias


def test_ours_to_brainscore_to_ours_is_identical(tmp_path):
    ours = binned().rename("it_responses")
    path = to_brainscore(ours, tmp_path / "ours.nc", stimulus_set_identifier="neurogeom.test")
    bs = load_like_brainio(path)
    assert isinstance(bs.indexes["presentation"], pd.MultiIndex)
    assert "stimulus_id" in bs.indexes["presentation"].names
    np.testing.assert_array_equal(bs["time_bin_start"].values, [70.0, 170.0])  # BrainIO's ms
    assert bs.attrs["stimulus_set_identifier"] == "neurogeom.test"
    back = from_brainscore(path)
    expected = ours.assign_attrs(stimulus_set_identifier="neurogeom.test")
    xr.testing.assert_identical(back, expected)
    xr.testing.assert_identical(read_features(path), expected)  # read_features knows the layout
    xr.testing.assert_identical(from_brainscore(bs), expected)  # the in-memory MultiIndex form


def test_file_written_by_brainio_packaging(tmp_path):
    """BrainIO's write_netcdf: reset the MultiIndexes, drop DataFrame attrs, one var 'data'."""
    bs = brainio_style()
    flat = bs.reset_index(list(bs.indexes))
    flat.attrs = {k: v for k, v in flat.attrs.items() if not isinstance(v, pd.DataFrame)}
    flat.to_dataset(name="data", promote_attrs=True).to_netcdf(tmp_path / "pkg.nc",
                                                               engine="h5netcdf")
    a = from_brainscore(tmp_path / "pkg.nc")
    xr.testing.assert_identical(a, from_brainscore(bs).drop_attrs().assign_attrs(
        stimulus_set_identifier="dicarlo.test", identifier="dicarlo.Test2026"))


def test_brainscore_bad_input(tmp_path):
    bs = brainio_style()
    with pytest.raises(LoaderError, match="neither 'stimulus_id' nor the legacy 'image_id'"):
        from_brainscore(bs.reset_index("presentation").drop_vars("image_id"))
    with pytest.raises(LoaderError, match="dims"):
        from_brainscore(xr.DataArray(np.zeros((2, 2)), dims=("x", "neuroid")))
    xr.Dataset({"a": ("x", [1.0]), "b": ("x", [2.0])}).to_netcdf(tmp_path / "two.nc",
                                                                 engine="h5netcdf")
    with pytest.raises(LoaderError, match="2 data variables"):
        from_brainscore(tmp_path / "two.nc")
    cont = xr.DataArray(np.zeros((3, 2)), dims=("time", "neuroid"),
                        coords={"neuroid_id": ("neuroid", ["a", "b"])})
    with pytest.raises(LoaderError, match="stimulus-locked"):
        to_brainscore(cont, tmp_path / "c.nc")


@pytest.mark.parametrize("fmt", ["nc", "h5", "brainscore"])
def test_model_activations_survive_every_writer(fmt, tmp_path):
    """Assemblies from model_activations keep every coord and attr through files."""
    import loaders
    imgs, meta = loaders.synthetic.translated_digits(digits=[2, 5], n_exemplars=1,
                                                     positions=[(0, 0), (8, 8)])
    a = loaders.model_activations(loaders.synthetic.untrained_convnet(), imgs,
                                  ["block2.pool", "fc"], metadata=meta, progress=False)
    for layer in a.values():
        if fmt == "brainscore":
            back = from_brainscore(to_brainscore(layer, tmp_path / "bs.nc"))
        else:
            back = read_features(write_features(layer, tmp_path / f"f.{fmt}"))
        xr.testing.assert_identical(back, layer)


def test_from_brainscore_squeezed_time_bin_and_nan():
    """A common Brain-Score form: time_bin squeezed away, its ms bounds left as scalar coords."""
    bs = brainio_style().isel(time_bin=0)
    a = from_brainscore(bs)
    assert a.dims == ("presentation", "neuroid")
    assert float(a["time_bin_start"]) == 0.07 and float(a["time_bin_end"]) == 0.17
    holed = bs.copy(data=np.where(np.arange(bs.size).reshape(bs.shape) == 3, np.nan, bs.values))
    with pytest.raises(LoaderError, match="NaN"):
        from_brainscore(holed)
    assert np.isnan(from_brainscore(holed, nan_policy="allow").values).sum() == 1
