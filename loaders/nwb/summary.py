"""Describe an NWB recording — what a user needs to choose loader arguments — as a JSON-ready dict."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from .behaviour import find_covariates
from .calcium import default_series, find_roi_series
from .regions import roi_regions, unit_regions
from .source import open_nwb


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _series_timing(series, n_samples=None) -> dict:
    if series.timestamps is not None:
        n = len(series.timestamps)
        first, last = float(series.timestamps[0]), float(series.timestamps[n - 1])
        return {"timing": "timestamps", "n_samples": int(n), "start": first, "stop": last}
    rate = float(series.rate)
    start = float(series.starting_time or 0.0)
    n = int(series.data.shape[0] if n_samples is None else n_samples)
    return {"timing": "rate", "rate": rate, "start": start, "stop": start + (n - 1) / rate}


def _nan_spike_units(flat: np.ndarray, ends: np.ndarray, ids: np.ndarray) -> dict:
    """``{unit id: number of NaN spike times}`` for the units that have any."""
    nan = np.isnan(flat)
    if not nan.any():
        return {}
    row = np.searchsorted(ends, np.flatnonzero(nan), side="right")
    rows, counts = np.unique(row, return_counts=True)
    return {_jsonable(ids[r]): int(c) for r, c in zip(rows, counts)}


def nwb_summary(source, *, timeout=None) -> dict:
    """Summarize an NWB recording: subject, units and regions, intervals tables, ophys, behaviour.

    Parameters
    ----------
    source : str, Path or NWBSource
        Local file, http(s) URL or NWB zarr store.

    timeout : float, optional
        For URLs: seconds before a stalled connection, response or body read fails (see
        :func:`loaders.open_nwb`; default ``$NEUROGEOM_HTTP_TIMEOUT`` or 30).
    Returns
    -------
    dict
        JSON-ready: ``source``, ``session``, ``subject``, ``units`` (count, regions and how
        they were found, columns), ``intervals`` (rows and columns of each table, with a few
        values of the categorical ones), ``ophys`` (every RoiResponseSeries: shape,
        orientation, timing, ROI count, region), ``behaviour`` (covariate names usable with
        ``binned_activity``, their shape, unit and timing).
    """
    from .calcium import series_layout

    with open_nwb(source, timeout=timeout) as rec:
        f = rec.nwbfile
        subject = f.subject
        out = {
            "source": rec.name,
            "format": {"local": "NWB (HDF5)", "http": "NWB (HDF5, streamed over HTTP)",
                       "zarr": "NWB (zarr)"}[rec.kind],
            "session": {"identifier": f.identifier, "session_id": f.session_id,
                        "description": f.session_description,
                        "start_time": str(f.session_start_time)},
            "subject": {k: _jsonable(getattr(subject, k, None)) for k in
                        ("subject_id", "species", "age", "sex")} if subject else {},
        }
        units = rec.units()
        if units is None:
            out["units"] = {"count": 0}
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                regions, how = unit_regions(rec)
            n_spikes, nan_units = 0, {}
            if units.has("spike_times") and len(units):
                flat, ends = units.ragged("spike_times")[:2]
                ends = np.asarray(ends, dtype=np.int64)
                n_spikes = int(ends[-1])
                nan_units = _nan_spike_units(np.asarray(flat[:n_spikes], dtype=np.float64), ends,
                                             np.asarray(units.ids()))
            out["units"] = {"count": int(len(units)), "n_spikes": n_spikes,
                            "regions": dict(sorted(Counter(regions.tolist()).items())),
                            "region_source": how, "columns": list(units.colnames)}
            if nan_units:
                # spike_responses/binned_activity refuse NaN spike times: say which units before
                # the user tries
                out["units"]["nan_spike_times"] = (
                    f"{len(nan_units)} unit(s) have NaN spike times and cannot be loaded; "
                    f"exclude them with units=/--units: unit id: count "
                    + ", ".join(f"{k}: {v}" for k, v in list(nan_units.items())[:20])
                    + (" …" if len(nan_units) > 20 else ""))
        intervals = {}
        for name in rec.intervals_names():
            table = rec.intervals(name)
            info = {"rows": int(len(table)), "columns": list(table.colnames)}
            examples = {}
            for col in table.colnames:
                if col in ("start_time", "stop_time"):
                    continue
                values = table.values(col)
                if values is None:
                    continue
                uniq = np.unique(values)
                examples[col] = {"n_unique": int(uniq.size),
                                 "examples": [_jsonable(v) for v in uniq[:5]]}
            info["values"] = examples
            intervals[name] = info
        out["intervals"] = intervals
        images = rec.stimulus_images()
        out["stimuli"] = ({"order_of_images": images[0], "n_images": int(len(images[1])),
                           "examples": images[1][:5].tolist()} if images else {})
        ophys = {}
        candidates = find_roi_series(rec)
        if candidates:
            chosen, _, why = default_series(candidates)
            # what a call without series=/--series loads (loaders.calcium.choose_series)
            out["calcium_default"] = chosen if chosen else f"none ({why}): pass --series"
        for path, series in candidates:
            entry = {"type": type(series.parent).__name__, "shape": list(series.data.shape),
                     "n_rois": int(len(series.rois.data)), "unit": series.unit}
            n_samples = None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    axis, n_samples, _ = series_layout(series, path, rec.name)
                entry["orientation"] = "rois x time" if axis else "time x rois"
            except Exception as exc:  # ambiguous layouts are reported, not fatal, here
                entry["orientation"] = f"unknown ({exc})"
            entry.update(_series_timing(series, n_samples))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entry["region"] = str(roi_regions(series, rec.name)[0][0]) if entry["n_rois"] else ""
            ophys[path] = entry
        out["ophys"] = ophys
        behaviour = {}
        for name, hit in find_covariates(f).items():
            if hit is None or "/" in name:
                continue
            path, series = hit
            if series.name != name:
                continue  # container aliases are listed with their series
            entry = {"path": path, "type": type(series).__name__,
                     "container": type(series.parent).__name__,
                     "shape": list(series.data.shape), "unit": series.unit}
            entry.update(_series_timing(series))
            behaviour[name] = entry
        out["behaviour"] = behaviour
        out.update(_other_series(f))
        return out


def _other_series(nwbfile) -> dict:
    """``ecephys`` (ElectricalSeries: raw, LFP, filtered) and ``other_series`` (events, stimuli,
    spectral decompositions, fiber photometry…): every TimeSeries that is neither an imaging
    trace, a movie nor behaviour, so an LFP-only file does not look empty."""
    from pynwb import TimeSeries
    from pynwb.ecephys import ElectricalSeries

    from .behaviour import is_covariate
    from .calcium import _object_path

    ecephys, other = {}, {}
    skip = ("RoiResponseSeries", "ImageSeries", "TwoPhotonSeries", "OnePhotonSeries",
            "ImageMaskSeries", "OpticalSeries")
    for obj in nwbfile.objects.values():
        if not isinstance(obj, TimeSeries) or type(obj).__name__ in skip:
            continue
        path = _object_path(obj)
        shape = list(obj.data.shape) if obj.data is not None else []
        entry = {"type": type(obj).__name__, "container": type(obj.parent).__name__,
                 "shape": shape, "unit": obj.unit}
        try:
            entry.update(_series_timing(obj))
        except (TypeError, ValueError, IndexError):
            entry["timing"] = "none"
        if isinstance(obj, ElectricalSeries):
            entry["n_channels"] = int(len(obj.electrodes.data)) if obj.electrodes is not None else 0
            ecephys[path] = entry
        elif not is_covariate(obj):
            other[path] = entry
    return {"ecephys": ecephys, "other_series": other}
