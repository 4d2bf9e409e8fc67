"""Input checks and coordinates shared by the joint-QP capacity estimators.

Groups an assembly into manifolds (through :func:`neurogeom.assembly.manifolds`), rejects inputs
the estimators cannot handle with a message that names the coord at fault, subtracts the global
mean and expresses all points in a rotation-covariant orthonormal basis of their span, so results
are invariant to rotations of the ambient space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .._blas import single_threaded_blas
from .._params import check_finite, check_int, check_memory, check_nonnegative, unit_scale
from ..assembly import manifolds
from ..errors import AnalysisError, format_list


@dataclass
class ManifoldPoints:
    """All points of P manifolds, stacked, in coordinates of their (centered) span."""

    labels: list            # manifold labels, in output order
    coords: np.ndarray      # (m, r) points in an orthonormal basis of their span
    owner: np.ndarray       # (m,) manifold index of each point
    n_points: np.ndarray    # (P,) points per manifold
    n_features: int         # ambient dimension N
    scale: float            # the data were divided by this (RMS center norm) when normalized

    @property
    def n_manifolds(self) -> int:
        return len(self.labels)

    @property
    def rank(self) -> int:
        return self.coords.shape[1]


def check_kappa(kappa) -> float:
    return check_nonnegative(kappa, "kappa (the margin)")


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    return check_int(value, name, minimum)


def check_joint_memory(data: ManifoldPoints, n_dichotomies: int, n_t: int, what: str) -> None:
    """Fail before sampling when the joint QPs' samples, duals and anchors cannot fit in memory
    (per (dichotomy, sample): t (r), duals (m) and one anchor per manifold (P r), doubled for
    the solver's working copies)."""
    per_sample = data.rank * (data.n_manifolds + 1) + len(data.owner)
    check_memory(2 * 8.0 * n_dichotomies * n_t * per_sample,
                 f"{what} with n_t={n_t} samples x {n_dichotomies} dichotomies "
                 f"({data.n_manifolds} manifolds, {len(data.owner)} points, rank {data.rank})",
                 "lower n_t or n_dichotomies")


def gather(a, by: str, *, center: bool = True, normalize: bool = False,
           min_points: int = 1) -> ManifoldPoints:
    """Group ``a`` by ``by``, check it, center globally and change to span coordinates.

    Parameters
    ----------
    a : xarray.DataArray
        A ``(presentation, neuroid)`` or ``(time, neuroid)`` assembly (validated here: NaN and
        inf are rejected by :func:`neurogeom.assembly.validate`).
    by : str
        Coord naming the manifolds.
    center : bool
        Subtract the mean of all points (the global mean), as the MFT pipeline does.
    normalize : bool
        Divide by the RMS norm of the (centered) manifold centers, so a margin ``kappa`` is in
        units of the typical center norm and the result is invariant to global scaling.

    Raises
    ------
    AnalysisError
        Fewer than two manifolds, all manifolds made of the same points, or all points
        identical after centering (no geometry).
    """
    groups = manifolds(a, by, min_points=min_points)
    labels = [label for label, _ in groups]
    if groups and groups[0][1].shape[1] == 0:
        raise AnalysisError("the assembly has no neuroids (0 features): capacity needs at least "
                            "one")
    if len(groups) < 2:
        raise AnalysisError(
            f"capacity needs at least 2 manifolds; by={by!r} gives {len(groups)}: "
            f"{format_list(labels)}")
    first = np.unique(groups[0][1], axis=0)
    if all(len(p) == len(groups[0][1]) and np.array_equal(np.unique(p, axis=0), first)
           for _, p in groups[1:]):
        raise AnalysisError(
            f"all {len(groups)} manifolds by {by!r} consist of the same points: no dichotomy "
            "can be separated, the capacity is zero (check the labels in the assembly)")
    points = np.concatenate([p for _, p in groups])
    # The estimators are scale-free (kappa is relative when normalizing): divide by a power of
    # two (exact) so that squares below neither overflow nor underflow.
    points, exponent = unit_scale(points)
    n_points = np.array([len(p) for _, p in groups])
    owner = np.repeat(np.arange(len(groups)), n_points)
    if center:
        points = points - points.mean(axis=0)
    check_finite(points, "the globally centered points")
    scale = 1.0
    if normalize:
        centers = np.stack([points[owner == mu].mean(axis=0) for mu in range(len(groups))])
        scale = float(np.sqrt(np.mean(np.sum(centers ** 2, axis=1))))
        if scale <= 0 or not np.isfinite(scale):
            scale = float(np.sqrt(np.mean(np.sum(points ** 2, axis=1))))
    coords = span_coordinates(points)
    if coords.shape[1] == 0 or scale == 0:
        raise AnalysisError(
            f"all {len(points)} points of the {len(groups)} manifolds by {by!r} are identical "
            "(after subtracting the global mean): no manifold can be separated from another")
    coords = coords / scale
    check_finite(coords, "the points in span coordinates")
    with np.errstate(over="ignore"):   # the scale in input units may exceed the float range
        scale = float(np.ldexp(scale, exponent))
    return ManifoldPoints(labels, coords, owner, n_points, points.shape[1], scale)


def span_coordinates(points: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Coordinates of the rows of ``points`` in an orthonormal basis of their span.

    The basis comes from QR with column pivoting of ``points.T``, each axis' sign fixed by an odd,
    rotation- and order-invariant statistic of the points along it. Pivots are chosen by residual norms, which rotations of the
    ambient space do not change, so the returned coordinates are the same (to rounding) for
    rotated data: Gaussian samples drawn in these coordinates make results exactly rotation
    invariant for a fixed seed. Directions with ``|R_ii| <= rtol * |R_00|`` are dropped (rank).
    """
    if points.size == 0:
        return np.zeros((points.shape[0], 0))
    # pivoted QR (LAPACK geqp3) is mostly matrix-vector work: BLAS threads only add
    # synchronization, which on a busy machine cost 1.3 s for 480 points x 100 features
    with single_threaded_blas():
        q, r, _ = scipy.linalg.qr(points.T, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    if diag.size == 0 or diag[0] == 0:
        return np.zeros((points.shape[0], 0))
    rank = int(np.sum(diag > rtol * diag[0]))
    coords = points @ q[:, :rank]
    # Fix each axis' sign by an odd statistic of the points along it that rotations and point
    # order do not change: sum_i c_ij |x_i|^2 (nonzero for generic data; the last axis of
    # centered data often carries just two opposite points, where odd moments vanish), then
    # the third moment. The sign of R_ii would depend on which of two tied columns pivots.
    sq = np.sum(points ** 2, axis=1)
    sign = np.sign(np.diag(r)[:rank])
    for stat in (np.sum(coords ** 3, axis=0), sq @ coords):
        tol = 1e-9 * np.linalg.norm(stat) + 1e-300
        sign = np.where(np.abs(stat) > tol, np.sign(stat), sign)
    return coords * sign
