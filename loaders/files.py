"""Read and write saved features (npy/npz/h5/pt/netCDF/zarr) and Brain-Score assemblies.

:func:`write_features` stores an assembly with every coord and attr; :func:`read_features`
reads it back identical, and also reads plain files written by other tools (an array plus
stimulus ids). :func:`from_brainscore` / :func:`to_brainscore` convert between our contract and
BrainIO's layout (MultiIndex ``presentation``/``neuroid``, legacy ``image_id``, ``time_bin`` in
milliseconds).

Layout of the flat formats (npz, h5, pt) written here: the values under ``features``, the dim
names under ``dims``, the assembly's name under ``name``, each coord under ``coord__<dim>__<name>`` (npz), ``coords/<dim>/<name>``
(h5) or ``coords[name] = {"dim", "values"}`` (pt), attrs under ``attr__<name>`` (npz), as HDF5
attributes (h5) or ``attrs`` (pt). ``.npy`` holds the values only.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from neurogeom import assembly as asm
from neurogeom import io as ngio
from neurogeom.assembly import validate
from neurogeom.io import atomic_write, atomic_write_dir
from neurogeom.errors import LoaderError, NeurogeomError, format_list

from ._zarr import CheckedArray, chunk_keys, corrupt_chunk_error, is_pickled, pickle_refusal

__all__ = ["read_features", "write_features", "from_brainscore", "to_brainscore", "FORMATS"]

#: File suffix -> format name.
FORMATS = {".npy": "npy", ".npz": "npz", ".h5": "h5", ".hdf5": "h5", ".pt": "pt", ".pth": "pt",
           ".nc": "netcdf", ".netcdf": "netcdf", ".nc4": "netcdf", ".zarr": "zarr"}

#: Names tried, in order, for the values and the ids in files written by other tools.
VALUE_KEYS = ("features", "activations", "data", "values", "X", "x")
STIMULUS_ID_KEYS = ("stimulus_id", "stimulus_ids", "image_id", "image_ids", "ids")
NEUROID_ID_KEYS = ("neuroid_id", "neuroid_ids")

_SCALAR = "_scalar_"  # pseudo-dim under which 0-d coords are stored in flat formats


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise LoaderError(f"{path}: unknown feature file type {suffix!r}; supported: "
                          f"{format_list(sorted(FORMATS))}")
    return FORMATS[suffix]


# --------------------------------------------------------------------------------------------
# assembly <-> flat parts
# --------------------------------------------------------------------------------------------

def _coord_array(name, values: np.ndarray, fmt: str) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "O":
        if all(isinstance(v, str) for v in values.ravel().tolist()):
            return values.astype(str)
        raise LoaderError(f"coord {name!r} holds {values.dtype} objects; cannot store it in {fmt}")
    if values.dtype.kind in "Mm" and fmt != "netcdf":
        raise LoaderError(f"coord {name!r} holds datetimes, which {fmt} files do not store; "
                          "write netCDF (.nc) or zarr instead")
    return values


def _parts(a: xr.DataArray, fmt: str):
    """(values, dims, {name: (dim, ndarray)}, attrs) of an assembly, for the flat formats."""
    coords = {}
    for name, c in a.coords.items():
        if c.ndim > 1:
            raise LoaderError(f"coord {name!r} spans dims {c.dims}; {fmt} files store 1-d coords "
                              "only (use netCDF or zarr)")
        dim = c.dims[0] if c.ndim else _SCALAR
        coords[str(name)] = (dim, _coord_array(name, c.values, fmt))
    return np.asarray(a.values), [str(d) for d in a.dims], coords, dict(a.attrs)


def _from_parts(values, dims, coords, attrs, name=None) -> xr.DataArray:
    xcoords = {}
    for cname, (dim, vals) in coords.items():
        vals = np.asarray(vals)
        if vals.dtype.kind == "O":
            vals = vals.astype(str)
        xcoords[cname] = vals.reshape(()) if dim == _SCALAR else (dim, vals)
    return xr.DataArray(values, dims=tuple(dims), coords=xcoords, attrs=attrs, name=name)


def _attr_value(v):
    """Plain python/numpy attr back from its stored form (0-d arrays -> scalars, arrays -> lists)."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            return v.item()
        return [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _foreign(values, ids, neuroid_ids, path: Path, stimulus_ids, keys) -> xr.DataArray:
    """Assembly from a bare array plus optional ids (files not written by write_features)."""
    values = np.asarray(values)
    if values.ndim < 1 or values.dtype.kind not in "biuf":
        raise LoaderError(f"{path}: features must be a numeric array with one row per stimulus; "
                          f"got shape {values.shape}, dtype {values.dtype}")
    if values.ndim == 1:
        values = values[:, None]
    values = values.reshape(len(values), -1)
    if ids is None:
        if stimulus_ids is None:
            raise LoaderError(
                f"{path} stores no stimulus ids (looked for {format_list(STIMULUS_ID_KEYS)} among "
                f"{format_list(keys)}); pass stimulus_ids=[...] with {len(values)} ids")
        ids, stimulus_ids = stimulus_ids, None
    ids = np.asarray([str(i) for i in np.asarray(ids).ravel().tolist()])
    if len(ids) != len(values):
        raise LoaderError(f"{path}: {len(ids)} stimulus ids for {len(values)} rows of features")
    if neuroid_ids is None:
        neuroid_ids = [f"{path.stem}.{i}" for i in range(values.shape[1])]
    neuroid_ids = np.asarray([str(i) for i in np.asarray(neuroid_ids).ravel().tolist()])
    if len(neuroid_ids) != values.shape[1]:
        raise LoaderError(f"{path}: {len(neuroid_ids)} neuroid ids for {values.shape[1]} features")
    a = xr.DataArray(values, dims=("presentation", "neuroid"),
                     coords={"stimulus_id": ("presentation", ids),
                             "neuroid_id": ("neuroid", neuroid_ids)},
                     attrs={"source": str(path)})
    return _select(a, stimulus_ids, path)


def _pick(keys, candidates, key=None, what="features", path=None):
    if key is not None:
        if key not in keys:
            raise LoaderError(f"{path}: no {key!r}; available: {format_list(keys)}")
        return key
    for k in candidates:
        if k in keys:
            return k
    if what == "features":
        raise LoaderError(f"{path}: no features array (looked for {format_list(candidates)}); "
                          f"available: {format_list(keys)}; pass key=...")
    return None


def _select(a: xr.DataArray, stimulus_ids, path) -> xr.DataArray:
    """Rows for ``stimulus_ids`` in that order (all rows when None)."""
    if stimulus_ids is None:
        return a
    wanted = [str(s) for s in stimulus_ids]
    index = pd.Index(np.asarray(a["stimulus_id"].values).astype(str))
    missing = [s for s in wanted if s not in index]
    if missing:
        raise LoaderError(f"{path}: {len(missing)} requested stimulus id(s) are not in the file: "
                          f"{format_list(missing)}; the file has {format_list(index.tolist())}")
    if not index.is_unique:
        raise LoaderError(f"{path}: stimulus ids repeat in the file "
                          f"({format_list(index[index.duplicated()].unique().tolist())}); "
                          "cannot select by id")
    return a.isel(presentation=index.get_indexer(wanted))


# --------------------------------------------------------------------------------------------
# per-format readers and writers
# --------------------------------------------------------------------------------------------

def _write_npz(a, tmp):
    values, dims, coords, attrs = _parts(a, "npz")
    arrays = {"features": values, "dims": np.asarray(dims)}
    if a.name is not None:
        arrays["name"] = np.asarray(str(a.name))
    for name, (dim, vals) in coords.items():
        arrays[f"coord__{dim}__{name}"] = vals
    for k, v in attrs.items():
        arrays[f"attr__{k}"] = np.asarray(v)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _read_npz(path, stimulus_ids, key):
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise LoaderError(f"{path} holds pickled objects, which are never loaded: {exc}") from exc
    except (OSError, EOFError) as exc:
        raise LoaderError(f"{path} is not a readable .npz file: {exc}") from exc
    keys = sorted(data)
    if "dims" in data and "features" in data and key is None:
        coords = {}
        for k, v in data.items():
            if k.startswith("coord__"):
                dim, name = k[len("coord__"):].split("__", 1)
                coords[name] = (dim, v)
        attrs = {k[len("attr__"):]: _attr_value(v) for k, v in data.items() if k.startswith("attr__")}
        name = str(data["name"]) if "name" in data else None
        return _select(_from_parts(data["features"], data["dims"].tolist(), coords, attrs, name),
                       stimulus_ids, path)
    vk = _pick(keys, VALUE_KEYS, key, path=path)
    ik = _pick(keys, STIMULUS_ID_KEYS, what="ids")
    nk = _pick(keys, NEUROID_ID_KEYS, what="ids")
    return _foreign(data[vk], data[ik] if ik else None, data[nk] if nk else None, path,
                    stimulus_ids, keys)


def _write_h5(a, tmp):
    import h5py

    values, dims, coords, attrs = _parts(a, "h5")
    str_dtype = h5py.string_dtype()
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("features", data=values)
        ds.attrs["dims"] = np.asarray(dims, dtype=str_dtype)
        if a.name is not None:
            f.attrs["name"] = str(a.name)
        for name, (dim, vals) in coords.items():
            if vals.dtype.kind == "U":
                vals = vals.astype(object).astype(str_dtype)
            f.create_dataset(f"coords/{dim}/{name}", data=vals)
        for k, v in attrs.items():
            arr = np.asarray(v)
            ds.attrs[k] = arr.astype(str_dtype) if arr.dtype.kind == "U" and arr.ndim else v


def _read_h5(path, stimulus_ids, key):
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise LoaderError(f"{path} is not a readable HDF5 file: {exc}") from exc
    with f:
        names = []
        f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)

        def read(name):
            d = f[name]
            if h5py.check_string_dtype(d.dtype) is not None:
                return np.asarray(d.asstr()[()], dtype=object).astype(str)
            return d[()]
        if "features" in f and "dims" in f["features"].attrs and key is None:
            ds = f["features"]
            dims = [_attr_value(x) for x in ds.attrs["dims"]]
            coords = {}
            if "coords" in f:
                for dim, group in f["coords"].items():
                    for name in group:
                        coords[name] = (dim, read(f"coords/{dim}/{name}"))
            attrs = {k: _attr_value(v) for k, v in ds.attrs.items() if k != "dims"}
            name = _attr_value(f.attrs["name"]) if "name" in f.attrs else None
            return _select(_from_parts(ds[()], dims, coords, attrs, name), stimulus_ids, path)
        vk = _pick(names, VALUE_KEYS, key, path=path)
        ik = _pick(names, STIMULUS_ID_KEYS, what="ids")
        nk = _pick(names, NEUROID_ID_KEYS, what="ids")
        return _foreign(read(vk), read(ik) if ik else None, read(nk) if nk else None, path,
                        stimulus_ids, names)


def _write_pt(a, tmp):
    import torch

    values, dims, coords, attrs = _parts(a, "pt")

    def store(v):
        return v.tolist() if v.dtype.kind in "US" else torch.from_numpy(np.ascontiguousarray(v))
    obj = {"features": torch.from_numpy(np.ascontiguousarray(values)), "dims": dims,
           "name": None if a.name is None else str(a.name),
           "coords": {name: {"dim": dim, "values": store(vals)} for name, (dim, vals) in coords.items()},
           "attrs": {k: (v.tolist() if isinstance(v, np.ndarray) else
                         v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}}
    torch.save(obj, tmp)


def _read_pt(path, stimulus_ids, key):
    import torch

    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise LoaderError(
            f"{path} was refused: it contains pickled Python objects or code that a safe "
            f"(weights_only=True) load does not allow; save plain tensors, lists and dicts "
            f"instead ({str(exc).splitlines()[0]})") from exc
    except (RuntimeError, OSError, EOFError) as exc:
        raise LoaderError(f"{path} is not a readable torch file: {exc}") from exc

    def arr(v):
        return v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    if isinstance(obj, torch.Tensor):
        return _foreign(arr(obj), None, None, path, stimulus_ids, ["<a bare tensor>"])
    if not isinstance(obj, dict):
        raise LoaderError(f"{path} holds a {type(obj).__name__}; expected a tensor or a dict")
    keys = [str(k) for k in obj]
    if {"features", "dims", "coords"} <= set(obj) and key is None:
        coords = {name: (c["dim"], arr(c["values"])) for name, c in obj["coords"].items()}
        return _select(_from_parts(arr(obj["features"]), obj["dims"], coords,
                                   dict(obj.get("attrs", {})), obj.get("name")),
                       stimulus_ids, path)
    vk = _pick(keys, VALUE_KEYS, key, path=path)
    ik = _pick(keys, STIMULUS_ID_KEYS, what="ids")
    nk = _pick(keys, NEUROID_ID_KEYS, what="ids")
    return _foreign(arr(obj[vk]), obj[ik] if ik else None, obj[nk] if nk else None, path,
                    stimulus_ids, keys)


# zarr stores are written and read with the zarr API itself, not xarray's zarr backend: the
# project pins zarr 2 (hdmf-zarr, the NWB zarr backend, needs it on Python 3.11) and recent
# xarray's backend requires zarr 3. The layout is xarray's (zarr format 2, one array per
# variable, ``_ARRAY_DIMENSIONS`` naming its dims, ``coordinates`` on the data variable), so
# ``xarray.open_zarr`` reads these stores too.
_DIMS = "_ARRAY_DIMENSIONS"


def _json_attr(value):
    """An attribute value as JSON zarr can store (numpy scalars/arrays to Python)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_attr(v) for v in value]
    return value


def _zarr_values(var: xr.Variable):
    """Data zarr 2 stores natively: object-dtype strings become fixed-width unicode."""
    data = var.data
    if data.dtype.kind == "O":
        return np.asarray(data).astype(str)
    return data


def _zarr_group(path, mode: str):
    import zarr

    if mode == "w" and int(zarr.__version__.split(".")[0]) >= 3:
        return zarr.open_group(str(path), mode=mode, zarr_format=2)
    return zarr.open_group(str(path), mode=mode)


def _new_zarr_array(group, name, shape, dtype, chunks):
    """An empty array in ``group`` (zarr 3's ``create_array`` or zarr 2's ``create_dataset``);
    ``chunks=None`` lets zarr choose."""
    if hasattr(group, "create_array"):  # zarr >= 3
        return group.create_array(name, shape=shape, dtype=dtype,
                                  chunks="auto" if chunks is None else chunks, fill_value=None)
    return group.create_dataset(name, shape=shape, dtype=dtype,
                                chunks=True if chunks is None else chunks, fill_value=None)


def _write_zarr(a: xr.DataArray, path: Path):
    """One zarr array per variable, in a temporary folder renamed into place on success."""
    import dask.array as da

    name = a.name if a.name is not None else ngio.UNNAMED
    ds = a.to_dataset(name=name)

    def write(tmp):
        group = _zarr_group(tmp, "w")
        group.attrs.update({ngio.KIND_ATTR: "DataArray", ngio.NAME_ATTR: str(name)})
        for key, var in ds.variables.items():
            data = _zarr_values(var)
            lazy = isinstance(data, da.Array)
            # a dask array keeps its chunking (first chunk of each dim; zarr chunks are regular)
            chunks = tuple(c[0] if c else 1 for c in data.chunks) if lazy else None
            shape = tuple(data.shape)
            arr = _new_zarr_array(group, str(key), shape, data.dtype, chunks)
            if lazy:
                # lock=True (default): dask chunks that share a zarr chunk never write at once
                da.store(data, arr, lock=True)
            elif shape:
                arr[...] = np.asarray(data)
            else:
                arr[()] = np.asarray(data)
            attrs = {k: _json_attr(v) for k, v in var.attrs.items()}
            attrs[_DIMS] = list(var.dims)
            if key == name:
                others = [str(c) for c in ds.coords if c not in ds.dims]
                if others:
                    attrs["coordinates"] = " ".join(others)
            arr.attrs.update(attrs)

    atomic_write_dir(path, write)


def _read_zarr(path, stimulus_ids):
    """The assembly in a zarr store: the data variable dask-backed, the coords in memory."""
    import dask.array as da

    try:
        group = _zarr_group(path, "r")
        arrays = {str(k): v for k, v in group.arrays()}
        gattrs = dict(group.attrs)
    except Exception as exc:  # zarr raises its own errors (PathNotFoundError, KeyError…)
        raise LoaderError(f"{path} is not a readable zarr store: {type(exc).__name__}: {exc}") from exc
    pickled = sorted(k for k, v in arrays.items() if is_pickled(v))
    if pickled:  # refused before any chunk is read: unpickling file bytes can run code
        raise pickle_refusal(path, pickled[0])
    missing = sorted(k for k, v in arrays.items() if _DIMS not in v.attrs)
    if missing:
        raise LoaderError(f"{path}: arrays {format_list(missing)} do not name their dims "
                          f"({_DIMS!r} attribute); not an xarray/neurogeom zarr store")
    coord_names = set()
    for k, v in arrays.items():
        coord_names.update(str(v.attrs.get("coordinates", "")).split())
        if list(v.attrs[_DIMS]) == [k]:
            coord_names.add(k)
    if gattrs.get(ngio.KIND_ATTR) == "DataArray":
        data_names = [gattrs[ngio.NAME_ATTR]]
    else:
        data_names = sorted(k for k in arrays if k not in coord_names)
    if len(data_names) != 1 or data_names[0] not in arrays:
        raise LoaderError(f"{path} holds {len(data_names)} variables "
                          f"({format_list(data_names)}); expected one assembly")
    name = data_names[0]

    def attrs_of(v):
        return {k: val for k, val in v.attrs.items() if k not in (_DIMS, "coordinates")}

    def values_of(k, v):
        try:
            return v[...]
        except Exception as exc:  # a corrupt chunk: name it, not the codec's bare complaint
            error = corrupt_chunk_error(path, path, chunk_keys(path, k))
            if error is None:
                raise LoaderError(f"{path}: array {k!r} cannot be read: "
                                  f"{type(exc).__name__}: {exc}") from exc
            raise error from exc

    coords = {k: (list(v.attrs[_DIMS]), values_of(k, v), attrs_of(v))
              for k, v in arrays.items() if k != name and k in coord_names}
    main = arrays[name]
    # decode errors in the lazily read data surface when dask computes: name the chunk there
    checked = CheckedArray(main, path, path, name)
    data = da.from_array(checked, chunks=main.chunks, fancy=False)
    a = xr.DataArray(data, dims=list(main.attrs[_DIMS]),
                     coords={k: xr.Variable(*c) for k, c in coords.items()},
                     attrs=attrs_of(main))
    a.name = None if name == ngio.UNNAMED else name  # not the dask array's generated name
    if gattrs.get(ngio.KIND_ATTR) != "DataArray":  # written by xarray: undo its CF encoding
        a = xr.decode_cf(a.to_dataset(name="__v__"), decode_timedelta=False)["__v__"].rename(name)
    return _select(a, stimulus_ids, path)


def _read_netcdf(path, stimulus_ids):
    obj = ngio.open(path)
    if isinstance(obj, xr.Dataset):  # not written by neurogeom: BrainIO's layout, one variable
        obj = from_brainscore(obj, path=path)
    return _select(obj, stimulus_ids, path)


# --------------------------------------------------------------------------------------------
# public: read / write
# --------------------------------------------------------------------------------------------

def write_features(assembly: xr.DataArray, path) -> Path:
    """Write an assembly to a features file, atomically; the suffix picks the format.

    ``.npz``, ``.h5``/``.hdf5``, ``.pt``/``.pth``, ``.nc`` and ``.zarr`` keep every coord and
    attr, and :func:`read_features` returns the assembly identical. ``.npy`` stores the values
    only (a warning says so). The file is written under a temporary name and renamed into
    place, so a failure never leaves a partial file.

    Parameters
    ----------
    assembly : xarray.DataArray
        Any assembly (NaN allowed). A dask-backed assembly is computed (zarr writes it chunk by
        chunk).
    path : str or path-like

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    fmt = _format(path)
    validate(assembly, nan_policy="allow", check_values=False)
    if fmt == "netcdf":
        return ngio.to_netcdf(assembly, path)
    if fmt == "zarr":
        _write_zarr(assembly, path)
        return path
    if fmt == "npy":
        warnings.warn(f"{path}: .npy stores the values only; coords ({format_list(list(assembly.coords))}) "
                      "and attrs are not saved (use .npz, .h5, .pt, .nc or .zarr to keep them)",
                      stacklevel=2)
        values = np.asarray(assembly.values)

        def write(tmp):
            with open(tmp, "wb") as f:
                np.save(f, values, allow_pickle=False)
        return atomic_write(path, write)
    writer = {"npz": _write_npz, "h5": _write_h5, "pt": _write_pt}[fmt]
    return atomic_write(path, lambda tmp: writer(assembly, tmp))


def read_features(path, stimulus_ids: Sequence | None = None, *, key: str | None = None
                  ) -> xr.DataArray:
    """Read saved features into an assembly; the suffix picks the format.

    Files written by :func:`write_features` come back identical. Files from other tools are
    read as one array (``features``, ``activations``, ``data``, ``values`` or ``X``, or
    ``key=``) with one row per stimulus plus stimulus ids (``stimulus_id``, ``stimulus_ids``,
    ``image_id`` or ``ids``) and optional ``neuroid_id``; rows of more than one dim are
    flattened. A netCDF file not written by neurogeom is read as a Brain-Score assembly
    (:func:`from_brainscore`: one variable, ``time_bin_start``/``time_bin_end`` taken as
    milliseconds).

    Parameters
    ----------
    path : str or path-like
        ``.npy``, ``.npz``, ``.h5``/``.hdf5``, ``.pt``/``.pth``, ``.nc``, ``.zarr``.
    stimulus_ids : sequence of str, optional
        For files that store ids: the stimuli to return, in this order. For files without ids
        (``.npy``, a bare tensor): one id per row (required).
    key : str, optional
        Name of the features array in an npz/h5/pt file written by another tool.

    Returns
    -------
    xarray.DataArray
        An assembly (zarr stores come back dask-backed).

    Raises
    ------
    LoaderError
        Missing or unreadable file, unknown suffix, no features array (available names listed),
        missing ids, requested ids absent from the file (listed), and any ``.pt`` file holding
        pickled code or objects (``torch.load(weights_only=True)`` refuses it; nothing is
        unpickled).
    """
    path = Path(path)
    fmt = _format(path)
    if not path.exists():
        raise LoaderError(f"no such file: {path}")
    if fmt == "npy":
        try:
            values = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise LoaderError(f"{path} holds pickled objects, which are never loaded: {exc}") from exc
        a = _foreign(values, None, None, path, stimulus_ids, ["<a bare array>"])
    elif fmt == "npz":
        a = _read_npz(path, stimulus_ids, key)
    elif fmt == "h5":
        a = _read_h5(path, stimulus_ids, key)
    elif fmt == "pt":
        a = _read_pt(path, stimulus_ids, key)
    elif fmt == "netcdf":
        a = _read_netcdf(path, stimulus_ids)
    else:
        a = _read_zarr(path, stimulus_ids)
    try:
        return validate(a, nan_policy="allow", check_values=fmt != "zarr")
    except NeurogeomError as exc:
        raise LoaderError(f"{path}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Brain-Score (BrainIO) interoperability
# --------------------------------------------------------------------------------------------

#: BrainIO time bins are in milliseconds; ours are in seconds.
_MS_PER_S = 1000.0
#: ms values are rounded to this many decimals when written, so decimal second values with up
#: to 9 digits (0.07 s -> 70.0 ms -> 0.07 s) survive the round trip exactly.
_MS_DECIMALS = 6
_ADDED = "neurogeom_added_coords"
_NAME_ATTR = "neurogeom_name"


def _plain(obj) -> xr.DataArray:
    """A plain DataArray without MultiIndexes (BrainIO's DataAssembly subclasses included)."""
    if not isinstance(obj, xr.DataArray):
        raise LoaderError(f"expected a BrainIO assembly (xarray.DataArray), got {type(obj).__name__}")
    name = obj.name if obj.name is not None else "data"
    a = obj.to_dataset(name=name)[name]  # a plain DataArray even for DataAssembly subclasses
    # storage names (BrainIO's "data", xarray's placeholder) are not labels
    a.name = None if name in ("data", "__xarray_dataarray_variable__") else name
    multi = [d for d, idx in a.indexes.items() if isinstance(idx, pd.MultiIndex)]
    if multi:
        a = a.reset_index(multi)
    # other dim indexes of BrainIO files (e.g. a bare 'presentation' index) carry no metadata
    a = a.drop_vars([d for d in a.dims if d in a.coords and d not in ("time",)], errors="ignore")
    return a


def from_brainscore(obj_or_path, *, nan_policy: str = "raise", path=None) -> xr.DataArray:
    """Convert a Brain-Score (BrainIO) assembly into a neurogeom assembly.

    Accepts a DataArray/``DataAssembly`` with MultiIndex ``presentation``/``neuroid`` dims (as
    BrainIO builds them), the same with flat coords, or the path of a netCDF file written by
    BrainIO (one data variable). Every coord and value is kept; MultiIndexes are flattened,
    dims are put in our order, ``stimulus_id`` is added from the legacy ``image_id`` when
    absent, and ``time_bin_start``/``time_bin_end`` go from milliseconds to seconds.

    Parameters
    ----------
    obj_or_path : xarray.DataArray, xarray.Dataset or path
    nan_policy : {"raise", "allow"}
        Brain-Score assemblies sometimes hold NaN for missing trials; ``"allow"`` keeps them.

    Returns
    -------
    xarray.DataArray
        ``(presentation, neuroid)`` or ``(presentation, neuroid, time_bin)``. Attrs that are
        not netCDF-serializable (e.g. BrainIO's ``stimulus_set`` DataFrame) are dropped and
        listed in ``dropped_attrs``; a ``image_id`` added by :func:`to_brainscore` is removed.

    Raises
    ------
    LoaderError
        Unreadable file, several data variables, dims other than presentation/neuroid
        (/time_bin), no ``stimulus_id`` or ``image_id``, or a contract violation.
    """
    where = str(path) if path is not None else None
    if isinstance(obj_or_path, (str, os.PathLike)):
        where = str(obj_or_path)
        p = Path(obj_or_path)
        if not p.exists():
            raise LoaderError(f"no such file: {p}")
        try:
            obj_or_path = xr.load_dataset(p, engine="h5netcdf")
        except Exception:
            try:  # netCDF3 files (scipy backend)
                obj_or_path = xr.load_dataset(p)
            except Exception as exc:
                raise LoaderError(f"{p} is not a readable netCDF file: {exc}") from exc
        obj_or_path = ngio.restore_strings(obj_or_path)
    if isinstance(obj_or_path, xr.Dataset):
        names = list(obj_or_path.data_vars)
        if len(names) != 1:
            raise LoaderError(f"{where or 'dataset'} holds {len(names)} data variables "
                              f"({format_list(names)}); a BrainIO assembly file holds one")
        obj_or_path = obj_or_path[names[0]]
    a = _plain(obj_or_path)
    label = where or "Brain-Score assembly"

    dims = set(a.dims)
    if dims == {"presentation", "neuroid"}:
        a = a.transpose("presentation", "neuroid")
    elif dims == {"presentation", "neuroid", "time_bin"}:
        a = a.transpose("presentation", "neuroid", "time_bin")
    else:
        raise LoaderError(f"{label} has dims {tuple(a.dims)}; expected presentation and neuroid "
                          "(and optionally time_bin)")
    added = a.attrs.get(_ADDED, "")
    if "stimulus_id" not in a.coords:
        if "image_id" not in a.coords:
            raise LoaderError(f"{label} has neither 'stimulus_id' nor the legacy 'image_id' on "
                              f"presentation; coords: {format_list(asm.presentation_coords(a))}")
        a = a.assign_coords(stimulus_id=("presentation", a["image_id"].values))
    elif "image_id" in added and np.array_equal(a["image_id"].values, a["stimulus_id"].values):
        a = a.drop_vars("image_id")
    for c in ("time_bin_start", "time_bin_end"):
        if c in a.coords:
            a = a.assign_coords({c: (a[c].dims, np.asarray(a[c].values, dtype=np.float64) / _MS_PER_S,
                                     a[c].attrs)})

    # coords BrainIO leaves as object arrays mixing strings with NaN for missing entries
    fixes = {}
    for name, c in a.coords.items():
        if c.dtype.kind == "O":
            vals = c.values.ravel().tolist()
            if all(isinstance(v, str) for v in vals):
                fixes[name] = c.copy(data=c.values.astype(str))
            else:
                fixes[name] = c.copy(data=np.asarray(["" if v is None or (isinstance(v, float) and np.isnan(v))
                                                       else str(v) for v in vals]).reshape(c.shape))
    if fixes:
        a = a.assign_coords(fixes)
    attrs, dropped = {}, []
    if _NAME_ATTR in a.attrs:
        a.name = str(a.attrs[_NAME_ATTR])
    for k, v in a.attrs.items():
        if k in (_ADDED, _NAME_ATTR):
            continue
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        if ngio.attr_problem(v) is None:
            attrs[k] = v
        else:
            dropped.append(k)
    if dropped:
        attrs["dropped_attrs"] = dropped
    a.attrs = attrs
    try:
        return validate(a, nan_policy=nan_policy)
    except NeurogeomError as exc:
        raise LoaderError(f"{label}: {exc}") from exc


def to_brainscore(assembly: xr.DataArray, path, *, stimulus_set_identifier: str | None = None,
                  identifier: str | None = None) -> Path:
    """Write an assembly as a netCDF file that BrainIO loads as a ``NeuroidAssembly``.

    The file holds one data variable ``data`` with flat coords on ``presentation`` and
    ``neuroid`` (and ``time_bin``), as BrainIO's ``write_netcdf`` writes them; BrainIO's loader
    rebuilds the MultiIndexes. ``time_bin_start``/``time_bin_end`` are written in milliseconds
    (rounded to 1e-6 ms), and the legacy ``image_id`` is added (equal to ``stimulus_id``) for
    older readers. The write is atomic.

    Parameters
    ----------
    assembly : xarray.DataArray
        A stimulus-locked assembly: ``(presentation, neuroid[, time_bin])``.
    path : str or path-like
        Target ``.nc`` file.
    stimulus_set_identifier, identifier : str, optional
        Stored as attrs of those names, as Brain-Score's packaging does.

    Returns
    -------
    pathlib.Path
    """
    validate(assembly, nan_policy="allow")
    if "presentation" not in assembly.dims:
        raise LoaderError(f"Brain-Score assemblies are stimulus-locked; this assembly has dims "
                          f"{assembly.dims} (bin continuous activity into presentations first)")
    a = assembly.copy()
    for c in ("time_bin_start", "time_bin_end"):
        if c in a.coords:
            a = a.assign_coords({c: (a[c].dims, np.round(np.asarray(a[c].values, dtype=np.float64)
                                                          * _MS_PER_S, _MS_DECIMALS), a[c].attrs)})
    added = []
    if "image_id" not in a.coords:
        a = a.assign_coords(image_id=("presentation", np.asarray(a["stimulus_id"].values)))
        added.append("image_id")
    attrs = dict(a.attrs)
    if added:
        attrs[_ADDED] = added
    if a.name is not None:  # BrainIO names the variable "data"; keep ours for the way back
        attrs[_NAME_ATTR] = str(a.name)
    if stimulus_set_identifier is not None:
        attrs["stimulus_set_identifier"] = str(stimulus_set_identifier)
    if identifier is not None:
        attrs["identifier"] = str(identifier)
    a.attrs = attrs
    # BrainIO keeps the attrs on both the file and the variable (promote_attrs)
    ds = a.to_dataset(name="data", promote_attrs=True)
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))
