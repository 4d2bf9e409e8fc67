"""Find the brain area of each unit or ROI, whichever way the file's writer recorded it.

Units, in order: a ``location`` column on the units table (some conversions); the units'
``electrodes`` column → ``electrodes.location`` (DiCarlo conversions); ``peak_channel_id`` →
``electrodes.id`` → ``electrodes.location`` (Allen); the unit's ``electrode_group.location``;
otherwise ``"unknown"`` with a warning. ROIs: the plane segmentation's imaging plane
``location``.
"""

from __future__ import annotations

import warnings

import numpy as np

from neurogeom.errors import LoaderError

from .presentations import as_strings

UNKNOWN = "unknown"
#: Placeholder locations that say nothing (Allen electrode groups say "See electrode locations").
UNINFORMATIVE = {"", "unknown", "none", "n/a", "na", "see electrode locations"}


def _informative(values: np.ndarray) -> bool:
    return bool(values.size) and not all(v.strip().lower() in UNINFORMATIVE for v in values)


def _electrode_locations(nwbfile):
    table = nwbfile.electrodes
    if table is None or "location" not in table.colnames:
        return None, None
    return np.asarray(table.id.data[:]), as_strings(table["location"].data[:])


def unit_regions(nwbfile, name: str) -> tuple[np.ndarray, str]:
    """The region of every unit and where it was found.

    Returns
    -------
    (ndarray of str, str)
        One region per units-table row, and the resolution path used (recorded in the
        assembly's ``region_source`` attr).
    """
    units = nwbfile.units
    n = len(units.id)
    if "location" in units.colnames:
        loc = as_strings(units["location"].data[:])
        if _informative(loc):
            return loc, "units.location"
    if "electrodes" in units.colnames:
        region = units["electrodes"]  # ragged: VectorIndex over a DynamicTableRegion
        ids, locations = _electrode_locations(nwbfile)
        if locations is not None:
            index = np.asarray(region.data[:], dtype=np.int64)
            rows = np.asarray(region.target.data[:], dtype=np.int64)
            first = np.concatenate([[0], index[:-1]])
            if np.any(index - first < 1):
                empty = np.flatnonzero(index - first < 1)
                raise LoaderError(f"{name}: units {np.asarray(units.id.data[:])[empty][:10].tolist()} "
                                  "have an empty 'electrodes' entry, so their region is unknown")
            # a unit spanning several electrodes takes its first electrode's area
            loc = locations[rows[first]]
            if _informative(loc):
                return loc, "units.electrodes -> electrodes.location"
    if "peak_channel_id" in units.colnames:
        ids, locations = _electrode_locations(nwbfile)
        if locations is not None:
            peak = np.asarray(units["peak_channel_id"].data[:]).astype(np.int64)
            order = np.argsort(ids)
            pos = np.searchsorted(ids[order], peak)
            pos = np.clip(pos, 0, len(ids) - 1)
            found = ids[order][pos] == peak
            if not found.all():
                missing = peak[~found][:10].tolist()
                raise LoaderError(f"{name}: units.peak_channel_id values {missing} are not ids of "
                                  f"the electrodes table ({len(ids)} electrodes)")
            loc = locations[order][pos]
            if _informative(loc):
                return loc, "units.peak_channel_id -> electrodes.id -> electrodes.location"
    if "electrode_group" in units.colnames:
        groups = units["electrode_group"].data[:]
        loc = np.array([str(getattr(g, "location", "") or "") for g in groups], dtype=str)
        if _informative(loc):
            return loc, "units.electrode_group.location"
    warnings.warn(f"{name}: no brain area found for the {n} units (no units.location, "
                  "electrodes, peak_channel_id or electrode_group location); region is "
                  f"{UNKNOWN!r}", stacklevel=3)
    return np.full(n, UNKNOWN), "none"


def roi_regions(series, name: str) -> tuple[np.ndarray, str]:
    """The region of every ROI of a RoiResponseSeries: its imaging plane's ``location``."""
    rois = series.rois
    table = rois.table
    n = len(rois.data)
    plane = getattr(table, "imaging_plane", None)
    location = str(getattr(plane, "location", "") or "")
    if location.strip().lower() not in UNINFORMATIVE:
        return np.full(n, location), "imaging_plane.location"
    warnings.warn(f"{name}: the imaging plane of {series.name!r} has no location; region is "
                  f"{UNKNOWN!r}", stacklevel=3)
    return np.full(n, UNKNOWN), "none"
