"""Find behavioural series (SpatialSeries, CompassDirection, Position, any TimeSeries) and
interpolate them onto time bins.

Series are looked up by their own name (``head_direction``, ``running_speed``) or by the name of
the container holding them (``CompassDirection``, ``Position``), in ``processing`` and
``acquisition`` alike. Angles (series in a ``CompassDirection``, or in radians/degrees) are
interpolated on the circle — through their cosine and sine — so a bin straddling the wrap from
π to −π gets an angle near ±π, not 0.
"""

from __future__ import annotations

import numpy as np

from neurogeom.errors import LoaderError, format_list

#: TimeSeries types that are neural data, movies, stimuli or events, never covariates.
NOT_COVARIATES = ("RoiResponseSeries", "ImageSeries", "TwoPhotonSeries", "OnePhotonSeries",
                  "ElectricalSeries", "ImageMaskSeries", "OpticalSeries", "SpikeEventSeries",
                  "DecompositionSeries", "FiberPhotometryResponseSeries",
                  "CommandedVoltageSeries", "OptogeneticSeries", "IntervalSeries",
                  "AnnotationSeries", "IndexSeries")
#: Longest series whose data are compared with its timestamps to recognise an event series.
MAX_EVENT_CHECK = 1_000_000


def is_event_series(series) -> bool:
    """A TimeSeries of events (ripples, licks, rewards), not a sampled signal: its timestamps
    are irregular — fewer than half of the intervals between them lie within 10 % of their
    median, where a tracked or recorded signal (even one with gaps) has nearly all at its
    sampling period — or its data are its own timestamps. Interpolating events onto time
    bins would be meaningless."""
    if series.timestamps is None or not hasattr(series.timestamps, "__len__"):
        return False
    n = len(series.timestamps)
    if n < 3 or n > MAX_EVENT_CHECK:
        return False
    stamps = np.asarray(series.timestamps[:], dtype=np.float64)
    gaps = np.diff(stamps)
    median = np.median(gaps)
    if median > 0 and np.mean(np.abs(gaps - median) <= 0.1 * median) < 0.5:
        return True
    shape = series.data.shape
    return len(shape) == 1 and shape[0] == n and bool(
        np.array_equal(np.asarray(series.data[:], dtype=np.float64), stamps))


def is_covariate(series) -> bool:
    """Whether a TimeSeries is behaviour (a covariate): not neural data, a stimulus or events."""
    return type(series).__name__ not in NOT_COVARIATES and not is_event_series(series)


def find_covariates(nwbfile) -> dict:
    """``{name: (path, series)}`` of every behavioural TimeSeries, by series and container name."""
    from pynwb import TimeSeries

    from .calcium import _object_path

    found: dict = {}
    containers: dict = {}
    for obj in nwbfile.objects.values():
        if not isinstance(obj, TimeSeries) or not is_covariate(obj):
            continue
        path = _object_path(obj)
        found.setdefault(obj.name, []).append((path, obj))
        parent = obj.parent
        if parent is not None and type(parent).__name__ not in ("NWBFile", "ProcessingModule"):
            containers.setdefault(parent.name, []).append((path, obj))
    out = {}
    for name, hits in list(containers.items()) + list(found.items()):
        if len(hits) == 1:
            out[name] = hits[0]
        else:
            out[name] = None  # ambiguous: reachable through its full path only
        for path, obj in hits:
            out[path] = (path, obj)
    return out


def series_times(series, n: int) -> np.ndarray:
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=np.float64)
    return float(series.starting_time or 0.0) + np.arange(n) / float(series.rate)


def is_angle(series) -> bool:
    parent = getattr(series, "parent", None)
    unit = str(getattr(series, "unit", "") or "").lower()
    return type(parent).__name__ == "CompassDirection" or unit in ("radians", "radian", "degrees",
                                                                    "degree", "deg", "rad")


def interpolate(series, at: np.ndarray, name: str, where: str) -> dict:
    """Coords ``{name[_x|_y|_z|_k]: values at the times ``at``}`` for one series."""
    data = np.asarray(series.data[:], dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    times = series_times(series, data.shape[0])
    if times.size != data.shape[0]:
        raise LoaderError(f"{where}: covariate {name!r} has {data.shape[0]} samples but "
                          f"{times.size} timestamps")
    lo, hi = times[0], times[-1]
    outside = (at < lo) | (at > hi)
    if outside.any():
        raise LoaderError(f"{where}: covariate {name!r} covers [{lo:.3f}, {hi:.3f}] s but "
                          f"{int(outside.sum())} time bin(s) lie outside it (from {at.min():.3f} "
                          f"to {at.max():.3f} s); restrict the bins with epoch=")
    if np.isnan(data).any():
        raise LoaderError(f"{where}: covariate {name!r} has {int(np.isnan(data).sum())} NaN "
                          "sample(s); interpolating across them would invent values")
    angle = is_angle(series)
    degrees = str(getattr(series, "unit", "")).lower().startswith("deg")
    suffixes = ["_x", "_y", "_z"] if data.shape[1] <= 3 else [f"_{k}" for k in range(data.shape[1])]
    out = {}
    for k in range(data.shape[1]):
        col = data[:, k]
        if angle:
            rad = np.deg2rad(col) if degrees else col
            # PyNWB CompassDirection: interpolate on the unit circle, not across the wrap
            value = np.arctan2(np.interp(at, times, np.sin(rad)), np.interp(at, times, np.cos(rad)))
            value = np.rad2deg(value) if degrees else value
        else:
            value = np.interp(at, times, col)
        key = name if data.shape[1] == 1 else name + suffixes[k]
        out[key] = value
    return out


def resolve_covariates(nwbfile, covariates, where: str) -> list:
    """``[(path, series), ...]`` for the requested covariate names (LoaderError listing the
    behavioural series in the file for an unknown name, the full paths for an ambiguous one)."""
    if covariates is None:
        return []
    names = [covariates] if isinstance(covariates, str) else list(covariates)
    available = find_covariates(nwbfile)
    out = []
    for name in names:
        hit = available.get(name, "missing")
        if hit == "missing":
            listed = sorted(k for k, v in available.items() if v is not None and "/" not in k)
            raise LoaderError(f"{where}: unknown covariate {name!r}; behavioural series in the "
                              f"file: {format_list(listed, 30)}")
        if hit is None:
            full = sorted(k for k in available if "/" in k and k.rsplit("/", 2)[-2:].count(name))
            raise LoaderError(f"{where}: covariate {name!r} is ambiguous; name one of "
                              f"{format_list(full)}")
        out.append(hit)
    return out


def covariate_support(resolved: list) -> tuple[float, float] | None:
    """``(start, stop)`` where every resolved covariate has samples (None without covariates);
    interpolation onto a time inside it never extrapolates."""
    if not resolved:
        return None
    lo, hi = -np.inf, np.inf
    for _, series in resolved:
        n = series.data.shape[0]
        if series.timestamps is not None:
            first, last = float(series.timestamps[0]), float(series.timestamps[n - 1])
        else:
            first = float(series.starting_time or 0.0)
            last = first + (n - 1) / float(series.rate)
        lo, hi = max(lo, first), min(hi, last)
    return lo, hi


def covariate_coords(nwbfile, covariates, at: np.ndarray, where: str,
                     resolved: list | None = None) -> tuple[dict, list]:
    """Interpolated covariates as ``time`` coords, and the source path of each (``resolved``:
    the series :func:`resolve_covariates` found, when the caller has them already)."""
    if covariates is None:
        return {}, []
    if resolved is None:
        resolved = resolve_covariates(nwbfile, covariates, where)
    coords, paths = {}, []
    for path, series in resolved:
        coords.update(interpolate(series, at, series.name, where))
        paths.append(path)
    return coords, paths
