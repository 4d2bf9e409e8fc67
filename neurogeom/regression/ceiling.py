"""Noise ceiling: split-half internal consistency of repeated responses, Spearman–Brown corrected.

Brain-Score's ``InternalConsistency`` (Schrimpf et al. 2018): split the repetition indices in
two halves
10 times (``ShuffleSplit(train_size=0.5, test_size=0.5, random_state=1)``), average the
repetitions within each half, correlate the two half-means per neuroid across stimuli, correct
with Spearman–Brown for the halved number of trials (``2r/(1+r)``), take the median over
neuroids per split and the mean over splits.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from .._params import check_int, check_seed, unit_scale
from .._results import build_result
from ..assembly import align, average_repetitions, repetition_index, validate
from ..errors import AnalysisError, format_list
from ._stats import constant_columns, pearson_columns, spearman_brown
from .splits import repetition_halves


def check_responses(target: xr.DataArray, name: str = "target",
                    hint: str = "select or average time bins first, e.g. a.mean('time_bin')"
                    ) -> xr.DataArray:
    """Validate a (presentation, neuroid) assembly (neural responses or model features); NaN is
    rejected with its location, other dims with ``hint`` on how to reduce them."""
    if not isinstance(target, xr.DataArray):
        raise AnalysisError(f"{name} must be an xarray.DataArray assembly, "
                            f"got {type(target).__name__}")
    validate(target)
    if tuple(target.dims) != ("presentation", "neuroid"):
        raise AnalysisError(f"{name} must have dims ('presentation', 'neuroid'), got {target.dims}; "
                            f"{hint}")
    return target


def drop_constant_neuroids(target: xr.DataArray, what: str):
    """Remove neuroids with constant responses (no correlation is defined), with a warning."""
    constant = constant_columns(np.asarray(target.values))
    ids = np.asarray(target["neuroid_id"].values)[constant].tolist()
    if constant.all():
        raise AnalysisError(f"{what}: every neuroid has constant responses "
                            f"({format_list(ids)}); nothing to correlate")
    if constant.any():
        warnings.warn(f"{what}: excluding {len(ids)} neuroid(s) with constant responses: "
                      f"{format_list(ids)}", stacklevel=3)
        target = target.isel(neuroid=np.flatnonzero(~constant))
    return target, ids


def noise_ceiling(target: xr.DataArray, *, n_splits: int = 10, seed: int = 1) -> xr.Dataset:
    """Split-half internal consistency of repeated responses, per neuroid and aggregated.

    Parameters
    ----------
    target : xarray.DataArray
        ``(presentation, neuroid)`` responses with repeated ``stimulus_id`` s. The
        ``repetition`` coord selects the halves (derived from the order of appearance when
        absent).
    n_splits : int
        Number of random half-splits of the repetitions (10 in Brain-Score).
    seed : int
        ``random_state`` of the half-splits (1 in Brain-Score).

    Returns
    -------
    xarray.Dataset
        ``consistency`` (split, neuroid): raw half-vs-half Pearson r; ``ceiling_split_neuroid``
        (split, neuroid): Spearman–Brown corrected; ``ceiling_per_neuroid`` (neuroid): mean over
        splits; ``ceiling_per_split`` (split): median over neuroids; ``ceiling``: mean over
        splits; ``ceiling_error``: std over splits (ddof 0) / sqrt(n_splits). Constant neuroids
        are excluded (warning) and listed in ``attrs["excluded_constant_neuroids"]``. A
        ceiling <= 0 (repeats that do not agree) is warned and named in ``attrs["suspicious"]``
        ("" otherwise). Attrs
        also hold ``analysis``, every parameter, the input's provenance, ``neurogeom_version``
        and ``references`` (see :mod:`neurogeom._results`).

    Raises
    ------
    AnalysisError
        No repetitions, non-(presentation, neuroid) data, NaN values (via validation), or
        every neuroid constant.

    Examples
    --------
    >>> import loaders
    >>> resp = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=20)
    >>> ds = noise_ceiling(resp)
    >>> 0 < float(ds["ceiling"]) <= 1
    True

    References
    ----------
    .. [1] Schrimpf, Kubilius, Hong, Majaj, Rajalingham, Issa, Kar, Bashivan, Prescott-Roy,
       Geiger, Schmidt, Yamins & DiCarlo (2018). Brain-Score: which artificial neural network
       for object recognition is most brain-like? bioRxiv 407007.
    .. [2] Spearman (1910). Correlation calculated from faulty data. Br. J. Psychol. 3,
       271-295; Brown (1910). Some experimental results in the correlation of mental abilities.
       Br. J. Psychol. 3, 296-322.
    """
    given = target                                   # provenance of the data as given
    check_responses(target)
    n_splits = check_int(n_splits, "n_splits")
    seed = check_seed(seed)
    if target.sizes["neuroid"] == 0:
        raise AnalysisError("noise_ceiling: the target has no neuroids")
    # Pearson r does not depend on the responses' scale: divide by a power of two (exact) so
    # that no square overflows or underflows.
    target = target.copy(data=unit_scale(np.asarray(target.values))[0])
    reps = repetition_index(target)
    unique_reps = np.unique(reps)
    if len(unique_reps) < 2:
        raise AnalysisError(
            "noise ceiling needs repeated presentations of the stimuli, but every stimulus_id "
            f"appears once (repetition values: {format_list(unique_reps.tolist())}); the ceiling "
            "cannot be estimated from this assembly")
    target, excluded = drop_constant_neuroids(target, "noise_ceiling")
    target = target.assign_coords(repetition=("presentation", reps))
    halves = repetition_halves(len(unique_reps), n_splits=n_splits, seed=seed)
    raw = np.empty((len(halves), target.sizes["neuroid"]))
    n_stimuli = np.empty(len(halves), dtype=np.int64)
    for s, (first, second) in enumerate(halves):
        means = []
        for half in (first, second):
            rows = np.flatnonzero(np.isin(reps, unique_reps[half]))
            means.append(average_repetitions(target.isel(presentation=rows)))
        with warnings.catch_warnings():
            # Stimuli seen in only one half (unbalanced designs) are simply left out.
            warnings.simplefilter("ignore", UserWarning)
            a, b = align(means[0], means[1])
        if a.sizes["presentation"] < 3:
            raise AnalysisError(f"half-split {s}: only {a.sizes['presentation']} stimuli appear in "
                                "both halves; need >= 3 to correlate")
        raw[s] = pearson_columns(np.asarray(a.values, float), np.asarray(b.values, float))
        n_stimuli[s] = a.sizes["presentation"]
    undefined = np.isnan(raw)
    if undefined.any():
        warnings.warn(f"noise_ceiling: {int(undefined.sum())} (split, neuroid) correlation(s) are "
                      "undefined (a half-mean is constant) and are left out of the medians",
                      stacklevel=2)
    corrected = spearman_brown(raw)
    per_split = np.nanmedian(corrected, axis=1)
    ceiling = float(per_split.mean())
    suspicious = ""
    if not ceiling > 0:
        # Spearman-Brown of a negative consistency is negative: the repeats do not agree
        suspicious = (f"noise ceiling {ceiling:.3g} <= 0: the repeats do not agree, so "
                      "ceiled scores are meaningless (more repeats or reliable neuroids needed)")
        warnings.warn(f"noise_ceiling: {suspicious}", stacklevel=2)
    neuroid_coords = {name: ("neuroid", np.asarray(c.values)) for name, c in target.coords.items()
                      if c.dims == ("neuroid",)}
    split = np.arange(len(halves))
    return build_result(
        {"consistency": (("split", "neuroid"), raw),
         "ceiling_split_neuroid": (("split", "neuroid"), corrected),
         "ceiling_per_neuroid": ("neuroid", np.nanmean(corrected, axis=0)),
         "ceiling_per_split": ("split", per_split),
         "ceiling": ((), ceiling),
         "ceiling_error": ((), float(per_split.std() / np.sqrt(len(halves)))),
         "n_stimuli_per_split": ("split", n_stimuli)},
        coords={"split": split, **neuroid_coords},
        analysis="noise_ceiling",
        parameters={"n_splits": int(n_splits), "seed": int(seed)},
        inputs={"input": given},
        references=("brainscore", "spearman_brown"),
        details={"method": "split-half internal consistency, "
                 "Spearman-Brown 2r/(1+r), median over neuroids, mean over splits",
                 "n_repetitions": int(len(unique_reps)),
                 "n_excluded_constant_neuroids": len(excluded),
                 "excluded_constant_neuroids": [str(i) for i in excluded],
                 "n_undefined_correlations": int(undefined.sum()),
                 "suspicious": suspicious})
