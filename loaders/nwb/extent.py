"""The time a recording covers, as the file declares it — not the span of its spikes.

A recording's first spike comes some time after it starts and its last some time before it
ends, so an epoch the file itself declares (``epochs`` from 0 to 600 s, a position tracking
support ending 27 ms after the last spike) must not be "outside the recording". The extent is
the hull of every time span the file states: the units' ``obs_intervals``, the rows of every
intervals table (``epochs``, ``trials``, ``*_presentations``, …), and the first and last sample
of every TimeSeries in ``acquisition`` and ``processing`` (explicit ``timestamps``, or
``starting_time`` + (n − 1)/``rate``). The span of the spike times is always part of it (the
only part when the file states nothing else).
"""

from __future__ import annotations

import numpy as np


def declared_spans(rec) -> list[tuple[float, float, str]]:
    """``(start, stop, where)`` of every time span the file states (see the module docstring)."""
    spans = []
    units = rec.units()
    if units is not None and units.has("obs_intervals"):
        obs = np.asarray(units.ragged("obs_intervals")[0], dtype=np.float64)
        obs = obs[np.isfinite(obs)]
        if obs.size:
            spans.append((float(obs.min()), float(obs.max()), "units.obs_intervals"))
    for name in rec.intervals_names():
        try:
            table = rec.intervals(name)
            start = np.asarray(table.values("start_time"), dtype=np.float64)
            stop = np.asarray(table.values("stop_time"), dtype=np.float64)
        except (TypeError, ValueError, KeyError):
            continue    # a table without plain start/stop columns states no span
        both = np.concatenate([start, stop])
        both = both[np.isfinite(both)]
        if both.size:
            spans.append((float(both.min()), float(both.max()), f"intervals/{name}"))
    h5 = getattr(rec, "_h5", None)
    spans.extend(_h5_series_spans(h5) if h5 is not None else _pynwb_series_spans(rec.nwbfile))
    return spans


def _h5_series_spans(h5) -> list:
    """Spans of the TimeSeries groups under ``acquisition`` and ``processing`` (HDF5 reads of
    two samples each, not of the series)."""
    out = []

    def visit(name, obj):
        if not hasattr(obj, "keys") or "data" not in obj:
            return
        try:
            if "timestamps" in obj:
                ts = obj["timestamps"]
                if ts.ndim != 1 or ts.shape[0] == 0:
                    return
                first, last = float(ts[0]), float(ts[ts.shape[0] - 1])
            elif "starting_time" in obj:
                st = obj["starting_time"]
                rate = float(st.attrs.get("rate", 0.0))
                n = obj["data"].shape[0] if obj["data"].ndim else 0
                if not rate or not n:
                    return
                first = float(st[()])
                last = first + (n - 1) / rate
            else:
                return
        except (TypeError, ValueError, KeyError, OSError):
            return
        if np.isfinite(first) and np.isfinite(last):
            out.append((min(first, last), max(first, last), f"{obj.name.lstrip('/')}"))

    for top in ("acquisition", "processing"):
        if top in h5:
            h5[top].visititems(visit)
    return out


def _pynwb_series_spans(nwbfile) -> list:
    from pynwb import TimeSeries

    out = []
    for obj in nwbfile.objects.values():
        if not isinstance(obj, TimeSeries):
            continue
        try:
            if obj.timestamps is not None:
                n = len(obj.timestamps)
                if not n:
                    continue
                first, last = float(obj.timestamps[0]), float(obj.timestamps[n - 1])
            elif obj.rate:
                n = obj.data.shape[0] if len(obj.data.shape) else 0
                if not n:
                    continue
                first = float(obj.starting_time or 0.0)
                last = first + (n - 1) / float(obj.rate)
            else:
                continue
        except (TypeError, ValueError, AttributeError):
            continue
        if np.isfinite(first) and np.isfinite(last):
            out.append((min(first, last), max(first, last), obj.name))
    return out


def recording_extent(rec, spike_span: tuple[float, float] | None) -> tuple[float, float, str]:
    """``(start, stop, how)``: the hull of the file's declared spans and ``spike_span``, with
    ``how`` naming where the start and the stop come from."""
    spans = declared_spans(rec)
    if spike_span is not None:
        spans.append((spike_span[0], spike_span[1], "spike times"))
    lo = min(spans, key=lambda s: s[0])
    hi = max(spans, key=lambda s: s[1])
    how = lo[2] if lo[2] == hi[2] else f"start from {lo[2]}, stop from {hi[2]}"
    return lo[0], hi[1], how
