"""Assemble loaded NWB arrays into validated assemblies (coords, attrs, provenance)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurogeom import assembly as asm
from neurogeom import __version__
from neurogeom.errors import LoaderError, format_list

from .presentations import presentation_coords
from .tables import as_strings


def window_edges(window, bins) -> np.ndarray:
    """Bin edges (s, relative to onset) from ``window=(start, stop)`` and/or ``bins``.

    ``bins`` is an int (that many equal bins across ``window``) or a 1-d increasing array of
    edges; with neither, the window is one bin.
    """
    if bins is None:
        if window is None:
            raise LoaderError("give window=(start, stop) in seconds relative to onset, or bins=")
        edges = np.asarray(window, dtype=np.float64)
        if edges.shape != (2,):
            raise LoaderError(f"window must be (start, stop) in seconds, got {window!r}")
    elif np.ndim(bins) == 0:
        if window is None:
            raise LoaderError("bins=<int> needs window=(start, stop) to divide")
        n = int(bins)
        w = np.asarray(window, dtype=np.float64)
        if n < 1 or w.shape != (2,):
            raise LoaderError(f"bins must be a positive int with window=(start, stop); "
                              f"got bins={bins!r}, window={window!r}")
        if not w[0] < w[1]:
            raise LoaderError(f"window start must be < stop, got window={tuple(w.tolist())}")
        edges = np.linspace(w[0], w[1], n + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2:
            raise LoaderError(f"bins must be an int or at least 2 edges, got {bins!r}")
        if window is not None and not np.allclose(np.asarray(window, dtype=np.float64),
                                                  edges[[0, -1]]):
            raise LoaderError(f"window={tuple(window)} disagrees with the bin edges "
                              f"({edges[0]}, …, {edges[-1]}); give the edges alone")
    if not np.all(np.isfinite(edges)):
        raise LoaderError(f"window/bin edges must be finite, got {edges.tolist()}")
    if not np.all(np.diff(edges) > 0):
        what = "window start must be < stop" if edges.size == 2 else "bin edges must increase"
        raise LoaderError(f"{what}, got {edges.tolist()}")
    return edges


def extra_columns(table, skip, reserved) -> dict:
    """Simple 1-d columns of a units table (:mod:`.tables` interface) as neuroid coords."""
    coords = {}
    for name in table.colnames:
        if name in skip:
            continue
        values = table.values(name)
        if values is None or values.dtype.kind not in "biufUS":
            continue
        key = name if name not in reserved else f"unit_{name}"
        coords[key] = values
    return coords


def select(ids: np.ndarray, regions: np.ndarray, units, region, where: str, what: str) -> np.ndarray:
    """Row indices of the requested units (by id) and regions; LoaderError naming what is missing."""
    keep = np.ones(len(ids), dtype=bool)
    if units is not None:
        wanted = np.atleast_1d(np.asarray(units))
        if wanted.size == 0:
            raise LoaderError(f"{where}: empty selection: units=[] selects no {what}")
        known = set(ids.tolist())
        missing = [u for u in wanted.tolist() if u not in known]
        if missing:
            raise LoaderError(f"{where}: unknown {what} id(s) {format_list(missing)}; "
                              f"ids in the file: {format_list(ids.tolist())}")
        keep &= np.isin(ids, wanted)
    if region is not None:
        wanted = [region] if isinstance(region, str) else list(region)
        available = sorted(set(regions.tolist()))
        missing = [r for r in wanted if r not in available]
        if missing:
            raise LoaderError(f"{where}: no {what} in region(s) {format_list(missing)}; "
                              f"regions in the file: {format_list(available)}")
        keep &= np.isin(regions, wanted)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise LoaderError(f"{where}: empty selection: no {what} match units={units!r}, "
                          f"region={region!r}")
    return rows


def neuroid_coords(info: dict, ids, regions, extra: dict, id_name: str) -> dict:
    """The neuroid coords: ``neuroid_id = "<session>/<id>"``, region, subject, session, ids."""
    ids = np.asarray(ids)
    n = ids.size
    coords = {
        "neuroid_id": ("neuroid", np.array([f"{info['session']}/{i}" for i in ids.tolist()])),
        id_name: ("neuroid", ids),
        "region": ("neuroid", as_strings(regions)),
        "subject": ("neuroid", np.full(n, info["subject"])),
        "session": ("neuroid", np.full(n, info["session"])),
    }
    for k, v in extra.items():
        if k not in coords:
            coords[k] = ("neuroid", v)
    return coords


def stimulus_assembly(values, df, ncoords: dict, edges, attrs: dict, binned: bool) -> xr.DataArray:
    """A ``(presentation, neuroid[, time_bin])`` assembly, validated before it is returned."""
    coords = presentation_coords(df)
    coords.update(ncoords)
    dims = ("presentation", "neuroid", "time_bin")
    if binned:
        coords["time_bin_start"] = ("time_bin", edges[:-1])
        coords["time_bin_end"] = ("time_bin", edges[1:])
    else:
        values = values[..., 0]
        dims = dims[:2]
    attrs = {k: v for k, v in attrs.items() if v is not None}
    attrs.setdefault("neurogeom_version", __version__)
    out = xr.DataArray(values, dims=dims, coords=coords, attrs=attrs, name="responses")
    return asm.validate(out)
