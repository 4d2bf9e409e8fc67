"""Continuous activity in time bins — spike counts/rates or calcium samples — with behavioural
covariates interpolated onto the bins, restricted to epochs."""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurogeom import assembly as asm
from neurogeom import __version__
from neurogeom.errors import LoaderError, format_list

from .behaviour import covariate_coords, covariate_support, resolve_covariates
from .build import extra_columns, neuroid_coords, select
from .calcium import (MAX_IN_MEMORY_BYTES, SERIES_DEFAULT_RULE, choose_series, find_roi_series, chunk_samples_for, sample_times,
                      series_layout, window_means)
from .regions import roi_regions
from .source import open_nwb
from .counting import count_spikes, new_counts
from .spikes import UNIT_SKIP, selected_trains, units_table


def time_bins(epochs: np.ndarray, bin_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive bins of ``bin_size`` tiling each ``[start, stop)`` epoch (whole bins only).

    Each epoch's edges are one array, ``start + k * bin_size`` for ``k = 0 … n``, and a bin's
    end *is* the next bin's start (the same float, not ``start_k + bin_size`` recomputed, which
    lands a few ulps off the next start for bin sizes that are not binary fractions such as
    0.1 s): with half-open bins every spike between the first and the last edge is counted
    exactly once, including spikes lying exactly on an edge (spike times stored on a 0.1 ms
    grid do). When ``n`` bins fill the epoch up to rounding, the last edge is the epoch's stop
    itself.

    Returns
    -------
    (bin_start, bin_end, epoch_row)
        The bins' start and end times and the epoch row each belongs to.
    """
    starts, ends, rows = [], [], []
    for row, (a, b) in enumerate(epochs):
        # the small tolerance keeps the last whole bin when (b - a) / bin_size is an integer
        # up to float rounding
        n = int(np.floor((b - a) / bin_size + 1e-9))
        edges = a + np.arange(n + 1) * bin_size
        if n and abs(edges[-1] - b) <= 1e-9 * max(abs(b), bin_size):
            edges[-1] = b      # the epoch's own stop, not a float a few ulps either side
        starts.append(edges[:-1])
        ends.append(edges[1:])
        rows.append(np.full(n, row))
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(rows)


def _epochs(rec, epoch, extent) -> tuple[np.ndarray, str]:
    lo, hi, how = extent
    if epoch is None:
        return np.array([[lo, hi]]), "whole recording"
    if isinstance(epoch, str):
        table = rec.intervals(epoch)
        epochs = np.column_stack([np.asarray(table.values("start_time"), dtype=np.float64),
                                  np.asarray(table.values("stop_time"), dtype=np.float64)])
        label = f"intervals table {epoch!r}"
    else:
        epochs = np.atleast_2d(np.asarray(epoch, dtype=np.float64))
        label = f"epoch {epochs.tolist()}"
        if epochs.ndim != 2 or epochs.shape[1] != 2:
            raise LoaderError(f"epoch must be (start, stop), a list of them, or an intervals "
                              f"table name; got {epoch!r}")
    if np.any(epochs[:, 1] <= epochs[:, 0]):
        raise LoaderError(f"{rec.where(label)}: every epoch needs start < stop")
    bad = np.flatnonzero((epochs[:, 0] < lo - 1e-9) | (epochs[:, 1] > hi + 1e-9))
    if bad.size:
        inside = np.delete(epochs, bad, axis=0)
        pairs = ", ".join(f"({a:.6g}, {b:.6g})" for a, b in inside[:6].tolist())
        keep = (f"pass the {len(inside)} row(s) inside it as (start, stop) pairs: "
                f"epoch=[{pairs}{', …' if len(inside) > 6 else ''}]"
                if inside.size else "no row lies inside it")
        raise LoaderError(
            f"{rec.where(label)}: epoch row(s) {format_list(bad.tolist())} "
            f"({format_list([(round(a, 3), round(b, 3)) for a, b in epochs[bad].tolist()], 6)}) "
            f"lie outside the recording [{lo:.3f}, {hi:.3f}] s ({how}); to drop them, {keep}")
    return epochs, label


def _within(epochs: np.ndarray, support) -> tuple[np.ndarray, str]:
    """Epochs clipped to the covariates' common support ``(start, stop)`` (rows left empty get
    no bins but keep their index), and a note for the ``covariate_support`` attr."""
    if support is None:
        return epochs, ""
    lo, hi = support
    clipped = epochs.copy()
    clipped[:, 0] = np.maximum(clipped[:, 0], lo)
    clipped[:, 1] = np.maximum(np.minimum(clipped[:, 1], hi), clipped[:, 0])
    if np.array_equal(clipped, epochs):
        return epochs, f"all bins inside [{lo:.6g}, {hi:.6g}] s, where every covariate has samples"
    return clipped, (f"bins restricted to [{lo:.6g}, {hi:.6g}] s, where every covariate has "
                     "samples (within_covariates=False to refuse instead)")


def binned_activity(source, bin_size: float, epoch=None, covariates=None, units=None, *,
                    region=None, rate: bool = True, series=None, within_covariates: bool = True,
                    max_in_memory_bytes: int = MAX_IN_MEMORY_BYTES, timeout=None):
    """Spike counts/rates (or calcium samples) of every unit in consecutive time bins.

    Parameters
    ----------
    source : str, Path or NWBSource
        Local NWB file, http(s) URL, NWB zarr store or an open source.
    bin_size : float
        Bin width in seconds.
    epoch : str, (start, stop) or list of them, optional
        Restrict the bins: an intervals-table name (each row an epoch, e.g. ``"epochs"`` or a
        ``*_presentations`` table), or explicit ``(start, stop)`` pairs. Default: the whole
        recording. For spikes the recording is what the file declares (its intervals tables,
        ``obs_intervals``, the samples of its TimeSeries; :mod:`loaders.nwb.extent`) or the
        span of the spikes where that reaches further; for calcium, the imaging series.
    covariates : str or sequence of str, optional
        Behavioural series interpolated onto the bin centers and stored as ``time`` coords: a
        series name (``"head_direction"``, ``"running_speed"``), a container name
        (``"CompassDirection"``, ``"Position"``) or a path. Multi-column series give
        ``name_x``, ``name_y``…; angles are interpolated on the circle. The bins are
        restricted to the time every covariate covers (see ``within_covariates``).
    units : sequence of int, optional
        Unit (or ROI) ids to keep.
    region : str or sequence of str, optional
        Keep units in these areas.
    rate : bool
        Spikes/s (default) or counts. Ignored for calcium.
    series : str, optional
        Bin a RoiResponseSeries (mean of the samples in each bin) instead of spikes. Without
        it, a file with no units table loads its dF/F series, else its Fluorescence series,
        never a neuropil or deconvolved one (a warning names the choice when there were
        others; the ``series`` attr records it).
    within_covariates : bool
        With covariates, restrict the epochs to the span where every covariate has samples
        (default; a tracking camera often starts after the recording), recorded in the
        ``covariate_support`` attr. False: a LoaderError when a bin lies outside it.
    max_in_memory_bytes : int
        Imaging series larger than this are read through dask in time chunks.

    timeout : float, optional
        For URLs: seconds before a stalled connection, response or body read fails (see
        :func:`loaders.open_nwb`; default ``$NEUROGEOM_HTTP_TIMEOUT`` or 30).
    Returns
    -------
    xarray.DataArray
        ``(time, neuroid)`` with time coords ``time`` (bin centers), ``bin_start``,
        ``bin_end``, ``epoch_index`` and the covariates.

    Raises
    ------
    LoaderError
        Unknown epoch table or covariate (listing what exists), epochs or bins outside the
        recording or a covariate's range, empty selection, bins with no imaging sample.
    """
    if not (isinstance(bin_size, (int, float)) and np.isfinite(bin_size) and bin_size > 0):
        raise LoaderError(f"bin_size must be a positive number of seconds, got {bin_size!r}")
    with open_nwb(source, timeout=timeout) as rec:
        info = rec.info()
        use_calcium = series is not None or rec.units() is None
        # rec.nwbfile builds every pynwb object in the file (seconds for files with thousands
        # of images): only for covariates
        resolved = (resolve_covariates(rec.nwbfile, covariates, rec.where())
                    if covariates is not None else [])
        support = covariate_support(resolved) if within_covariates else None
        attrs = {"source": rec.name, "species": info["species"],
                 "loader": "loaders.binned_activity", "bin_size": float(bin_size)}
        if use_calcium:
            if series is None and not find_roi_series(rec):
                raise LoaderError(f"{rec.where()} has no units table and no RoiResponseSeries: "
                                  "nothing to bin (see `neurogeom inspect` for what it holds)")
            path, obj = choose_series(rec, series)
            time_axis, n_samples, _ = series_layout(obj, path, rec.where())
            times = sample_times(obj, n_samples, path, rec.where())
            dt = float(np.median(np.diff(times))) if n_samples > 1 else 0.0
            # each frame stands for the half-open frame period centred on it: bins of the
            # recording start half a frame before the first sample, so bins one frame period
            # wide are centred on the frames and frame-time jitter (< dt / 2) moves no frame
            # into a neighbour's bin
            extent = (times[0] - dt / 2, times[-1] + dt / 2, f"{path}, ± half a frame")
            epochs, label = _epochs(rec, epoch, extent)
            epochs, support_note = _within(epochs, support)
            starts, ends, rows = time_bins(epochs, bin_size)
            if starts.size == 0:
                raise LoaderError(f"{rec.where(label)}: empty selection: no whole {bin_size} s "
                                  "bin fits in the epochs"
                                  + (f" ({support_note})" if support_note else ""))
            table = obj.rois.table
            ids = np.asarray(table.id.data[:])[np.asarray(obj.rois.data[:], dtype=np.int64)]
            regions, region_source = roi_regions(obj, rec.name)
            cols = select(ids, regions, units, region, rec.where(path), "ROIs")
            edges = np.column_stack([starts, ends])
            chunk = chunk_samples_for(obj, n_samples, len(ids), max_in_memory_bytes)
            # frame times from starting_time + k / rate and edges from start + k * bin_size
            # differ by float rounding (3 / 10 != 3 * 0.1): a frame within a millionth of a
            # frame period of an edge is taken to lie on it, so a bin one frame period wide
            # holds exactly one frame instead of zero or two
            tol = 1e-6 * dt
            values, n_in = window_means(obj.data, time_axis, cols, times, edges - tol, chunk)
            if (n_in == 0).any():
                empty = np.flatnonzero(n_in[:, 0] == 0)
                raise LoaderError(
                    f"{rec.where(path)}: {empty.size} bin(s) of {bin_size} s hold no sample "
                    f"(frames are {dt:.4g} s apart; first empty bin "
                    f"[{starts[empty[0]]:.4f}, {ends[empty[0]]:.4f}) s): bins no wider than "
                    "the frame period catch no frame where frame times jitter or frames are "
                    f"missing; use bin_size={2 * dt:.4g} s or more (two frame periods), "
                    "or an epoch starting half a frame before a frame (bins centred on the "
                    "frames, as the default whole-recording epoch is)")
            values = values[..., 0]
            from pynwb.ophys import DfOverF
            attrs["units"] = "dF/F" if isinstance(obj.parent, DfOverF) else str(obj.unit or "a.u.")
            attrs["series"] = path
            attrs["series_choice"] = "given" if series is not None else SERIES_DEFAULT_RULE
            ncoords = neuroid_coords(info, ids[cols], regions[cols], {}, "roi_id")
        else:
            units_table(rec)
            sel, ids, regions, region_source, trains = selected_trains(rec, units, region)
            try:
                extent = trains.extent(rec)
            finally:
                trains.warn_sorted()
            epochs, label = _epochs(rec, epoch, extent)
            epochs, support_note = _within(epochs, support)
            starts, ends, rows = time_bins(epochs, bin_size)
            if starts.size == 0:
                raise LoaderError(f"{rec.where(label)}: empty selection: no whole {bin_size} s "
                                  "bin fits in the epochs"
                                  + (f" ({support_note})" if support_note else ""))
            out = new_counts(starts.size, sel.size, 1, np.float64 if rate else np.int64)
            count_spikes(trains, np.column_stack([starts, ends]), out)
            values = out[..., 0]
            if rate:
                values /= bin_size
            attrs["units"] = "spikes/s" if rate else "spikes"
            extra = extra_columns(rec.units(), UNIT_SKIP,
                                  reserved=("neuroid_id", "unit_id", "region", "subject", "session"))
            ncoords = neuroid_coords(info, ids[sel], regions[sel],
                                     {k: v[sel] for k, v in extra.items()}, "unit_id")
        centers = (starts + ends) / 2
        cov, cov_paths = covariate_coords(None, covariates, centers, rec.where(), resolved)
        coords = {"time": ("time", centers), "bin_start": ("time", starts),
                  "bin_end": ("time", ends), "epoch_index": ("time", rows)}
        coords.update({k: ("time", v) for k, v in cov.items()})
        coords.update(ncoords)
        attrs.update({"epoch": label, "region_source": region_source,
                      "covariates": cov_paths if cov_paths else "",
                      "covariate_support": support_note,
                      "neurogeom_version": __version__})
        result = xr.DataArray(values, dims=("time", "neuroid"), coords=coords, attrs=attrs,
                              name="activity")
        return asm.validate(result)
