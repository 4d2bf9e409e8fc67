"""Simulated (empirical) manifold capacity: random projections, exact separability, bisection.

Cover (1965); Chung et al. (PRX 2018). The data are projected to ``n`` random dimensions; for
random dichotomies of the P manifolds we test *exactly* whether every point can be put on its side
by a hyperplane with a bias (LP feasibility). ``p(n)`` is the fraction of separable dichotomies;
the projection dimension ``n*`` where ``p = 1/2`` is found by a bisection whose bracket really
moves (the public Chung-lab script evaluates three fixed ``n`` and interpolates), interpolated
between the evaluated dimensions that straddle 1/2, and ``alpha_sim = P / n*``.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.optimize
import xarray as xr

from .._params import check_seed
from .._results import build_result
from ..errors import AnalysisError, ConvergenceError
from ._inputs import check_positive_int, gather

DICHOTOMIES = ("random", "one_vs_rest", "iid")


# --------------------------------------------------------------------------------------------
# kernels (numpy)
# --------------------------------------------------------------------------------------------

def is_separable(points: np.ndarray, labels: np.ndarray) -> bool:
    """Exact test: is there (w, b) with ``labels_i * (w . x_i + b) > 0`` for every point?

    Strict separation is feasible iff the LP ``y_i (w . x_i + b) >= 1`` is (scale w, b), so this
    is an LP feasibility problem with a zero objective, solved by HiGHS. An infeasible LP is a
    certificate that no separating hyperplane exists.
    """
    m, n = points.shape
    lifted = np.hstack([points, np.ones((m, 1))])
    # Cheap certificate first: the least-squares fit of the labels, if it puts every point on
    # its side, *is* a separating hyperplane (checked exactly). Only the undecided draws (most
    # near and below n*) need the LP.
    w = np.linalg.lstsq(lifted, labels, rcond=None)[0]
    if np.min(labels * (lifted @ w)) > 1e-9 * np.linalg.norm(w) * np.abs(lifted).max():
        return True
    a_ub = -labels[:, None] * lifted
    b_ub = -np.ones(m)
    for method in ("highs-ds", "highs-ipm"):
        res = scipy.optimize.linprog(np.zeros(n + 1), A_ub=a_ub, b_ub=b_ub,
                                     bounds=(None, None), method=method)
        if res.status == 0:
            return True
        if res.status == 2:
            return False
    raise ConvergenceError(f"the separability LP ({m} points, {n} dims) did not solve: "
                           f"HiGHS status {res.status}: {res.message}")


def draw_dichotomy(rng: np.random.Generator, n_manifolds: int, kind: str, index: int) -> np.ndarray:
    """Labels ±1 for the manifolds: balanced random, one-vs-rest (cycling), or i.i.d. signs.

    ``"iid"`` draws independent fair signs and redraws the two constant labelings (which a bias
    separates trivially), so p(n) for points is Cover's (C(P, n+1) - 2) / (2^P - 2).
    """
    if kind == "iid":
        while True:
            y = rng.choice([-1.0, 1.0], size=n_manifolds)
            if abs(y.sum()) < n_manifolds:
                return y
    if kind == "random":
        y = -np.ones(n_manifolds)
        y[rng.permutation(n_manifolds)[: n_manifolds // 2]] = 1.0
        if n_manifolds % 2 and rng.random() < 0.5:
            y = -y     # odd P: the extra manifold is on either side with equal chance
        return y
    y = -np.ones(n_manifolds)
    y[index % n_manifolds] = 1.0
    return y


def separable_fraction(coords: np.ndarray, owner: np.ndarray, n_dims: int, n_dichotomies: int,
                       rng: np.random.Generator, dichotomy: str = "random",
                       n_features: int | None = None) -> int:
    """How many of ``n_dichotomies`` random (projection, dichotomy) draws are separable.

    Each draw projects the points to ``n_dims`` dimensions with a fresh Gaussian matrix whose
    columns are normalized in the ambient space of ``n_features`` dimensions. ``coords`` are the
    points in an orthonormal basis of their span (rank r), so only the r-dim part of each column
    matters: it is ``N(0, I_r)``, and the column norm adds an independent chi-square with
    ``N - r`` degrees of freedom. (Normalizing columns is a diagonal rescaling of the projected
    features and cannot change separability; it is kept for fidelity to the method.)
    """
    m, rank = coords.shape
    n_features = rank if n_features is None else n_features
    n_manifolds = int(owner.max()) + 1
    count = 0
    for k in range(n_dichotomies):
        w = rng.standard_normal((rank, n_dims))
        norms = np.sum(w ** 2, axis=0)
        if n_features > rank:
            norms = norms + rng.chisquare(n_features - rank, size=n_dims)
        projected = coords @ (w / np.sqrt(norms))
        y = draw_dichotomy(rng, n_manifolds, dichotomy, k)[owner]
        count += is_separable(projected, y)
    return count


def _isotonic(p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted nondecreasing (pool-adjacent-violators) fit to ``p`` (sorted by n)."""
    return scipy.optimize.isotonic_regression(p, weights=weights, increasing=True).x


def interpolate_half(n: np.ndarray, p: np.ndarray, weights: np.ndarray) -> float:
    """The dimension where the (isotonic) p(n) curve crosses 1/2, by linear interpolation.

    ``n`` must be sorted and include a point with p < 1/2 (n = 0 is one: with no feature only
    the bias is left, which separates no dichotomy with both labels) and one with p >= 1/2.
    """
    q = _isotonic(p, weights)
    above = np.flatnonzero(q >= 0.5)
    j = int(above[0])
    if j == 0:
        return float(n[0])
    below = np.flatnonzero(q[:j] < 0.5)
    i = int(below[-1])
    n0, n1, q0, q1 = n[i], n[j], q[i], q[j]
    return float(n0 + (0.5 - q0) * (n1 - n0) / (q1 - q0))


# --------------------------------------------------------------------------------------------
# public function
# --------------------------------------------------------------------------------------------

def simulated_capacity(a, by: str, *, n_dichotomies: int = 100, precision: float = 0.05,
                       dichotomy: str = "random", seed: int = 0, n_bootstrap: int = 1000,
                       ci_level: float = 0.95, max_steps: int = 40) -> xr.Dataset:
    """Empirical capacity ``alpha_sim = P / n*`` by random projection and exact separability.

    For a projection dimension ``n``, ``p(n)`` is the fraction of ``n_dichotomies`` draws — a
    fresh Gaussian projection (normalized columns) and a fresh dichotomy each — for which all
    points of all manifolds are linearly separable with a bias (exact LP feasibility test,
    ``scipy.optimize.linprog`` with HiGHS). The data are centered on the global mean first.

    ``n*`` (where p = 1/2) is bracketed by ``[0, r]``: p(0) = 0 because a bias alone separates no
    dichotomy with both labels, and ``r`` (the rank of the centered data) is the most that a
    projection can use, so p(r) is the full-space separability. Bisection evaluates the middle
    of the bracket and moves the end on the same side of 1/2 until the bracket is one dimension
    wide; more dichotomies are then drawn at its two ends until the standard error of each p
    is at most ``precision``. ``n*`` is interpolated linearly between the evaluated dimensions
    nearest to 1/2 on either side, after a weighted isotonic (monotone) fit of all evaluated
    p(n).

    The confidence interval is a parametric bootstrap over the dichotomies: the separable
    counts at every evaluated ``n`` are redrawn from Binomial(K, (k + 1/2)/(K + 1)) (the
    Jeffreys-smoothed estimate, so evaluated points with p = 0 or 1 still carry uncertainty),
    ``n*`` is re-interpolated, and the percentile interval of ``P / n*`` is reported.

    Parameters
    ----------
    a : xarray.DataArray
        ``(presentation, neuroid)`` or ``(time, neuroid)`` assembly.
    by : str
        Coord naming the manifolds (single points are allowed: M = 1 gives Cover's problem).
    n_dichotomies : int
        Draws (projection + dichotomy) per evaluated dimension.
    precision : float
        Target binomial standard error of p at the two dimensions bracketing n* (draws are
        added there until ``sqrt(p (1 - p) / K) <= precision``; near p = 1/2 that needs
        ``K >= 0.25 / precision**2``, i.e. 100 for the default 0.05).
    dichotomy : {"random", "one_vs_rest", "iid"}
        ``"random"``: balanced random labels (P//2 positive manifolds; odd P: the odd one on a
        random side). ``"one_vs_rest"``: one manifold positive, cycling through the manifolds.
        ``"iid"``: independent fair signs per manifold, excluding the two constant labelings
        (the dichotomies of Cover's counting theorem).
    seed : int
        Seed of every random draw.
    n_bootstrap : int
        Bootstrap replicates for the confidence interval.
    ci_level : float
        Confidence level of the interval.
    max_steps : int
        Safety bound on bisection steps (log2(r) + 1 always suffice).

    Returns
    -------
    xarray.Dataset
        ``capacity_overall`` (alpha_sim), ``capacity_overall_ci_low``/``_ci_high``, ``n_star`` and its
        interval; on dim ``manifold``: ``n_points``; on dim ``projection_dim`` (the evaluated
        dimensions, sorted): ``p_separable``, ``n_separable``, ``n_tested``,
        ``evaluation_order``. Attrs: ``analysis``, every parameter, the method choices, the
        input's provenance, ``neurogeom_version`` and ``references`` (see
        :mod:`neurogeom._results`).

    Raises
    ------
    AnalysisError
        Unknown ``by``, fewer than two manifolds, NaN/inf values, bad parameters, or manifolds
        that are not separable for half the dichotomies even in the full space (for example
        identical manifolds): the capacity is then below ``P / rank`` and cannot be measured by
        projection.

    Examples
    --------
    >>> import loaders
    >>> a = loaders.synthetic.object_manifolds(n_objects=6, n_images=5, n_repetitions=1)
    >>> ds = simulated_capacity(a, by="object_name", n_dichotomies=20)
    >>> float(ds.capacity_overall) > 0
    True

    References
    ----------
    .. [1] Cover (1965). Geometrical and statistical properties of systems of linear
       inequalities with applications in pattern recognition. IEEE Trans. Electron. Comput.
       EC-14, 326-334.
    .. [2] Chung, Lee & Sompolinsky (2018). Classification and geometry of general perceptual
       manifolds. Phys. Rev. X 8, 031003.
    .. [3] Cohen, Chung, Lee & Sompolinsky (2020). Separability and geometry of object
       manifolds in deep neural networks. Nat. Commun. 11, 746.
    """
    if dichotomy not in DICHOTOMIES:
        raise AnalysisError(f"dichotomy must be one of {DICHOTOMIES}, got {dichotomy!r}")
    n_dichotomies = check_positive_int("n_dichotomies", n_dichotomies)
    n_bootstrap = check_positive_int("n_bootstrap", n_bootstrap)
    seed = check_seed(seed)
    if not 0 < precision < 0.5:
        raise AnalysisError(f"precision must lie in (0, 0.5), got {precision}")
    if not 0 < ci_level < 1:
        raise AnalysisError(f"ci_level must lie in (0, 1), got {ci_level}")
    data = gather(a, by, center=True)
    # separability is scale invariant; unit RMS keeps HiGHS's absolute tolerances meaningful
    coords = data.coords / np.sqrt(np.mean(np.sum(data.coords ** 2, axis=1)))
    owner = data.owner
    n_manifolds, rank = data.n_manifolds, data.rank
    rng = np.random.default_rng(seed)

    counts: dict[int, list[int]] = {}         # n -> [separable, tested]
    order: list[int] = []

    def evaluate(n: int, draws: int) -> float:
        k = separable_fraction(coords, owner, n, draws, rng, dichotomy, data.n_features)
        if n not in counts:
            counts[n] = [0, 0]
            order.append(n)
        counts[n][0] += k
        counts[n][1] += draws
        return counts[n][0] / counts[n][1]

    lo, hi = 0, rank
    p_hi = evaluate(hi, n_dichotomies)
    if p_hi < 0.5:
        raise AnalysisError(
            f"the {n_manifolds} manifolds by {by!r} are separable for only {p_hi:.0%} of "
            f"{n_dichotomies} {dichotomy} dichotomies even with all {rank} dimensions of their "
            "span: p(n) never reaches 1/2, so the capacity is below P/rank = "
            f"{n_manifolds / rank:.3g} and cannot be found by projection (overlapping or "
            "identical manifolds?)")
    steps = 0
    # Bisection: the bracket [lo, hi] always has p(lo) < 1/2 <= p(hi) as measured, and one end
    # moves every step, so it shrinks to one dimension in ceil(log2(rank)) steps.
    while hi - lo > 1:
        if steps >= max_steps:
            raise ConvergenceError(f"bisection did not converge in {max_steps} steps "
                                   f"(bracket [{lo}, {hi}])")
        mid = (lo + hi) // 2
        if evaluate(mid, n_dichotomies) < 0.5:
            lo = mid
        else:
            hi = mid
        steps += 1
    # Precision: top up the draws at the two bracketing dimensions until the binomial standard
    # error of each p is at most `precision` (the estimate of p there is what sets n*).
    for n in (lo, hi):
        if n == 0:
            continue
        k, tested = counts[n]
        p = min(max(k / tested, 0.5 / tested), 1 - 0.5 / tested)
        need = int(np.ceil(p * (1 - p) / precision ** 2))
        if need > tested:
            evaluate(n, need - tested)

    n_eval = np.array(sorted(counts))
    k_eval = np.array([counts[n][0] for n in n_eval])
    tested = np.array([counts[n][1] for n in n_eval])
    # n = 0 is known exactly (p = 0) and anchors the interpolation from below.
    n_fit = np.concatenate([[0], n_eval]) if n_eval[0] != 0 else n_eval
    k_fit = np.concatenate([[0], k_eval]) if n_eval[0] != 0 else k_eval
    t_fit = np.concatenate([[n_dichotomies], tested]) if n_eval[0] != 0 else tested
    exact = np.zeros(len(n_fit), bool)
    exact[0] = n_fit[0] == 0
    n_star = interpolate_half(n_fit, k_fit / t_fit, t_fit)

    boot = np.empty(n_bootstrap)
    smoothed = (k_fit + 0.5) / (t_fit + 1.0)
    for b in range(n_bootstrap):
        kb = rng.binomial(t_fit, smoothed)
        kb[exact] = k_fit[exact]
        pb = kb / t_fit
        if not np.any(_isotonic(pb, t_fit) >= 0.5):
            boot[b] = n_fit[-1]
            continue
        boot[b] = interpolate_half(n_fit, pb, t_fit)
    tail = 100 * (1 - ci_level) / 2
    n_lo, n_hi = np.percentile(boot, [tail, 100 - tail])
    if n_star <= 0 or n_lo <= 0:
        warnings.warn("n* is below one dimension: the capacity is above P and poorly resolved",
                      stacklevel=2)
    n_lo = max(n_lo, 1e-12)

    ds = build_result(
        {
            "capacity_overall": ((), n_manifolds / n_star),
            "capacity_overall_ci_low": ((), n_manifolds / n_hi),
            "capacity_overall_ci_high": ((), n_manifolds / n_lo),
            "n_star": ((), n_star),
            "n_star_ci_low": ((), float(n_lo)),
            "n_star_ci_high": ((), float(n_hi)),
            "n_points": ("manifold", data.n_points),
            "p_separable": ("projection_dim", k_eval / tested),
            "n_separable": ("projection_dim", k_eval),
            "n_tested": ("projection_dim", tested),
            "evaluation_order": ("projection_dim", [order.index(n) for n in n_eval]),
            "bracket_low": ((), lo), "bracket_high": ((), hi),
        },
        coords={"manifold": np.asarray(data.labels), "projection_dim": n_eval},
        analysis="simulated_capacity",
        parameters={
            "by": by, "n_dichotomies": n_dichotomies, "precision": precision,
            "dichotomy": dichotomy, "seed": seed, "n_bootstrap": n_bootstrap,
            "ci_level": ci_level, "max_steps": max_steps,
        },
        inputs={"input": a},
        references=("cover", "mft", "mft_dnn"),
        details={
            "method": "simulated capacity (random projection, exact separability, bisection)",
            "bisection_steps": steps,
            "n_manifolds": n_manifolds, "n_features": data.n_features, "rank": rank,
            "centering": "global mean subtracted",
            "projection": "Gaussian N x n matrix with unit-norm columns, fresh per draw",
            "separability_test": "LP feasibility y_i (w.x_i + b) >= 1 with bias, "
                                 "scipy.optimize.linprog (HiGHS); exact",
            "n_star_estimate": "linear interpolation at p = 1/2 between the evaluated dims "
                               "straddling 1/2, after a weighted isotonic fit; p(0) = 0 exact",
            "ci_method": "parametric bootstrap of the separable counts at every evaluated dim, "
                         "Binomial(K, (k+1/2)/(K+1)), percentile interval of P/n*",
        })
    ds["capacity_overall"].attrs["long_name"] = "simulated capacity alpha_sim = P / n*"
    ds["n_star"].attrs["long_name"] = "projection dimension where p(separable) = 1/2"
    return ds
