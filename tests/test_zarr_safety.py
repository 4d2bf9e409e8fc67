"""Zarr stores that are damaged or hostile end in a LoaderError that names the store, the array
and the chunk; a Pickle codec is never decoded (issue 12, items 7 and 8)."""

import os
import pickle
import shutil
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

import loaders
from loaders.synthetic import nwb as syn
from neurogeom.errors import LoaderError
from neurogeom_cli import main

from conftest import make_assembly
from test_nwb_zarr import unchanged

pytest.importorskip("hdmf_zarr")


def corrupt(path: Path) -> None:
    """Keep a chunk's codec header, scramble what follows (a flipped-bits disk, a cut copy)."""
    raw = bytearray(path.read_bytes())
    raw[16:] = bytes(b ^ 0x5A for b in raw[16:])
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def nwb_store(nwb_dir, macaque):
    return Path(syn.to_zarr(macaque.path, nwb_dir / "macaque.nwb.zarr"))


def damaged_copy(store: Path, tmp_path: Path, chunk: str) -> Path:
    copy = tmp_path / store.name
    shutil.copytree(store, copy)
    corrupt(copy / chunk)
    return copy


@pytest.mark.parametrize("array", ["units/spike_times", "intervals/trials/start_time"])
def test_corrupt_chunk_in_nwb_zarr_store_names_store_array_and_chunk(nwb_store, tmp_path, array,
                                                                     capsys):
    store = damaged_copy(nwb_store, tmp_path, f"{array}/0")
    with unchanged(store):
        with pytest.raises(LoaderError) as err:
            loaders.spike_responses(store, "trials", "stimulus_presented", window=(0.07, 0.17))
        message = str(err.value)
        assert message.startswith(f"{store}: chunk '0' of array '{array}' is corrupt and cannot "
                                  "be decompressed (")
        assert "\n" not in message
        if array == "units/spike_times":  # what inspect reads too (the spike count)
            code = main(["inspect", str(store)])
            out = capsys.readouterr()
            assert code == 2 and out.out == ""
            assert out.err == f"neurogeom inspect: error: {message}\n"


def test_intact_nwb_zarr_store_still_loads(nwb_store, macaque):
    z = loaders.spike_responses(nwb_store, "trials", "stimulus_presented", window=(0.07, 0.17))
    h = loaders.spike_responses(macaque.path, "trials", "stimulus_presented", window=(0.07, 0.17))
    np.testing.assert_array_equal(z.values, h.values)


# --------------------------------------------------------------------------------------------
# saved features (read_features) in zarr stores
# --------------------------------------------------------------------------------------------

class Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def pickled_store(tmp_path, marker, array="stimulus_id"):
    """A features store whose ``array`` is an object array with the Pickle codec, its chunk a
    pickle that would create ``marker``."""
    path = tmp_path / "features.zarr"
    loaders.write_features(make_assembly(), path)
    group = zarr.open_group(str(path), mode="r+")
    old = group[array]
    attrs, shape = dict(old.attrs), old.shape
    del group[array]
    new = group.create_dataset(array, shape=shape, chunks=shape, dtype=object,
                               object_codec=numcodecs.Pickle())
    new.attrs.update(attrs)
    # the chunk as zarr would store it: compressor(pickle bytes)
    chunk = new.compressor.encode(pickle.dumps(Payload(marker))) if new.compressor else \
        pickle.dumps(Payload(marker))
    (path / array / ".".join("0" * len(shape))).write_bytes(chunk)
    return path


@pytest.mark.parametrize("array", ["stimulus_id", "__neurogeom_unnamed__"])
@pytest.mark.parametrize("allow_unsafe", [False, True])
def test_pickle_codec_is_refused_and_never_runs(tmp_path, monkeypatch, array, allow_unsafe):
    witness = tmp_path / "witness"
    pickle.loads(pickle.dumps(Payload(witness)))  # the payload does run when unpickled
    assert witness.exists()
    marker = tmp_path / "ran"
    path = pickled_store(tmp_path, marker, array)
    if allow_unsafe:  # even a user opted in to unsafe decoding elsewhere is protected here
        monkeypatch.setenv("NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE", "1")
    with unchanged(path):
        with pytest.raises(LoaderError) as err:
            loaders.read_features(path)
    assert str(err.value) == (
        f"{path}: array {array!r} is encoded with the Pickle codec, which is never decoded "
        "(unpickling a file can run arbitrary code); re-save it with fixed-width strings, "
        "VLenUTF8 or JSON")
    assert not marker.exists()


def test_corrupt_chunks_in_features_store(tmp_path):
    a = make_assembly(n_stim=40, n_rep=5)
    path = tmp_path / "f.zarr"
    loaders.write_features(a.chunk({"presentation": 50}), path)
    good = loaders.read_features(path)
    np.testing.assert_array_equal(good.values, a.values)
    # a coord (read when the store is opened)
    bad = tmp_path / "coord.zarr"
    shutil.copytree(path, bad)
    corrupt(bad / "stimulus_id" / "0")
    with unchanged(bad):
        with pytest.raises(LoaderError, match=rf"^{bad}: chunk '0' of array 'stimulus_id' is "
                                              "corrupt and cannot be decompressed"):
            loaders.read_features(bad)
    # the data (read lazily: the error comes when dask computes, and names the chunk)
    bad = tmp_path / "data.zarr"
    shutil.copytree(path, bad)
    corrupt(bad / "__neurogeom_unnamed__" / "2.0")
    with unchanged(bad):
        lazy = loaders.read_features(bad)
        np.testing.assert_array_equal(lazy[:100].values, a.values[:100])  # chunks 0, 1 fine
        with pytest.raises(LoaderError, match=rf"^{bad}: chunk '2.0' of array "
                                              "'__neurogeom_unnamed__' is corrupt"):
            np.asarray(lazy)
    assert os.listdir(tmp_path)  # nothing was removed


@pytest.mark.parametrize("command", ["inspect", "load"])
def test_features_store_given_to_the_nwb_commands_is_one_line(tmp_path, command):
    # a features store (here a hostile one, its Pickle chunk would create ``marker``) is not an
    # NWB store: one line naming read_features, not hdmf-zarr's warning per array (7 lines)
    from cli_runs import run_cli

    marker = tmp_path / "ran"
    path = pickled_store(tmp_path, marker)
    args = {"inspect": ["inspect", path],
            "load": ["load", path, "--spikes", "--intervals", "trials", "--stimulus", "x",
                     "--window", "0", "1", "-o", tmp_path / "out.nc"]}[command]
    with unchanged(path):
        code, out, err = run_cli(args, cwd=tmp_path)
    assert code == 2 and out == "", err
    assert err.strip().splitlines() == [
        f"neurogeom {command}: error: {path} is a features store written by "
        "loaders.write_features, not an NWB zarr store; open it with loaders.read_features"]
    assert not marker.exists() and not (tmp_path / "out.nc").exists()


def test_warnings_of_a_failed_nwb_read_are_held_back(tmp_path):
    # a store whose root claims to be an NWBFile but is not one: hdmf-zarr warns about each
    # array before it fails; the failure alone is printed
    path = tmp_path / "forged.nwb.zarr"
    loaders.write_features(make_assembly(), path)
    (path / ".zattrs").write_text('{"neurodata_type": "NWBFile", "namespace": "core"}')
    from cli_runs import run_cli

    code, out, err = run_cli(["inspect", path], cwd=tmp_path)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "warning:" not in err, err
    assert f"{path} is not a readable NWB zarr store" in err
