"""``neurogeom inspect --json`` writes strict JSON, and netCDF3 files are read (issue 12,
item 12)."""

import json

import numpy as np
import pytest
import xarray as xr

from neurogeom import io as ngio
from neurogeom.errors import LoaderError
from neurogeom_cli import main

from conftest import make_assembly


def strict_json(text):
    """json.loads that refuses NaN/Infinity/-Infinity, which are not JSON."""
    def refuse(token):
        raise ValueError(f"invalid JSON constant {token}")
    return json.loads(text, parse_constant=refuse)


def inspect(capsys, *args):
    code = main(["inspect", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inspect_json_writes_non_finite_numbers_as_null(tmp_path, capsys):
    a = make_assembly().assign_attrs(threshold=np.nan, bound=np.inf, low=-np.inf,
                                     scales=[1.0, np.nan, np.inf], finite=0.5)
    a = a.assign_coords(weight=("neuroid", [np.nan, 1.0, np.inf, 2.0]))
    path = ngio.to_netcdf(a, tmp_path / "a.nc")
    with pytest.raises(ValueError, match="invalid JSON constant"):  # the check can fail
        strict_json(json.dumps({"x": float("nan")}))
    code, out, err = inspect(capsys, str(path), "--json")
    assert code == 0, err
    summary = strict_json(out)
    attrs = summary["attrs"]
    assert attrs["threshold"] is None and attrs["bound"] is None and attrs["low"] is None
    assert attrs["scales"] == [1.0, None, None] and attrs["finite"] == 0.5
    assert summary["dims"] == {"presentation": 18, "neuroid": 4}
    code, text, _ = inspect(capsys, str(path))  # the text rendering still shows nan
    assert code == 0 and "threshold: nan" in text


def test_inspect_json_of_a_recording_is_strict_json(macaque, capsys):
    code, out, err = inspect(capsys, macaque.path, "--json")
    assert code == 0, err
    assert strict_json(out)["units"]["count"] > 0


def test_netcdf3_files_are_read_with_scipy(tmp_path, capsys):
    ds = xr.Dataset({"rate": (("presentation", "neuroid"), np.arange(6.0).reshape(3, 2))},
                    coords={"stimulus_id": ("presentation", ["a", "b", "c"])},
                    attrs={"units": "spikes/s", "missing": np.nan})
    path = tmp_path / "classic.nc"
    ds.to_netcdf(path, engine="scipy")
    assert path.read_bytes()[:3] == b"CDF"  # netCDF3, which h5netcdf cannot read
    before = path.read_bytes()
    got = ngio.open(path)
    xr.testing.assert_identical(got.drop_attrs(), ds.drop_attrs())
    assert got.attrs["units"] == "spikes/s"
    assert float(ngio.open(path, lazy=True)["rate"].sum()) == 15.0
    code, out, err = inspect(capsys, str(path), "--json")
    assert code == 0, err
    summary = strict_json(out)
    assert summary["variables"] == {"rate": ["presentation", "neuroid"]}
    assert summary["attrs"]["missing"] is None
    assert path.read_bytes() == before


def test_assembly_written_as_netcdf3_round_trips(tmp_path):
    a = make_assembly()
    path = ngio.to_netcdf(a, tmp_path / "a3.nc", engine="scipy")
    xr.testing.assert_identical(ngio.open(path), a)


def test_unreadable_netcdf3_files_are_one_line_errors(tmp_path, capsys):
    full = tmp_path / "full.nc"
    xr.Dataset({"x": ("t", np.arange(1000.0))}).to_netcdf(full, engine="scipy")
    cut = tmp_path / "cut.nc"
    cut.write_bytes(full.read_bytes()[:200])
    with pytest.raises(LoaderError, match=r"cut.nc is not a readable netCDF3 file: it starts "
                                          r"like one but cannot be read, truncated or corrupt "
                                          r"\(200 bytes; "):
        ngio.open(cut)
    cdf5 = tmp_path / "cdf5.nc"
    cdf5.write_bytes(b"CDF\x05" + bytes(64))
    with pytest.raises(LoaderError, match="CDF-5.*not supported.*nccopy -k nc4"):
        ngio.open(cdf5)
    code, out, err = inspect(capsys, str(cdf5))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
