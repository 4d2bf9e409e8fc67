"""Eigenspectra of population activity: cross-validated PCA, power laws, participation ratio, SVCA.

Methods follow Stringer, Pachitariu, Steinmetz, Carandini & Harris (Nature 2019) for cvPCA and the
power-law fit, and Stringer et al. (Science 2019) for shared variance component analysis; see the
References of :func:`cvpca` and :func:`svca`. Kernels are plain numpy functions
(``cvpca_spectrum``, ``svca_spectrum``); ``cvpca`` and ``svca`` wrap them for assemblies and return
labeled ``xarray.Dataset`` results.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .._backend import get_namespace
from .._results import build_result
from ..assembly import align, repetition_index, validate
from ..errors import AnalysisError, format_list

__all__ = ["cvpca", "cvpca_spectrum", "power_law_exponent", "participation_ratio", "svca",
           "svca_spectrum"]


# --------------------------------------------------------------------------------------------
# cvPCA
# --------------------------------------------------------------------------------------------

def cvpca_spectrum(r1, r2, n_shuffles: int = 5, seed: int = 0, *, backend=None,
                   device=None) -> np.ndarray:
    """Cross-validated PCA spectrum of two repeats (array kernel).

    Parameters
    ----------
    r1, r2 : array_like, shape (n_stimuli, n_neurons)
        Responses to the same stimuli (same row order) on two repeats.
    n_shuffles : int
        Number of estimates averaged. Shuffle 0 uses the repeats as given; each further shuffle
        swaps the two repeats of every stimulus with probability 1/2 (seeded).
    seed : int
        Seed of the swaps.
    backend, device
        Array backend and device of the Gram products and eigendecompositions
        (:mod:`neurogeom._backend`; default numpy on the CPU).

    Returns
    -------
    ndarray, shape (n_shuffles, n_modes)
        Cross-validated variance ``ss_k = (R1 v_k) . (R2 v_k)`` of each PC ``v_k`` of R1 (each
        neuron centered across stimuli), ``n_modes = min(n_stimuli - 1, n_neurons)``.

    Notes
    -----
    When stimuli are fewer than neurons, every shuffle is computed from one Gram matrix of the
    stacked repeats ``S = [R1; R2]`` (``G = S S^T``): a swap only selects rows and columns of
    ``G``. With ``R1 = s_k u_k v_k^T`` summed, ``R1 v_k = s_k u_k`` and
    ``R2 v_k = R2 R1^T u_k / s_k``, so ``ss_k = u_k^T (R2 R1^T) u_k`` with ``u_k`` the
    eigenvectors of ``R1 R1^T`` — no neuron-space decomposition is needed.
    """
    r1 = np.asarray(r1, dtype=np.float64)
    r2 = np.asarray(r2, dtype=np.float64)
    if r1.ndim != 2 or r1.shape != r2.shape:
        raise AnalysisError(f"cvPCA needs two (stimuli, neurons) arrays of the same shape, got "
                            f"{r1.shape} and {r2.shape}")
    n_stim, n_neur = r1.shape
    if n_stim < 3:
        raise AnalysisError(f"cvPCA needs at least 3 stimuli shared by both repeats, got {n_stim}")
    if n_shuffles < 1:
        raise AnalysisError(f"n_shuffles must be >= 1, got {n_shuffles}")
    if not (np.isfinite(r1).all() and np.isfinite(r2).all()):
        raise AnalysisError("cvPCA input contains NaN or infinite values")
    xp = get_namespace(backend, device)
    rng = np.random.default_rng(seed)
    n_modes = min(n_stim - 1, n_neur)
    swaps = [np.zeros(n_stim, bool)] + [rng.random(n_stim) < 0.5 for _ in range(n_shuffles - 1)]
    out = np.empty((n_shuffles, n_modes))
    if n_stim <= n_neur:
        stacked = xp.asarray(np.concatenate([r1, r2]))
        gram = stacked @ stacked.T
        rows = np.arange(n_stim)
        for s, swap in enumerate(swaps):
            first = xp.asarray(np.where(swap, rows + n_stim, rows), dtype="int")
            second = xp.asarray(np.where(swap, rows, rows + n_stim), dtype="int")
            a11 = _double_center(xp.take2d(gram, first, first))
            c21 = _double_center(xp.take2d(gram, second, first))
            evals, evecs = xp.eigh(a11)
            u = xp.flip(evecs, 1)[:, :n_modes]
            out[s] = xp.to_numpy((u * (c21 @ u)).sum(0))   # diag(Uᵀ C U) through one gemm
    else:
        r1b, r2b = xp.asarray(r1), xp.asarray(r2)
        for s, swap in enumerate(swaps):
            mask = xp.asarray(swap[:, None], dtype="bool")
            a = xp.where(mask, r2b, r1b)
            b = xp.where(mask, r1b, r2b)
            a = a - a.mean(0)[None, :]
            b = b - b.mean(0)[None, :]
            # PCs of R1 from its neuron covariance (eigh of a Gram matrix is much cheaper than
            # an SVD of the data); ss_k = v_k^T (R1^T R2) v_k
            _, evecs = xp.eigh(a.T @ a)
            v = xp.flip(evecs, 1)[:, :n_modes]
            out[s] = xp.to_numpy((v * ((a.T @ b) @ v)).sum(0))
    return out


def _double_center(g):
    """H g H with H = I - 11^T/n: the Gram matrix of column-centered data (numpy or torch)."""
    g = g - g.mean(0)[None, :]
    return g - g.mean(1)[:, None]


def _two_repeats(a: xr.DataArray, repeats, what: str):
    """Split a stimulus assembly into two aligned (stimuli, neurons) arrays, one per repeat."""
    validate(a)
    if "presentation" not in a.dims or "time_bin" in a.dims:
        raise AnalysisError(f"{what} needs a (presentation, neuroid) assembly with repeated "
                            f"stimuli; got dims {a.dims}")
    rep = repetition_index(a)
    available = sorted(pd.unique(rep).tolist())
    if len(available) < 2:
        raise AnalysisError(
            f"{what} needs at least 2 repeats of each stimulus; the assembly has "
            f"{len(available)} repetition value(s) {format_list(available)} (coord 'repetition' "
            "or repeated 'stimulus_id')")
    if repeats is None:
        repeats = available[:2]
    missing = [r for r in repeats if r not in available]
    if len(repeats) != 2 or missing:
        raise AnalysisError(f"repeats must name 2 of the available repetitions "
                            f"{format_list(available)}, got {list(repeats)}")
    first = a.isel(presentation=np.flatnonzero(rep == repeats[0]))
    second = a.isel(presentation=np.flatnonzero(rep == repeats[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stimuli seen once are dropped; counted below
        x, y = align(first, second)
    return (np.asarray(x.transpose("presentation", "neuroid").values, dtype=np.float64),
            np.asarray(y.transpose("presentation", "neuroid").values, dtype=np.float64),
            list(repeats))


def cvpca(a: xr.DataArray, *, n_shuffles: int = 5, repeats=None, seed: int = 0, backend=None,
          device=None) -> xr.Dataset:
    """Cross-validated PCA spectrum of stimulus responses (Stringer et al., Nature 2019).

    PCs are found on one repeat and their variance is measured as the covariance with the other
    repeat, which is unbiased for stimulus-related variance: trial noise independent between
    repeats averages out instead of inflating the tail of the spectrum.

    Parameters
    ----------
    a : xarray.DataArray
        ``(presentation, neuroid)`` assembly with at least two repeats per stimulus (coord
        ``repetition``, or repeated ``stimulus_id``). Stimuli present in only one of the two
        repeats are dropped.
    n_shuffles : int
        Estimates averaged; all but the first swap the repeats of random stimuli.
    repeats : pair of int, optional
        Which two repetitions to use; default the first two.
    seed : int
        Seed of the swaps.
    backend, device
        Array backend and device of the kernel (:mod:`neurogeom._backend`: default numpy on the
        CPU; ``backend="torch"`` for torch on the CPU, ``device="cuda:0"`` alone for that GPU).

    Returns
    -------
    xarray.Dataset
        On dim ``mode`` (1-based rank): ``cv_variance`` (mean over shuffles),
        ``cv_variance_normalized`` (divided by its sum), and ``cv_variance_shuffle``
        (``shuffle``, ``mode``). The tail can be negative: it is an unbiased estimate of small
        numbers. Attrs: ``analysis``, every parameter, the input's provenance,
        ``neurogeom_version`` and ``references`` (see :mod:`neurogeom._results`).

    Raises
    ------
    AnalysisError
        Fewer than 2 repeats, fewer than 3 shared stimuli, no time-binned data.

    Examples
    --------
    >>> import loaders
    >>> a = loaders.synthetic.power_law_responses(200, 100, alpha=1.0, noise=1.0, seed=0)
    >>> ds = cvpca(a)
    >>> ds.cv_variance.dims
    ('mode',)

    References
    ----------
    .. [1] Stringer, Pachitariu, Steinmetz, Carandini & Harris (2019). High-dimensional
       geometry of population responses in visual cortex. Nature 571, 361-365.
    """
    xp = get_namespace(backend, device)   # bad options fail before the data are split
    r1, r2, repeats = _two_repeats(a, repeats, "cvPCA")
    per_shuffle = cvpca_spectrum(r1, r2, n_shuffles=n_shuffles, seed=seed, backend=backend,
                                 device=device)
    mean = per_shuffle.mean(axis=0)
    total = mean.sum()
    if not total > 0:
        raise AnalysisError("the cross-validated variance sums to a non-positive number: the "
                            "repeats share no stimulus-related variance")
    mode = np.arange(1, mean.size + 1)
    return build_result(
        {"cv_variance": ("mode", mean),
         "cv_variance_normalized": ("mode", mean / total),
         "cv_variance_shuffle": (("shuffle", "mode"), per_shuffle)},
        coords={"mode": mode, "shuffle": np.arange(n_shuffles)},
        analysis="cvpca",
        parameters={"n_shuffles": int(n_shuffles), "repeats": [int(r) for r in repeats],
                    "seed": int(seed), "backend": xp.name, "device": str(xp.device)},
        inputs={"input": a},
        references=("cvpca",),
        details={"n_stimuli": int(r1.shape[0]), "n_neuroids": int(r1.shape[1])})


# --------------------------------------------------------------------------------------------
# power law and participation ratio
# --------------------------------------------------------------------------------------------

def _spectrum_values(spectrum) -> np.ndarray:
    if isinstance(spectrum, xr.Dataset):
        for name in ("cv_variance", "eigenvalue", "shared_variance"):
            if name in spectrum:
                return np.asarray(spectrum[name].values, dtype=np.float64)
        raise AnalysisError(f"the Dataset holds no spectrum variable (looked for 'cv_variance', "
                            f"'eigenvalue', 'shared_variance'); it has "
                            f"{format_list(list(spectrum.data_vars))}")
    values = np.asarray(spectrum, dtype=np.float64)
    if values.ndim != 1:
        raise AnalysisError(f"a spectrum must be 1-d, got shape {values.shape}")
    if values.size == 0:
        raise AnalysisError("the spectrum is empty")
    if not np.isfinite(values).all():
        raise AnalysisError("the spectrum contains NaN or infinite values")
    return values


def power_law_exponent(spectrum, ranks=(11, 500)) -> float:
    """Exponent α of a power law λ_n ∝ n^{-α} fitted to an eigenspectrum.

    Weighted least squares of log λ_n on log n with weights 1/n over the ranks ``ranks``
    (1-based, inclusive; Stringer et al. 2019 use 11–500). The 1/n weights balance the log-spaced
    density of points, which would otherwise let the noisy tail dominate.

    Parameters
    ----------
    spectrum : array_like or xarray.Dataset
        Eigenvalues in descending-rank order (rank 1 first), or a :func:`cvpca` result.
    ranks : (int, int)
        First and last rank of the fit; the last is clipped to the spectrum's length.

    Returns
    -------
    float
        α (positive for a decaying spectrum).

    Raises
    ------
    AnalysisError
        Fewer than 3 ranks in range, or non-positive values in range (cvPCA tails can be
        negative: choose a narrower range).
    """
    values = _spectrum_values(spectrum)
    lo, hi = int(ranks[0]), min(int(ranks[1]), values.size)
    if lo < 1 or hi - lo + 1 < 3:
        raise AnalysisError(f"ranks {tuple(ranks)} leave {max(hi - lo + 1, 0)} point(s) of a "
                            f"spectrum of length {values.size}; need at least 3 (lowest rank 1)")
    n = np.arange(lo, hi + 1, dtype=np.float64)
    lam = values[lo - 1:hi]
    bad = n[lam <= 0].astype(int)
    if bad.size:
        raise AnalysisError(f"the spectrum is not positive at rank(s) {format_list(bad.tolist())} "
                            f"within ranks {lo}..{hi}; fit a narrower range")
    x = np.log(n)
    y = np.log(lam)
    sw = np.sqrt(1.0 / n)  # weights 1/n on squared residuals
    design = np.stack([np.ones_like(x), x], axis=1) * sw[:, None]
    coef, *_ = np.linalg.lstsq(design, y * sw, rcond=None)
    return float(-coef[1])


def participation_ratio(a_or_spectrum) -> float:
    """Participation ratio (Σλ)² / Σλ² of an eigenspectrum or of an assembly's covariance.

    Parameters
    ----------
    a_or_spectrum : xarray.DataArray assembly, array_like or xarray.Dataset
        An assembly (``(presentation|time, neuroid)``; covariance across samples), a 1-d
        spectrum, or a :func:`cvpca`/:func:`svca` result.

    Returns
    -------
    float
        Between 1 (one dimension) and the number of eigenvalues (isotropic).
    """
    if isinstance(a_or_spectrum, xr.DataArray) and "neuroid" in a_or_spectrum.dims:
        a = validate(a_or_spectrum)
        if "time_bin" in a.dims:
            raise AnalysisError("participation_ratio needs (presentation|time, neuroid) data; "
                                "average or select the 'time_bin' dim first")
        x = np.asarray(a.transpose(..., "neuroid").values, dtype=np.float64)
        if x.shape[0] < 2:
            raise AnalysisError(f"need at least 2 samples for a covariance, got {x.shape[0]}")
        x = x - x.mean(axis=0)
        values = np.linalg.svd(x, compute_uv=False) ** 2 / (x.shape[0] - 1)
    else:
        values = _spectrum_values(a_or_spectrum)
    square_sum = float(np.sum(values ** 2))
    if square_sum == 0:
        raise AnalysisError("participation ratio of an all-zero spectrum is undefined")
    return float(np.sum(values) ** 2 / square_sum)


# --------------------------------------------------------------------------------------------
# SVCA
# --------------------------------------------------------------------------------------------

def svca_spectrum(fa_train, fb_train, fa_test, fb_test, n_components: int, *, backend=None,
                  device=None):
    """Shared variance component analysis kernel (array kernel; Stringer et al., Science 2019).

    Parameters
    ----------
    fa_train, fb_train, fa_test, fb_test : ndarray, shape (n_neurons_X, n_times)
        Activity of neuron sets A and B on train and test time points, each neuron centered.
    n_components : int
        Components kept.
    backend, device
        Array backend and device of the products and the SVD (:mod:`neurogeom._backend`).

    Returns
    -------
    (shared, total) : ndarrays of shape (n_components,)
        Reliable variance ``Σ_t (u_k^T F_A)(v_k^T F_B)`` on test time and the mean of the two
        projections' variances, both per time point.
    """
    xp = get_namespace(backend, device)
    fa_train, fb_train, fa_test, fb_test = (xp.asarray(f) for f in (fa_train, fb_train,
                                                                    fa_test, fb_test))
    cross = fa_train @ fb_train.T
    # the sign of each singular pair is arbitrary (and may differ between backends); shared
    # and total are products within a pair, so they do not depend on it
    u, _, vt = xp.svd(cross)
    u, v = u[:, :n_components], vt[:n_components].T
    pa = u.T @ fa_test
    pb = v.T @ fb_test
    n_t = fa_test.shape[1]
    shared = (pa * pb).sum(1) / n_t
    total = ((pa * pa).sum(1) + (pb * pb).sum(1)) / (2 * n_t)
    return xp.to_numpy(shared), xp.to_numpy(total)


def svca(a: xr.DataArray, *, n_components: int | None = None, chunk: int = 10,
         seed: int = 0, backend=None, device=None) -> xr.Dataset:
    """Reliable (shared) variance of activity components, for spontaneous activity.

    Neurons are split at random into two halves A and B, time into alternating chunks of
    ``chunk`` samples (even chunks train, odd chunks test). The SVD of the train cross-covariance
    ``F_A F_B^T`` gives paired components; their covariance on test time estimates the variance
    each component shares across the two halves, free of single-neuron noise.

    Parameters
    ----------
    a : xarray.DataArray
        ``(time, neuroid)`` (or ``(presentation, neuroid)``) assembly.
    n_components : int, optional
        Components kept; default and maximum ``min(n_A, n_B, n_train_times)``.
    chunk : int
        Time samples per train/test chunk (adjacent samples are correlated: keep chunks longer
        than the autocorrelation time).
    seed : int
        Seed of the neuron split.
    backend, device
        Array backend and device of the kernel (:mod:`neurogeom._backend`: default numpy on the
        CPU; ``backend="torch"`` for torch on the CPU, ``device="cuda:0"`` alone for that GPU).

    Returns
    -------
    xarray.Dataset
        ``shared_variance``, ``total_variance`` and ``reliable_fraction`` on dim ``mode``;
        ``neuron_set`` (``neuroid``: "A"/"B"). Attrs: ``analysis``, every parameter
        (``n_components`` as used), the input's provenance, ``neurogeom_version`` and
        ``references`` (see :mod:`neurogeom._results`).

    References
    ----------
    .. [1] Stringer, Pachitariu, Steinmetz, Reddy, Carandini & Harris (2019). Spontaneous
       behaviors drive multidimensional, brainwide activity. Science 364, eaav7893.
    """
    xp = get_namespace(backend, device)   # bad options fail before any work
    validate(a)
    if "time_bin" in a.dims:
        raise AnalysisError("svca needs (time, neuroid) data; average or select 'time_bin' first")
    sample = "time" if "time" in a.dims else "presentation"
    x = np.asarray(a.transpose(sample, "neuroid").values, dtype=np.float64)
    n_t, n_neur = x.shape
    if n_neur < 2:
        raise AnalysisError(f"svca needs at least 2 neuroids to split in two, got {n_neur}")
    if chunk < 1:
        raise AnalysisError(f"chunk must be >= 1, got {chunk}")
    which = (np.arange(n_t) // chunk) % 2
    train, test = np.flatnonzero(which == 0), np.flatnonzero(which == 1)
    if test.size < 2 or train.size < 2:
        raise AnalysisError(f"{n_t} {sample} samples in chunks of {chunk} leave {train.size} "
                            f"train and {test.size} test samples; need at least 2 each")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_neur)
    set_a, set_b = np.sort(perm[: n_neur // 2]), np.sort(perm[n_neur // 2:])
    x = x - x[train].mean(axis=0)
    max_components = min(set_a.size, set_b.size, train.size)
    if n_components is None:
        n_components = max_components
    if not 1 <= n_components <= max_components:
        raise AnalysisError(f"n_components must be in 1..{max_components} (smallest of the "
                            f"neuron halves {set_a.size}, {set_b.size} and {train.size} train "
                            f"samples), got {n_components}")
    shared, total = svca_spectrum(x[train][:, set_a].T, x[train][:, set_b].T,
                                  x[test][:, set_a].T, x[test][:, set_b].T, n_components,
                                  backend=backend, device=device)
    label = np.full(n_neur, "B")
    label[set_a] = "A"
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(total > 0, shared / np.where(total > 0, total, 1.0), 0.0)
    return build_result(
        {"shared_variance": ("mode", shared), "total_variance": ("mode", total),
         "reliable_fraction": ("mode", fraction), "neuron_set": ("neuroid", label)},
        coords={"mode": np.arange(1, n_components + 1),
                "neuroid_id": ("neuroid", np.asarray(a["neuroid_id"].values))},
        analysis="svca",
        parameters={"n_components": int(n_components), "chunk": int(chunk), "seed": int(seed),
                    "backend": xp.name, "device": str(xp.device)},
        inputs={"input": a},
        references=("svca",),
        details={"n_train": int(train.size), "n_test": int(test.size)})
