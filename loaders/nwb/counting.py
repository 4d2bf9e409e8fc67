"""Exact spike counts of many units in many windows: one pass over the spikes, not a search per edge.

Every window edge of every presentation is shared by all units, so the edges are prepared once:
sorted, de-duplicated, and indexed by a uniform grid over the time they span. A spike's *rank*
(how many distinct edges are ``<=`` it) is then read off the grid with a couple of table
look-ups, whatever the number of edges, and a unit's counts come from one ``bincount`` of its
spikes' ranks. This replaces one binary search per edge per unit (``searchsorted`` of every edge
in every train), which costs ``log2(n_spikes)`` dependent cache misses per edge and per unit.

Exactness does not depend on float luck. The grid cell ``floor((t - lo) * inv_h)`` is a
composition of correctly rounded, monotone operations, so it is monotone in ``t``; the edges'
cells are computed by the very same operations. An edge in an earlier cell than a spike is
therefore strictly before it, an edge in a later cell strictly after it, and only the edges in
the spike's own cell are compared with it — exactly, in float64. Cells holding more edges than
the fixed number of comparison passes fall back to ``searchsorted`` for their spikes.

Windows are half-open, ``[onset + start, onset + stop)``: a spike exactly on an edge belongs to
the bin that starts there (the same as differences of ``searchsorted(..., side="left")``).
"""

from __future__ import annotations

import numpy as np

#: Comparison passes per spike: a grid cell holding up to this many edges is resolved by
#: comparing the spike with each of them; spikes in fuller cells use ``searchsorted``.
MAX_PASSES = 3
#: Grid cells per distinct edge to start from (two: most cells hold at most one edge when the
#: edges are spread out, as stimulus windows are).
CELLS_PER_EDGE = 2
#: Upper bound on grid cells when refining a grid for clustered edges: this many per distinct
#: edge, but at least ``MIN_CELL_CAP`` (the tables cost 17 bytes a cell).
MAX_CELLS_PER_EDGE = 16
MIN_CELL_CAP = 1 << 20


class EdgeGrid:
    """Ranks of spike times among a fixed set of sorted distinct edges, by grid look-up.

    Parameters
    ----------
    values : 1-d float64 array
        Distinct edges, strictly increasing, at least two.

    Attributes
    ----------
    n_cells : int
        Grid cells over ``[values[0], values[-1]]``.
    n_passes : int
        Exact comparisons per spike.
    crowded : bool array or None
        Cells whose spikes are ranked by ``searchsorted`` (more edges than ``n_passes``).
    """

    def __init__(self, values: np.ndarray):
        self.values = values
        self.lo = float(values[0])
        self.hi = float(values[-1])
        n = values.size
        cap = max(MAX_CELLS_PER_EDGE * n, MIN_CELL_CAP)
        n_cells = CELLS_PER_EDGE * n
        while True:
            cells, occupancy = self._cells_of_edges(n_cells)
            in_shared = int(occupancy[occupancy > 1].sum())
            # refine while more than 1% of the edges share a cell with another (clustered edges:
            # many bins in short windows far apart) and the finer grid fits the cap
            if in_shared <= 0.01 * n or 4 * n_cells > cap:
                break
            n_cells *= 4
        self.n_cells = n_cells
        most = int(occupancy.max())
        if most <= 1 or in_shared <= 0.01 * n:
            self.n_passes = 1  # the few cells with two or more edges go to searchsorted
        else:
            self.n_passes = min(most, MAX_PASSES)
        crowded = occupancy > self.n_passes
        self.crowded = crowded if crowded.any() else None
        # base[c]: edges in cells before c (all < any spike in c); nexts[j][c]: the j-th edge
        # from there on (+inf past the last), compared exactly with the spike
        self.base = np.searchsorted(cells, np.arange(occupancy.size), side="left")
        padded = np.concatenate([values, np.full(self.n_passes, np.inf)])
        self.nexts = [padded[self.base + j] for j in range(self.n_passes)]

    def _cells_of_edges(self, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
        """The grid cell of every edge (the same arithmetic as for spikes) and each cell's count."""
        self.inv_h = n_cells / (self.hi - self.lo)
        n_table = n_cells + 1  # the last edge lands in cell n_cells (up to rounding)
        cells = self.cell_coordinate(self.values, np.empty(self.values.size))
        cells = np.clip(cells, 0, n_table - 1).astype(np.intp)
        return cells, np.bincount(cells, minlength=n_table)

    def cell_coordinate(self, t: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``(t - lo) * inv_h`` into ``out``: monotone in ``t`` (each step is correctly rounded)."""
        np.subtract(t, self.lo, out=out)
        np.multiply(out, self.inv_h, out=out)
        return out

    def workspace(self, n: int) -> dict:
        """Scratch arrays for trains of up to ``n`` spikes (reused across units)."""
        return {"x": np.empty(n), "cell": np.empty(n, dtype=np.intp),
                "rank": np.empty(n, dtype=np.intp), "edge": np.empty(n),
                "hit": np.empty(n, dtype=bool)}

    def histogram(self, train: np.ndarray, work: dict) -> np.ndarray:
        """``hist[r]`` = spikes of the sorted ``train`` with exactly ``r`` edges ``<=`` them.

        Spikes before the first edge or at/after the last one are left out (``hist[0]`` and
        ``hist[-1]`` are 0): no window holds them, and leaving them out shifts every cumulative
        count by the same amount.
        """
        hist_size = self.values.size + 1
        a, b = np.searchsorted(train, (self.lo, self.hi), side="left")
        t = train[a:b]
        n = t.size
        if n == 0:
            return np.zeros(hist_size, dtype=np.intp)
        x = self.cell_coordinate(t, work["x"][:n])
        cell = work["cell"][:n]
        np.copyto(cell, x, casting="unsafe")  # x >= 0: truncation is floor
        # mode="clip" keeps the rounding at the top end (x == n_cells) inside the tables, and
        # clipping is the same monotone map the edges' cells went through
        rank = np.take(self.base, cell, mode="clip", out=work["rank"][:n])
        edge, hit = work["edge"][:n], work["hit"][:n]
        for nxt in self.nexts:
            np.take(nxt, cell, mode="clip", out=edge)
            np.less_equal(edge, t, out=hit)
            np.add(rank, hit, out=rank)
        if self.crowded is not None:
            where = np.flatnonzero(np.take(self.crowded, cell, mode="clip"))
            if where.size:
                rank[where] = np.searchsorted(self.values, t[where], side="right")
        return np.bincount(rank, minlength=hist_size)


def count_spikes(trains, edges_abs: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Spike counts of every train in every bin of every presentation.

    Parameters
    ----------
    trains : sequence of sorted 1-d float64 arrays
        One spike train per unit.
    edges_abs : (n_presentations, n_edges) array
        Absolute bin edges, strictly increasing along each row; rows may overlap and come in
        any order.
    out : (n_presentations, n_units, n_edges - 1) array
        Filled with counts in ``[edge_k, edge_k+1)``; any numeric dtype. Pass a transposed view
        of a ``(n_units, n_presentations, n_bins)`` array (see :func:`new_counts`) so each
        unit's counts are written contiguously.

    Returns
    -------
    out

    Notes
    -----
    With ``rank(t)`` the number of distinct edges ``<= t`` and ``hist`` its histogram over a
    train, the spikes before the edge of rank ``r`` number ``cumsum(hist)[r]``, and a bin's
    count is the difference at its two edges. When the edges, read presentation by
    presentation, never decrease (non-overlapping windows in time order, the usual case), a
    bin's two edges have consecutive ranks and its count is simply ``hist`` at its end edge.
    """
    edges_abs = np.asarray(edges_abs, dtype=np.float64)
    n_edges = edges_abs.shape[1]
    flat_edges = edges_abs.ravel()
    values, rank_of_edge = np.unique(flat_edges, return_inverse=True)
    rank_of_edge = rank_of_edge.reshape(edges_abs.shape)
    grid = EdgeGrid(values)
    monotone = bool(np.all(flat_edges[1:] >= flat_edges[:-1]))
    if monotone and values.size == flat_edges.size:
        # ranks are 0, 1, 2, ... in reading order: the bins' end edges are a strided view
        end_rank = None
    else:
        end_rank = rank_of_edge[:, 1:]
    work = grid.workspace(max((len(tr) for tr in trains), default=0))
    for u, train in enumerate(trains):
        hist = grid.histogram(train, work)
        if not monotone:
            before = np.cumsum(hist)  # before[r]: spikes < the edge of rank r (up to a constant)
            at = before[rank_of_edge]
            np.subtract(at[:, 1:], at[:, :-1], out=out[:, u, :], casting="unsafe")
        elif end_rank is None:
            out[:, u, :] = hist[1:flat_edges.size + 1].reshape(edges_abs.shape)[:, :n_edges - 1]
        else:
            out[:, u, :] = hist[end_rank]
    return out


def new_counts(n_presentations: int, n_units: int, n_bins: int, dtype) -> np.ndarray:
    """An uninitialized ``(presentation, unit, bin)`` output whose memory is unit-major, so
    :func:`count_spikes` writes one contiguous block per unit instead of a strided column."""
    return np.empty((n_units, n_presentations, n_bins), dtype=dtype).transpose(1, 0, 2)
