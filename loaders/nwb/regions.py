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

from .tables import as_strings

UNKNOWN = "unknown"
#: Placeholder locations that say nothing (Allen electrode groups say "See electrode locations").
UNINFORMATIVE = {"", "unknown", "none", "n/a", "na", "see electrode locations"}


def _informative(values: np.ndarray) -> bool:
    return bool(values.size) and not all(v.strip().lower() in UNINFORMATIVE for v in values)


def _electrode_locations(rec):
    table = rec.electrodes()
    if table is None or not table.has("location"):
        return None, None
    return table.ids(), as_strings(table.values("location"))


def unit_regions(rec) -> tuple[np.ndarray, str]:
    """The region of every unit of ``rec`` (an NWBSource) and where it was found.

    Returns
    -------
    (ndarray of str, str)
        One region per units-table row, and the resolution path used (recorded in the
        assembly's ``region_source`` attr).
    """
    units = rec.units()
    n = len(units)
    if units.has("location"):
        loc = units.values("location")
        if loc is not None and _informative(loc):
            return as_strings(loc), "units.location"
    if units.has("electrodes"):
        rows, ends, target = units.region("electrodes")
        if target.has("location"):
            locations = as_strings(target.values("location"))
            first = np.concatenate([[0], ends[:-1]]).astype(np.int64)
            if np.any(ends - first < 1):
                empty = np.flatnonzero(ends - first < 1)
                raise LoaderError(f"{rec.where('units table')}: units "
                                  f"{units.ids()[empty][:10].tolist()} have an empty "
                                  "'electrodes' entry, so their region is unknown")
            # a unit spanning several electrodes takes its first electrode's area
            loc = locations[rows[first]]
            if _informative(loc):
                return loc, "units.electrodes -> electrodes.location"
    if units.has("peak_channel_id"):
        ids, locations = _electrode_locations(rec)
        if locations is not None:
            peak = np.asarray(units.values("peak_channel_id")).astype(np.int64)
            order = np.argsort(ids)
            pos = np.clip(np.searchsorted(ids[order], peak), 0, len(ids) - 1)
            found = ids[order][pos] == peak
            if not found.all():
                missing = peak[~found][:10].tolist()
                raise LoaderError(f"{rec.where('units table')}: peak_channel_id values {missing} "
                                  f"are not ids of the electrodes table ({len(ids)} electrodes)")
            loc = locations[order][pos]
            if _informative(loc):
                return loc, "units.peak_channel_id -> electrodes.id -> electrodes.location"
    if units.has("electrode_group"):
        loc = units.referenced_attr("electrode_group", "location")
        if _informative(loc):
            return loc, "units.electrode_group.location"
    warnings.warn(f"{rec.name}: no brain area found for the {n} units (no units.location, "
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
