"""Latent dimensionality of an assembly: test R² versus d for the NCE and ridge RRR.

Schmutz et al. (NeurIPS 2025). Neurons are split at random into disjoint source and target sets;
samples into train/validation/test sets (by stimulus identity for stimulus data, by time chunks
separated by gaps for continuous data). For each d the NCE (and, from one decomposition, RRR of
every rank) predicts the targets from the sources; test R² is normalized by its maximum over both
methods and all d, and the dimension estimate is the smallest d reaching ``threshold`` (95%) of it.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from .._backend import torch_device
from .._params import check_fraction, check_int, check_seed
from ..assembly import average_repetitions, repetition_index, sample_dim, validate
from .._results import build_result
from ..errors import AnalysisError, format_list
from .windows import crossed_pairs, time_window
from .rrr import DEFAULT_ALPHAS, ReducedRankRegression

__all__ = ["latent_dimensionality", "sample_sets"]

METHODS = ("nce", "rrr")
SET_NAMES = ("train", "validation", "test")


def _stimulus_arrays(a: xr.DataArray, crossed):
    """(repeats, stimuli, neurons) responses for the crossed loss, or (stimuli, neurons) means."""
    rep = repetition_index(a)
    ids = np.asarray(a["stimulus_id"].values)
    counts = pd.Series(ids).value_counts()
    n_rep = int(counts.min())
    if crossed == "auto":
        crossed = n_rep >= 2
    if crossed:
        if n_rep < 2:
            few = counts[counts < 2].index.tolist()
            raise AnalysisError(
                f"the crossed loss needs at least 2 repeats of every stimulus; "
                f"{len(few)} stimulus_id(s) appear once: {format_list(few)}")
        stimuli = pd.unique(ids)
        order = pd.DataFrame({"stim": ids, "rep": rep, "row": np.arange(ids.size)})
        order["rank"] = order.sort_values("rep").groupby("stim").cumcount()
        table = order[order["rank"] < n_rep].pivot(index="stim", columns="rank", values="row")
        rows = table.loc[stimuli].to_numpy().T            # (repeats, stimuli)
        values = np.asarray(a.transpose("presentation", "neuroid").values, dtype=np.float64)
        return values[rows], stimuli, True
    if counts.max() > 1:
        mean = average_repetitions(a)
        stim = np.asarray(mean["stimulus_id"].values)
        if pd.Index(stim).has_duplicates:
            raise AnalysisError("averaging repetitions left several rows per stimulus_id (a "
                                "presentation coord varies between repeats); average first")
        a = mean
    values = np.asarray(a.transpose("presentation", "neuroid").values, dtype=np.float64)
    return values, np.asarray(a["stimulus_id"].values), False


def sample_sets(n_samples: int, *, continuous: bool, fractions=(0.5, 0.2, 0.3),
                n_chunks: int = 20, gap: int = 1, seed=0) -> np.ndarray:
    """Assign samples to train (0), validation (1), test (2) or gap (−1).

    Stimulus data: stimuli are permuted and cut by ``fractions``. Continuous data: time is cut
    into ``n_chunks`` contiguous chunks assigned to sets by the fractions (permuted), and
    ``gap`` samples at both ends of every chunk are left out so that no test sample has a
    training neighbour closer than ``2 * gap`` samples (autocorrelation and the input window
    would otherwise leak).

    Returns
    -------
    ndarray of int, shape (n_samples,)
    """
    rng = np.random.default_rng(seed)
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.shape != (3,) or (fractions <= 0).any():
        raise AnalysisError(f"fractions must be 3 positive numbers (train, validation, test), "
                            f"got {fractions.tolist()}")
    fractions = fractions / fractions.sum()
    units = n_chunks if continuous else n_samples
    if units < 3:
        raise AnalysisError(f"too few samples for the split: {units} "
                            f"{'time chunks' if continuous else 'stimuli'}; need at least 3")
    cuts = np.floor(np.cumsum(fractions)[:2] * units).astype(int)
    cuts = np.clip(cuts, [1, 2], units - 1)
    cuts[1] = max(cuts[1], cuts[0] + 1)
    labels = np.zeros(units, dtype=int)
    labels[cuts[0]:cuts[1]] = 1
    labels[cuts[1]:] = 2
    labels = labels[rng.permutation(units)]
    if not continuous:
        return labels
    edges = np.linspace(0, n_samples, n_chunks + 1).round().astype(int)
    out = np.full(n_samples, -1)
    for k in range(n_chunks):
        lo, hi = edges[k] + gap, edges[k + 1] - gap
        if hi > lo:
            out[lo:hi] = labels[k]
    return out


def _check_sets(sets: np.ndarray, what: str, minimum: int = 2) -> None:
    sizes = [int((sets == k).sum()) for k in range(3)]
    if min(sizes) < minimum:
        raise AnalysisError(
            f"too few samples for the split: {what} gives train/validation/test sizes "
            f"{sizes}; each needs at least {minimum} (more samples, fewer chunks or a smaller gap)")


def latent_dimensionality(a: xr.DataArray, *, dims=range(1, 21),
                          source_fraction: float = 1 / 3, n_splits: int = 5, seed: int = 0,
                          methods=METHODS,
                          threshold: float = 0.95, fractions=(0.5, 0.2, 0.3), window: int = 1,
                          n_chunks: int = 20, gap: int | None = None, crossed="auto",
                          alphas=DEFAULT_ALPHAS, nce_params: dict | None = None,
                          device=None, progress: bool | None = None) -> xr.Dataset:
    """How many latent dimensions explain an assembly's activity (NCE versus ridge RRR).

    Parameters
    ----------
    a : xarray.DataArray
        ``(presentation, neuroid)`` stimulus responses or ``(time, neuroid)`` continuous
        activity.
    dims : iterable of int
        Latent dimensions d tried (RRR ranks and NCE bottlenecks).
    source_fraction : float
        Fraction of neuroids used as sources (the rest are targets); the paper uses 1/3
        (500 sources, 1,000 targets).
    n_splits : int
        Random neuron splits, each with its own sample split (seeded ``[seed, split]``).
    seed : int
        Seed of the splits and of the NCE.
    methods : sequence of {"nce", "rrr"}
        Models fitted.
    threshold : float
        Fraction of the maximum R² defining the dimension estimate.
    fractions : (float, float, float)
        Train/validation/test fractions (stimuli or time chunks).
    window : int
        Continuous data: time bins of source activity fed to both models (:func:`time_window`;
        the paper uses 6 for spontaneous activity).
    n_chunks, gap : int
        Continuous data: number of time chunks, and samples dropped at each chunk end (default
        ``window``).
    crossed : {"auto", True, False}
        Stimulus data: cross repeats in the loss and the score (sources of one repeat predict
        targets of another). "auto" crosses when every stimulus has at least 2 repeats;
        otherwise repeats are averaged.
    alphas : sequence of float
        Ridge penalties for RRR (chosen on the validation set; sources are z-scored). Default:
        ``neurogeom.regression.DEFAULT_ALPHAS``, the grid every analysis shares (20 values,
        0.01 … 1e7).
    nce_params : dict, optional
        Further :class:`NeuralCrossEncoder` arguments (``hidden``, ``max_epochs``, ``lr``,
        ``batch_size``, …).
    device : None, str or torch.device
        Where the NCE trains: None or ``"cpu"`` the CPU, ``"cuda:0"``… that GPU (the convention
        of :mod:`neurogeom._backend`; the NCE is torch-only, RRR runs in numpy).
    progress : bool or None
        Progress bar over fits (None: only on a terminal).

    Returns
    -------
    xarray.Dataset
        ``r2`` and ``r2_normalized`` (``method``, ``latent_dim``, ``split``); ``dimension``
        (``method``, ``split``): the smallest d reaching ``threshold`` of the split's maximum
        (NaN, with a warning, where a method never reaches it within ``dims``);
        ``dimension_of_mean`` (``method``): the same on the split-averaged normalized curve;
        ``is_source`` (``split``, ``neuroid``, 1 = source); ``sample_set`` (``split``, sample
        dim: "train", "validation", "test" or "gap"); ``nce_exponent`` and ``nce_epochs``
        (``latent_dim``, ``split``) and ``rrr_alpha`` (``split``) when fitted. Attrs:
        ``analysis``, every parameter that affects the numbers (``crossed`` as applied), the
        input's provenance, ``neurogeom_version`` and ``references`` (see
        :mod:`neurogeom._results`).

    Raises
    ------
    AnalysisError
        Unknown method, d larger than the source or target count, an empty source or target
        side, too few samples for the split, fewer than 2 repeats with ``crossed=True``.

    References
    ----------
    .. [1] Schmutz, Haydaroğlu, Wang, Feng, Carandini & Harris (2025). High-dimensional
       neuronal activity from low-dimensional latent dynamics: a solvable model. Advances in
       Neural Information Processing Systems (NeurIPS 2025).
    .. [2] Izenman (1975). Reduced-rank regression for the multivariate linear model. J.
       Multivar. Anal. 5, 248-264.
    """
    device = torch_device(device)   # a bad device fails before any work
    validate(a)
    if "time_bin" in a.dims:
        raise AnalysisError("latent_dimensionality needs (presentation, neuroid) or (time, "
                            "neuroid) data; average or select the 'time_bin' dim first")
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise AnalysisError(f"unknown method(s) {format_list(unknown)}; available: "
                            f"{format_list(METHODS)}")
    dims = sorted({check_int(d, "each of dims (latent dimensions)") for d in dims})
    if not dims:
        raise AnalysisError("dims (latent dimensions) must name at least one integer >= 1, got "
                            "none")
    threshold = check_fraction(threshold, "threshold")
    source_fraction = check_fraction(source_fraction, "source_fraction", include_one=False)
    n_splits = check_int(n_splits, "n_splits")
    seed = check_seed(seed)
    window = check_int(window, "window")
    n_chunks = check_int(n_chunks, "n_chunks")
    if gap is not None:
        gap = check_int(gap, "gap", minimum=0)
    dim = sample_dim(a)
    continuous = dim == "time"
    n_neur = a.sizes["neuroid"]
    if a.sizes[dim] == 0 or n_neur == 0:
        raise AnalysisError(f"latent_dimensionality: the assembly has {a.sizes[dim]} {dim} "
                            f"samples and {n_neur} neuroids; it needs samples and neuroids")
    n_source = int(round(source_fraction * n_neur))
    n_target = n_neur - n_source
    if n_source < 1 or n_target < 1:
        raise AnalysisError(
            f"source_fraction={source_fraction} splits {n_neur} neuroids into {n_source} sources "
            f"and {n_target} targets; both sides need at least one neuroid")
    if dims[-1] > min(n_source, n_target):
        raise AnalysisError(
            f"more latents than neurons: dims go up to {dims[-1]} but there are {n_source} "
            f"source and {n_target} target neuroids (of {n_neur})")
    if gap is None:
        gap = window
    nce_params = dict(nce_params or {})
    reserved = [k for k in ("n_latents", "window", "seed", "device") if k in nce_params]
    if reserved:
        raise AnalysisError(f"nce_params cannot set {format_list(reserved)}: they are "
                            "arguments of latent_dimensionality")
    if "nce" in methods:
        from .nce import NeuralCrossEncoder, check_options  # torch only when the NCE runs
        try:
            options = NeuralCrossEncoder(dims[0], **nce_params)
        except TypeError as exc:
            raise AnalysisError(f"nce_params: {exc}") from None
        check_options(options)   # bad NCE options fail here, before any fitting
        max_epochs = options.max_epochs

    if continuous:
        values = np.asarray(a.transpose("time", "neuroid").values, dtype=np.float64)
        sample_labels = np.asarray(a["time"].values) if "time" in a.coords else np.arange(values.shape[0])
        is_crossed = False
        if crossed is True:
            raise AnalysisError("the crossed loss needs repeated stimuli; continuous (time) data "
                                "have no repeats")
    else:
        if window != 1:
            raise AnalysisError("window > 1 is for continuous (time, neuroid) data; stimulus "
                                "responses have no time order")
        values, sample_labels, is_crossed = _stimulus_arrays(a, crossed)
    n_samples = values.shape[-2]

    r2 = np.full((len(methods), len(dims), n_splits), np.nan)
    exponent = np.full((len(dims), n_splits), np.nan)
    epochs = np.zeros((len(dims), n_splits), dtype=np.int64)
    converged = np.ones((len(dims), n_splits), dtype=bool)
    alpha = np.full(n_splits, np.nan)
    is_source = np.zeros((n_splits, n_neur), dtype=np.int8)
    sets_all = np.empty((n_splits, n_samples), dtype=object)
    n_fits = n_splits * (len(dims) * ("nce" in methods) + ("rrr" in methods))
    bar = tqdm(total=n_fits, desc="latent dimensionality", unit="fit", leave=False,
               disable=(None if progress is None else not progress))
    for split in range(n_splits):
        rng = np.random.default_rng([seed, split])
        perm = rng.permutation(n_neur)
        src, tgt = np.sort(perm[:n_source]), np.sort(perm[n_source:])
        is_source[split, src] = 1
        sets = sample_sets(n_samples, continuous=continuous, fractions=fractions,
                           n_chunks=n_chunks, gap=gap, seed=rng.integers(2 ** 31))
        _check_sets(sets, f"{'time chunks' if continuous else 'stimuli'} in split {split}")
        sets_all[split] = np.where(sets < 0, "gap", np.array(SET_NAMES, dtype=object)[sets])
        source = values[..., src]
        if continuous and window > 1:
            source = time_window(source, window)
        target = values[..., tgt]
        parts = [(source[..., sets == k, :], target[..., sets == k, :]) for k in range(3)]
        if "rrr" in methods:
            r2[methods.index("rrr"), :, split], alpha[split] = _rrr_curve(parts, dims, alphas,
                                                                         is_crossed)
            bar.update()
        if "nce" in methods:
            from .nce import NeuralCrossEncoder, fit_models
            (xt, yt), (xv, yv), (xs, ys) = parts
            # every d of the sweep trains at once, as one stacked network (see _nce_stack)
            models = [NeuralCrossEncoder(d, seed=seed * 1000 + split, progress=False,
                                         device=device, **nce_params) for d in dims]
            fit_models(models, xt, yt, validation=(xv, yv),
                       report=_sweep_report(bar, split, n_splits))
            for i, model in enumerate(models):
                converged[i, split] = model.converged_
                r2[methods.index("nce"), i, split] = model.score(xs, ys)
                exponent[i, split] = model.exponent_
                epochs[i, split] = model.n_epochs_
    bar.close()

    unconverged = ~converged
    best = r2.max(axis=(0, 1))
    if not (best > 0).all():
        bad = np.flatnonzero(~(best > 0)).tolist()
        stuck = sorted({int(s) for s in np.flatnonzero(unconverged[:, bad].any(axis=0))})
        if stuck:
            stuck = [bad[s] for s in stuck]
            raise AnalysisError(
                f"no model predicts the targets (best test R² <= 0) in split(s) {bad}, and the "
                f"NCE did not converge within max_epochs={max_epochs} in split(s) {stuck} (its "
                "loss was still improving): raise max_epochs (or lr); this is not evidence that "
                "the sources carry no information about the targets")
        raise AnalysisError(
            f"no model predicts the targets (best test R² <= 0) in split(s) {bad}, every fit "
            f"having converged ({format_list(methods)}): the sources carry no information about "
            "the targets that these models can read out")
    if unconverged.any():
        warnings.warn(
            f"the NCE did not converge within max_epochs={max_epochs} in {int(unconverged.sum())}"
            f" of {unconverged.size} fits (its loss was still improving): its R² and dimension "
            "may be underestimated; raise max_epochs (or lr)", stacklevel=2)
    normalized = r2 / best
    dimension = np.array([[_first_reaching(normalized[m, :, s], dims, threshold)
                           for s in range(n_splits)] for m in range(len(methods))])
    of_mean = np.array([_first_reaching(normalized[m].mean(axis=1), dims, threshold)
                        for m in range(len(methods))])
    never = [methods[m] for m in range(len(methods)) if np.isnan(dimension[m]).any()]
    if never:
        warnings.warn(f"method(s) {format_list(never)} never reach {threshold:.0%} of the "
                      f"maximum R² within dims {dims[0]}..{dims[-1]} in some split; their "
                      "dimension is NaN there (try larger dims)", stacklevel=2)

    sample_name = "time" if continuous else "stimulus"
    data = {
        "r2": (("method", "latent_dim", "split"), r2),
        "r2_normalized": (("method", "latent_dim", "split"), normalized),
        "dimension": (("method", "split"), dimension),
        "dimension_of_mean": (("method",), of_mean),
        "is_source": (("split", "neuroid"), is_source),
        "sample_set": (("split", sample_name), sets_all.astype(str)),
    }
    if "nce" in methods:
        data["nce_exponent"] = (("latent_dim", "split"), exponent)
        data["nce_epochs"] = (("latent_dim", "split"), epochs)
    if "rrr" in methods:
        data["rrr_alpha"] = (("split",), alpha)
    coords = {"method": list(methods), "latent_dim": dims, "split": np.arange(n_splits),
              "neuroid_id": ("neuroid", np.asarray(a["neuroid_id"].values))}
    if continuous:
        coords["time"] = ("time", sample_labels)
    else:
        coords["stimulus_id"] = ("stimulus", np.asarray(sample_labels).astype(str))
    ds = build_result(
        data, coords, analysis="latent_dimensionality",
        parameters={"dims": dims, "source_fraction": float(source_fraction),
                    "n_splits": int(n_splits), "seed": int(seed), "methods": list(methods),
                    "threshold": float(threshold), "fractions": [float(f) for f in fractions],
                    "window": int(window), "n_chunks": int(n_chunks), "gap": int(gap),
                    "crossed": bool(is_crossed),
                    "alphas": [float(x) for x in np.atleast_1d(alphas)],
                    "nce_params": json.dumps(nce_params, default=str), "device": str(device)},
        inputs={"input": a},
        references=("nce", "rrr"),
        details={"n_source": n_source, "n_target": n_target,
                 "split_by": "time chunks" if continuous else "stimulus",
                 "r2": "pooled over target neurons: 1 - SS_res / SS_tot on test samples"})
    ds["dimension"].attrs["note"] = ("smallest latent_dim whose test R2 reaches threshold times "
                                     "the split's maximum over methods and dims; NaN if none")
    return ds


def _sweep_report(bar, split: int, n_splits: int):
    """Progress of a stacked NCE sweep on the one bar of the analysis: a fit counts when its d
    stops; the postfix shows the epoch, the d still training and their validation R²."""
    def report(epoch, training, r2, done):
        bar.update(len(done))
        shown = " ".join(f"{d}:{v:.3f}" for d, v in zip(training, r2))
        where = f"split {split + 1}/{n_splits} " if n_splits > 1 else ""
        bar.set_postfix_str(f"{where}epoch {epoch + 1}, validation R2 by d {shown}",
                            refresh=True)
    return report


def _first_reaching(curve: np.ndarray, dims, threshold: float) -> float:
    hit = np.flatnonzero(curve >= threshold)
    return float(dims[hit[0]]) if hit.size else np.nan


def _rrr_curve(parts, dims, alphas, crossed):
    """Test R² of ridge RRR at every d from one fit (sources z-scored on the training set)."""
    (xt, yt), (xv, yv), (xs, ys) = parts
    if crossed:
        (xt, yt), (xv, yv), (xs, ys) = (crossed_pairs(xt, yt), crossed_pairs(xv, yv),
                                        crossed_pairs(xs, ys))
    mean, scale = xt.mean(axis=0), xt.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = lambda x: (x - mean) / scale  # noqa: E731
    model = ReducedRankRegression(alphas=alphas).fit(z(xt), yt, validation=(z(xv), yv))
    ranks = np.asarray(dims)
    scores = np.full(ranks.size, np.nan)
    ok = ranks <= model.max_rank_
    if not ok.all():
        raise AnalysisError(f"RRR rank {ranks[~ok].min()} exceeds the largest possible rank "
                            f"{model.max_rank_} (sources, targets, training samples - 1)")
    scores[ok] = model.score_ranks(z(xs), ys, ranks[ok])
    return scores, model.alpha_
