"""The Assembly contract: each rule, each bad input, and exact round trips."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurogeom import assembly as asm
from neurogeom import io as ngio
from neurogeom.errors import AlignmentError, AssemblyError, LoaderError, NeurogeomError

from conftest import make_assembly


# --- validate --------------------------------------------------------------------------------

def test_valid_assembly_passes_unchanged(assembly):
    assert asm.validate(assembly) is assembly


def test_time_layouts_pass():
    cont = xr.DataArray(np.zeros((5, 2)), dims=("time", "neuroid"),
                        coords={"neuroid_id": ("neuroid", ["a", "b"]), "time": np.arange(5.0)})
    asm.validate(cont)
    binned = xr.DataArray(np.zeros((2, 2, 3)), dims=("presentation", "neuroid", "time_bin"),
                          coords={"stimulus_id": ("presentation", ["x", "y"]),
                                  "neuroid_id": ("neuroid", ["a", "b"]),
                                  "time_bin_start": ("time_bin", [0.0, .1, .2]),
                                  "time_bin_end": ("time_bin", [.1, .2, .3])})
    asm.validate(binned)


def test_wrong_dim_order_is_named(assembly):
    with pytest.raises(AssemblyError, match=r"dims are \('neuroid', 'presentation'\).*transpose"):
        asm.validate(assembly.T)


def test_unknown_dims(assembly):
    with pytest.raises(AssemblyError, match="dims are"):
        asm.validate(assembly.rename(presentation="trial"))


def test_missing_stimulus_id(assembly):
    with pytest.raises(AssemblyError, match="missing required coord 'stimulus_id'.*object_name"):
        asm.validate(assembly.drop_vars("stimulus_id"))


def test_duplicate_neuroid_id(assembly):
    bad = assembly.assign_coords(neuroid_id=("neuroid", ["n0", "n1", "n1", "n3"]))
    with pytest.raises(AssemblyError, match="neuroid_id is not unique: duplicated 'n1'"):
        asm.validate(bad)


def test_multiindex(assembly):
    bad = assembly.set_index(presentation=["stimulus_id", "repetition"])
    with pytest.raises(AssemblyError, match="MultiIndex.*reset_index"):
        asm.validate(bad)


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_values_are_located(assembly, value, word):
    bad = assembly.copy()
    bad[4, 2] = value
    with pytest.raises(AssemblyError, match=f"1 {word} value.*neuroid 'n2'.*presentation 's4'"):
        asm.validate(bad)


def test_nan_policy_allow(assembly):
    bad = assembly.copy()
    bad[0, 0] = np.nan
    assert asm.validate(bad, nan_policy="allow") is bad
    bad[0, 1] = np.inf
    with pytest.raises(AssemblyError, match="infinite"):
        asm.validate(bad, nan_policy="allow")


@pytest.mark.parametrize("value", [{"a": 1}, None, True, object(), np.zeros((2, 2))])
def test_non_serializable_attrs(assembly, value):
    bad = assembly.copy()
    bad.attrs["bad_attr"] = value
    with pytest.raises(AssemblyError, match="attr 'bad_attr'"):
        asm.validate(bad)


def test_non_serializable_coord(assembly):
    bad = assembly.assign_coords(weird=("presentation", np.array([{"x": 1}] * 18, dtype=object)))
    with pytest.raises(AssemblyError, match="coord 'weird'"):
        asm.validate(bad)


def test_every_problem_is_reported_at_once(assembly):
    bad = assembly.drop_vars("stimulus_id").assign_coords(
        neuroid_id=("neuroid", ["a", "a", "b", "c"]))
    bad.attrs["cfg"] = {"x": 1}
    bad[0, 0] = np.nan
    with pytest.raises(AssemblyError) as info:
        asm.validate(bad)
    message = str(info.value)
    for piece in ("stimulus_id", "not unique", "NaN", "attr 'cfg'"):
        assert piece in message


def test_not_a_dataarray():
    with pytest.raises(AssemblyError, match="must be an xarray.DataArray"):
        asm.validate(np.zeros((2, 2)))


def test_errors_are_neurogeom_errors():
    assert issubclass(AssemblyError, NeurogeomError)
    assert issubclass(AlignmentError, AssemblyError)


# --- average_repetitions ----------------------------------------------------------------------

def test_average_repetitions_matches_pandas(assembly):
    avg = asm.average_repetitions(assembly)
    frame = pd.DataFrame(assembly.values)
    frame["stim"] = assembly["stimulus_id"].values
    expected = frame.groupby("stim", sort=False).mean()
    np.testing.assert_allclose(avg.values, expected.values, rtol=1e-12)
    assert list(avg["stimulus_id"].values) == list(expected.index)
    assert "repetition" not in avg.coords and "start_time" not in avg.coords
    assert list(avg["object_name"].values) == ["o0", "o1"] * 3     # stimulus metadata kept
    assert (avg["n_repetitions"].values == 3).all()
    assert avg.attrs["units"] == "spikes/s"
    asm.validate(avg)


def test_average_repetitions_of_a_dask_assembly_stays_lazy():
    """A dask-backed assembly (a spilled or zarr-backed feature matrix) is averaged block by
    block when computed: the result is lazy, nothing ran while building it, and it equals the
    in-memory average, time bins (a third dim) included."""
    import dask
    import dask.array as da

    a = make_assembly(n_stim=8, n_rep=5, n_neuroids=4, seed=3)
    a = a.expand_dims(time_bin=3, axis=2).copy()
    a.values = a.values * np.arange(1, 4)[None, None, :]      # bins differ
    a = a.assign_coords(time_bin_start=("time_bin", [0.0, 0.1, 0.2]),
                        time_bin_end=("time_bin", [0.1, 0.2, 0.3]))
    lazy = a.copy(data=da.from_array(a.values, chunks=(7, 4, 2)))   # coords in memory
    runs = []

    class Count(dask.callbacks.Callback):
        def _start(self, dsk):
            runs.append(len(dsk))

    with Count():
        avg = asm.average_repetitions(lazy)
        assert isinstance(avg.data, da.Array)
        # validate's NaN and inf counts (two streaming reductions) are the only computations
        # so far: the group sums wait for the caller
        assert len(runs) <= 2
        np.testing.assert_allclose(avg.values, asm.average_repetitions(a).values, rtol=1e-12)
    assert avg.dims == a.dims and (avg["n_repetitions"].values == 5).all()


def test_average_repetitions_groups_on_other_coords(assembly):
    # a coord that varies within a stimulus splits its groups unless ignored
    split = assembly.assign_coords(task=("presentation", np.where(assembly["repetition"] == 0, "a", "b")))
    assert asm.average_repetitions(split).sizes["presentation"] == 12
    assert asm.average_repetitions(split, ignore=["task"]).sizes["presentation"] == 6
    with pytest.raises(AssemblyError, match="unknown presentation coord.*'nope'"):
        asm.average_repetitions(split, ignore=["nope"])


def test_average_repetitions_time_bins():
    a = xr.DataArray(np.arange(24.0).reshape(4, 2, 3), dims=("presentation", "neuroid", "time_bin"),
                     coords={"stimulus_id": ("presentation", ["x", "y", "x", "y"]),
                             "repetition": ("presentation", [0, 0, 1, 1]),
                             "neuroid_id": ("neuroid", ["a", "b"]),
                             "time_bin_start": ("time_bin", [0.0, .1, .2]),
                             "time_bin_end": ("time_bin", [.1, .2, .3])})
    avg = asm.average_repetitions(a)
    np.testing.assert_allclose(avg.values, (a.values[:2] + a.values[2:]) / 2)
    assert avg.dims == a.dims


# --- align ------------------------------------------------------------------------------------

def test_align_reorders_and_subsets(assembly):
    x = asm.average_repetitions(assembly)
    y = x.isel(presentation=[5, 3, 1, 0])
    with pytest.warns(UserWarning, match="dropping 2 stimulus_id only in the first"):
        ax, ay = asm.align(x, y)
    assert list(ax["stimulus_id"].values) == ["s0", "s1", "s3", "s5"]
    assert list(ay["stimulus_id"].values) == list(ax["stimulus_id"].values)
    np.testing.assert_array_equal(ay.values, x.sel(presentation=[0, 1, 3, 5]).values)


def test_align_require_identical_lists_missing():
    ids = [f"s{i}" for i in range(30)]
    x = make_assembly(n_stim=30, n_rep=1).assign_coords(stimulus_id=("presentation", ids))
    y = x.isel(presentation=slice(0, 5))
    with pytest.raises(AlignmentError, match=r"25 only in the first assembly \('s5', .*'s14', … \(25 in all\)"):
        asm.align(x, y, require_identical=True)


def test_align_nothing_shared(assembly):
    x = asm.average_repetitions(assembly)
    y = x.assign_coords(stimulus_id=("presentation", [f"t{i}" for i in range(6)]))
    with pytest.raises(AlignmentError, match="no stimulus_id is shared"):
        asm.align(x, y)


def test_align_needs_unique_ids(assembly):
    with pytest.raises(AlignmentError, match="average repetitions first"):
        asm.align(assembly, assembly)


def test_align_unknown_coord(assembly):
    x = asm.average_repetitions(assembly)
    with pytest.raises(AlignmentError, match="no coord 'image_id'.*stimulus_id"):
        asm.align(x, x, on="image_id")


# --- manifolds --------------------------------------------------------------------------------

def test_manifolds_groups_points(assembly):
    groups = asm.manifolds(assembly, by="object_name")
    assert [label for label, _ in groups] == ["o0", "o1"]
    mask = assembly["object_name"].values == "o1"
    np.testing.assert_array_equal(groups[1][1], assembly.values[mask])
    assert groups[0][1].shape == (9, 4)


def test_manifolds_labels_and_min_points(assembly):
    groups = asm.manifolds(assembly, by="stimulus_id", labels=["s3", "s1"], min_points=3)
    assert [l for l, _ in groups] == ["s3", "s1"]
    with pytest.raises(AssemblyError, match="fewer than 4 points"):
        asm.manifolds(assembly, by="stimulus_id", min_points=4)
    single = asm.manifolds(asm.average_repetitions(assembly), by="stimulus_id", min_points=1)
    assert all(p.shape == (1, 4) for _, p in single)


def test_manifolds_errors(assembly):
    with pytest.raises(AssemblyError, match="unknown manifold coord by='category'.*object_name"):
        asm.manifolds(assembly, by="category")
    with pytest.raises(AssemblyError, match="have no points.*'o0', 'o1'"):
        asm.manifolds(assembly, by="object_name", labels=["o7"])
    with pytest.raises(AssemblyError, match="empty 'object_name' label"):
        asm.manifolds(assembly.assign_coords(object_name=("presentation", [""] + ["o"] * 17)),
                      by="object_name")
    bad = assembly.copy()
    bad[0, 0] = np.nan
    with pytest.raises(AssemblyError, match="NaN"):
        asm.manifolds(bad, by="object_name")


def test_manifolds_on_time(assembly):
    cont = xr.DataArray(np.arange(12.0).reshape(6, 2), dims=("time", "neuroid"),
                        coords={"neuroid_id": ("neuroid", ["a", "b"]),
                                "hd_bin": ("time", [0, 1, 0, 1, 0, 1])})
    groups = asm.manifolds(cont, by="hd_bin")
    np.testing.assert_array_equal(groups[1][1], cont.values[1::2])


# --- storage ----------------------------------------------------------------------------------

def test_netcdf_round_trip_assembly(tmp_path, assembly):
    named = assembly.rename("responses")
    for a in (assembly, named):
        path = ngio.to_netcdf(a, tmp_path / "a.nc")
        back = ngio.open(path)
        xr.testing.assert_identical(back, a)
        assert back.name == a.name
        assert back["stimulus_id"].dtype.kind == "U"


def test_netcdf_round_trip_list_attrs(tmp_path, assembly):
    a = assembly.copy()
    a.attrs.update(shape=[10], names=["x", "y"], window=(0.07, 0.17))
    a["neuroid_id"].attrs["tags"] = ["only"]
    back = ngio.open(ngio.to_netcdf(a, tmp_path / "a.nc"))
    assert back.attrs["shape"] == [10] and back.attrs["names"] == ["x", "y"]
    assert back.attrs["window"] == [0.07, 0.17] and back["neuroid_id"].attrs["tags"] == ["only"]
    assert "_neurogeom_list_attrs" not in back.attrs
    assert a.attrs["shape"] == [10] and set(a.attrs) == set(back.attrs)   # input unmodified
    assert a["neuroid_id"].attrs == {"tags": ["only"]}


def test_netcdf_round_trip_dataset(tmp_path):
    ds = xr.Dataset({"capacity": ("manifold", [0.1, 0.2]), "overall": 0.15},
                    coords={"manifold": ["a", "b"]}, attrs={"kappa": 0.0, "method": "mft"})
    back = ngio.open(ngio.to_netcdf(ds, tmp_path / "r.nc"))
    xr.testing.assert_identical(back, ds)


def test_netcdf_write_is_atomic(tmp_path, assembly, monkeypatch):
    path = tmp_path / "a.nc"
    ngio.to_netcdf(assembly, path)
    before = path.read_bytes()

    def boom(self, *args, **kwargs):
        target = args[0]        # a path, or the file object to_netcdf streams HDF5 through
        (target if hasattr(target, "write") else open(target, "wb")).write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(RuntimeError):
        ngio.to_netcdf(assembly * 2, path)
    assert path.read_bytes() == before                       # old file intact
    assert os.listdir(tmp_path) == ["a.nc"]                 # no temp file left


@pytest.mark.parametrize("probe", [False, True])
def test_interrupt_just_after_the_temporary_is_created_leaves_nothing(tmp_path, monkeypatch, probe):
    """A signal handler can raise between the system call that creates the temporary (or the
    destination check's probe) and the line that keeps its name: the file must still go."""
    path = tmp_path / "a.nc"
    path.write_bytes(b"old")
    real_open = os.open

    def open_then_interrupt(name, flags, *args):
        fd = real_open(name, flags, *args)
        if flags & os.O_CREAT:
            raise KeyboardInterrupt     # as a SIGINT handler would, before fd is bound
        return fd

    monkeypatch.setattr(ngio.os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        if probe:
            ngio.check_destination(path)
        else:
            ngio.atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.nc"]


def test_open_bad_files(tmp_path):
    with pytest.raises(LoaderError, match="no such file"):
        ngio.open(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(LoaderError, match="junk.nc is not a readable netCDF"):
        ngio.open(junk)


def test_open_an_nwb_recording_says_what_it_is_and_warns_nothing(tmp_path, recwarn):
    # read as netCDF, an NWB file's root looked like a "result Dataset", after a phony_dims
    # warning from h5netcdf (issue 12: one clear line)
    from loaders.synthetic import nwb as syn

    path = tmp_path / "rec.nwb"
    syn.write_macaque_rsvp(path, n_objects=2, n_images_per_object=2, seed=1)
    recwarn.clear()
    with pytest.raises(LoaderError, match=r"rec.nwb is an NWB recording, not an assembly or "
                                          r"result file; make an assembly of it first"):
        ngio.open(path)
    plain = tmp_path / "plain.h5"  # HDF5 datasets without dimension scales: phony dims, quietly
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(plain, engine="h5netcdf")
    ngio.open(plain)
    assert not [w for w in recwarn if "phony_dims" in str(w.message)]


def test_atomic_write_dir_replaces_only_on_success(tmp_path):
    store = tmp_path / "features.zarr"

    def write(content):
        def _write(tmp):
            tmp.mkdir()
            (tmp / "data").write_text(content)
            if content == "bad":
                raise RuntimeError("disk full")
        return _write

    ngio.atomic_write_dir(store, write("v1"))
    assert (store / "data").read_text() == "v1"
    with pytest.raises(RuntimeError):
        ngio.atomic_write_dir(store, write("bad"))
    assert (store / "data").read_text() == "v1"                  # old store intact
    assert os.listdir(tmp_path) == ["features.zarr"]             # no temporary store left
    ngio.atomic_write_dir(store, write("v2"))
    assert (store / "data").read_text() == "v2"
