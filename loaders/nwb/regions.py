"""Find the brain area of each unit or ROI, whichever way the file's writer recorded it.

Units, in order: a ``location`` column on the units table (some conversions); the units'
``electrodes`` column → ``electrodes.location`` (DiCarlo conversions); ``peak_channel_id`` →
``electrodes.id`` → ``electrodes.location`` (Allen); the unit's ``electrode_group.location``;
otherwise ``"unknown"`` with a warning. Resolution is per unit: a unit whose value under one
rule is empty or a placeholder falls through to the next rule. ROIs: the plane segmentation's imaging plane
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


def _is_informative(values: np.ndarray) -> np.ndarray:
    """Per value: does it name an area (not empty, "unknown", "See electrode locations"…)?"""
    return np.array([v.strip().lower() not in UNINFORMATIVE for v in values.tolist()], dtype=bool)


def _electrode_locations(rec):
    table = rec.electrodes()
    if table is None or not table.has("location"):
        return None, None
    return table.ids(), as_strings(table.values("location"))


def _candidates(rec, units):
    """``(rule name, per-unit locations)`` for every rule the file supports, in resolution order."""
    if units.has("location"):
        loc = units.values("location")
        if loc is not None:
            yield "units.location", as_strings(loc)
    if units.has("electrodes"):
        rows, ends, target = units.region("electrodes")
        if target.has("location"):
            locations = as_strings(target.values("location"))
            first = np.concatenate([[0], ends[:-1]]).astype(np.int64)
            loc = np.full(len(ends), "", dtype=object)
            has = ends > first  # units with at least one electrode
            # a unit spanning several electrodes takes its first electrode's area
            loc[has] = locations[rows[first[has]]]
            yield "units.electrodes -> electrodes.location", loc.astype(str)
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
            yield ("units.peak_channel_id -> electrodes.id -> electrodes.location",
                   locations[order][pos])
    if units.has("electrode_group"):
        yield "units.electrode_group.location", units.referenced_attr("electrode_group",
                                                                      "location")


def unit_regions(rec) -> tuple[np.ndarray, str]:
    """The region of every unit of ``rec`` (an NWBSource) and where it was found.

    Each unit takes the first rule, in the module's order, that names an area for it, so a
    units ``location`` column left empty for some units falls back to their electrodes.

    Returns
    -------
    (ndarray of str, str)
        One region per units-table row, and the rule(s) used (the assembly's ``region_source``
        attr; several rules are joined with ``" + "`` in resolution order).
    """
    units = rec.units()
    n = len(units)
    regions = np.full(n, UNKNOWN, dtype=object)
    resolved = np.zeros(n, dtype=bool)
    used = []
    for rule, loc in _candidates(rec, units):
        take = ~resolved & _is_informative(loc)
        if take.any():
            regions[take] = loc[take]
            resolved |= take
            used.append(rule)
        if resolved.all():
            break
    if not resolved.all():
        missing = units.ids()[~resolved]
        warnings.warn(f"{rec.name}: no brain area found for {missing.size} of {n} units "
                      f"(ids {missing[:10].tolist()}{'…' if missing.size > 10 else ''}: no "
                      "units.location, electrodes, peak_channel_id or electrode_group "
                      f"location); their region is {UNKNOWN!r}", stacklevel=3)
        used.append("none")
    return regions.astype(str), " + ".join(used)


def roi_regions(series, name: str) -> tuple[np.ndarray, str]:
    """The region of every ROI of a RoiResponseSeries: its imaging plane's ``location``."""
    rois = series.rois
    table = rois.table
    n = len(rois.data)
    plane = getattr(table, "imaging_plane", None)
    location = str(getattr(plane, "location", "") or "")
    if _is_informative(np.array([location]))[0]:
        return np.full(n, location), "imaging_plane.location"
    warnings.warn(f"{name}: the imaging plane of {series.name!r} has no location; region is "
                  f"{UNKNOWN!r}", stacklevel=3)
    return np.full(n, UNKNOWN), "none"
