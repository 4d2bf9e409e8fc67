"""Turn an NWB intervals table (or a DataFrame of onsets) into the presentation coords.

Every 1-d column of the table becomes a presentation coord; ``stimulus_id`` is the chosen
stimulus column as strings (image indices are mapped to image names through ``order_of_images``
when the file stores one); ``repetition`` is the file's own column or counts each stimulus's
occurrences in time order.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from neurogeom.errors import LoaderError, format_list

from .source import NWBSource
from .tables import as_strings

#: Stimulus columns that hold indices into ``order_of_images`` in the conversions we know.
IMAGE_INDEX_COLUMNS = ("stimulus_presented", "image_index", "stimulus_index")


def presentation_table(rec: NWBSource, intervals, stimulus: str, exclude=None) -> tuple[pd.DataFrame, dict]:
    """Presentations as a DataFrame (one row each, in time order) and provenance attrs.

    Parameters
    ----------
    rec : NWBSource
    intervals : str or pandas.DataFrame
        Name of an intervals table, or a DataFrame with a ``start_time`` column (``stop_time``
        optional) and the stimulus column.
    stimulus : str
        Column identifying the stimulus; becomes ``stimulus_id`` (as strings).
    exclude : dict, optional
        ``{column: value or list of values}``: presentations to drop, e.g. ``{"frame": -1}``
        (Allen blanks) or ``{"fixation_correct": False}``.

    Returns
    -------
    (DataFrame, dict)
        Columns: every 1-d table column, ``presentation_id`` (the table row id),
        ``stimulus_id`` and ``repetition``; attrs describing where they came from.
    """
    attrs = {}
    description = ""
    if isinstance(intervals, pd.DataFrame):
        table_name = "DataFrame"
        df = intervals.reset_index(drop=True).copy()
        if "start_time" not in df.columns:
            raise LoaderError(f"the intervals DataFrame has no 'start_time' column (onsets in "
                              f"seconds); columns: {format_list(list(map(str, df.columns)))}")
        df["presentation_id"] = np.arange(len(df))
    elif isinstance(intervals, str):
        table = rec.intervals(intervals)
        table_name = table.label
        cols = {}
        for name in table.colnames:
            values = table.values(name)  # ragged and reference columns are skipped
            if values is not None:
                cols[name] = values
        df = pd.DataFrame(cols)
        df["presentation_id"] = table.ids()
        description = table.description(stimulus)
    else:
        raise LoaderError(f"intervals must be the name of an intervals table or a DataFrame of "
                          f"onsets, got {type(intervals).__name__}")
    attrs["intervals"] = intervals if isinstance(intervals, str) else "DataFrame"
    columns = [str(c) for c in df.columns if c != "presentation_id"]
    if stimulus not in df.columns:
        raise LoaderError(f"{rec.where(table_name)} has no stimulus column {stimulus!r}; "
                          f"columns: {format_list(columns, 30)}")
    start = np.asarray(df["start_time"], dtype=np.float64)
    if not np.isfinite(start).all():
        bad = np.flatnonzero(~np.isfinite(start))
        raise LoaderError(f"{rec.where(table_name)}: start_time is NaN or infinite in rows "
                          f"{format_list(bad.tolist())}")

    stim = df[stimulus].to_numpy()
    # integer image indices (DiCarlo conversions' stimulus_presented) name images through
    # order_of_images; only for columns that say so, never for any integer column
    indexes_images = stimulus in IMAGE_INDEX_COLUMNS or "order_of_images" in description
    images = rec.stimulus_images() if indexes_images else None
    if (images is not None and stim.dtype.kind in "iuf" and len(stim)
            and np.all(np.mod(stim, 1) == 0) and stim.min() >= 0 and stim.max() < len(images[1])):
        ids = images[1][stim.astype(np.int64)]
        attrs["stimulus_map"] = images[0]
    elif images is not None and len(stim):
        warnings.warn(f"{rec.where(table_name)}: {stimulus!r} does not index the "
                      f"{len(images[1])} images of {images[0]} (values from {stim.min()} to "
                      f"{stim.max()}); stimulus_id keeps the raw values", stacklevel=3)
        ids = stim.astype(np.int64).astype(str) if stim.dtype.kind in "iu" else stim.astype(str)
    elif stim.dtype.kind == "f" and np.all(np.isfinite(stim)) and np.all(np.mod(stim, 1) == 0):
        ids = stim.astype(np.int64).astype(str)  # Allen's float frame 5.0 -> "5"
    elif stim.dtype.kind == "f" and np.isnan(stim).any():
        bad = np.flatnonzero(np.isnan(stim))
        raise LoaderError(f"{rec.where(table_name)}: stimulus column {stimulus!r} is NaN in rows "
                          f"{format_list(bad.tolist())}; drop them first (pass a DataFrame)")
    else:
        ids = as_strings(stim) if stim.dtype.kind in "SO" else stim.astype(str)
    df["stimulus_id"] = ids

    if exclude:
        if not isinstance(exclude, dict):
            raise LoaderError(f"exclude must be a dict {{column: value(s)}}, got {type(exclude).__name__}")
        keep = np.ones(len(df), dtype=bool)
        for col, values in exclude.items():
            if col not in df.columns:
                raise LoaderError(f"{rec.where(table_name)} has no column {col!r} to exclude on; "
                                  f"columns: {format_list(columns, 30)}")
            values = values if isinstance(values, (list, tuple, set, np.ndarray)) else [values]
            keep &= ~df[col].isin(list(values)).to_numpy()
        df = df[keep].reset_index(drop=True)
        attrs["exclude"] = "; ".join(f"{k}={v!r}" for k, v in exclude.items())
    if len(df) == 0:
        raise LoaderError(f"{rec.where(table_name)}: no presentations left to load"
                          + (f" after exclude={exclude!r}" if exclude else ""))

    # time order, stable, so that derived repetitions count occurrences in time
    df = df.iloc[np.argsort(np.asarray(df["start_time"], dtype=np.float64), kind="stable")]
    df = df.reset_index(drop=True)
    if "repetition" in df.columns:
        attrs["repetition_source"] = "file"
    else:
        df["repetition"] = df.groupby("stimulus_id", sort=False).cumcount().to_numpy()
        attrs["repetition_source"] = "derived: occurrences of each stimulus in time order"
    return df, attrs


def presentation_coords(df: pd.DataFrame) -> dict:
    """The DataFrame's columns as xarray coords on ``presentation`` (netCDF-safe dtypes)."""
    coords = {}
    for name in df.columns:
        values = df[name].to_numpy()
        if values.dtype.kind == "O" or pd.api.types.is_string_dtype(df[name].dtype):
            values = as_strings(values)
        coords[str(name)] = ("presentation", values)
    return coords
