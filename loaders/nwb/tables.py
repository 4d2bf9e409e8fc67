"""Read NWB dynamic tables column by column: from raw HDF5 (fast) or through pynwb objects.

pynwb's ``NWBHDF5IO.read()`` builds a Python object for every container in the file, which for a
DiCarlo-style file with thousands of stimulus images costs seconds before a single spike is
read. The spike loader only needs a handful of datasets (``units/spike_times`` and its index,
one intervals table, the electrodes' locations), whose places the NWB schema fixes, so for HDF5
files it reads them directly with h5py. :class:`H5Table` and :class:`PynwbTable` offer the same
small interface, so the loaders do not care which one they get (zarr stores, read by
``hdmf-zarr``, use the pynwb one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def as_strings(values) -> np.ndarray:
    """Numpy unicode array from h5py/zarr string data (bytes or str)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "S":
        return arr.astype(str)
    if arr.dtype.kind == "O":
        if pd.api.types.infer_dtype(arr, skipna=False) == "string":
            return arr.astype(str)  # all str already: numpy's own loop, no Python one
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr.tolist()],
                        dtype=str)
    return arr.astype(str)


def _decode(v):
    return v.decode() if isinstance(v, bytes) else str(v)


class H5Table:
    """A DynamicTable stored in an HDF5 group, read one dataset at a time.

    Parameters
    ----------
    group : h5py.Group
    label : str
        How messages name it ("units table", "intervals table 'trials'").
    """

    def __init__(self, group, label: str):
        self.group = group
        self.label = label
        self.colnames = [_decode(c) for c in np.atleast_1d(group.attrs.get("colnames", []))]

    def __len__(self) -> int:
        return int(self.group["id"].shape[0])

    def ids(self) -> np.ndarray:
        return np.asarray(self.group["id"][()])

    def has(self, name: str) -> bool:
        return name in self.colnames and name in self.group

    def is_ragged(self, name: str) -> bool:
        return f"{name}_index" in self.group

    def description(self, name: str) -> str:
        return _decode(self.group[name].attrs.get("description", "")) if self.has(name) else ""

    def values(self, name: str):
        """A 1-d column of numbers/bools/strings, or None (ragged, references, n-d)."""
        if not self.has(name) or self.is_ragged(name):
            return None
        ds = self.group[name]
        if ds.ndim != 1 or _decode(ds.attrs.get("neurodata_type", "")) == "DynamicTableRegion":
            return None
        if ds.dtype.kind == "O" and ds.shape[0] and not isinstance(ds[0], (bytes, str)):
            return None  # object references
        if ds.dtype.kind == "O":
            import h5py

            if h5py.check_string_dtype(ds.dtype) is not None:
                return as_strings(ds.asstr()[()])  # decoded by h5py as it reads
        data = ds[()]
        return as_strings(data) if data.dtype.kind in "SO" else np.asarray(data)

    def ragged(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(flat, ends)``: the concatenated values and each row's end offset (two reads)."""
        data = np.asarray(self.group[name][()])
        if self.is_ragged(name):
            return data, np.asarray(self.group[f"{name}_index"][()], dtype=np.int64)
        return data, np.arange(1, data.shape[0] + 1, dtype=np.int64)

    def region(self, name: str):
        """A DynamicTableRegion column: ``(rows, ends, target table)``."""
        rows, ends = self.ragged(name)
        target = self.group.file[self.group[name].attrs["table"]]
        return rows.astype(np.int64), ends, H5Table(target, target.name)

    def referenced_attr(self, name: str, attr: str) -> np.ndarray:
        """For a column of object references (``electrode_group``), an attr of each target."""
        refs = self.group[name][()]
        f = self.group.file
        cache: dict = {}
        out = []
        for ref in refs:
            key = f[ref].name
            if key not in cache:
                cache[key] = _decode(f[ref].attrs.get(attr, ""))
            out.append(cache[key])
        return np.array(out, dtype=str)


class PynwbTable:
    """The same interface over a pynwb/hdmf ``DynamicTable`` (used for zarr stores)."""

    def __init__(self, table, label: str):
        self.table = table
        self.label = label
        self.colnames = list(table.colnames)

    def __len__(self) -> int:
        return len(self.table.id)

    def ids(self) -> np.ndarray:
        return np.asarray(self.table.id.data[:])

    def has(self, name: str) -> bool:
        return name in self.colnames

    def is_ragged(self, name: str) -> bool:
        return type(self.table[name]).__name__ == "VectorIndex"

    def description(self, name: str) -> str:
        return str(getattr(self.table[name], "description", "") or "") if self.has(name) else ""

    def values(self, name: str):
        if not self.has(name):
            return None
        col = self.table[name]
        if type(col).__name__ in ("VectorIndex", "DynamicTableRegion"):
            return None
        data = np.asarray(col.data[:])
        if data.ndim != 1:
            return None
        if data.dtype.kind in "SO":
            if data.size and not isinstance(data[0], (bytes, str)):
                return None
            return as_strings(data)
        return data

    def ragged(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        col = self.table[name]
        if type(col).__name__ == "VectorIndex":
            return (np.asarray(col.target.data[:]),
                    np.asarray(col.data[:], dtype=np.int64))
        data = np.asarray(col.data[:])
        return data, np.arange(1, data.shape[0] + 1, dtype=np.int64)

    def region(self, name: str):
        col = self.table[name]
        dtr = col.target if type(col).__name__ == "VectorIndex" else col
        rows, ends = self.ragged(name)
        return rows.astype(np.int64), ends, PynwbTable(dtr.table, dtr.table.name)

    def referenced_attr(self, name: str, attr: str) -> np.ndarray:
        return np.array([str(getattr(g, attr, "") or "") for g in self.table[name].data[:]],
                        dtype=str)
