"""Spectral theory of neural prediction: which eigenmodes of a model carry its prediction error.

Canatar, Feather, Wakhloo & Chung (NeurIPS 2023). With model activations X
(P stimuli × N features) and neural responses Y (P × C), both centered across stimuli:

* ``K = X X^T / P = sum_i lambda_i u_i u_i^T`` (descending); the trace-normalized spectrum
  ``lambda_i / sum lambda`` is what the theory uses, so ``ridge`` is in those units.
* Alignment ``w_ij = sqrt(P) u_i^T y_j / P`` and ``W_i = sum_j w_ij^2`` (``sum_i W_i =
  ||Y||_F^2 / P``). Modes with ``lambda_i = 0`` (outside the span of X, including the constant
  direction removed by centering) cannot be learned by any linear readout.
* For ridge ``lambda_r`` and ``p`` training stimuli, ``kappa`` solves
  ``kappa = p lambda_r + kappa sum_i lambda_i / (p lambda_i + kappa)``;
  ``gamma = sum_i p lambda_i^2 / (p lambda_i + kappa)^2``;
  ``E_i(p) = kappa^2 / ((1 - gamma) (p lambda_i + kappa)^2)``;
  ``E_g(p) = sum_i E_i W_i / sum_i W_i``.
* Error-mode geometry with ``W`` normalized to sum 1: ``W~_i = E_i W_i``,
  ``R_em = ||W~||_2``, ``D_em = (sum W~)^2 / sum W~^2``, so ``E_g = R_em sqrt(D_em)``.
* Empirical check: kernel ridge regression (the same linear readout) on random subsets of p
  stimuli, ``y_hat = K_Pp (K_pp + p lambda_r I)^-1 y_p`` with the normalized kernel, error
  measured on all P stimuli and divided by the total variance.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from .._backend import get_namespace
from .._params import unit_scale
from .._results import build_result
from ..assembly import average_repetitions as _average_repetitions
from ..errors import AnalysisError, ConvergenceError
from .ceiling import check_responses, drop_constant_neuroids
from .predictivity import check_source, has_repeats, match_stimuli


# --------------------------------------------------------------------------------------------
# theory
# --------------------------------------------------------------------------------------------

def solve_kappa(eigenvalues, p, ridge: float, *, tol: float = 1e-12, max_iter: int = 200):
    """Solve ``kappa = p ridge + kappa sum_i lambda_i / (p lambda_i + kappa)`` for kappa > 0.

    Written as ``g(kappa) = 1 - sum_i lambda_i/(p lambda_i + kappa) - p ridge / kappa = 0``,
    which is strictly increasing in kappa, with the root bracketed by
    ``[p ridge, p ridge + sum lambda]`` (from ``kappa (1 - S) = p ridge`` and ``kappa S <=
    sum lambda``). Newton steps in ``log kappa`` are taken when they stay inside the bracket,
    bisection otherwise; convergence when the bracket's relative width or ``|g|`` is below
    ``tol``.

    Parameters
    ----------
    eigenvalues : array (modes,)
        Non-negative spectrum.
    p : array-like of int
        Training set sizes.
    ridge : float
        ``lambda_r`` > 0 (the ridgeless limit is ``ridge -> 0+``).

    Returns
    -------
    ndarray (len(p),)
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    lam = lam[lam > 0]
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))
    if ridge <= 0:
        raise AnalysisError(f"ridge must be > 0 (use a tiny value for the ridgeless limit), "
                            f"got {ridge}")
    lo = np.log(p * ridge)
    hi = np.log(p * ridge + lam.sum())
    s = 0.5 * (lo + hi)
    for _ in range(max_iter):
        kappa = np.exp(s)
        denom = p[:, None] * lam[None, :] + kappa[:, None]
        g = 1.0 - (lam[None, :] / denom).sum(1) - p * ridge / kappa
        # d g / d log kappa = kappa * (sum lambda/(p lambda+kappa)^2 + p ridge / kappa^2) > 0
        slope = kappa * (lam[None, :] / denom ** 2).sum(1) + p * ridge / kappa
        lo = np.where(g < 0, s, lo)
        hi = np.where(g > 0, s, hi)
        done = (np.abs(g) < tol) | (hi - lo < tol)
        if done.all():
            return np.exp(s)
        newton = s - g / slope
        inside = (newton > lo) & (newton < hi)
        s = np.where(done, s, np.where(inside, newton, 0.5 * (lo + hi)))
    raise ConvergenceError(f"kappa self-consistency did not converge in {max_iter} iterations "
                           f"for p = {p[~done].tolist()}")


def theory_errors(eigenvalues, p, ridge: float):
    """Per-mode errors ``E_i(p)`` (len(p) × modes), ``kappa`` and ``gamma`` (NeurIPS 2023)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))
    kappa = solve_kappa(lam, p, ridge)
    denom = p[:, None] * lam[None, :] + kappa[:, None]
    gamma = (p[:, None] * lam[None, :] ** 2 / denom ** 2).sum(1)
    mode_error = kappa[:, None] ** 2 / ((1.0 - gamma)[:, None] * denom ** 2)
    return mode_error, kappa, gamma


def error_mode_geometry(mode_error, weights):
    """``R_em``, ``D_em`` per p from per-mode errors and alignment weights (normalized)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    wt = mode_error * w[None, :]
    radius = np.sqrt((wt ** 2).sum(1))
    dimension = wt.sum(1) ** 2 / (wt ** 2).sum(1)
    return radius, dimension


# --------------------------------------------------------------------------------------------
# the analysis
# --------------------------------------------------------------------------------------------

def default_sizes(n_stimuli: int, n: int = 12) -> np.ndarray:
    """Training sizes from 2 to half the stimuli, log-spaced (the theory assumes p << P)."""
    top = max(2, n_stimuli // 2)
    return np.unique(np.round(np.geomspace(2, top, n)).astype(int))


def spectral_decomposition(source: xr.DataArray, target: xr.DataArray, *, p=None,
                           ridge: float = 1e-14, n_trials: int = 5, center: bool = True,
                           seed: int = 0, span_tol: float | None = None, backend=None,
                           device=None, average_repetitions: bool = True) -> xr.Dataset:
    """Eigenspectrum of a model, alignment of neural responses to it, and E_g(p) in theory and
    practice.

    Parameters
    ----------
    source : xarray.DataArray
        Model activations ``(presentation, neuroid)``, covering every target stimulus.
    target : xarray.DataArray
        Neural responses ``(presentation, neuroid)``; repetitions are averaged first.
    p : sequence of int, optional
        Training set sizes (default: :func:`default_sizes`, 2 … P/2). Each must be in [1, P].
    ridge : float
        ``lambda_r`` in units of the trace-normalized spectrum (1e-14: near-ridgeless).
    n_trials : int
        Random training subsets per p for the empirical E_g.
    center : bool
        Center X and Y across stimuli (the theory's setting); False keeps the raw data.
    seed : int
        Seed of the random training subsets.
    span_tol : float, optional
        Eigenvalues below ``span_tol * lambda_max`` count as outside the span of X (default
        ``P * eps``, the round-off level of the eigendecomposition).
    backend, device
        Array backend and device of the P × P eigendecomposition and the fits
        (:mod:`neurogeom._backend`: default numpy on the CPU; ``backend="torch"`` for torch on
        the CPU, ``device="cuda:0"`` alone for torch on that GPU).
    average_repetitions : bool
        Average repeated presentations of the target first (default, as in
        :func:`neurogeom.neural_predictivity`). Without it, repeated target stimulus_ids are an
        error. A source with repeated stimulus_ids is always averaged.

    Returns
    -------
    xarray.Dataset
        ``eigenvalue`` (mode, trace-normalized), ``eigenvalue_raw``, ``in_span`` (mode),
        ``alignment`` W_i (mode), ``alignment_per_neuroid`` w_ij² (mode, neuroid),
        ``power_outside_span`` (fraction of ||Y||²) and its ``_per_neuroid``,
        ``theory_error`` E_g(p), ``theory_mode_error`` E_i(p) (p, mode),
        ``theory_error_per_neuroid`` (p, neuroid), ``kappa``, ``gamma``,
        ``empirical_error`` (p; mean over trials), ``empirical_error_trials`` (p, trial),
        ``empirical_error_sem`` (p), ``empirical_error_per_neuroid`` (p, neuroid),
        ``error_mode_radius`` R_em and ``error_mode_dimension`` D_em (p). Attrs:
        ``analysis``, every parameter, the provenance of both inputs (``source_*``,
        ``target_*``), ``neurogeom_version`` and ``references`` (see
        :mod:`neurogeom._results`).

    Raises
    ------
    AnalysisError
        Bad sizes, ridge, n_trials, a source without variance, or a target without variance.
    AlignmentError
        Target stimuli missing from the source.

    References
    ----------
    .. [1] Canatar, Feather, Wakhloo & Chung (2023). A spectral theory of neural prediction and
       alignment. Advances in Neural Information Processing Systems 36 (NeurIPS 2023).
    """
    xp = get_namespace(backend, device, "float64")   # bad options fail before any work
    inputs = {"source": source, "target": target}   # provenance of the data as given
    source = check_source(source)
    target = check_responses(target)
    target, excluded = drop_constant_neuroids(target, "spectral_decomposition")
    if n_trials < 1:
        raise AnalysisError(f"n_trials must be >= 1, got {n_trials}")
    if not ridge > 0:
        raise AnalysisError(f"ridge must be > 0, got {ridge}")
    if has_repeats(target):
        if not average_repetitions:
            raise AnalysisError("the target repeats stimulus_id values; pass "
                                "average_repetitions=True or average them first")
        target = _average_repetitions(target)
    if has_repeats(source):
        source = _average_repetitions(source)
    target, source = match_stimuli(source, target)
    n_stim = target.sizes["presentation"]
    sizes = default_sizes(n_stim) if p is None else np.atleast_1d(np.asarray(p))
    if sizes.dtype.kind not in "iu" and not np.all(sizes == np.round(sizes)):
        raise AnalysisError(f"p must be integers, got {sizes.tolist()}")
    sizes = sizes.astype(int)
    if (sizes < 1).any() or (sizes > n_stim).any():
        raise AnalysisError(f"p must lie in [1, {n_stim}] (the number of stimuli), "
                            f"got {sizes.tolist()}")

    # E_g, the normalized eigenvalues and the error modes do not depend on the overall scale of
    # X or Y: data far from unit scale are divided by a power of two (exact; data within
    # 2**±200 are left as they are, bit for bit) so the Gram matrix and the squared errors
    # neither overflow nor underflow. Raw eigenvalues and alignment weights are reported back
    # in the data's units.
    X, x_exponent = unit_scale(np.asarray(source.values, dtype=np.float64), keep_within=200)
    Y, y_exponent = unit_scale(np.asarray(target.values, dtype=np.float64), keep_within=200)
    X = xp.asarray(X)
    if center:
        X = X - X.mean(0)[None, :]
        Y = Y - Y.mean(0)[None, :]
    total = (Y ** 2).sum(0)
    if not (total > 0).any():
        raise AnalysisError("the target has no variance across stimuli")
    K = xp.matmul_self_t(X) / n_stim                     # P × P, eigenvalues lambda_i
    del X
    lam_raw, U = xp.eigh_descending(K)
    lam_raw = xp.to_numpy(lam_raw).copy()
    trace = lam_raw.clip(min=0).sum()
    if trace <= 0:
        raise AnalysisError("the source has no variance across stimuli")
    tol = span_tol if span_tol is not None else n_stim * np.finfo(np.float64).eps
    in_span = lam_raw > tol * lam_raw[0]
    lam = np.where(in_span, lam_raw / trace, 0.0)
    Yb = xp.asarray(Y)
    w = xp.to_numpy(U.T @ Yb) / np.sqrt(n_stim)           # w_ij = sqrt(P) u_i.y_j / P
    w2 = w ** 2
    weights = w2.sum(1)
    outside = w2[~in_span].sum(0)

    mode_error, kappa, gamma = theory_errors(lam, sizes, ridge)
    theory = mode_error @ weights / weights.sum()
    theory_neuroid = mode_error @ w2 / w2.sum(0)[None, :]
    radius, dimension = error_mode_geometry(mode_error, weights)

    # Empirical E_g: kernel ridge on the normalized kernel, error on all P stimuli.
    Kn = K * (n_stim / trace)                              # = X X^T / trace: operator eigs lam
    rng = np.random.default_rng(seed)
    trials = np.empty((len(sizes), n_trials))
    per_neuroid = np.zeros((len(sizes), Y.shape[1]))
    for a, size in enumerate(sizes):
        for t in range(n_trials):
            idx = np.sort(rng.choice(n_stim, size=size, replace=False))
            ib = xp.asarray(idx, dtype="int")
            coef = xp.solve_shifted_psd(Kn[ib][:, ib], Yb[ib], size * ridge)
            resid = xp.to_numpy(Kn[:, ib] @ coef - Yb)
            sq = (resid ** 2).sum(0)
            trials[a, t] = sq.sum() / total.sum()
            per_neuroid[a] += sq / np.where(total > 0, total, 1.0) / n_trials

    with np.errstate(over="ignore", under="ignore"):   # units beyond the float range: inf, 0
        lam_units = np.ldexp(lam_raw, 2 * x_exponent)
        weights_units, w2_units = np.ldexp(weights, 2 * y_exponent), np.ldexp(w2, 2 * y_exponent)
    if not (np.isfinite(lam_units).all() and np.isfinite(w2_units).all()):
        warnings.warn("spectral_decomposition: eigenvalue_raw or the alignment weights exceed "
                      "the float64 range in the data's squared units and are reported as inf; "
                      "the normalized eigenvalues, error modes and E_g are exact",
                      stacklevel=2)
    modes = np.arange(n_stim)
    neuroid_coords = {name: ("neuroid", np.asarray(c.values)) for name, c in target.coords.items()
                      if c.dims == ("neuroid",)}
    return build_result(
        {"eigenvalue": ("mode", lam), "eigenvalue_raw": ("mode", lam_units),
         "in_span": ("mode", in_span.astype(np.int8)),
         "alignment": ("mode", weights_units),
         "alignment_per_neuroid": (("mode", "neuroid"), w2_units),
         "power_outside_span": ((), float(outside.sum() / weights.sum())),
         "power_outside_span_per_neuroid": ("neuroid", outside / np.where(total > 0, w2.sum(0), 1)),
         "theory_error": ("p", theory),
         "theory_mode_error": (("p", "mode"), mode_error),
         "theory_error_per_neuroid": (("p", "neuroid"), theory_neuroid),
         "kappa": ("p", kappa), "gamma": ("p", gamma),
         "empirical_error": ("p", trials.mean(1)),
         "empirical_error_trials": (("p", "trial"), trials),
         "empirical_error_sem": ("p", trials.std(1, ddof=1) / np.sqrt(n_trials)
                                 if n_trials > 1 else np.zeros(len(sizes))),
         "empirical_error_per_neuroid": (("p", "neuroid"), per_neuroid),
         "error_mode_radius": ("p", radius), "error_mode_dimension": ("p", dimension)},
        coords={"p": sizes, "mode": modes, "trial": np.arange(n_trials), **neuroid_coords},
        analysis="spectral_decomposition",
        parameters={"p": sizes.tolist(), "ridge": float(ridge), "n_trials": int(n_trials),
                    "center": bool(center), "seed": int(seed), "span_tol": float(tol),
                    "backend": xp.name, "device": str(xp.device),
                    "average_repetitions": bool(average_repetitions)},
        inputs=inputs,
        references=("spectral",),
        details={"ridge_units": "trace-normalized eigenvalues "
                 "(objective: mean squared error + ridge * ||w||^2)",
                 "n_stimuli": int(n_stim),
                 "n_features": int(source.sizes["neuroid"]), "rank": int(in_span.sum()),
                 "empirical_error_definition": "sum over neuroids and all P stimuli of squared "
                 "error / total sum of squares, kernel ridge on random subsets of p stimuli",
                 "n_excluded_constant_neuroids": len(excluded),
                 "excluded_constant_neuroids": [str(i) for i in excluded]})
