"""Stimulus-locked calcium responses from RoiResponseSeries (dF/F or fluorescence).

Series are found by type, wherever the writer put them (``DfOverF``, ``Fluorescence``, a
container named ``dff``…). A trace stored rois × time instead of time × rois is detected from
the ROI table's length and transposed with a warning. Window means come from cumulative sums:
the sum over samples ``[i, j)`` is ``C[j] - C[i]``, so every window of every presentation costs
two lookups. Series larger than ``max_in_memory_bytes`` are read through dask in time chunks,
each chunk adding its share of every window, so memory stays at a few chunks and outputs.
"""

from __future__ import annotations

import warnings

import numpy as np

from neurogeom.errors import LoaderError, format_list

from .build import neuroid_coords, select, stimulus_assembly, window_edges
from .presentations import presentation_table
from .regions import roi_regions
from .source import NWBSource, open_nwb

#: Series above this many bytes are read in time chunks instead of whole.
MAX_IN_MEMORY_BYTES = 512 * 1024 ** 2


def _object_path(obj) -> str:
    """HDF5-style path of a container: ``processing/ophys/DfOverF/RoiResponseSeries``."""
    from pynwb.base import ProcessingModule

    parts = []
    while obj is not None and type(obj).__name__ != "NWBFile":
        parts.append(obj.name)
        if obj.parent is not None and type(obj.parent).__name__ == "NWBFile":
            parts.append("processing" if isinstance(obj, ProcessingModule) else "acquisition")
        obj = obj.parent
    return "/".join(reversed(parts))


def find_roi_series(rec: NWBSource) -> list:
    """Every RoiResponseSeries in the file, dF/F containers first, as ``(path, series)``."""
    from pynwb.ophys import DfOverF, RoiResponseSeries

    found = []
    for obj in rec.nwbfile.objects.values():
        if isinstance(obj, RoiResponseSeries):
            rank = 0 if isinstance(obj.parent, DfOverF) else 1
            found.append((rank, _object_path(obj), obj))
    found.sort(key=lambda x: (x[0], x[1]))
    return [(path, obj) for _, path, obj in found]


#: Words in a series' path that mark it as a by-product, never loaded by default: the neuropil
#: trace suite2p subtracts, and deconvolved (inferred spike) traces.
NOT_BY_DEFAULT = ("neuropil", "deconv")


#: How a series is chosen without ``series=`` (the ``series_choice`` attr of the result).
SERIES_DEFAULT_RULE = "default: DfOverF, then Fluorescence, never neuropil or deconvolved"


def series_preference(path: str, series) -> int | None:
    """Rank of a RoiResponseSeries in the default choice (lower first), None when it is never
    chosen by default.

    0: in a ``DfOverF`` container; 1: in a ``Fluorescence`` container; 2: anywhere else.
    Series whose path names neuropil or deconvolved traces (suite2p writes ``Fluorescence``,
    ``Neuropil`` and ``Deconvolved``, all three as Fluorescence containers) are never the
    default.
    """
    from pynwb.ophys import DfOverF, Fluorescence

    if any(word in path.lower() for word in NOT_BY_DEFAULT):
        return None
    if isinstance(series.parent, DfOverF):
        return 0
    return 1 if isinstance(series.parent, Fluorescence) else 2


def default_series(candidates: list) -> tuple:
    """The series a call without ``series=`` loads: ``(path, series, None)``, or
    ``(None, None, why)`` when the preference (:func:`series_preference`) does not decide."""
    paths = [p for p, _ in candidates]
    ranked = [(series_preference(p, s), p, s) for p, s in candidates]
    ranked = [r for r in ranked if r[0] is not None]
    if not ranked:
        return None, None, (f"its RoiResponseSeries {format_list(paths)} are all neuropil or "
                            "deconvolved traces, which are never loaded by default")
    best = min(r[0] for r in ranked)
    pool = [(p, s) for rank, p, s in ranked if rank == best]
    if len(pool) > 1:
        kind = ("DfOverF", "Fluorescence", "other")[best]
        return None, None, (f"it has several {kind} RoiResponseSeries "
                            f"{format_list([p for p, _ in pool])}")
    return pool[0][0], pool[0][1], None


def choose_series(rec: NWBSource, series=None):
    """The RoiResponseSeries to load: ``series`` (a name or path suffix), else the preferred one.

    Preference without ``series``: a series in a ``DfOverF`` container, then one in a
    ``Fluorescence`` container, then any other; never one whose path names neuropil or
    deconvolved traces. When the choice is not a dF/F series and the file has others, a
    warning names the choice and the alternatives (the choice is the ``series`` attr of the result). A LoaderError only when
    the preference does not decide (two dF/F series, or only neuropil/deconvolved ones).
    """
    candidates = find_roi_series(rec)
    paths = [p for p, _ in candidates]
    if not candidates:
        raise LoaderError(f"{rec.where()} has no RoiResponseSeries (no DfOverF/Fluorescence "
                          "traces in processing or acquisition)")
    if series is not None:
        hits = [(p, s) for p, s in candidates if p == series or p.endswith("/" + series)]
        if len(hits) != 1:
            why = "matches several" if hits else "matches none"
            raise LoaderError(f"{rec.where()}: series={series!r} {why} of the RoiResponseSeries "
                              f"{format_list(paths)}")
        return hits[0]
    path, obj, why = default_series(candidates)
    if path is None:
        raise LoaderError(f"{rec.where()}: no default RoiResponseSeries: {why}; choose one "
                          f"with series= (one of {format_list(paths)})")
    others = [p for p in paths if p != path]
    # dF/F is what a calcium analysis means: chosen silently over raw traces; any other
    # choice is a guess the user should see
    if others and series_preference(path, obj) != 0:
        warnings.warn(f"{rec.where()}: loading the RoiResponseSeries {path} (default: dF/F, "
                      "then fluorescence, never neuropil or deconvolved); others in the file: "
                      f"{format_list(others)} (choose with series=)", stacklevel=3)
    return path, obj


def series_layout(series, path: str, where: str) -> tuple[int, int, int]:
    """``(time_axis, n_samples, n_rois)`` of a RoiResponseSeries' data.

    NWB stores time × rois. Some writers store rois × time: when only the first axis matches the
    ROI table's length the data are read transposed, with a warning; when both axes match and no
    timestamps say which is time, the layout is ambiguous and an error.
    """
    shape = tuple(series.data.shape)
    n_rois = len(series.rois.data)
    n_stamps = len(series.timestamps) if series.timestamps is not None else None
    if len(shape) == 1 and n_rois == 1:
        return 0, shape[0], 1
    if len(shape) != 2:
        raise LoaderError(f"{where}: {path} has data of shape {shape}; expected time × rois")
    first, second = shape[0] == n_rois, shape[1] == n_rois
    if first and second and n_stamps is not None and n_stamps in shape and shape[0] != shape[1]:
        first, second = shape[1] == n_stamps, shape[0] == n_stamps
    if second and not first:
        return 0, shape[0], n_rois
    if first and not second:
        warnings.warn(f"{where}: {path} is stored rois × time {shape} ({n_rois} ROIs in its "
                      "rois table); reading it transposed", stacklevel=4)
        return 1, shape[1], n_rois
    if first and second:
        raise LoaderError(f"{where}: {path} has data of shape {shape} and {n_rois} ROIs: cannot "
                          "tell which axis is time (no timestamps to decide); transpose it "
                          "explicitly")
    raise LoaderError(f"{where}: {path} has data of shape {shape} but its rois table has "
                      f"{n_rois} rows; neither axis matches")


def sample_times(series, n_samples: int, path: str, where: str) -> np.ndarray:
    """Sample times (s) from explicit ``timestamps`` or ``starting_time`` + ``rate``."""
    if series.timestamps is not None:
        times = np.asarray(series.timestamps[:], dtype=np.float64)
        if times.size != n_samples:
            raise LoaderError(f"{where}: {path} has {times.size} timestamps for {n_samples} "
                              "samples")
        if np.any(np.diff(times) < 0):
            raise LoaderError(f"{where}: timestamps of {path} are not increasing")
        return times
    if not series.rate:
        raise LoaderError(f"{where}: {path} has neither timestamps nor a sampling rate")
    return float(series.starting_time or 0.0) + np.arange(n_samples) / float(series.rate)


def window_means(data, time_axis: int, columns: np.ndarray, times: np.ndarray,
                 edges_abs: np.ndarray, chunk_samples: int | None = None) -> np.ndarray:
    """Mean of every column over the samples in each bin ``[edge_k, edge_k+1)``.

    Parameters
    ----------
    data : array-like (h5py/zarr dataset or ndarray)
        The series data, time on ``time_axis``.
    columns : int array
        Which ROIs (columns) to average.
    times : (n_samples,) array
        Sample times.
    edges_abs : (n_presentations, n_edges) array
        Absolute bin edges.
    chunk_samples : int, optional
        Read the series in time chunks of this many samples, through dask (threaded scheduler):
        each chunk's share of every bin is a task and the shares are summed in a tree, so
        memory stays near a few chunks plus a few outputs instead of the whole series.

    Returns
    -------
    (means, n_samples_in_bin)
        ``(n_presentations, n_columns, n_edges - 1)`` float64 means (NaN where a bin holds no
        sample) and the ``(n_presentations, n_edges - 1)`` sample counts.
    """
    n_samples = times.size
    pos = np.searchsorted(times, edges_abs, side="left")  # first sample at or after each edge
    lo, hi = pos[:, :-1], pos[:, 1:]
    n_in_bin = hi - lo
    contiguous = bool(columns.size) and np.array_equal(
        columns, np.arange(columns[0], columns[-1] + 1))
    sl = slice(columns[0], columns[-1] + 1) if contiguous else slice(None)

    def chunk_sums(c0: int, c1: int) -> np.ndarray:
        """Each bin's sum over the samples ``[c0, c1)`` it contains."""
        if len(data.shape) == 1:   # one ROI stored as a 1-d trace
            block = np.asarray(data[c0:c1])[:, None][:, sl]
        else:
            block = data[c0:c1, sl] if time_axis == 0 else data[sl, c0:c1].T
        block = np.asarray(block, dtype=np.float64)
        if not contiguous:
            block = block[:, columns]
        # C[k] = sum of the block's first k samples; a bin's share is C[hi'] - C[lo']
        cum = np.zeros((block.shape[0] + 1, block.shape[1]))
        np.cumsum(block, axis=0, out=cum[1:])
        a = np.clip(lo, c0, c1) - c0
        b = np.clip(hi, c0, c1) - c0
        return cum[b] - cum[a]

    if not chunk_samples or chunk_samples >= n_samples:
        sums = chunk_sums(0, n_samples)
    else:
        import dask
        import dask.array as da

        step = int(chunk_samples)
        shape = lo.shape + (columns.size,)
        parts = [da.from_delayed(dask.delayed(chunk_sums, pure=False)(c0, min(c0 + step, n_samples)),
                                 shape=shape, dtype=np.float64)
                 for c0 in range(0, n_samples, step)]
        # h5py serializes reads with its own lock, so threads are safe; the tree sum keeps only
        # a few partial outputs alive at once
        sums = da.stack(parts).sum(axis=0, split_every=4).compute(scheduler="threads")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / n_in_bin[..., None]
    return np.moveaxis(means, -1, 1), n_in_bin


def chunk_samples_for(series, n_samples: int, n_rois: int, max_in_memory_bytes: int):
    """Samples per chunk when the series exceeds ``max_in_memory_bytes`` (else None): chunks of
    about a quarter of the threshold, as float64."""
    nbytes = n_samples * n_rois * np.dtype(series.data.dtype).itemsize
    if nbytes <= max_in_memory_bytes:
        return None
    return max(1, int(max_in_memory_bytes // 4 // max(n_rois * 8, 1)))


def calcium_responses(source, intervals, stimulus: str, window=None, *, baseline=None,
                      series=None, bins=None, rois=None, region=None, exclude=None,
                      max_in_memory_bytes: int = MAX_IN_MEMORY_BYTES, timeout=None):
    """Mean calcium signal of every ROI in a window around every stimulus presentation.

    Parameters
    ----------
    source : str, Path or NWBSource
        Local NWB file, http(s) URL, NWB zarr store or an open source.
    intervals : str or pandas.DataFrame
        Intervals table name or a DataFrame with ``start_time`` and the stimulus column.
    stimulus : str
        Column identifying the stimulus (becomes ``stimulus_id``).
    window : (float, float)
        ``(start, stop)`` in s relative to onset; samples with times in ``[onset+start,
        onset+stop)`` are averaged.
    baseline : (float, float), optional
        A window (relative to onset) whose mean is subtracted, per presentation and ROI.
    series : str, optional
        Name or path suffix of the RoiResponseSeries (``"dff/RoiResponseSeries"``). Default:
        the file's dF/F series, else its Fluorescence series, never a neuropil or deconvolved
        one (:func:`choose_series`; a warning names the choice when there were others).
    bins : int or array, optional
        Time bins instead of one window (adds a ``time_bin`` dim), as in ``spike_responses``.
    rois : sequence of int, optional
        ROI ids (plane segmentation ids) to keep.
    region : str or sequence of str, optional
        Keep ROIs whose imaging plane is in these areas.
    exclude : dict, optional
        ``{column: value(s)}`` presentations to drop, e.g. ``{"frame": -1}``.
    max_in_memory_bytes : int
        Series larger than this are read through dask in time chunks of about this size / 4.

    timeout : float, optional
        For URLs: seconds before a stalled connection, response or body read fails (see
        :func:`loaders.open_nwb`; default ``$NEUROGEOM_HTTP_TIMEOUT`` or 30).
    Returns
    -------
    xarray.DataArray
        ``(presentation, neuroid[, time_bin])``; neuroid coords ``neuroid_id``, ``roi_id``,
        ``region``, ``subject``, ``session``; attrs ``units`` (``"dF/F"`` for DfOverF series),
        ``series``, ``window_*``, ``baseline_*``.

    Raises
    ------
    LoaderError
        No or ambiguous RoiResponseSeries, ambiguous orientation, windows without samples or
        outside the series, and every error of the presentation table.
    """
    edges = window_edges(window, bins)
    base = window_edges(baseline, None) if baseline is not None else None
    with open_nwb(source, timeout=timeout) as rec:
        path, obj = choose_series(rec, series)
        where = rec.where(path)
        df, pattrs = presentation_table(rec, intervals, stimulus, exclude)
        time_axis, n_samples, n_rois = series_layout(obj, path, rec.where())
        times = sample_times(obj, n_samples, path, rec.where())
        table = obj.rois.table
        roi_rows = np.asarray(obj.rois.data[:], dtype=np.int64)
        roi_ids = np.asarray(table.id.data[:])[roi_rows]
        regions, region_source = roi_regions(obj, rec.name)
        cols = select(roi_ids, regions, rois, region, where, "ROIs")

        onsets = np.asarray(df["start_time"], dtype=np.float64)
        dt = float(np.median(np.diff(times))) if n_samples > 1 else 0.0
        lo, hi = times[0], times[-1] + dt
        span = edges if base is None else np.concatenate([edges, base])
        w0, w1 = onsets + span.min(), onsets + span.max()
        bad = np.flatnonzero((w0 < lo) | (w1 > hi))
        if bad.size:
            raise LoaderError(
                f"{rec.where(pattrs['intervals'])}: {bad.size} presentation(s) have windows "
                f"outside the series {path} [{lo:.3f}, {hi:.3f}] s: presentation_id "
                f"{format_list(np.asarray(df['presentation_id'])[bad].tolist())}")
        chunk = chunk_samples_for(obj, n_samples, n_rois, max_in_memory_bytes)
        all_edges = onsets[:, None] + edges[None, :]
        values, n_in = window_means(obj.data, time_axis, cols, times, all_edges, chunk)
        _check_samples(n_in, df, edges, path, rec.where(pattrs["intervals"]), "window")
        if base is not None:
            b, n_in = window_means(obj.data, time_axis, cols, times,
                                   onsets[:, None] + base[None, :], chunk)
            _check_samples(n_in, df, base, path, rec.where(pattrs["intervals"]), "baseline")
            values = values - b
        info = rec.info()
        from pynwb.ophys import DfOverF

        is_dff = isinstance(obj.parent, DfOverF)
        unit = "dF/F" if is_dff else str(obj.unit or "a.u.")
        ncoords = neuroid_coords(info, roi_ids[cols], regions[cols], {}, "roi_id")
        attrs = {"units": unit, "source": rec.name, "species": info["species"],
                 "loader": "loaders.calcium_responses", "series": path,
                 "series_choice": "given" if series is not None else SERIES_DEFAULT_RULE,
                 "stimulus": stimulus,
                 "window_start": float(edges[0]), "window_stop": float(edges[-1]),
                 "region_source": region_source,
                 "orientation": "rois x time (transposed)" if time_axis else "time x rois",
                 "timing": "timestamps" if obj.timestamps is not None else "rate",
                 "chunked": int(chunk is not None), **pattrs}
        if base is not None:
            attrs["baseline_start"], attrs["baseline_stop"] = float(base[0]), float(base[1])
        return stimulus_assembly(values, df, ncoords, edges, attrs, binned=bins is not None)


def _check_samples(n_in_bin, df, edges, path, where, what):
    empty = (n_in_bin == 0).any(axis=1)
    if empty.any():
        ids = np.asarray(df["presentation_id"])[empty]
        raise LoaderError(f"{where}: the {what} {edges.tolist()} s holds no sample of {path} for "
                          f"presentation_id {format_list(ids.tolist())}; widen it (samples are "
                          "1/rate apart)")
