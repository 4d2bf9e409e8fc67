"""Stimulus-locked spike counts and rates from an NWB units table.

Spike times are read once, as the units table's flat ``spike_times`` array plus its
``spike_times_index`` (one read each, never unit by unit through pynwb objects). Counting is
vectorized over all presentations at once (:mod:`.counting`: one pass over each unit's spikes
with a look-up grid over the window edges). Windows are half-open, ``[onset + start, onset +
stop)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from neurogeom.errors import LoaderError, format_list

from .build import extra_columns, neuroid_coords, select, stimulus_assembly, window_edges
from .counting import count_spikes, new_counts
from .presentations import presentation_table
from .regions import unit_regions
from .source import NWBSource, open_nwb

#: Units-table columns that are not per-unit scalars worth carrying as coords.
UNIT_SKIP = ("spike_times", "electrodes", "electrode_group", "waveform_mean", "waveform_sd",
             "waveforms", "obs_intervals", "location")


def units_table(rec: NWBSource):
    """The units table (:mod:`.tables` interface); LoaderError when missing or spikeless."""
    units = rec.units()
    if units is None:
        raise LoaderError(f"{rec.where()} has no units table (/units): use calcium_responses "
                          "for imaging data (`neurogeom inspect` lists what the file holds)")
    if not units.has("spike_times"):
        raise LoaderError(f"{rec.where('units table')} has no 'spike_times' column; "
                          f"columns: {format_list(list(units.colnames))}")
    return units


def read_spike_times(rec: NWBSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flat spike-time array, each unit's end offset into it, and the unit ids.

    Two reads (the ragged ``spike_times`` data and its index) however many units there are.
    """
    units = units_table(rec)
    flat, ends = units.ragged("spike_times")
    return np.asarray(flat, dtype=np.float64), ends, units.ids()


class UnitTrains(Sequence):
    """The selected units' spike trains, as views into the flat spike-time array, each checked
    the first time it is used (while the counting that follows finds it in cache, possibly in
    a worker thread): NaN is an error naming the unit; an unsorted train is sorted in place
    (``flat`` is the loader's own copy) and :meth:`warn_sorted` then names the unit."""

    def __init__(self, flat, starts, ends, rows, ids, where):
        self.flat, self.starts, self.ends = flat, starts, ends
        self.rows, self.ids, self.where = rows, ids, where
        self._checked = np.zeros(len(rows), dtype=bool)
        self._sorted_rows: list[int] = []

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i) -> np.ndarray:
        row = self.rows[i]
        train = self.flat[self.starts[row]:self.ends[row]]
        if not self._checked[i]:
            if check_train(train, row, self.ids[row], self.where):
                self._sorted_rows.append(int(row))  # list.append is atomic: threads
            self._checked[i] = True
        return train

    def checked(self) -> "UnitTrains":
        """Check every train now (a no-op for those already used)."""
        for i in np.flatnonzero(~self._checked):
            self[i]
        return self

    def extent(self, rec: NWBSource) -> tuple[float, float, str]:
        """The recording extent (:func:`recording_extent`), after checking every selected
        train (it reads their first and last spikes, which must be sorted by then)."""
        self.checked()
        return recording_extent(rec, self.flat, self.starts, self.ends)

    def warn_sorted(self) -> None:
        """One warning per train that had to be sorted, in row order, from the caller's thread
        (the checks may have run in worker threads), pointing at the caller's caller."""
        for row in sorted(self._sorted_rows):
            warnings.warn(f"{self.where}: spike times of unit {self.ids[row]} (row {row}) are "
                          "not sorted; sorting them", stacklevel=3)
        self._sorted_rows.clear()


def check_train(train, row, unit_id, where) -> bool:
    """Raise on NaN spike times; sort an unsorted train in place and return True."""
    if train.size == 0:
        return False
    # one comparison pass finds both: NaN fails every comparison it is in
    if train.size > 1:
        ordered = bool(np.greater_equal(train[1:], train[:-1]).all())
    else:
        ordered = not np.isnan(train[0])
    if ordered:
        return False
    n_nan = int(np.isnan(train).sum())
    if n_nan:
        raise LoaderError(f"{where}: unit {unit_id} (row {row}) has {n_nan} NaN spike time(s)")
    train.sort()
    return True


def selected_trains(rec: NWBSource, units, region):
    """Read the spike times once and pick the requested units (by id and/or region); the caller
    has checked the units table exists (:func:`units_table`).

    Returns ``(rows, ids, regions, region_source, trains)``: the selected rows of the units
    table, every unit's id and region, the rule the regions came from, and the selected units'
    spike trains (:class:`UnitTrains`: checked and sorted as they are used; their
    :meth:`~UnitTrains.extent` is the recording's extent).
    """
    flat, ends, ids = read_spike_times(rec)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    regions, region_source = unit_regions(rec)
    where = rec.where("units table")
    rows = select(ids, regions, units, region, where, "units")
    return rows, ids, regions, region_source, UnitTrains(flat, starts, ends, rows, ids, where)


def recording_extent(rec: NWBSource, flat, starts, ends) -> tuple[float, float, str]:
    """Time span of the recording: every span the file declares (``obs_intervals``, intervals
    tables, TimeSeries samples; :func:`.extent.recording_extent`) and the span of all spike
    times, whichever reach further."""
    from .extent import recording_extent as file_extent

    nonempty = ends > starts
    if not nonempty.any():
        raise LoaderError(f"{rec.where('units table')} has no spikes at all")
    first = np.nanmin(flat[starts[nonempty]])
    last = np.nanmax(flat[ends[nonempty] - 1])
    return file_extent(rec, (float(first), float(last)))


def check_inside(where, onsets, edges, extent, df_ids):
    """LoaderError naming the presentations whose windows leave the recording."""
    lo, hi, how = extent
    w_start = onsets + edges[0]
    w_stop = onsets + edges[-1]
    bad = np.flatnonzero((w_start < lo) | (w_stop > hi))
    if bad.size:
        raise LoaderError(
            f"{where}: {bad.size} presentation(s) have windows outside the recording "
            f"[{lo:.3f}, {hi:.3f}] s ({how}): presentation_id {format_list(df_ids[bad].tolist())} "
            f"with windows starting at {format_list(np.round(w_start[bad], 3).tolist())} s; "
            "drop them with exclude= or pass a DataFrame of onsets")


def spike_responses(source, intervals, stimulus: str, window=None, *, bins=None, units=None,
                    rate: bool = True, region=None, exclude=None, timeout=None):
    """Spike counts or rates of every unit in a window around every stimulus presentation.

    Parameters
    ----------
    source : str, Path or NWBSource
        Local NWB file, http(s) URL, NWB zarr store, or a source opened with ``open_nwb``.
    intervals : str or pandas.DataFrame
        Intervals table name (``"trials"``, ``"natural_scenes_presentations"``, any custom
        table) or a DataFrame with ``start_time`` (onsets, s) and the stimulus column.
    stimulus : str
        The column identifying the stimulus (``stimulus_presented``, ``frame``, …); it becomes
        ``stimulus_id``. Integer image indices are mapped to image names through the file's
        ``order_of_images``.
    window : (float, float), optional
        ``(start, stop)`` in seconds relative to onset; spikes in ``[onset+start, onset+stop)``.
    bins : int or array, optional
        Time bins instead of one window: an int divides ``window`` into equal bins, an array
        gives edges relative to onset. Adds a ``time_bin`` dim.
    units : sequence of int, optional
        Units-table ids to keep (default all).
    rate : bool
        Spikes/s (default) instead of counts.
    region : str or sequence of str, optional
        Keep only units in these brain areas.
    exclude : dict, optional
        ``{column: value(s)}`` presentations to drop, e.g. ``{"frame": -1}``.

    timeout : float, optional
        For URLs: seconds before a stalled connection, response or body read fails (see
        :func:`loaders.open_nwb`; default ``$NEUROGEOM_HTTP_TIMEOUT`` or 30).
    Returns
    -------
    xarray.DataArray
        ``(presentation, neuroid)`` or ``(presentation, neuroid, time_bin)``, presentations in
        time order. Presentation coords: every intervals-table column, ``presentation_id``,
        ``stimulus_id``, ``repetition``; neuroid coords: ``neuroid_id``, ``unit_id``,
        ``region``, ``subject``, ``session`` and the units table's scalar columns.

    Raises
    ------
    LoaderError
        Unreadable source, no units table, unknown intervals table or column, bad window,
        NaN spike times (naming the unit), empty selection, presentations outside the recording.

    Examples
    --------
    >>> resp = spike_responses("session.nwb", "trials", "stimulus_presented",
    ...                        window=(0.07, 0.17))                   # doctest: +SKIP
    """
    edges = window_edges(window, bins)
    with open_nwb(source, timeout=timeout) as rec:
        units_table(rec)
        df, pattrs = presentation_table(rec, intervals, stimulus, exclude)
        rows, ids, regions, region_source, trains = selected_trains(rec, units, region)
        onsets = np.asarray(df["start_time"], dtype=np.float64)
        widths = np.diff(edges)
        out = new_counts(len(df), rows.size, widths.size, np.float64 if rate else np.int64)
        # counting checks (and sorts) each train as it goes, while it is in cache; the extent
        # reads the sorted trains' ends, so it is checked after (an error then wastes the count)
        try:
            count_spikes(trains, onsets[:, None] + edges[None, :], out)
        finally:
            trains.warn_sorted()
        check_inside(rec.where(pattrs["intervals"]), onsets, edges, trains.extent(rec),
                     np.asarray(df["presentation_id"]))
        if rate:
            out /= widths  # spikes / s in each bin
        info = rec.info()
        extra = extra_columns(rec.units(), UNIT_SKIP,
                              reserved=("neuroid_id", "unit_id", "region", "subject", "session"))
        ncoords = neuroid_coords(info, ids[rows], regions[rows],
                                 {k: v[rows] for k, v in extra.items()}, "unit_id")
        attrs = {"units": "spikes/s" if rate else "spikes", "source": rec.name,
                 "species": info["species"], "loader": "loaders.spike_responses",
                 "stimulus": stimulus, "window_start": float(edges[0]),
                 "window_stop": float(edges[-1]), "region_source": region_source, **pattrs}
        return stimulus_assembly(out, df, ncoords, edges, attrs, binned=bins is not None)
