"""Storage of assemblies and results: netCDF files, atomic writes, the netCDF attribute rules.

Everything neurogeom writes goes through :func:`atomic_write` (or :func:`atomic_write_dir` for
folder stores such as zarr): the data are written beside the destination under a temporary name
and renamed into place, so a crash never leaves a half-written file and a failed write leaves an
existing file intact. :func:`to_netcdf` and :func:`open` round-trip an assembly (DataArray) or a
result (Dataset) with its name, coords and attrs unchanged. :func:`attr_problem` and
:func:`coord_problem` state what netCDF can store; :func:`neurogeom.assembly.validate` and the
loaders use them so a non-storable attr is reported when it is made, not when it is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from numbers import Number
from pathlib import Path
from typing import Hashable

import numpy as np
import xarray as xr

from .errors import AssemblyError, LoaderError

__all__ = ["to_netcdf", "open", "atomic_write", "atomic_write_dir", "attr_problem",
           "coord_problem", "restore_strings", "KIND_ATTR", "NAME_ATTR", "UNNAMED"]

#: Global attribute recording whether a file holds a ``"DataArray"`` or a ``"Dataset"``.
KIND_ATTR = "neurogeom_object"
#: Global attribute naming the stored DataArray's variable.
NAME_ATTR = "neurogeom_dataarray_name"
#: Variable name standing for a DataArray whose ``name`` is None.
UNNAMED = "__neurogeom_unnamed__"


# --------------------------------------------------------------------------------------------
# the netCDF attribute and coord rules
# --------------------------------------------------------------------------------------------

def attr_problem(value) -> str | None:
    """Why ``value`` cannot be a netCDF attribute, or None when it can."""
    if isinstance(value, (bool, np.bool_)):
        return "bool is not a netCDF attribute type (store 0/1 or a string)"
    if isinstance(value, (str, bytes, Number, np.number)):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value)
        if arr.ndim > 1:
            return f"{arr.ndim}-d arrays cannot be netCDF attributes"
        if arr.dtype.kind in "iufUS":
            return None
        if arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr.tolist()):
            return None
        return f"sequence of {arr.dtype} is not a netCDF attribute type (numbers or strings only)"
    return f"{type(value).__name__} is not a netCDF attribute type (use str, numbers or 1-d lists)"


def coord_problem(name: Hashable, coord: xr.DataArray) -> str | None:
    """Why coord ``name`` cannot be written to netCDF, or None when it can."""
    kind = coord.dtype.kind
    if kind in "biufcUSMm":
        return None
    if kind == "O":
        values = coord.values.ravel().tolist()
        types = {type(v) for v in values}
        if all(isinstance(v, str) for v in values):
            return None
        return (f"coord {name!r} has object dtype with {sorted(t.__name__ for t in types)} values; "
                "coords must be numbers, bools, datetimes or strings")
    return f"coord {name!r} has unsupported dtype {coord.dtype}"


# --------------------------------------------------------------------------------------------
# writing and reading
# --------------------------------------------------------------------------------------------

def atomic_write(path, write, *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` then rename into ``path``, so a crash never leaves a half file.

    The temporary file sits beside ``path`` (same filesystem, so the rename is atomic) and ends
    in ``suffix`` (writers that check extensions, like pynwb's, want their own). On any error
    the temporary file is removed and an existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_dir(path, write) -> Path:
    """Folder-store (zarr) counterpart of :func:`atomic_write`.

    ``write(tmp)`` creates the store at a fresh temporary path beside ``path``; only when it
    has finished is an existing store at ``path`` removed and the new one renamed into place.
    On any error the temporary store is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def to_netcdf(obj, path, *, engine: str = "h5netcdf") -> Path:
    """Write an assembly (DataArray) or result (Dataset) to netCDF atomically.

    The file is written next to ``path`` under a temporary name and renamed into place, so
    readers never see a partial file and a failed write leaves any previous file intact.
    :func:`open` reads it back as the same type, with names, coords and attrs unchanged.
    """
    if isinstance(obj, xr.DataArray):
        if obj.name is not None and obj.name in obj.coords:
            raise AssemblyError(f"cannot store assembly named {obj.name!r}: a coord has that name")
        name = obj.name if obj.name is not None else UNNAMED
        ds = obj.to_dataset(name=name)
        ds.attrs = {KIND_ATTR: "DataArray", NAME_ATTR: str(name)}
    elif isinstance(obj, xr.Dataset):
        ds = obj.copy()
        ds.attrs = {**obj.attrs, KIND_ATTR: "Dataset"}
    else:
        raise AssemblyError(f"to_netcdf writes xarray DataArrays or Datasets, got {type(obj).__name__}")
    _mark_list_attrs(ds)
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine=engine))


_LIST_ATTRS = "_neurogeom_list_attrs"


def _mark_list_attrs(ds: xr.Dataset) -> None:
    """Record which attrs are lists: netCDF stores them as arrays, and a one-element list would
    come back as a scalar, so :func:`open` uses the record to restore the exact value."""
    for holder in (ds, *ds.variables.values()):
        names = [k for k, v in holder.attrs.items() if isinstance(v, (list, tuple))]
        if names:
            holder.attrs = {**holder.attrs, _LIST_ATTRS: ",".join(names)}


def _restore_list_attrs(ds: xr.Dataset) -> xr.Dataset:
    for holder in (ds, *ds.variables.values()):
        names = holder.attrs.pop(_LIST_ATTRS, None)
        for name in (names.split(",") if names else []):
            holder.attrs[name] = np.atleast_1d(holder.attrs[name]).tolist()
    return ds


def open(path, *, lazy: bool = False):  # noqa: A001 - mirrors xarray.open_dataset
    """Read a file written by :func:`to_netcdf` (or any netCDF) as a DataArray or Dataset.

    With ``lazy=False`` (default) the data are loaded and the file is closed. Object-dtype
    string coords are restored to numpy unicode, as they were written. netCDF4 (HDF5) files are
    read with h5netcdf; netCDF3 files (classic and 64-bit offset, as written by
    ``to_netcdf(engine="scipy")`` and many older tools) with scipy's reader.
    """
    path = Path(path)
    if not path.exists():
        raise LoaderError(f"no such file: {path}")
    if path.is_dir():
        raise LoaderError(f"{path} is a directory, not a netCDF file")
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise LoaderError(f"cannot read {path}: {exc.strerror}") from exc
    engine = "scipy" if head in (b"CDF\x01", b"CDF\x02") else "h5netcdf"
    if head == b"CDF\x05":
        raise LoaderError(f"{path} is a netCDF3 64-bit data (CDF-5) file, which is not supported; "
                          f"convert it to netCDF4 with `nccopy -k nc4 {path} out.nc`")
    try:
        if lazy:
            ds = xr.open_dataset(path, engine=engine, chunks={})
        else:
            ds = xr.load_dataset(path, engine=engine)
    except Exception as exc:  # h5py/h5netcdf/scipy raise OSError/ValueError/TypeError
        kind = "netCDF3" if engine == "scipy" else "netCDF"
        raise LoaderError(f"{path} is not a readable {kind} file: {exc}") from exc
    ds = _restore_list_attrs(restore_strings(ds))
    kind = ds.attrs.get(KIND_ATTR)
    if kind == "DataArray":
        name = ds.attrs[NAME_ATTR]
        da = ds[name]
        da.name = None if name == UNNAMED else name
        return da
    if kind == "Dataset":
        ds.attrs = {k: v for k, v in ds.attrs.items() if k != KIND_ATTR}
    return ds


def restore_strings(ds: xr.Dataset) -> xr.Dataset:
    updates = {}
    for name, c in ds.coords.items():
        if c.dtype.kind == "O" and c.size and all(isinstance(v, str) for v in c.values.ravel().tolist()):
            updates[name] = c.copy(data=c.values.astype(str))
    return ds.assign_coords(updates) if updates else ds
