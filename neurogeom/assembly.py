"""The Assembly data contract: validation, repetition averaging, alignment, manifolds.

An *assembly* is a plain :class:`xarray.DataArray` (no subclass, no MultiIndex) with one of the
dim layouts in :data:`LAYOUTS`. Presentations carry a ``stimulus_id``; neuroids carry a unique
``neuroid_id``. Every loader's output passes :func:`validate`, and every analysis starts with it,
so the checks live here once rather than scattered through the kernels.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse

from .errors import AlignmentError, AssemblyError, format_list
from .io import attr_problem, coord_problem

#: Allowed dim orders. Stimulus-locked responses, optionally binned in time, or continuous activity.
LAYOUTS: tuple[tuple[str, ...], ...] = (
    ("presentation", "neuroid"),
    ("presentation", "neuroid", "time_bin"),
    ("time", "neuroid"),
)

#: Presentation coords that differ between repetitions of one stimulus by construction; they are
#: dropped (not grouped on) by :func:`average_repetitions`.
PER_PRESENTATION_COORDS: tuple[str, ...] = (
    "repetition",
    "presentation_id",
    "presentation_index",
    "trial_index",
    "trial_id",
    "id",
    "start_time",
    "stop_time",
    "onset",
    "offset",
    "stimulus_order_in_trial",
    "timestamp",
)

NAN_POLICIES = ("raise", "allow")


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------

def validate(a, *, nan_policy: str = "raise", check_values: bool = True) -> xr.DataArray:
    """Check that ``a`` satisfies the Assembly contract and return it unchanged.

    Every problem is collected and reported at once, so one round of fixes is enough.

    Parameters
    ----------
    a : xarray.DataArray
        The assembly to check.
    nan_policy : {"raise", "allow"}
        ``"raise"`` (default) rejects NaN values; ``"allow"`` accepts NaN (for analyses that mask
        it explicitly). Infinite values are always rejected.
    check_values : bool
        Check values for NaN/inf (computes a lazy array once). Set False for very large
        dask-backed assemblies checked elsewhere.

    Returns
    -------
    xarray.DataArray
        ``a`` itself.

    Raises
    ------
    AssemblyError
        Naming every problem: wrong type or dims, missing or duplicate ids, MultiIndex,
        non-finite values, attrs or coords that cannot be serialized.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.zeros((2, 3)), dims=("presentation", "neuroid"),
    ...                  coords={"stimulus_id": ("presentation", ["a", "b"]),
    ...                          "neuroid_id": ("neuroid", ["n0", "n1", "n2"])})
    >>> validate(a) is a
    True
    """
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    if not isinstance(a, xr.DataArray):
        raise AssemblyError(
            f"an assembly must be an xarray.DataArray, got {type(a).__module__}.{type(a).__name__}")
    problems: list[str] = []
    dims = tuple(a.dims)
    if dims not in LAYOUTS:
        expected = " or ".join(str(l) for l in LAYOUTS)
        hint = ""
        for layout in LAYOUTS:
            if set(dims) == set(layout):
                hint = f"; reorder with a.transpose{layout}"
        problems.append(f"dims are {dims}, expected {expected}{hint}")

    for name, index in a.indexes.items():
        if isinstance(index, pd.MultiIndex):
            problems.append(
                f"dim {name!r} has a MultiIndex (levels {list(index.names)}); "
                f"flatten it with a.reset_index({name!r})")

    if "presentation" in dims:
        _require_coord(a, "stimulus_id", "presentation", problems)
    if "neuroid" in dims and _require_coord(a, "neuroid_id", "neuroid", problems):
        ids = pd.Index(np.asarray(a["neuroid_id"].values))
        if not ids.is_unique:
            dup = ids[ids.duplicated()].unique().tolist()
            problems.append(f"neuroid_id is not unique: duplicated {format_list(dup)}")
    if "time_bin" in dims:
        for c in ("time_bin_start", "time_bin_end"):
            _require_coord(a, c, "time_bin", problems)

    if a.dtype.kind not in "biuf":
        problems.append(f"values have dtype {a.dtype}; expected a real numeric dtype")
    elif check_values and a.size:
        data = a.data
        n_nan = int(np.asarray(np.isnan(data).sum())) if a.dtype.kind == "f" else 0
        n_inf = int(np.asarray(np.isinf(data).sum())) if a.dtype.kind == "f" else 0
        if n_nan and nan_policy == "raise":
            problems.append(_where_bad(a, np.isnan, f"{n_nan} NaN value(s)")
                            + " (pass nan_policy='allow' to analyses that mask NaN)")
        if n_inf:
            problems.append(_where_bad(a, np.isinf, f"{n_inf} infinite value(s)"))

    for key, value in a.attrs.items():
        why = attr_problem(value)
        if why:
            problems.append(f"attr {key!r}: {why}")
    for name, coord in a.coords.items():
        why = coord_problem(name, coord)
        if why:
            problems.append(why)
        for key, value in coord.attrs.items():
            why = attr_problem(value)
            if why:
                problems.append(f"attr {key!r} of coord {name!r}: {why}")

    if problems:
        what = f"assembly {a.name!r}" if a.name is not None else "assembly"
        raise AssemblyError(f"{what} breaks the data contract: " + "; ".join(problems))
    return a


def _require_coord(a: xr.DataArray, name: str, dim: str, problems: list[str]) -> bool:
    if name not in a.coords:
        on_dim = [str(c) for c, v in a.coords.items() if v.dims == (dim,)]
        problems.append(f"missing required coord {name!r} on dim {dim!r} "
                        f"(coords on {dim!r}: {format_list(on_dim)})")
        return False
    if a[name].dims != (dim,):
        problems.append(f"coord {name!r} must lie on dim {dim!r}, found dims {a[name].dims}")
        return False
    return True


def _where_bad(a: xr.DataArray, test, what: str) -> str:
    """Describe where the bad values are: the first few neuroids/presentations affected."""
    bad = np.asarray(test(a.data))
    parts = [what]
    for dim, idcoord in (("neuroid", "neuroid_id"), ("presentation", "stimulus_id")):
        if dim in a.dims:
            axis = a.dims.index(dim)
            other = tuple(i for i in range(bad.ndim) if i != axis)
            hit = np.flatnonzero(bad.any(axis=other))
            labels = (a[idcoord].values[hit].tolist() if idcoord in a.coords
                      else hit.tolist())
            parts.append(f"in {dim} {format_list(labels, 5)}")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# repetition averaging
# --------------------------------------------------------------------------------------------

def presentation_coords(a: xr.DataArray, dim: str = "presentation") -> list[str]:
    """Names of the 1-d coords on ``dim``, in the assembly's order."""
    return [str(name) for name, c in a.coords.items() if c.dims == (dim,)]


def repetition_index(a: xr.DataArray) -> np.ndarray:
    """Repetition number of every presentation: the ``repetition`` coord, or the order of
    appearance of each ``stimulus_id`` (0, 1, …) when the assembly does not store one."""
    if "repetition" in a.coords and a["repetition"].dims == ("presentation",):
        return np.asarray(a["repetition"].values)
    ids = pd.Series(np.asarray(a["stimulus_id"].values))
    return ids.groupby(ids, sort=False).cumcount().to_numpy()


def average_repetitions(a: xr.DataArray, *, ignore: Iterable[str] = ()) -> xr.DataArray:
    """Average presentations that share every presentation coord except per-presentation ones.

    Per-presentation coords (``repetition``, trial/presentation indices, ``start_time``,
    ``stop_time``…; see :data:`PER_PRESENTATION_COORDS`) and the names in ``ignore`` are dropped;
    every other presentation coord (``stimulus_id``, ``object_name``, …) is a grouping key and
    is kept. A coord that varies between repeats of one stimulus therefore splits its groups —
    list it in ``ignore`` to average over it. The result has one presentation per group, in
    order of first appearance, and an ``n_repetitions`` coord counting the averaged presentations.

    Parameters
    ----------
    a : xarray.DataArray
        An assembly with a ``presentation`` dim.
    ignore : iterable of str
        Further presentation coords to average over instead of grouping on.

    Returns
    -------
    xarray.DataArray
        The averaged assembly; attrs gain ``averaged_over`` (the dropped coords). A
        dask-backed assembly gives a dask-backed (lazy) result: the group sums are taken block
        by block when it is computed.
    """
    validate(a, nan_policy="allow")
    if "presentation" not in a.dims:
        raise AssemblyError(f"average_repetitions needs a 'presentation' dim; assembly has {a.dims}")
    ignore = list(ignore)
    pcoords = presentation_coords(a)
    unknown = [c for c in ignore if c not in pcoords]
    if unknown:
        raise AssemblyError(f"cannot ignore unknown presentation coord(s) {format_list(unknown)}; "
                            f"presentation coords: {format_list(pcoords)}")
    dropped = [c for c in pcoords if c in PER_PRESENTATION_COORDS or c in ignore]
    keys = [c for c in pcoords if c not in dropped]
    table = pd.DataFrame({c: np.asarray(a[c].values) for c in keys})
    group = table.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    n_groups = int(group.max()) + 1 if group.size else 0
    counts = np.bincount(group, minlength=n_groups)
    first = np.unique(group, return_index=True)[1]

    axis = a.dims.index("presentation")
    # one sparse (groups x presentations) indicator product sums every group in one pass
    indicator = sparse.csr_matrix((np.ones(group.size), (group, np.arange(group.size))),
                                  shape=(n_groups, group.size))
    if a.chunks is not None:
        sums = _lazy_group_sums(a.data, axis, indicator)
        xp_moveaxis = _dask_moveaxis
    else:
        values = np.moveaxis(np.asarray(a.values, dtype=np.float64), axis, 0)
        sums = (indicator @ values.reshape(group.size, -1)).reshape((n_groups,) + values.shape[1:])
        xp_moveaxis = np.moveaxis
    means = sums / counts.reshape((-1,) + (1,) * (sums.ndim - 1))
    means = xp_moveaxis(means, 0, axis).astype(np.result_type(a.dtype, np.float32), copy=False)

    coords = {}
    for name, c in a.coords.items():
        if c.dims == ("presentation",):
            if name in keys:
                coords[name] = ("presentation", np.asarray(c.values)[first], c.attrs)
        elif "presentation" not in c.dims:
            coords[name] = c
    coords["n_repetitions"] = ("presentation", counts)
    attrs = dict(a.attrs)
    attrs["averaged_over"] = list(dropped) if dropped else ""
    return xr.DataArray(means, dims=a.dims, coords=coords, attrs=attrs, name=a.name)


def _dask_moveaxis(x, source, destination):
    import dask.array as da

    return da.moveaxis(x, source, destination)


def _lazy_group_sums(data, axis: int, indicator):
    """The group sums of a dask array, still lazy: each block of presentations adds its
    columns of the indicator product, and the partial sums are added in a tree, so memory holds
    a few blocks and (groups x rest) partials, never the whole array."""
    import dask
    import dask.array as da

    moved = da.moveaxis(data, axis, 0)
    rest = moved.shape[1:]
    # whole trailing dims per block, so each block flattens to (presentations, rest)
    moved = moved.rechunk({i: -1 for i in range(1, moved.ndim)})
    offsets = np.concatenate([[0], np.cumsum(moved.chunks[0])])

    def block_sums(block, start, stop):
        flat = np.asarray(block, dtype=np.float64).reshape(stop - start, -1)
        return (indicator[:, start:stop] @ flat).reshape((indicator.shape[0],) + rest)

    parts = [da.from_delayed(dask.delayed(block_sums)(moved.blocks[i], int(offsets[i]),
                                                      int(offsets[i + 1])),
                             shape=(indicator.shape[0],) + rest, dtype=np.float64)
             for i in range(len(moved.chunks[0]))]
    return da.stack(parts).sum(axis=0, split_every=4)


# --------------------------------------------------------------------------------------------
# alignment of two assemblies
# --------------------------------------------------------------------------------------------

def align(x: xr.DataArray, y: xr.DataArray, on: str = "stimulus_id", *,
          require_identical: bool = False, dim: str = "presentation"):
    """Reorder and subset two assemblies to their common stimuli.

    The common ids keep ``x``'s order. Ids must be unique within each assembly (average
    repetitions first). When some ids are present in only one assembly they are dropped with a
    warning, unless ``require_identical`` is set, in which case that is an error.

    Returns
    -------
    (xarray.DataArray, xarray.DataArray)
        ``x`` and ``y`` restricted to the common ids, in the same order.

    Raises
    ------
    AlignmentError
        When ``on`` is missing, ids repeat, no id is shared, or (with ``require_identical``) the
        sets differ. Messages list the missing ids (first 10 and a count).
    """
    ids = []
    for label, a in (("first", x), ("second", y)):
        if not isinstance(a, xr.DataArray):
            raise AlignmentError(f"the {label} assembly is a {type(a).__name__}, not a DataArray")
        if dim not in a.dims:
            raise AlignmentError(f"the {label} assembly has no {dim!r} dim (dims {a.dims})")
        if on not in a.coords or a[on].dims != (dim,):
            raise AlignmentError(
                f"the {label} assembly has no coord {on!r} on {dim!r}; "
                f"available: {format_list(presentation_coords(a, dim))}")
        index = pd.Index(np.asarray(a[on].values))
        if not index.is_unique:
            dup = index[index.duplicated()].unique().tolist()
            raise AlignmentError(
                f"the {label} assembly repeats {on} values {format_list(dup)}; "
                "average repetitions first (neurogeom.assembly.average_repetitions)")
        ids.append(index)
    ix, iy = ids
    only_x = ix.difference(iy, sort=False)
    only_y = iy.difference(ix, sort=False)
    if require_identical and (len(only_x) or len(only_y)):
        raise AlignmentError(
            f"{on} sets differ: {len(only_x)} only in the first assembly "
            f"({format_list(only_x.tolist())}); {len(only_y)} only in the second "
            f"({format_list(only_y.tolist())})")
    common = ix[ix.isin(iy)]
    if len(common) == 0:
        raise AlignmentError(
            f"no {on} is shared: first has {format_list(ix.tolist())}; "
            f"second has {format_list(iy.tolist())}")
    if len(only_x) or len(only_y):
        warnings.warn(
            f"align: dropping {len(only_x)} {on} only in the first assembly "
            f"({format_list(only_x.tolist())}) and {len(only_y)} only in the second "
            f"({format_list(only_y.tolist())}); {len(common)} remain", stacklevel=2)
    return (x.isel({dim: ix.get_indexer(common)}), y.isel({dim: iy.get_indexer(common)}))


# --------------------------------------------------------------------------------------------
# manifolds
# --------------------------------------------------------------------------------------------

def sample_dim(a: xr.DataArray) -> str:
    """The dim along which points of a manifold lie: ``presentation`` or ``time``."""
    for d in ("presentation", "time"):
        if d in a.dims:
            return d
    raise AssemblyError(f"assembly has neither a 'presentation' nor a 'time' dim (dims {a.dims})")


def manifolds(a: xr.DataArray, by: str, *, min_points: int = 2,
              labels: Sequence | None = None) -> list[tuple[object, np.ndarray]]:
    """Group the points of an assembly into manifolds by the label coord ``by``.

    Parameters
    ----------
    a : xarray.DataArray
        A ``(presentation, neuroid)`` or ``(time, neuroid)`` assembly. Time-binned responses must
        be reduced (e.g. ``a.mean("time_bin")``) or flattened first.
    by : str
        Name of a coord on the sample dim (``object_name``, ``head_direction_bin``, …).
    min_points : int
        Smallest allowed number of points per manifold (1 is legitimate: capacity of points).
    labels : sequence, optional
        Which manifolds, in which order. Default: every label, sorted.

    Returns
    -------
    list of (label, ndarray)
        One ``(points, neuroid)`` float64 array per manifold.

    Raises
    ------
    AssemblyError
        Unknown ``by`` (the available coords are listed), missing labels, requested labels with
        no points, or groups smaller than ``min_points``.
    """
    validate(a)
    if min_points < 1:
        raise AssemblyError(f"min_points must be >= 1, got {min_points}")
    if "time_bin" in a.dims:
        raise AssemblyError(
            "manifolds need (presentation, neuroid) or (time, neuroid) data; this assembly has a "
            "'time_bin' dim: select or average time bins first, e.g. a.mean('time_bin')")
    dim = sample_dim(a)
    if by not in a.coords or a[by].dims != (dim,):
        available = presentation_coords(a, dim)
        raise AssemblyError(f"unknown manifold coord by={by!r}; coords on {dim!r}: "
                            f"{format_list(available, 30)}")
    values = np.asarray(a[by].values)
    if values.dtype.kind == "f" and np.isnan(values).any():
        n = int(np.isnan(values).sum())
        raise AssemblyError(f"{n} point(s) have no {by!r} label (NaN); drop them first")
    if values.dtype.kind in "OUS" and any(v is None or v == "" for v in values.tolist()):
        raise AssemblyError(f"some points have an empty {by!r} label; drop them first")
    present = pd.unique(values)
    if labels is None:
        labels = sorted(present.tolist())
    else:
        labels = list(labels)
        missing = [l for l in labels if l not in set(present.tolist())]
        if missing:
            raise AssemblyError(f"requested {by} label(s) {format_list(missing)} have no points; "
                                f"available: {format_list(sorted(present.tolist()))}")
    axis = a.dims.index(dim)
    data = np.asarray(a.values, dtype=np.float64)
    if axis != 0:
        data = data.T
    out, small = [], []
    for label in labels:
        points = data[values == label]
        if len(points) < min_points:
            small.append(f"{label!r} ({len(points)})")
        out.append((label, points))
    if small:
        raise AssemblyError(f"{len(small)} manifold(s) by {by!r} have fewer than {min_points} "
                            f"points: {format_list(small)}")
    return out
