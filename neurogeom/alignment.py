"""Manifold alignment analysis (MAA), linear decodability, cross-system agreement, layer profiles.

Kuoch et al. (CPAL 2024) pair manifold capacity with an alignment analysis of task-dependent
manifolds, to compare how networks and macaque V4/IT position and orient them. Their exact
formulas were not available to us; the definitions below are neurogeom's,
each written out in its function's docstring. Notation: the points of manifold μ are the rows
x_i (i ∈ μ, n_μ of them) of a ``(presentation, neuroid)`` assembly after subtracting the mean of
*all* points (global centering), its center is c_μ = mean_{i∈μ} x_i, and its subspace is spanned
by the top k_μ principal axes U_μ (N × k_μ, orthonormal) of its points about c_μ.

- :func:`manifold_alignment`: center alignment, subspace alignment (principal angles),
  center–axis alignment and position statistics, within one family of manifolds or between two
  families defined on the same stimuli (``other_by``).
- :func:`decoding_accuracy`: cross-validated linear readout of the manifold labels.
- :func:`compare_geometry`: agreement of the geometry of the same manifolds in two systems, with
  a permutation null.
- :func:`layer_profile`: all of the above, layer by layer (and region by region).

The pairwise kernel is one matrix product of the stacked bases of every manifold (a symmetric
rank-k update) followed by batched eigendecompositions of its k × k blocks, so all P(P-1)/2
angle spectra cost about one Gram matrix; no Python loop runs over pairs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ._blas import single_threaded_blas
from ._blas import threaded_map as _threaded_map
from ._params import check_fraction, check_int, check_seed
from ._results import build_result
from .assembly import align, average_repetitions, manifolds, presentation_coords, sample_dim, \
    validate
from .errors import AlignmentError, AnalysisError, AssemblyError, format_list

__all__ = ["manifold_alignment", "decoding_accuracy", "compare_geometry", "layer_profile",
           "principal_angles", "CLASSIFIERS", "PROFILE_ANALYSES"]

#: Named readouts of :func:`decoding_accuracy`.
CLASSIFIERS = ("linear_svm", "logistic")

#: What :func:`layer_profile` can compute.
PROFILE_ANALYSES = ("capacity", "alignment", "decoding", "predictivity", "agreement")

#: Measures whose agreement :func:`compare_geometry` tests.
AGREEMENTS = ("rank_agreement_capacity", "rank_agreement_radius", "rank_agreement_dimension",
              "center_alignment_similarity", "procrustes_alignment")


# --------------------------------------------------------------------------------------------
# kernels (plain numpy)
# --------------------------------------------------------------------------------------------

#: Singular values below this fraction of a manifold's largest are rounding, not spread: they
#: come from eigenvalues of the Gram matrix, whose absolute error is ~eps times the largest.
RANK_RTOL = 1e-6


def _n_components(s: np.ndarray, variance: float) -> int:
    """Smallest k whose top-k squared singular values hold ``variance`` of the total, never
    more than the numerical rank (singular values above ``RANK_RTOL`` times the largest)."""
    if s.size == 0 or not s[0] > 0:
        return 0
    rank = int(np.sum(s > RANK_RTOL * s[0]))
    power = np.cumsum(s[:rank] ** 2)
    k = int(np.searchsorted(power, variance * power[-1] * (1 - 1e-12)) + 1)
    return min(k, rank)


def _gram_spectra(points: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Singular values s (descending) of each manifold's points about their own center, and the
    eigenvectors V of the smaller of its Gram matrix Y Yᵀ and covariance Yᵀ Y (Y centered).

    For n points in N ≫ n dims the eigendecomposition of the n × n Gram matrix
    Y Yᵀ = V S² Vᵀ is much cheaper than an SVD of Y (and LAPACK's SVD of a wide matrix is
    slow); :func:`_fill_axes` turns V into the principal axes. Manifolds of one size go through
    one batched ``eigh``.
    """
    def gram(p):
        y = p - p.mean(axis=0)
        return y @ y.T if len(p) <= p.shape[1] else y.T @ y

    out: list = [None] * len(points)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(points):
        by_size.setdefault(p.shape, []).append(i)
    for idx in by_size.values():
        grams = np.stack(_threaded_map(gram, [points[i] for i in idx]))
        with single_threaded_blas():   # threads only add synchronization to small LAPACK calls
            w, V = np.linalg.eigh(grams)
        # descending order, contiguous: a reversed (negative-stride) view would make the
        # products with V miss BLAS
        w, V = w[:, ::-1], np.ascontiguousarray(V[:, :, ::-1])
        s = np.sqrt(np.clip(w, 0.0, None))
        for j, i in enumerate(idx):
            out[i] = (s[j], V[j])
    return out


def _fill_axes(row: np.ndarray, x: np.ndarray, s: np.ndarray, V: np.ndarray) -> None:
    """Write the top ``len(row)`` principal axes of the points ``x`` (rows) into ``row``.

    Wide case (n ≤ N, V from the Gram matrix): axes = Vᵀ Y / s, accurate to ~eps (s_1/s_k)²
    for every kept axis (s_k > RANK_RTOL s_1), formed from the uncentered points as
    (Vᵀ X − (Vᵀ1) mᵀ) / s (m the manifold mean) so no centered copy is made. Otherwise the
    eigenvectors of the covariance are the axes.
    """
    k = len(row)
    vt = V[:, :k].T
    if len(x) > x.shape[1]:
        row[:] = vt
        return
    np.matmul(vt, x, out=row)
    row -= np.outer(vt.sum(axis=1), x.mean(axis=0))
    row /= s[:k, None]


def _subspaces(groups, n_components, variance, what):
    """Orthonormal principal bases of each manifold about its own center.

    Returns the stacked bases as rows, ``(P, K, N)``, zero-padded to K = max k_μ rows, the
    k_μ, and each manifold's total squared spread Σ_i ‖x_i − c_μ‖² (= Σ s²).
    """
    points = [p for _, p in groups]
    spectra = _gram_spectra(points)
    ks, short = [], []
    for (label, x), (s, _) in zip(groups, spectra):
        rank = _n_components(s, 1.0)
        if rank == 0:
            raise AnalysisError(f"manifold {label!r} by {what!r} has no spread (its "
                                f"{len(x)} points are identical): it has no subspace")
        if n_components is None:
            ks.append(_n_components(s, variance))
        else:
            ks.append(n_components)
            if n_components > rank:
                short.append(f"{label!r} ({len(x)} points, rank {rank})")
    if short:
        raise AnalysisError(
            f"n_components={n_components} exceeds the rank of {len(short)} manifold(s) by "
            f"{what!r} (a manifold of n points spans at most n - 1 directions about its "
            f"center): {format_list(short)}; lower n_components or pass variance=")
    stacked = np.zeros((len(groups), max(ks), points[0].shape[1]))
    _threaded_map(lambda mu: _fill_axes(stacked[mu, :ks[mu]], points[mu], *spectra[mu]),
                  range(len(groups)))
    spread = np.array([float(np.sum(s ** 2)) for s, _ in spectra])
    return stacked, np.asarray(ks), spread


def principal_angles(bases: np.ndarray, ks: np.ndarray, other: np.ndarray | None = None,
                     other_ks: np.ndarray | None = None, *,
                     chunk_bytes: int = 64 * 2**20) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of the principal angles between every pair of stacked subspaces.

    The cosines of the principal angles between span(U_μ) and span(U_ν) are the singular
    values of U_μᵀ U_ν (Björck & Golub 1973). All blocks come from one product of the stacked
    bases, ``(P K) × N`` times ``N × (Q K')`` (within one family a symmetric rank-k update),
    then batched eigendecompositions of the blocks, in chunks of about ``chunk_bytes``; within
    one family only the blocks μ < ν are decomposed.

    Parameters
    ----------
    bases : ndarray (P, K, N)
        Orthonormal bases as rows, zero-padded beyond their k_μ rows.
    ks : ndarray (P,)
        Number of rows of each basis.
    other, other_ks : optional
        A second family (Q, K', N); default: ``bases`` against themselves.

    Returns
    -------
    cosines : ndarray (P, Q, min(K, K'))
        Descending cosines; entries beyond min(k_μ, k_ν) are exactly 0 (the padding convention:
        a missing direction is orthogonal to everything, angle π/2).
    n_angles : ndarray (P, Q)
        min(k_μ, k_ν), the number of defined angles.
    """
    same = other is None
    if same:
        other, other_ks = bases, ks
    P, K, N = bases.shape
    Q, K2, _ = other.shape
    flat = bases.reshape(P * K, N)
    gram = flat @ flat.T if same else flat @ other.reshape(Q * K2, N).T
    blocks = gram.reshape(P, K, Q, K2)
    m = min(K, K2)
    cos = np.zeros((P, Q, m))
    if same:
        iu, ju = np.triu_indices(P, 1)
        cos[np.arange(P), np.arange(P)] = 1.0   # a subspace with itself: every angle is 0
    else:
        iu, ju = (x.ravel() for x in np.indices((P, Q)))
    step = max(1, int(chunk_bytes // (8 * 3 * K * K2)))

    def chunk(start):
        i, j = iu[start:start + step], ju[start:start + step]
        sv = _singular_values(blocks[i, :, j, :])       # (chunk, K, K2)
        cos[i, j] = sv
        if same:
            cos[j, i] = sv

    # the chunks write disjoint entries of `cos`
    _threaded_map(chunk, range(0, len(iu), step))
    n_angles = np.minimum.outer(ks, other_ks)
    cos[np.arange(m)[None, None, :] >= n_angles[:, :, None]] = 0.0
    np.clip(cos, 0.0, 1.0, out=cos)
    return cos, n_angles


def _singular_values(blocks: np.ndarray) -> np.ndarray:
    """Descending singular values of a stack of (K × K') blocks, min(K, K') of them, as square
    roots of the eigenvalues of the smaller of B Bᵀ and Bᵀ B (several times faster than an SVD
    per block; the absolute error of σ² is ~eps, so σ near 1, the small angles, keeps ~eps
    relative accuracy)."""
    bt = np.swapaxes(blocks, -1, -2)
    square = blocks @ bt if blocks.shape[-2] <= blocks.shape[-1] else bt @ blocks
    w = np.linalg.eigvalsh(square)     # (callers limit BLAS to one thread per call)
    return np.sqrt(np.clip(w[..., ::-1], 0.0, None))


def _offdiag_mean(matrix: np.ndarray, same: bool) -> float:
    if not same:
        return float(np.mean(matrix))
    mask = ~np.eye(len(matrix), dtype=bool)
    return float(np.mean(matrix[mask]))


def _require_coord(a: xr.DataArray, name: str, what: str) -> None:
    dim = sample_dim(a)
    if name not in a.coords or a[name].dims != (dim,):
        raise AssemblyError(f"unknown {what}={name!r}; coords on {dim!r}: "
                            f"{format_list(presentation_coords(a, dim), 30)}")


def _checked_groups(a: xr.DataArray, by: str, what: str):
    """Manifolds by ``by`` (at least 2 points each), checked: an existing coord, 2 or more."""
    _require_coord(a, by, what)
    groups = manifolds(a, by, min_points=2)
    if len(groups) < 2:
        raise AnalysisError(f"alignment needs at least 2 manifolds; {what}={by!r} gives "
                            f"{len(groups)}: {format_list([g for g, _ in groups])}")
    return groups


def _family(groups, by, n_components, variance) -> dict:
    """Raw means, principal subspaces and spreads of one family of manifolds."""
    bases, ks, spread = _subspaces(groups, n_components, variance, by)
    return {"by": by, "labels": [label for label, _ in groups],
            "means": np.stack([pts.mean(axis=0) for _, pts in groups]),
            "n_points": np.array([len(p) for _, p in groups]),
            "bases": bases, "ks": ks, "spread": spread}


def _positions(family: dict, mean: np.ndarray, scale: float) -> None:
    """Centers (globally centered), their norms and the RMS radii, in units of ``scale``."""
    centers = (family["means"] - mean) / scale
    norms = np.linalg.norm(centers, axis=1)
    zero = [f"{label!r}" for label, n in zip(family["labels"], norms) if n <= 1e-12]
    if zero:
        raise AnalysisError(f"manifold(s) {format_list(zero)} by {family['by']!r} sit at the "
                            "global mean (center norm 0): their center direction is undefined")
    family.update(centers=centers, norms=norms,
                  radius=np.sqrt(family["spread"] / family["n_points"]) / scale)


def _alignment_arrays(a: xr.DataArray, by: str, other_by, n_components, variance) -> dict:
    """Every within- (or between-family) measure of :func:`manifold_alignment`, as arrays."""
    gx = _checked_groups(a, by, "by")      # validates the assembly
    same = other_by is None
    gy = gx if same else _checked_groups(a, other_by, "other_by")
    fx = _family(gx, by, n_components, variance)
    fy = fx if same else _family(gy, other_by, n_components, variance)
    # every point belongs to one manifold: the global mean is the weighted mean of the
    # manifold means, and the total spread about it splits into within + between (the unit of
    # every position statistic: the RMS norm of the globally centered points)
    n = fx["n_points"].sum()
    mean = fx["n_points"] @ fx["means"] / n
    between = fx["n_points"] @ np.sum((fx["means"] - mean) ** 2, axis=1)
    scale = float(np.sqrt((fx["spread"].sum() + between) / n))
    if not scale > 0:
        raise AnalysisError(f"all {n} points of the assembly are identical: no geometry")
    _positions(fx, mean, scale)
    if not same:
        _positions(fy, mean, scale)

    ux = fx["centers"] / fx["norms"][:, None]
    uy = fy["centers"] / fy["norms"][:, None]
    center_alignment = np.clip(ux @ uy.T, -1.0, 1.0)
    cos, n_angles = principal_angles(fx["bases"], fx["ks"],
                                     None if same else fy["bases"], None if same else fy["ks"])
    subspace = np.sum(cos ** 2, axis=2) / n_angles
    # ||U_νᵀ ĉ_μ||²: the fraction of center μ's squared norm inside manifold ν's subspace
    Q, K2, N = fy["bases"].shape
    proj = ux @ fy["bases"].reshape(Q * K2, N).T
    center_axis = np.sum(proj.reshape(len(ux), Q, K2) ** 2, axis=2)
    # ‖c_μ − c_ν‖² = ‖c_μ‖² + ‖c_ν‖² − 2 c_μ·c_ν: no (P, Q, N) difference array
    dot = fx["centers"] @ fy["centers"].T
    distance = np.sqrt(np.clip(fx["norms"][:, None] ** 2 + fy["norms"][None, :] ** 2 - 2 * dot,
                               0.0, None))
    if same:
        np.fill_diagonal(distance, 0.0)
    separation = distance / (fx["radius"][:, None] + fy["radius"][None, :])
    return {"fx": fx, "fy": fy, "same": same, "scale": scale,
            "center_alignment": center_alignment, "cos": cos, "n_angles": n_angles,
            "subspace_alignment": subspace, "center_axis_alignment": center_axis,
            "center_distance": separation}


# --------------------------------------------------------------------------------------------
# manifold_alignment
# --------------------------------------------------------------------------------------------

def manifold_alignment(a: xr.DataArray, by: str, *, n_components: int | None = None,
                       variance: float = 0.9, other_by: str | None = None) -> xr.Dataset:
    r"""Pairwise alignment and relative position of the manifolds ``by`` labels.

    All points are first centered on their global mean; manifold μ has points x_i (i ∈ μ),
    center c_μ = mean_{i∈μ} x_i and principal subspace U_μ (N × k_μ): the top k_μ right
    singular vectors of its points about c_μ.

    - Center alignment: cos(c_μ, c_ν) = c_μ·c_ν / (‖c_μ‖ ‖c_ν‖).
    - Principal angles θ_1 ≤ … ≤ θ_m, m = min(k_μ, k_ν): cos θ_i are the singular values of
      U_μᵀ U_ν (Björck & Golub 1973).
    - Subspace (axis) alignment: (1/m) Σ_i cos² θ_i = ‖U_μᵀ U_ν‖_F² / m ∈ [0, 1]: 1 when one
      subspace contains the other, 0 when they are orthogonal. For independent random k- and
      k'-dimensional subspaces of R^N its expectation is max(k, k')/N.
    - Center–axis alignment: ‖U_νᵀ ĉ_μ‖² with ĉ_μ = c_μ/‖c_μ‖, the fraction of center μ's
      squared norm lying in manifold ν's subspace (expectation k_ν/N at random).
    - Position: ‖c_μ‖ and the RMS radius R_μ = (mean_{i∈μ} ‖x_i − c_μ‖²)^{1/2}, both in units of
      the RMS norm of all centered points (so R² and ‖c‖² are fractions of the total variance),
      and the center distance ‖c_μ − c_ν‖ / (R_μ + R_ν): above 1 the two RMS balls are apart.

    This follows the manifold alignment analysis of Kuoch et al. (CPAL 2024) with neurogeom's
    definitions (their formulas were not available to us), and the manifold
    geometry of Chung, Lee & Sompolinsky (2018) and Cohen et al. (2020). Every measure is
    invariant to orthogonal rotations and to global scaling of the neuroid space.

    Parameters
    ----------
    a : xarray.DataArray
        A ``(presentation, neuroid)`` or ``(time, neuroid)`` assembly; each point (presentation)
        is one point of its manifold. Average repetitions first if each stimulus should be one.
    by : str
        Coord whose labels define the manifolds (e.g. ``"object_name"``).
    n_components : int, optional
        Dimension k of every manifold subspace. Must not exceed the rank of any manifold's
        centered points (at most n_μ − 1). Default: per manifold, the fewest principal axes that
        hold ``variance`` of its variance.
    variance : float in (0, 1]
        Fraction of each manifold's variance its subspace keeps when ``n_components`` is None.
    other_by : str, optional
        A second coord on the same points (e.g. ``"position"``): manifolds by ``by`` (on dim
        ``manifold``) are compared with manifolds by ``other_by`` (on dim ``manifold_other``).
        Default: ``by``'s manifolds against each other.

    Returns
    -------
    xarray.Dataset
        Dims ``manifold``, ``manifold_other`` (the same labels when ``other_by`` is None) and
        ``component`` (1 … max k). Variables:

        ``center_alignment`` (manifold, manifold_other)
            Cosine between centers.
        ``subspace_alignment`` (manifold, manifold_other)
            Mean cos² of the principal angles.
        ``principal_angles`` (manifold, manifold_other, component)
            θ_i in radians, ascending (from cosines, so angles below ~1e-7 rad are
            resolved to about √eps ≈ 1.5e-8). Padding convention (no NaN): angles beyond
            ``n_angles`` = min(k_μ, k_ν) are π/2, as if the smaller subspace were padded with
            directions orthogonal to everything.
        ``n_angles`` (manifold, manifold_other)
            min(k_μ, k_ν).
        ``center_axis_alignment`` (manifold, manifold_other)
            Fraction of center μ's squared norm in subspace ν (rows: centers; columns:
            subspaces).
        ``center_distance`` (manifold, manifold_other)
            ‖c_μ − c_ν‖ / (R_μ + R_ν).
        ``center_norm``, ``radius``, ``n_components``, ``n_points`` (manifold)
            ‖c_μ‖ and R_μ in units of ``data_scale``; k_μ; n_μ. With ``other_by`` the same for
            the other family with the suffix ``_other`` on ``manifold_other``.
        ``center_alignment_mean``
            Mean |cos(c_μ, c_ν)| over pairs μ ≠ ν (|·| because global centering makes the
            signed cosines sum to about −1 over each row; with ``other_by`` over all pairs).
        ``subspace_alignment_mean``, ``center_axis_alignment_mean``
            Means over pairs μ ≠ ν (with ``other_by``: over all pairs).
        ``data_scale``
            The RMS norm of the globally centered points, in input units.

    Raises
    ------
    AssemblyError
        ``by``/``other_by`` missing (the available coords are listed), NaN values, a manifold
        of one point.
    AnalysisError
        One manifold only, ``n_components`` above a manifold's rank (named, with its number of
        points), a manifold without spread or centered at the global mean, bad parameters.

    Examples
    --------
    >>> import loaders, neurogeom as ng
    >>> a = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=30)
    >>> res = ng.manifold_alignment(ng.average_repetitions(a), by="object_name")
    >>> float(res["subspace_alignment"][0, 0])
    1.0

    References
    ----------
    .. [1] Kuoch, Chou, Parthasarathy, Dapello, DiCarlo, Sompolinsky & Chung (2024). Probing
       biological and artificial neural networks with task-dependent neural manifolds.
       Conference on Parsimony and Learning (CPAL), PMLR 234.
    .. [2] Chung, Lee & Sompolinsky (2018). Classification and geometry of general perceptual
       manifolds. Phys. Rev. X 8, 031003.
    .. [3] Björck & Golub (1973). Numerical methods for computing angles between linear
       subspaces. Math. Comp. 27, 579-594.
    """
    if n_components is not None:
        n_components = check_int(n_components, "n_components", 1)
    variance = check_fraction(variance, "variance")
    if not variance > 0:
        raise AnalysisError(f"variance must be in (0, 1], got {variance!r}")
    if other_by is not None and other_by == by:
        raise AnalysisError(f"other_by={other_by!r} is by itself; leave other_by out to compare "
                            "the manifolds by one coord with each other")
    r = _alignment_arrays(a, by, other_by, n_components, variance)
    fx, fy, same = r["fx"], r["fy"], r["same"]
    angles = np.arccos(r["cos"])
    variables = {
        "center_alignment": (("manifold", "manifold_other"), r["center_alignment"]),
        "subspace_alignment": (("manifold", "manifold_other"), r["subspace_alignment"]),
        "principal_angles": (("manifold", "manifold_other", "component"), angles),
        "n_angles": (("manifold", "manifold_other"), r["n_angles"]),
        "center_axis_alignment": (("manifold", "manifold_other"), r["center_axis_alignment"]),
        "center_distance": (("manifold", "manifold_other"), r["center_distance"]),
        "center_norm": ("manifold", fx["norms"]),
        "radius": ("manifold", fx["radius"]),
        "n_components": ("manifold", fx["ks"]),
        "n_points": ("manifold", fx["n_points"]),
        "center_alignment_mean": ((), _offdiag_mean(np.abs(r["center_alignment"]), same)),
        "subspace_alignment_mean": ((), _offdiag_mean(r["subspace_alignment"], same)),
        "center_axis_alignment_mean": ((), _offdiag_mean(r["center_axis_alignment"], same)),
        "data_scale": ((), r["scale"]),
    }
    if not same:
        variables.update({
            "center_norm_other": ("manifold_other", fy["norms"]),
            "radius_other": ("manifold_other", fy["radius"]),
            "n_components_other": ("manifold_other", fy["ks"]),
            "n_points_other": ("manifold_other", fy["n_points"]),
        })
    ds = build_result(
        variables,
        coords={"manifold": np.asarray(fx["labels"]), "manifold_other": np.asarray(fy["labels"]),
                "component": np.arange(1, angles.shape[2] + 1)},
        analysis="manifold_alignment",
        parameters={"by": str(by), "n_components": n_components, "variance": float(variance),
                    "other_by": other_by},
        inputs={"input": a},
        references=("maa", "mft", "principal_angles"),
        details={
            "centering": "global mean of all points subtracted first",
            "principal_angles_padding": "angles beyond n_angles = min(k_mu, k_nu) are pi/2",
            "means_over": "pairs mu != nu" if same else "all pairs",
            "position_unit": "RMS norm of the globally centered points (data_scale)",
        },
    )
    long_names = {
        "center_alignment": "cosine between manifold centers",
        "subspace_alignment": "mean cos^2 of the principal angles between manifold subspaces",
        "principal_angles": "principal angles between manifold subspaces (radians)",
        "center_axis_alignment": "fraction of the row manifold's center in the column "
                                 "manifold's subspace",
        "center_distance": "center distance / (radius + radius of the other manifold)",
        "center_norm": "center norm / data_scale",
        "radius": "RMS manifold radius / data_scale",
    }
    for name, text in long_names.items():
        ds[name].attrs["long_name"] = text
    return ds


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------

def _classifier(classifier, seed):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if isinstance(classifier, str):
        if classifier == "linear_svm":
            return make_pipeline(StandardScaler(), LinearSVC(C=1.0, random_state=seed,
                                                             max_iter=10000))
        if classifier == "logistic":
            return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        raise AnalysisError(f"classifier must be one of {CLASSIFIERS} or a scikit-learn "
                            f"classifier, got {classifier!r}")
    if not (hasattr(classifier, "fit") and hasattr(classifier, "predict")):
        raise AnalysisError(f"classifier must be one of {CLASSIFIERS} or an object with "
                            f"fit/predict, got {type(classifier).__name__}")
    return clone(classifier)


def decoding_splits(a: xr.DataArray, by: str, n_splits: int, seed: int):
    """Features, labels and the stratified, stimulus-grouped folds of :func:`decoding_accuracy`.

    Folds are ``sklearn.model_selection.StratifiedGroupKFold(n_splits, shuffle=True,
    random_state=seed)`` over groups = ``stimulus_id`` (every presentation its own group when
    the assembly has none), so repeats of one image are never split between train and test.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    validate(a)
    if "time_bin" in a.dims:
        raise AssemblyError("decoding needs (presentation, neuroid) or (time, neuroid) data; "
                            "select or average time bins first, e.g. a.mean('time_bin')")
    _require_coord(a, by, "by")
    dim = sample_dim(a)
    X = np.asarray(a.transpose(dim, ...).values, dtype=np.float64)
    y = np.asarray(a[by].values)
    if "stimulus_id" in a.coords and a["stimulus_id"].dims == (dim,):
        groups = np.asarray(a["stimulus_id"].values)
        table = pd.DataFrame({"g": groups, "y": y})
        mixed = table.groupby("g")["y"].nunique()
        mixed = mixed[mixed > 1].index.tolist()
        if mixed:
            raise AnalysisError(f"stimulus_id(s) {format_list(mixed)} carry more than one "
                                f"{by!r} label; a stimulus must belong to one manifold")
    else:
        groups = np.arange(len(y))
    classes, inverse = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise AnalysisError(f"decoding needs at least 2 manifolds; by={by!r} gives "
                            f"{len(classes)}: {format_list(classes.tolist())}")
    per_class = pd.Series(groups).groupby(inverse).nunique().to_numpy()
    small = [f"{c!r} ({n})" for c, n in zip(classes.tolist(), per_class) if n < n_splits]
    if small:
        raise AnalysisError(
            f"n_splits={n_splits} needs at least {n_splits} distinct stimuli per {by!r} label; "
            f"too few in {format_list(small)}; lower n_splits")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = list(cv.split(X, y, groups))
    return X, y, groups, classes, folds


def _score(estimator, X, y, folds, metric):
    out = np.empty(len(folds))
    for s, (train, test) in enumerate(folds):
        est = _clone(estimator).fit(X[train], y[train])
        out[s] = metric(y[test], est.predict(X[test]))
    return out


def _clone(estimator):
    from sklearn.base import clone

    return clone(estimator)


def decoding_accuracy(a: xr.DataArray, by: str, *, classifier="linear_svm", n_splits: int = 5,
                      seed: int = 0, per_manifold: bool = True) -> xr.Dataset:
    r"""Cross-validated accuracy of a linear readout of the manifold labels ``by``.

    The fraction of held-out points whose label a linear classifier, trained on the other folds,
    predicts correctly — the linear decodability of the task variable that defines the
    manifolds (Hung et al. 2005; Majaj et al. 2015), the empirical counterpart of manifold
    capacity (Chung et al. 2018).

    - ``accuracy_split[s]`` = (1/|T_s|) Σ_{i∈T_s} 1[ŷ_i = y_i] on test fold T_s (all labels
      at once; the linear SVM is one-vs-rest), ``accuracy`` their mean, ``accuracy_std`` their
      standard deviation (ddof 0).
    - ``chance`` = max_c n_c / n, the accuracy of always answering the most frequent label (a
      label-blind readout can do no better on average).
    - ``one_vs_rest_accuracy[μ]``: balanced accuracy, ½(TPR + TNR), of a binary classifier of
      μ against all other labels, on the same folds (chance 0.5 whatever the class sizes).
    - ``pairwise_accuracy[μ, ν]``: accuracy of a binary classifier trained on μ and ν only,
      on the same folds restricted to their points (chance 0.5 for equal sizes); symmetric.

    Folds: :func:`decoding_splits` (stratified by label, grouped by ``stimulus_id``).

    Parameters
    ----------
    a : xarray.DataArray
        ``(presentation, neuroid)`` or ``(time, neuroid)`` assembly; repetitions allowed.
    by : str
        Coord holding the labels.
    classifier : {"linear_svm", "logistic"} or scikit-learn classifier
        ``"linear_svm"``: standardized features, ``LinearSVC(C=1)``; ``"logistic"``:
        standardized features, ``LogisticRegression(C=1)``; an estimator is cloned per fit.
    n_splits : int
        Number of folds (≥ 2); every label needs at least this many distinct stimuli.
    seed : int
        ``random_state`` of the folds and of the SVM.
    per_manifold : bool
        Also fit the P one-vs-rest and P(P−1)/2 pairwise classifiers (default). False: the
        multi-class accuracy only (what :func:`layer_profile` uses; P² fewer fits).

    Returns
    -------
    xarray.Dataset
        Scalars ``accuracy``, ``accuracy_std``, ``chance``; ``accuracy_split`` (split);
        ``n_points`` (manifold). With ``per_manifold``: ``one_vs_rest_accuracy`` (manifold),
        ``pairwise_accuracy`` (manifold, manifold_other), whose diagonal is NaN by definition
        (a label against itself is no decoding problem), and ``pairwise_accuracy_mean`` (mean
        over pairs μ ≠ ν).

    Raises
    ------
    AssemblyError
        ``by`` missing (coords listed), invalid assembly.
    AnalysisError
        One label only, too few stimuli per label for ``n_splits`` (named), a stimulus with two
        labels, bad parameters.

    References
    ----------
    .. [1] Hung, Kreiman, Poggio & DiCarlo (2005). Fast readout of object identity from macaque
       inferior temporal cortex. Science 310, 863-866.
    .. [2] Majaj, Hong, Solomon & DiCarlo (2015). Simple learned weighted sums of inferior
       temporal neuronal firing rates accurately predict human core object recognition
       performance. J. Neurosci. 35, 13402-13418.
    .. [3] Chung, Lee & Sompolinsky (2018). Classification and geometry of general perceptual
       manifolds. Phys. Rev. X 8, 031003.
    """
    from sklearn.metrics import accuracy_score

    n_splits = check_int(n_splits, "n_splits", 2)
    seed = check_seed(seed)
    estimator = _classifier(classifier, seed)
    X, y, _, classes, folds = decoding_splits(a, by, n_splits, seed)
    accuracy = _score(estimator, X, y, folds, accuracy_score)
    counts = np.array([int(np.sum(y == c)) for c in classes])
    variables = {"accuracy": ((), float(accuracy.mean())),
                 "accuracy_std": ((), float(accuracy.std())),
                 "chance": ((), float(counts.max() / counts.sum())),
                 "accuracy_split": ("split", accuracy),
                 "n_points": ("manifold", counts)}
    if per_manifold:
        ovr, pairwise = _per_manifold_accuracy(estimator, X, y, classes, folds)
        variables.update({
            "one_vs_rest_accuracy": ("manifold", ovr),
            "pairwise_accuracy": (("manifold", "manifold_other"), pairwise),
            "pairwise_accuracy_mean": ((), float(np.nanmean(pairwise)))})
    ds = build_result(
        variables,
        coords={"manifold": classes, "manifold_other": classes, "split": np.arange(n_splits)},
        analysis="decoding_accuracy",
        parameters={"by": str(by), "classifier": classifier if isinstance(classifier, str)
                    else repr(classifier), "n_splits": n_splits, "seed": seed,
                    "per_manifold": per_manifold},
        inputs={"input": a},
        references=("decoding", "majaj", "mft"),
        details={"splits": "StratifiedGroupKFold(shuffle=True) grouped by stimulus_id",
                 "chance_is": "frequency of the most common label",
                 "one_vs_rest_metric": "balanced accuracy (chance 0.5)",
                 "pairwise_diagonal": "NaN: a label against itself is not decoded"},
    )
    if per_manifold:
        ds["pairwise_accuracy"].attrs["long_name"] = "binary accuracy of each pair (NaN diagonal)"
    return ds


def _per_manifold_accuracy(estimator, X, y, classes, folds):
    """One-vs-rest balanced accuracy and pairwise accuracy on the given folds."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    P = len(classes)
    ovr = np.empty(P)
    for mu, c in enumerate(classes):
        ovr[mu] = np.mean(_score(estimator, X, y == c, folds, balanced_accuracy_score))
    fold_of = np.empty(len(y), dtype=int)
    for s, (_, test) in enumerate(folds):
        fold_of[test] = s
    pairwise = np.full((P, P), np.nan)
    for mu in range(P):
        for nu in range(mu + 1, P):
            keep = np.flatnonzero((y == classes[mu]) | (y == classes[nu]))
            sub = [(np.flatnonzero(fold_of[keep] != s), np.flatnonzero(fold_of[keep] == s))
                   for s in range(len(folds))]
            sub = [(tr, te) for tr, te in sub if len(te)]
            pairwise[mu, nu] = pairwise[nu, mu] = np.mean(
                _score(estimator, X[keep], y[keep], sub, accuracy_score))
    return ovr, pairwise


# --------------------------------------------------------------------------------------------
# compare_geometry
# --------------------------------------------------------------------------------------------

def _paired(x: xr.DataArray, y: xr.DataArray, by: str):
    """``x`` and ``y`` on the same stimuli in the same order, with the same ``by`` labels."""
    validate(x)
    validate(y)
    for label, a in (("x", x), ("y", y)):
        if "presentation" not in a.dims:
            raise AlignmentError(f"compare_geometry needs presentations in both systems; the "
                                 f"{label} assembly has dims {a.dims}")
        _require_coord(a, by, f"by (in {label})")
    if pd.Index(np.asarray(x["stimulus_id"].values)).has_duplicates:
        x = average_repetitions(x)
    if pd.Index(np.asarray(y["stimulus_id"].values)).has_duplicates:
        y = average_repetitions(y)
    x, y = align(x, y, require_identical=True)
    lx, ly = np.asarray(x[by].values), np.asarray(y[by].values)
    differ = lx != ly
    if differ.any():
        ids = np.asarray(x["stimulus_id"].values)[differ]
        pairs = [f"{i}: {a!r} vs {b!r}"
                 for i, a, b in zip(ids.tolist(), lx[differ].tolist(), ly[differ].tolist())]
        raise AlignmentError(f"{by} labels differ between the two systems on "
                             f"{int(differ.sum())} stimuli ({format_list(pairs)})")
    return x, y


def _system_geometry(cap: xr.Dataset, al: xr.Dataset) -> dict:
    """Per-manifold capacity, radius and dimension, and the center-alignment matrix, from the
    results of :func:`~neurogeom.manifold_capacity` and :func:`manifold_alignment`."""
    return {"labels": np.asarray(cap["manifold"].values),
            "capacity": np.asarray(cap["capacity"].values),
            "radius": np.asarray(cap["radius"].values),
            "dimension": np.asarray(cap["dimension"].values),
            "center_alignment": np.asarray(al["center_alignment"].values)}


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v)


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of vector ``a`` with each row of ``b``."""
    a = a - a.mean()
    b = b - b.mean(axis=-1, keepdims=True)
    return (b @ a) / (np.linalg.norm(a) * np.linalg.norm(b, axis=-1))


def _held_out_procrustes(x, y, by, n_components, variance, seed):
    """Subspace alignment of every manifold of ``x``, mapped into ``y`` by an orthogonal
    Procrustes fit on half the stimuli of each label, with every manifold of ``y``, on the
    other half: a (P, P) matrix (rows: mapped x; columns: y)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(x[by].values)
    fit = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fit[idx[:len(idx) // 2]] = True
    X = np.asarray(x.values, dtype=np.float64)
    Y = np.asarray(y.values, dtype=np.float64)
    # global scaling out: each system divided by the RMS norm of its centered fit points
    mx, my = X[fit].mean(0), Y[fit].mean(0)
    Xf, Yf = X[fit] - mx, Y[fit] - my
    sx = np.sqrt(np.mean(np.sum(Xf ** 2, axis=1)))
    sy = np.sqrt(np.mean(np.sum(Yf ** 2, axis=1)))
    if not (sx > 0 and sy > 0):
        raise AnalysisError("the stimuli used to fit the Procrustes map are identical in one "
                            "system: no map can be fitted")
    Xf, Yf = Xf / sx, Yf / sy
    # min_R ‖Xf R − Yf‖_F over R with orthonormal rows or columns: R = A Bᵀ for XfᵀYf = A Σ Bᵀ
    # (Schönemann 1966), computed through the thin SVDs so no N × N matrix is formed
    ux, s_x, vxt = np.linalg.svd(Xf, full_matrices=False)
    uy, s_y, vyt = np.linalg.svd(Yf, full_matrices=False)
    rx = int(np.sum(s_x > 1e-10 * s_x[0]))
    ry = int(np.sum(s_y > 1e-10 * s_y[0]))
    core = (s_x[:rx, None] * (ux[:, :rx].T @ uy[:, :ry])) * s_y[None, :ry]
    A, _, Bt = np.linalg.svd(core, full_matrices=False)
    held = ~fit
    mapped = (((X[held] - mx) / sx) @ vxt[:rx].T @ A @ Bt) @ vyt[:ry]
    target = (Y[held] - my) / sy
    held_labels = labels[held]
    names = np.unique(labels)
    groups_x = [(c, mapped[held_labels == c]) for c in names]
    groups_y = [(c, target[held_labels == c]) for c in names]
    for c, pts in groups_x:
        if len(pts) < 2:
            raise AnalysisError(f"manifold {c!r} by {by!r} has {len(pts)} held-out stimulus "
                                "for the Procrustes test; it needs at least 4 stimuli per label")
    bx, kx, _ = _subspaces(groups_x, n_components, variance, by)
    byy, ky, _ = _subspaces(groups_y, n_components, variance, by)
    cos, n_angles = principal_angles(bx, kx, byy, ky)
    return np.sum(cos ** 2, axis=2) / n_angles


def _agreement(gx: dict, gy: dict, procrustes: np.ndarray, n_permutations: int,
               seed: int) -> dict:
    """Observed agreement, its permutation null and p-values.

    The null permutes which manifold of y is matched with which manifold of x (shuffling y's
    manifold labels as whole manifolds) and recomputes every statistic.
    """
    P = len(gx["labels"])
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(P) for _ in range(n_permutations)])
    out = {}
    for name in ("capacity", "radius", "dimension"):
        rx, ry = _ranks(gx[name]), _ranks(gy[name])
        if np.ptp(rx) == 0 or np.ptp(ry) == 0:
            which = "x" if np.ptp(rx) == 0 else "y"
            raise AnalysisError(f"every manifold has the same {name} in system {which}: the "
                                f"rank agreement of {name} is undefined")
        observed = float(_corr_rows(rx, ry[None, :])[0])     # Spearman's rho
        out[f"rank_agreement_{name}"] = (observed, _corr_rows(rx, ry[perms]))
    iu = np.triu_indices(P, 1)
    cx, cy = gx["center_alignment"], gy["center_alignment"]
    if P < 3:
        raise AnalysisError(f"comparing center-alignment matrices needs at least 3 manifolds; "
                            f"got {P}")
    observed = float(_corr_rows(cx[iu], cy[iu][None, :])[0])
    null_c = _corr_rows(cx[iu], np.stack([cy[p][:, p][iu] for p in perms]))
    out["center_alignment_similarity"] = (observed, null_c)
    diag = np.arange(P)
    out["procrustes_alignment"] = (float(np.mean(procrustes[diag, diag])),
                                   procrustes[diag[None, :], perms].mean(axis=1))
    result = {}
    for name, (observed, null) in out.items():
        # (1 + #{null ≥ observed}) / (1 + n): never 0, exact under the null (Phipson & Smyth)
        result[name] = observed
        result[f"{name}_pvalue"] = float((1 + np.sum(null >= observed - 1e-12))
                                         / (1 + len(null)))
        result[f"{name}_null"] = null
    return result


def compare_geometry(x: xr.DataArray, y: xr.DataArray, by: str, *, n_permutations: int = 1000,
                     n_t: int = 200, n_components: int | None = None, variance: float = 0.9,
                     seed: int = 0) -> xr.Dataset:
    r"""Agreement of the geometry of the same manifolds in two systems, with a permutation null.

    ``x`` and ``y`` (e.g. a model layer and a brain region) must hold the same stimuli with the
    same ``by`` labels. For the P manifolds:

    - ``rank_agreement_<m>`` for m ∈ {capacity, radius, dimension}: Spearman's ρ between the
      per-manifold MFT α_M, R_M, D_M of the two systems (:func:`~neurogeom.manifold_capacity`,
      Chung et al. 2018), i.e. Pearson's correlation of their ranks.
    - ``center_alignment_similarity``: Pearson correlation of the off-diagonal (μ < ν) entries
      of the two center-alignment matrices cos(c_μ, c_ν) (:func:`manifold_alignment`), a
      representational-similarity comparison (Kriegeskorte et al. 2008) of the manifold
      positions.
    - ``procrustes_alignment``: half the stimuli of each label fit the orthogonal map
      R = argmin ‖X R − Y‖_F (RᵀR = I or RRᵀ = I; Schönemann 1966), each system centered and
      divided by its RMS norm; on the other half, (1/P) Σ_μ subspace_alignment(μ in X R, μ in Y),
      the mean cos² of the principal angles between the held-out manifold subspaces.

    Permutation null: the manifold labels of ``y`` are shuffled as whole manifolds (the
    correspondence μ ↔ π(μ) is permuted) and every statistic recomputed; p-value =
    (1 + #{null ≥ observed}) / (1 + n_permutations), so a one-sided test that never returns 0.
    With P manifolds there are only P! distinct permutations: p cannot go below about 1/P!.

    Every statistic is invariant to orthogonal rotations and global scalings of either system.

    Parameters
    ----------
    x, y : xarray.DataArray
        ``(presentation, neuroid)`` assemblies with ``stimulus_id`` and ``by``; repeated
        stimuli are averaged first (:func:`~neurogeom.average_repetitions`).
    by : str
        Coord defining the manifolds, the same labels per stimulus in both.
    n_permutations : int
        Size of the null.
    n_t : int
        Gaussian samples of the capacity estimates (:func:`~neurogeom.manifold_capacity`).
    n_components, variance
        Manifold subspaces of the Procrustes test (see :func:`manifold_alignment`).
    seed : int
        Seeds capacity, the Procrustes split and the permutations.

    Returns
    -------
    xarray.Dataset
        Scalars ``rank_agreement_capacity``, ``rank_agreement_radius``,
        ``rank_agreement_dimension``, ``center_alignment_similarity``, ``procrustes_alignment``,
        each with ``<name>_pvalue`` and ``<name>_null`` (permutation); per system (dim
        ``system`` = x, y, and ``manifold``) ``capacity``, ``radius``, ``dimension``;
        ``procrustes_subspace_alignment`` (manifold, manifold_other): held-out alignment of
        mapped x manifold μ with y manifold ν.

    Raises
    ------
    AlignmentError
        Different stimulus sets (ids only in one system listed, as :func:`neurogeom.align`) or
        different labels for the same stimuli (named).
    AssemblyError
        ``by`` missing in either system (coords listed).
    AnalysisError
        Fewer than 3 manifolds, too few stimuli per label, constant per-manifold measures.

    References
    ----------
    .. [1] Kuoch, Chou, Parthasarathy, Dapello, DiCarlo, Sompolinsky & Chung (2024). Probing
       biological and artificial neural networks with task-dependent neural manifolds.
       Conference on Parsimony and Learning (CPAL), PMLR 234.
    .. [2] Chung, Lee & Sompolinsky (2018). Classification and geometry of general perceptual
       manifolds. Phys. Rev. X 8, 031003.
    .. [3] Kriegeskorte, Mur & Bandettini (2008). Representational similarity analysis -
       connecting the branches of systems neuroscience. Front. Syst. Neurosci. 2, 4.
    .. [4] Schönemann (1966). A generalized solution of the orthogonal Procrustes problem.
       Psychometrika 31, 1-10.
    """
    n_permutations = check_int(n_permutations, "n_permutations", 1)
    n_t = check_int(n_t, "n_t", 1)
    seed = check_seed(seed)
    from .capacity import manifold_capacity

    x, y = _paired(x, y, by)
    gx, gy = (_system_geometry(manifold_capacity(a, by, n_t=n_t, seed=seed),
                               manifold_alignment(a, by, n_components=n_components,
                                                  variance=variance)) for a in (x, y))
    return _compare_dataset(x, y, by, gx, gy, n_permutations=n_permutations, n_t=n_t,
                            n_components=n_components, variance=variance, seed=seed)


def _compare_dataset(x, y, by, gx, gy, *, n_permutations, n_t, n_components, variance, seed):
    procrustes = _held_out_procrustes(x, y, by, n_components, variance, seed)
    agree = _agreement(gx, gy, procrustes, n_permutations, seed)
    variables = {}
    for name in AGREEMENTS:
        variables[name] = ((), agree[name])
        variables[f"{name}_pvalue"] = ((), agree[f"{name}_pvalue"])
        variables[f"{name}_null"] = ("permutation", agree[f"{name}_null"])
    for name in ("capacity", "radius", "dimension"):
        variables[name] = (("system", "manifold"), np.stack([gx[name], gy[name]]))
    variables["procrustes_subspace_alignment"] = (("manifold", "manifold_other"), procrustes)
    return build_result(
        variables,
        coords={"manifold": gx["labels"], "manifold_other": gx["labels"],
                "system": ["x", "y"], "permutation": np.arange(n_permutations)},
        analysis="compare_geometry",
        parameters={"by": str(by), "n_permutations": n_permutations, "n_t": n_t,
                    "n_components": n_components, "variance": float(variance), "seed": seed},
        inputs={"x": x, "y": y},
        references=("maa", "mft", "rsa", "procrustes"),
        details={"null": "manifold labels of y shuffled as whole manifolds",
                 "pvalue": "(1 + #{null >= observed}) / (1 + n_permutations), one-sided",
                 "procrustes_split": "half the stimuli of each label fit, the rest test"},
    )


# --------------------------------------------------------------------------------------------
# layer_profile
# --------------------------------------------------------------------------------------------

def layer_profile(features: Mapping[str, xr.DataArray], neural, by: str, *,
                  analyses: Sequence[str] | None = None, n_t: int = 200, n_splits: int = 5,
                  n_permutations: int = 1000, n_components: int | None = None,
                  variance: float = 0.9, classifier="linear_svm", seed: int = 0,
                  predictivity_options: Mapping | None = None) -> xr.Dataset:
    r"""Manifold geometry, decodability and brain agreement of every layer: the papers' figure.

    For each layer (and each brain region) the manifolds ``by`` labels are measured with:

    - ``"capacity"``: :func:`~neurogeom.manifold_capacity` → ``capacity`` (harmonic mean
      α_M over manifolds), ``radius``, ``dimension`` (means), ``center_correlation`` (ρ_c);
    - ``"alignment"``: :func:`manifold_alignment` → ``center_alignment`` (mean |cos| between
      centers), ``subspace_alignment`` (mean cos² of principal angles), ``center_axis_alignment``;
    - ``"decoding"``: :func:`decoding_accuracy` → ``decoding_accuracy``, ``chance``;
    - ``"predictivity"`` (needs ``neural``): :func:`~neurogeom.neural_predictivity` of each
      region from each layer → ``predictivity`` (layer, region), and ``ceiling`` (region) when
      the region has repetitions;
    - ``"agreement"`` (needs ``neural``): :func:`compare_geometry` of each layer with each region
      → ``rank_agreement_capacity``, ``rank_agreement_radius``, ``rank_agreement_dimension``,
      ``center_alignment_similarity``, ``procrustes_alignment`` and their ``_pvalue``
      (layer, region).

    The regions' own within-system measures are on ``region`` with the prefix ``neural_``
    (``neural_capacity``, …), the horizontal lines of the papers' figures (Kuoch et al. 2024;
    Cohen et al. 2020).

    Parameters
    ----------
    features : mapping of str to xarray.DataArray
        Layer name → ``(presentation, neuroid)`` assembly, as
        ``loaders.model_activations`` returns; the ``layer`` dim keeps the mapping's order.
    neural : xarray.DataArray, mapping of str to xarray.DataArray, or None (required; may be None)
        Brain responses on the same stimuli: one assembly (a length-1 ``region`` dim, named by
        the assembly's ``name`` or ``"neural"``), or region → assembly (one ``region`` entry
        each, in order). None: model-only profile without a ``region`` dim.
    by : str
        Coord defining the manifolds, present in every assembly.
    analyses : sequence of str, optional
        Subset of :data:`PROFILE_ANALYSES`. Default: all that apply (``"predictivity"`` and
        ``"agreement"`` only with ``neural``).
    n_t, n_splits, n_permutations, n_components, variance, classifier, seed
        Passed to the analyses above.
    predictivity_options : mapping, optional
        Keyword arguments of :func:`~neurogeom.neural_predictivity` (e.g. ``{"n_splits": 5}``).

    Returns
    -------
    xarray.Dataset
        Variables on ``layer`` (and ``region``) as listed above; stimuli are averaged over
        repetitions for the geometry (not for the predictivity, which averages itself).

    Raises
    ------
    AnalysisError
        No layers, unknown analyses, ``predictivity``/``agreement`` asked for without
        ``neural``.
    AssemblyError, AlignmentError
        From the analyses (``by`` missing, different stimuli or labels).

    References
    ----------
    .. [1] Kuoch, Chou, Parthasarathy, Dapello, DiCarlo, Sompolinsky & Chung (2024). Probing
       biological and artificial neural networks with task-dependent neural manifolds.
       Conference on Parsimony and Learning (CPAL), PMLR 234.
    .. [2] Chung, Lee & Sompolinsky (2018). Classification and geometry of general perceptual
       manifolds. Phys. Rev. X 8, 031003.
    .. [3] Cohen, Chung, Lee & Sompolinsky (2020). Separability and geometry of object manifolds
       in deep neural networks. Nat. Commun. 11, 746.
    .. [4] Hung, Kreiman, Poggio & DiCarlo (2005). Fast readout of object identity from macaque
       inferior temporal cortex. Science 310, 863-866.
    .. [5] Schrimpf, Kubilius, Hong, Majaj, Rajalingham, Issa, Kar, Bashivan, Prescott-Roy,
       Geiger, Schmidt, Yamins & DiCarlo (2018). Brain-Score: which artificial neural network
       for object recognition is most brain-like? bioRxiv 407007.
    """
    if not isinstance(features, Mapping) or not features:
        raise AnalysisError("features must be a non-empty mapping of layer name to assembly, "
                            "as loaders.model_activations returns")
    if neural is None:
        regions = None
    elif isinstance(neural, Mapping):
        if not neural:
            raise AnalysisError("neural is an empty mapping; pass region -> assembly or None")
        regions = dict(neural)
    elif isinstance(neural, xr.DataArray):
        regions = {str(neural.name) if neural.name is not None else "neural": neural}
    else:
        raise AnalysisError(f"neural must be an assembly, a mapping of region to assembly or "
                            f"None, got {type(neural).__name__}")
    possible = PROFILE_ANALYSES if regions is not None else PROFILE_ANALYSES[:3]
    if analyses is None:
        analyses = possible
    analyses = tuple(analyses)
    unknown = [n for n in analyses if n not in PROFILE_ANALYSES]
    if unknown:
        raise AnalysisError(f"unknown analyses {format_list(unknown)}; known: "
                            f"{format_list(PROFILE_ANALYSES)}")
    if regions is None and any(n in analyses for n in ("predictivity", "agreement")):
        raise AnalysisError("analyses 'predictivity' and 'agreement' need neural responses; "
                            "pass neural= or drop them from analyses")
    seed = check_seed(seed)

    def mean_points(a):
        validate(a)
        if "presentation" in a.dims and "stimulus_id" in a.coords and \
                pd.Index(np.asarray(a["stimulus_id"].values)).has_duplicates:
            return average_repetitions(a)
        return a

    def within(a) -> dict:
        from .capacity import manifold_capacity

        a = mean_points(a)
        out = {"assembly": a}
        agreement = "agreement" in analyses
        cap = manifold_capacity(a, by, n_t=n_t, seed=seed) \
            if "capacity" in analyses or agreement else None
        al = manifold_alignment(a, by, n_components=n_components, variance=variance) \
            if "alignment" in analyses or agreement else None
        if agreement:
            out["geometry"] = _system_geometry(cap, al)
        if "capacity" in analyses:
            out.update(capacity=float(cap["capacity_overall"]),
                       radius=float(cap["radius_overall"]),
                       dimension=float(cap["dimension_overall"]),
                       center_correlation=float(cap["center_correlation"]))
        if "alignment" in analyses:
            out.update(center_alignment=float(al["center_alignment_mean"]),
                       subspace_alignment=float(al["subspace_alignment_mean"]),
                       center_axis_alignment=float(al["center_axis_alignment_mean"]))
        if "decoding" in analyses:
            dec = decoding_accuracy(a, by, classifier=classifier, n_splits=n_splits, seed=seed,
                                    per_manifold=False)
            out.update(decoding_accuracy=float(dec["accuracy"]), chance=float(dec["chance"]))
        return out

    layers = list(features)
    per_layer = [within(features[name]) for name in layers]
    scalar_names = [k for k in per_layer[0] if k not in ("geometry", "assembly")]
    variables = {name: ("layer", np.array([r[name] for r in per_layer], dtype=float))
                 for name in scalar_names}
    coords = {"layer": np.asarray(layers, dtype=str)}
    inputs = {f"layer_{i}": features[name] for i, name in enumerate(layers)}
    if regions is not None:
        names = list(regions)
        coords["region"] = np.asarray(names, dtype=str)
        per_region = [within(regions[name]) for name in names]
        for name in scalar_names:
            variables[f"neural_{name}"] = ("region", np.array([r[name] for r in per_region],
                                                              dtype=float))
        inputs.update({f"region_{j}": regions[name] for j, name in enumerate(names)})
        if "predictivity" in analyses:
            from .regression import neural_predictivity

            options = dict(predictivity_options or {})
            score = np.empty((len(layers), len(names)))
            ceiling = np.full(len(names), np.nan)
            for i, lname in enumerate(layers):
                for j, rname in enumerate(names):
                    res = neural_predictivity(features[lname], regions[rname], **options)
                    score[i, j] = float(res["score"])
                    if "ceiling" in res:
                        ceiling[j] = float(res["ceiling"])
            variables["predictivity"] = (("layer", "region"), score)
            if np.isfinite(ceiling).all():
                variables["ceiling"] = ("region", ceiling)
            elif np.isfinite(ceiling).any():
                warnings.warn("layer_profile: some regions have no repetitions, so no noise "
                              "ceiling; 'ceiling' is left out", stacklevel=2)
        if "agreement" in analyses:
            shape = (len(layers), len(names))
            agree = {n: np.empty(shape) for n in AGREEMENTS}
            agree.update({f"{n}_pvalue": np.empty(shape) for n in AGREEMENTS})
            for i, lr in enumerate(per_layer):
                for j, rr in enumerate(per_region):
                    # identical stimuli and labels (checked), so the geometry of each system
                    # computed above on its own order is the geometry of the aligned pair
                    x, y = _paired(lr["assembly"], rr["assembly"], by)
                    gx, gy = lr["geometry"], rr["geometry"]
                    ds = _compare_dataset(x, y, by, gx, gy, n_permutations=n_permutations,
                                          n_t=n_t, n_components=n_components,
                                          variance=variance, seed=seed)
                    for n in agree:
                        agree[n][i, j] = float(ds[n])
            variables.update({n: (("layer", "region"), v) for n, v in agree.items()})
    return build_result(
        variables, coords=coords,
        analysis="layer_profile",
        parameters={"by": str(by), "analyses": list(analyses), "n_t": n_t, "n_splits": n_splits,
                    "n_permutations": n_permutations, "n_components": n_components,
                    "variance": float(variance), "classifier": classifier
                    if isinstance(classifier, str) else repr(classifier), "seed": seed,
                    "predictivity_options": dict(predictivity_options or {})},
        inputs=inputs,
        references=("maa", "mft", "mft_dnn", "decoding", "brainscore"),
        details={"layers": layers, "regions": list(regions) if regions is not None else "",
                 "capacity_is": "harmonic mean of per-manifold MFT capacity",
                 "alignment_is": "mean over manifold pairs (manifold_alignment)"},
    )
