"""Exact spike counts of many units in many windows: one pass over the spikes, not a search per edge.

Every window edge of every presentation is shared by all units, so the edges are prepared once:
sorted, de-duplicated, and indexed by a uniform grid over the time they span. A spike's *rank*
(how many distinct edges are ``<=`` it) is then read off the grid with a couple of table
look-ups, whatever the number of edges, and a unit's counts come from one ``bincount`` of its
spikes' ranks. This replaces one binary search per edge per unit (``searchsorted`` of every edge
in every train: ``log2(n_spikes)`` dependent, cache-missing steps per edge and per unit).

Exactness does not depend on float luck. The grid cell ``floor((t - origin) * inv_h)`` is a
composition of correctly rounded, monotone operations, so it is monotone in ``t``; the edges'
cells are computed by the very same operations. An edge in an earlier cell than a spike is
therefore strictly before it, an edge in a later cell strictly after it, and only the edges in
the spike's own cell are compared with it — exactly, in float64. In a cell holding more edges
than there are comparison passes ("crowded": edges closer together than the grid resolves) a
spike is compared with the first few only; its rank is then still exact with respect to every
edge outside the cell, and the few bins that have an edge inside it are counted directly with
``searchsorted``.

A train with many spikes for few edges (a handful of presentations in a long recording) is
still searched for the edges instead: ``n_edges * log2(n_spikes)`` search steps are then
cheaper than a pass over its spikes (:data:`SEARCH_STEP_COST`).

Windows are half-open, ``[onset + start, onset + stop)``: a spike exactly on an edge belongs to
the bin that starts there (the same as differences of ``searchsorted(..., side="left")``).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Most comparison passes per spike (used when many edges share grid cells).
MAX_PASSES = 3
#: Grid cells per distinct edge to start from (two: when the edges are spread out, as stimulus
#: windows are, most cells then hold at most one edge).
CELLS_PER_EDGE = 2
#: A grid is refined (cells doubled) while more than this share of the edges share a cell, up
#: to ``MAX_CELLS_PER_EDGE`` cells per edge or ``MIN_CELL_CAP`` cells, whichever is more. Every
#: unit streams through the tables (16 bytes a cell), so they are kept small.
SHARED_TOLERANCE = 0.01
MAX_CELLS_PER_EDGE = 16
MIN_CELL_CAP = 1 << 16
#: Above this share of edges in shared cells, spikes are compared with up to ``MAX_PASSES``
#: edges of their cell; below it, one comparison and the crowded cells' bins are searched.
MULTI_PASS_SHARE = 0.1
#: Time of one step of a binary search over a train, in units of the time the grid takes per
#: spike (measured on the benchmark file: the two cost the same at 10,000 edges for 70,000
#: spikes a train). A train is searched for the edges instead of passed over when
#: ``n_edges * log2(n_spikes)`` steps cost less than its spikes: few presentations spread over
#: a long recording.
SEARCH_STEP_COST = 0.45
#: Threads for large outputs (units are independent; numpy releases the GIL in most of the
#: per-spike work, not in ``bincount``) and the smallest output worth starting them for.
MAX_THREADS = 4
MIN_PARALLEL_COUNTS = 200_000


class EdgeGrid:
    """Ranks of spike times among a fixed set of sorted distinct edges, by grid look-up.

    Parameters
    ----------
    values : 1-d float64 array
        Distinct edges, strictly increasing, at least two.

    Attributes
    ----------
    n_cells : int
        Grid cells over ``[values[0], values[-1]]`` (the tables also cover ``[0, values[0])``
        when the grid is anchored at ``origin = 0``).
    n_passes : int
        Exact comparisons per spike.
    crowded_values : bool array or None
        Which of ``values`` lie in a cell with more edges than ``n_passes``: the ranks of the
        spikes in such a cell are exact with respect to every other edge, not to these.
    """

    def __init__(self, values: np.ndarray):
        self.values = values
        self.lo = float(values[0])
        self.hi = float(values[-1])
        n = values.size
        cap = max(MAX_CELLS_PER_EDGE * n, MIN_CELL_CAP)
        grid = self._grid(CELLS_PER_EDGE * n)
        # closely spaced edges (many bins in short windows far apart, or jittered onsets): a
        # finer grid, as long as it fits the cap and separates edges (edges a few ulps apart,
        # as abutting bins computed two ways are, no grid separates)
        while grid["shared"] > SHARED_TOLERANCE * n and 2 * grid["n_cells"] <= cap:
            finer = self._grid(2 * grid["n_cells"])
            if finer["shared"] > 0.75 * grid["shared"]:
                break
            grid = finer
        self.n_cells, self.origin, self.inv_h = grid["n_cells"], grid["origin"], grid["inv_h"]
        cells, occupancy = grid["cells"], grid["occupancy"]
        most = int(occupancy.max())
        self.n_passes = 1 if grid["shared"] <= MULTI_PASS_SHARE * n else min(most, MAX_PASSES)
        crowded = occupancy > self.n_passes
        self.crowded_values = crowded[cells] if crowded.any() else None
        # base[c]: edges in cells before c (all < any spike in c); nexts[j][c]: the j-th edge
        # from there on (+inf past the last), compared exactly with the spike. In a crowded
        # cell the passes stop short of its last edges: its spikes' ranks land between the
        # cell's first and last edge, still exact with respect to every edge outside the cell.
        self.base = np.searchsorted(cells, np.arange(occupancy.size), side="left")
        padded = np.concatenate([values, np.full(self.n_passes, np.inf)])
        self.nexts = [padded[self.base + j] for j in range(self.n_passes)]

    def _grid(self, n_cells: int) -> dict:
        """A grid of ``n_cells`` over the edges: its parameters, every edge's cell (the same
        arithmetic as for spikes), each cell's number of edges, and how many edges share one."""
        inv_h = n_cells / (self.hi - self.lo)
        # a grid anchored at t = 0 saves a subtraction per spike; taken when it at most doubles
        # the tables (edges from early on in a recording that starts at 0: the usual case)
        origin = 0.0 if 0.0 <= self.lo <= self.hi - self.lo else self.lo
        # the last edge's cell, by the same float operations as cell_coordinate, plus one
        n_table = int((self.hi - origin) * inv_h) + 2
        cells = cell_coordinate(self.values, origin, inv_h, np.empty(self.values.size))
        cells = np.clip(cells, 0, n_table - 1).astype(np.intp)
        occupancy = np.bincount(cells, minlength=n_table)
        return {"n_cells": n_cells, "origin": origin, "inv_h": inv_h, "cells": cells,
                "occupancy": occupancy, "shared": int(np.count_nonzero(occupancy[cells] > 1))}

    def workspace(self, n: int) -> dict:
        """Scratch arrays for trains of up to ``n`` spikes (reused across units)."""
        return {"x": np.empty(n), "cell": np.empty(n, dtype=np.intp),
                "rank": np.empty(n, dtype=np.intp), "edge": np.empty(n),
                "hit": np.empty(n, dtype=bool)}

    def histogram(self, train: np.ndarray, work: dict) -> np.ndarray:
        """``hist[r]``: spikes of the sorted ``train`` with ``r`` edges ``<=`` them.

        Spikes before the first edge or at/after the last one are left out (``hist[0]`` and
        ``hist[-1]`` are 0): no window holds them, and leaving them out shifts every cumulative
        count by the same amount. Ranks in crowded cells are exact only with respect to the
        edges outside them (see :class:`EdgeGrid`).
        """
        hist_size = self.values.size + 1
        a, b = np.searchsorted(train, (self.lo, self.hi), side="left")
        t = train[a:b]
        n = t.size
        if n == 0:
            return np.zeros(hist_size, dtype=np.intp)
        x = cell_coordinate(t, self.origin, self.inv_h, work["x"][:n])
        cell = work["cell"][:n]
        np.copyto(cell, x, casting="unsafe")  # x >= 0: truncation is floor
        # mode="clip" keeps any rounding at the top end inside the tables; clipping is the
        # same monotone map the edges' cells went through
        rank = np.take(self.base, cell, mode="clip", out=work["rank"][:n])
        edge, hit = work["edge"][:n], work["hit"][:n]
        for nxt in self.nexts:
            np.take(nxt, cell, mode="clip", out=edge)
            np.less_equal(edge, t, out=hit)
            np.add(rank, hit, out=rank)
        return np.bincount(rank, minlength=hist_size)


def cell_coordinate(t: np.ndarray, origin: float, inv_h: float, out: np.ndarray) -> np.ndarray:
    """``(t - origin) * inv_h`` into ``out``: monotone in ``t`` (each step is correctly rounded)."""
    if origin == 0.0:
        return np.multiply(t, inv_h, out=out)
    np.subtract(t, origin, out=out)
    np.multiply(out, inv_h, out=out)
    return out


def count_spikes(trains, edges_abs: np.ndarray, out: np.ndarray,
                 n_threads: int | None = None) -> np.ndarray:
    """Spike counts of every train in every bin of every presentation.

    Parameters
    ----------
    trains : sequence of sorted 1-d float64 arrays
        One spike train per unit; each indexed once, possibly from a worker thread (a sequence
        that checks or sorts a train when it is indexed finds it in cache for the count that
        follows).
    edges_abs : (n_presentations, n_edges) array
        Absolute bin edges, strictly increasing along each row; rows may overlap and come in
        any order.
    out : (n_presentations, n_units, n_edges - 1) array
        Filled with counts in ``[edge_k, edge_k+1)``; any numeric dtype. Pass a transposed view
        of a ``(n_units, n_presentations, n_bins)`` array (see :func:`new_counts`) so each
        unit's counts are written contiguously.
    n_threads : int, optional
        Units are shared out among this many threads (numpy releases the GIL in most of the
        per-spike work). Default: the CPUs this process may use, at most ``MAX_THREADS``, for
        outputs of at least ``MIN_PARALLEL_COUNTS`` counts; one thread otherwise.

    Returns
    -------
    out

    Raises
    ------
    ValueError
        Non-finite edges.
    Exception
        Whatever indexing ``trains`` raises; with several threads, the one for the lowest unit
        index (the one a single thread would have raised).

    Notes
    -----
    With ``rank(t)`` the number of distinct edges ``<= t`` and ``hist`` its histogram over a
    train, the spikes before the edge of rank ``r`` number ``cumsum(hist)[r]``, and a bin's
    count is the difference at its two edges. When the edges, read presentation by
    presentation, never decrease (non-overlapping windows in time order, the usual case), a
    bin's two edges have consecutive ranks and its count is simply ``hist`` at its end edge.
    Bins with an edge in a crowded grid cell (see :class:`EdgeGrid`) are counted by
    ``searchsorted`` of their two edges in the train.
    """
    edges_abs = np.asarray(edges_abs, dtype=np.float64)
    n_units = len(trains)
    if edges_abs.size == 0 or n_units == 0:
        return out
    if not np.isfinite(edges_abs).all():
        raise ValueError("bin edges must be finite")
    counter = _Counter(edges_abs, out)
    if n_threads is None:
        n_threads = min(usable_cpus(), MAX_THREADS) if out.size >= MIN_PARALLEL_COUNTS else 1
    n_threads = max(1, min(n_threads, n_units))
    if n_threads == 1:
        counter.count(trains, range(n_units))
        return out
    with ThreadPoolExecutor(n_threads) as pool:
        # interleaved units balance the load; each thread stops at its first failure
        failures = list(pool.map(lambda k: counter.count(trains, range(k, n_units, n_threads),
                                                         catch=True), range(n_threads)))
    failures = [f for f in failures if f is not None]
    if failures:
        raise min(failures, key=lambda f: f[0])[1]
    return out


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _Counter:
    """What :func:`count_spikes` prepares once for all units (edges, ranks, grid)."""

    def __init__(self, edges_abs: np.ndarray, out: np.ndarray):
        self.edges_abs, self.out = edges_abs, out
        flat_edges = edges_abs.ravel()
        self.values, rank_of_edge = np.unique(flat_edges, return_inverse=True)
        self.rank_of_edge = rank_of_edge.reshape(edges_abs.shape)
        self.monotone = bool(np.all(flat_edges[1:] >= flat_edges[:-1]))
        if self.monotone and self.values.size == flat_edges.size:
            # ranks are 0, 1, 2, ... in reading order: the bins' end edges are a strided view
            self.end_rank = None
        else:
            self.end_rank = self.rank_of_edge[:, 1:]
        self.grid = None
        self._lock = threading.Lock()

    def _grid(self) -> EdgeGrid:
        """The grid, built once for the first unit that needs it (under a lock: threads)."""
        with self._lock:
            if self.grid is None:
                grid = EdgeGrid(self.values)
                # bins with an edge in a crowded cell: counted directly
                if grid.crowded_values is not None:
                    crowded = grid.crowded_values[self.rank_of_edge]
                    p, k = np.nonzero(crowded[:, :-1] | crowded[:, 1:])
                    self.fix = (p, k, self.edges_abs[p, k], self.edges_abs[p, k + 1])
                else:
                    self.fix = None
                self.grid = grid
        return self.grid

    def count(self, trains, units, catch: bool = False):
        """Fill ``out`` for ``units``; with ``catch``, return ``(unit, exception)`` for the
        first unit whose train cannot be read instead of raising."""
        work = None
        for u in units:
            try:
                train = trains[u]
            except Exception as exc:
                if not catch:
                    raise
                return u, exc
            work = self.count_unit(u, train, work)
        return None

    def count_unit(self, u: int, train: np.ndarray, work):
        values, out, rank_of_edge = self.values, self.out, self.rank_of_edge
        n_inside = np.diff(np.searchsorted(train, values[[0, -1]], side="left"))[0]
        if values.size * np.log2(n_inside + 1) * SEARCH_STEP_COST < n_inside:
            # few edges for many spikes: search the train for the edges
            before = np.searchsorted(train, values, side="left")[rank_of_edge]
            np.subtract(before[:, 1:], before[:, :-1], out=out[:, u, :], casting="unsafe")
            return work
        grid = self.grid if self.grid is not None else self._grid()
        if work is None or train.size > work["x"].size:
            work = grid.workspace(max(train.size, 0 if work is None else 2 * work["x"].size))
        hist = grid.histogram(train, work)
        if not self.monotone:
            before = np.cumsum(hist)  # before[r]: spikes < the edge of rank r (up to a constant)
            at = before[rank_of_edge]
            np.subtract(at[:, 1:], at[:, :-1], out=out[:, u, :], casting="unsafe")
        elif self.end_rank is None:
            n_edges = rank_of_edge.size
            out[:, u, :] = hist[1:n_edges + 1].reshape(rank_of_edge.shape)[:, :-1]
        else:
            out[:, u, :] = hist[self.end_rank]
        if self.fix is not None:
            p, k, start, stop = self.fix
            out[p, u, k] = (np.searchsorted(train, stop, side="left")
                            - np.searchsorted(train, start, side="left"))
        return work


def new_counts(n_presentations: int, n_units: int, n_bins: int, dtype) -> np.ndarray:
    """An uninitialized ``(presentation, unit, bin)`` output whose memory is unit-major, so
    :func:`count_spikes` writes one contiguous block per unit instead of a strided column."""
    return np.empty((n_units, n_presentations, n_bins), dtype=dtype).transpose(1, 0, 2)
