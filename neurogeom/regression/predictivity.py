"""Neural predictivity: cross-validated regression from model features to neurons, ceiled.

Brain-Score's ``CrossRegressedCorrelation`` protocol (Schrimpf et al. 2018): repetition-average the
neural data, split stimuli 10 times (90% train, stratified by ``object_name``, random_state 1),
fit the regression on the training stimuli, predict the test stimuli, correlate predictions and
responses per neuroid (Pearson r), take the median over neuroids per split, the mean over splits
as the score and the std over splits / sqrt(n_splits) as its error. The ceiling comes from
:func:`noise_ceiling` on the unaveraged responses.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import clone

from .._backend import get_namespace, resolve
from .._params import check_fraction, check_int, check_seed, unit_scale
from .._results import build_result
from ..assembly import align, presentation_coords
from ..assembly import average_repetitions as _average_repetitions
from ..errors import AlignmentError, AnalysisError, format_list
from ._stats import pearson_columns
from .ceiling import check_responses, drop_constant_neuroids, noise_ceiling
from .linear import LinearRegression
from .pls import PLSRegression
from .ridge import DEFAULT_ALPHAS, RidgeRegression, check_alphas
from .splits import stimulus_splits

REGRESSIONS = ("ridge", "pls", "ols")

#: Brain-Score's ridge alpha list (``brainscore_vision.metrics.regression_correlation``
#: ``ALPHA_LIST``): 0.01, 0.1, 0.5, 1, then 4, 18, 18, 18, 18 evenly spaced values per decade
#: from 10 to 1e7 (each decade's end point excluded, 1e7 included): 99 values.
BRAINSCORE_ALPHAS = tuple([0.01, 0.1, 0.5, 1.0]
                          + np.linspace(1e1, 1e2, 4, endpoint=False).tolist()
                          + np.linspace(1e2, 1e3, 18, endpoint=False).tolist()
                          + np.linspace(1e3, 1e4, 18, endpoint=False).tolist()
                          + np.linspace(1e4, 1e5, 18, endpoint=False).tolist()
                          + np.linspace(1e5, 1e6, 18, endpoint=False).tolist()
                          + np.linspace(1e6, 1e7, 19).tolist())

PRESETS = ("brainscore", "brainscore-pls", "brainscore-ridge", "brainscore-ridge-alpha1",
           "brainscore-linear")

#: the protocol every preset fixes (Brain-Score's CrossValidation defaults)
_PRESET_PROTOCOL = {"n_splits": 10, "train_size": 0.9, "split_by": "stimulus_id",
                    "stratify_by": "object_name", "seed": 1, "average_repetitions": True,
                    "protocol": "brainscore"}


def _preset_estimator(preset: str, backend, device, dtype):
    """The regression of a Brain-Score preset (see :func:`neural_predictivity`)."""
    if preset in ("brainscore", "brainscore-pls"):
        # scikit-learn's NIPALS with its own stopping rule (tol 1e-6, 500 iterations), as
        # Brain-Score runs it: our PLSRegression iterates to convergence, which is not the same
        # answer where NIPALS stops early
        from sklearn.cross_decomposition import PLSRegression as SkPLS
        return SkPLS(n_components=25, scale=False), "pls"
    if preset == "brainscore-ridge":
        return RidgeRegression(alphas=BRAINSCORE_ALPHAS, alpha_per_target=False, cv="loo",
                               backend=backend, device=device, dtype=dtype), "ridge"
    if preset == "brainscore-ridge-alpha1":
        return RidgeRegression(alphas=(1.0,), backend=backend, device=device,
                               dtype=dtype), "ridge"
    return LinearRegression(backend=backend, device=device, dtype=dtype), "ols"


def has_repeats(a: xr.DataArray) -> bool:
    return not pd.Index(np.asarray(a["stimulus_id"].values)).is_unique


def check_source(source) -> xr.DataArray:
    return check_responses(source, "source", hint="flatten or select model feature dims first")


def match_stimuli(source: xr.DataArray, target: xr.DataArray):
    """Source rows in the target's stimulus order; every target stimulus must be in the source."""
    src = pd.Index(np.asarray(source["stimulus_id"].values))
    tgt = np.asarray(target["stimulus_id"].values)
    tgt_list = tgt.tolist()
    missing = [s for s in tgt_list if s not in src]
    if missing:
        raise AlignmentError(
            f"the model (source) has no features for {len(missing)} of the {len(tgt)} target "
            f"stimuli: {format_list(missing)}; source stimulus_id values: "
            f"{format_list(src.tolist())}")
    index = src.get_indexer(tgt)
    if np.array_equal(index, np.arange(len(src))):
        # Already aligned: skip the copy (assembly.align always copies, and for a large model
        # layer each copy of the features costs as much as the feature matrix itself).
        return target, source
    return align(target, source.isel(presentation=index), require_identical=True)


def _row_splits(splits, unit_of_row) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each split of units as a split of rows: the rows owned by its units, unit by unit in
    the split's order (a unit's rows in row order)."""
    order = np.argsort(unit_of_row, kind="stable")
    counts = np.bincount(unit_of_row)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def rows(units):
        units = np.asarray(units)
        if (counts[units] == 1).all():                  # one row per unit: no Python loop
            return order[starts[units]]
        return np.concatenate([order[starts[u]:starts[u] + counts[u]] for u in units])

    return [(rows(tr), rows(te)) for tr, te in splits]


def ceiling_flags(score: float, ceiling: float) -> str:
    """A note on ceiled scores that cannot be read as fractions of the explainable variance
    ("" when there is none).

    The split-half ceiling is a reliability (Spearman-Brown corrected), on the r² scale, so a
    model at the ceiling has r = √ceiling. ``score**2 / ceiling`` > 1 means the model predicts
    the neurons better than their own repeats predict each other: the ceiling is then
    underestimated (few repeats, noisy neuroids). ``(score / ceiling)**2`` divides r by a
    number on the r² scale and exceeds 1 whenever r > ceiling, even with r² below it: the
    note says so and points at ``score**2 / ceiling``. A ceiling ≤ 0 means the repeats do not
    agree: every ceiled score is then meaningless.
    """
    if not np.isfinite(ceiling) or ceiling <= 0:
        return (f"noise ceiling {ceiling:.3g} <= 0: the repeats do not agree, so ceiled scores "
                "are meaningless (more repeats or reliable neuroids needed)")
    r2_over = score ** 2 / ceiling
    if r2_over > 1:
        return (f"ceiled score above 1 (score**2 / ceiling = {r2_over:.3g}; score {score:.3g}, "
                f"ceiling {ceiling:.3g}): the model predicts better than the neurons' repeats "
                "predict each other, so the ceiling is likely underestimated (few repeats)")
    r_over = (score / ceiling) ** 2
    if r_over > 1:
        return (f"ceiled score above 1 ((score / ceiling)**2 = {r_over:.3g}; score {score:.3g}, "
                f"ceiling {ceiling:.3g}): that convention divides r by a ceiling on the r² "
                "scale and exceeds 1 whenever r > ceiling; score**2 / ceiling = "
                f"{r2_over:.3g} is the fraction of the explainable variance")
    return ""


def _split_units(target: xr.DataArray, split_by: str, stratify_by, stratify_fallback: bool):
    """Unique split values (with the rows they own) and their stratification labels."""
    coords = presentation_coords(target)
    if split_by not in coords:
        raise AnalysisError(f"split_by={split_by!r} is not a presentation coord of the target; "
                            f"available: {format_list(coords)}")
    values = np.asarray(target[split_by].values)
    units, inverse = np.unique(values, return_inverse=True)
    if len(units) == len(values):               # one row per value: Brain-Score's order
        units, inverse = values, np.arange(len(values))
    labels = None
    if stratify_by is not None:
        if stratify_by not in coords:
            if not stratify_fallback:
                raise AnalysisError(
                    f"stratify_by={stratify_by!r} is not a presentation coord of the target; "
                    f"available: {format_list(coords)}. Pass stratify_by=None for unstratified "
                    "splits, or stratify_fallback=True")
            warnings.warn(f"stratify_by={stratify_by!r} missing; using unstratified splits",
                          stacklevel=3)
        else:
            row_labels = np.asarray(target[stratify_by].values)
            table = pd.DataFrame({"unit": inverse, "label": row_labels})
            n_labels = table.groupby("unit")["label"].nunique()
            if (n_labels > 1).any():
                bad = [units[i] for i in n_labels.index[n_labels > 1]]
                raise AnalysisError(f"{stratify_by!r} varies within {split_by!r} values "
                                    f"{format_list(bad)}; cannot stratify by it")
            labels = table.groupby("unit")["label"].first().reindex(range(len(units))).to_numpy()
    return units, inverse, labels


def _ridge_alphas_for_scale(alphas: np.ndarray, exponent: int, X: np.ndarray) -> np.ndarray:
    """The ridge penalties for features ``X`` already divided by ``2**exponent``.

    Ridge on (X / s, α / s²) predicts exactly what ridge on (X, α) does, so the penalties stay
    in the features' units (Brain-Score's absolute alphas). Penalties are then kept within
    [ε g, g / ε] (g the mean squared norm of a row of X, ε the float epsilon): a smaller one is
    below the Gram matrix's round-off and acts as ridgeless regression (but divides by
    round-off), a larger one acts as an infinite penalty whose predictions K y / α have the same
    Pearson r at any larger α. Data of ordinary scale never reach these bounds.
    """
    with np.errstate(over="ignore", under="ignore"):
        scaled = np.ldexp(alphas, -2 * exponent)
    eps = np.finfo(np.float64).eps
    g = float(np.vdot(X, X)) / max(X.shape[0], 1) or 1.0   # no temporary of X's size
    clipped = np.clip(scaled, eps * g, g / eps)
    if (clipped != scaled).any():
        side = "below the round-off" if (scaled < eps * g).any() else "above the reach"
        warnings.warn(
            f"{int((clipped != scaled).sum())} of the {alphas.size} ridge alphas are {side} of "
            f"the features' squared scale (largest |feature| ~ 2**{exponent}): ridge penalties "
            "are absolute (Brain-Score's convention), so there they act as "
            f"{'no penalty' if side.startswith('below') else 'an infinite penalty'}; pass alphas "
            "suited to the features' scale", stacklevel=3)
    return clipped


def _make_estimator(regression, alphas, alpha_per_target, cv, n_components, backend, device,
                    dtype):
    if not isinstance(regression, str):
        if not (hasattr(regression, "fit") and hasattr(regression, "predict")):
            raise AnalysisError(f"regression must be one of {REGRESSIONS} or an estimator with "
                                f"fit/predict, got {regression!r}")
        # Fitted on a copy, as sklearn's cross-validation does; the caller's object is untouched.
        return clone(regression, safe=False)
    if regression == "ridge":
        return RidgeRegression(alphas=alphas, alpha_per_target=alpha_per_target, cv=cv,
                               backend=backend, device=device, dtype=dtype)
    if regression == "pls":
        return PLSRegression(n_components=n_components, backend=backend, device=device,
                             dtype=dtype)
    if regression == "ols":
        return LinearRegression(backend=backend, device=device, dtype=dtype)
    raise AnalysisError(f"unknown regression {regression!r}; choose one of {REGRESSIONS}")


def neural_predictivity(source: xr.DataArray, target: xr.DataArray, *, regression="ridge",
                        n_splits: int = 10, train_size: float = 0.9,
                        split_by: str = "stimulus_id", stratify_by: str | None = "object_name",
                        seed: int = 1, average_repetitions: bool = True,
                        protocol: str = "brainscore", stratify_fallback: bool = False,
                        alphas=DEFAULT_ALPHAS, alpha_per_target: bool = True, cv="loo",
                        n_components: int = 25, ceiling: bool = True,
                        keep_predictions: bool = False, preset: str | None = None,
                        backend=None, device=None, dtype: str = "float64") -> xr.Dataset:
    """How well a linear readout of model features predicts each neuroid, cross-validated.

    Parameters
    ----------
    source : xarray.DataArray
        Model features, ``(presentation, neuroid)`` with ``stimulus_id`` (features are
        "neuroids" of the model). It must cover every target stimulus; extra stimuli are
        ignored.
    target : xarray.DataArray
        Neural responses, ``(presentation, neuroid)``; repetitions allowed.
    regression : {"ridge", "pls", "ols"} or estimator
        Ridge (:class:`RidgeRegression`, alpha chosen per neuroid by LOO on the training fold),
        PLS (:class:`PLSRegression`, ``n_components``), ordinary least squares, or any object
        with ``fit(X, Y)``/``predict(X)`` (fitted on a copy; a :class:`RidgeRegression` or
        :class:`PLSRegression` instance runs with its own parameters).
    n_splits, train_size, seed
        Brain-Score defaults: 10 splits, 90% train, random_state 1.
    split_by : str
        Presentation coord whose values are split (``stimulus_id``).
    stratify_by : str or None
        Class label balanced across train and test (``object_name``); None: unstratified.
    average_repetitions : bool
        Average repeated presentations first (Brain-Score does). Without it, repeated
        stimulus_ids are an error.
    protocol : {"brainscore", "kfold"}
        ``"brainscore"`` reproduces Brain-Score's (Stratified)ShuffleSplit indices exactly on
        the repetition-averaged target (presentations in order of first appearance);
        ``"kfold"``: its shuffled (Stratified)KFold mode.
    stratify_fallback : bool
        Fall back to unstratified splits (with a warning) when stratification is impossible.
    alphas, alpha_per_target, cv
        Ridge grid and selection (see :class:`RidgeRegression`).
    n_components : int
        PLS components (Brain-Score: 25).
    ceiling : bool
        Compute the noise ceiling (when the target has repetitions) and the ceiled scores.
    keep_predictions : bool
        Also return ``prediction`` (split, presentation, neuroid): the test-set predictions of
        each split, NaN for the split's training stimuli (they were not predicted).
    backend, device
        Array backend and device of the regression kernels (:mod:`neurogeom._backend`: default
        numpy on the CPU; ``backend="torch"`` for torch on the CPU, ``device="cuda:0"`` alone
        for torch on that GPU).
    dtype : {"float64", "float32"}
        Working precision of the regression kernels.
    preset : {None, "brainscore", "brainscore-pls", "brainscore-ridge",
        "brainscore-ridge-alpha1", "brainscore-linear"}
        Reproduce one of Brain-Score's ``CrossRegressedCorrelation`` metrics exactly
        (``brainscore_vision.metrics.regression_correlation``). Every preset fixes the protocol
        of Brain-Score's ``CrossValidation``: 10 ``StratifiedShuffleSplit`` splits of the
        repetition-averaged stimuli, 90% train, ``object_name`` strata, random_state 1 (the
        arguments ``n_splits``, ``train_size``, ``split_by``, ``stratify_by``, ``seed``,
        ``average_repetitions``, ``protocol`` must then be left at their defaults, which are
        these), Pearson r per neuroid on the test stimuli, the median over neuroids per split
        and the mean over splits. The regression:

        - ``"brainscore"`` / ``"brainscore-pls"`` (its default, metric ``pls``):
          scikit-learn's ``PLSRegression(n_components=25, scale=False)``, run as Brain-Score
          runs it (NIPALS with scikit-learn's stopping rule, tol 1e-6 and 500 iterations per
          component).
        - ``"brainscore-ridge"``: ``RidgeCV`` over Brain-Score's ``ALPHA_LIST``
          (:data:`BRAINSCORE_ALPHAS`, 99 values from 0.01 to 1e7) with one alpha for all
          neuroids, chosen by the efficient leave-one-out mean squared error over all neuroids
          of the training stimuli (its ``ridgecv`` metrics); computed by our
          :class:`RidgeRegression` with ``alpha_per_target=False``, which is the same
          estimator.
        - ``"brainscore-ridge-alpha1"``: ``Ridge(alpha=1)``, the regression of Brain-Score's
          metric registered as ``ridge``.
        - ``"brainscore-linear"``: ``LinearRegression`` (metric ``linear_predictivity``), by
          our :class:`LinearRegression`. With more features than training stimuli the least
          squares problem has many exact solutions: ours returns the minimum-norm one (through
          the SVD, the standard choice, and unchanged by adding or duplicating features),
          while scikit-learn 1.5, which Brain-Score pins, does not return the minimum-norm
          solution there, so the two preset scores then differ; with fewer features than
          stimuli they agree. We keep the minimum-norm solution rather than copy that.

        How our defaults differ, and why: the default ridge chooses one alpha per neuroid
        (``alpha_per_target=True``) from 20 log-spaced alphas (1e-2…1e7), because neuroids of
        one recording differ in noise level by orders of magnitude and one shared alpha
        under-regularizes the noisy ones (the score moves by ~1e-3 against Brain-Score's
        shared alpha); our default PLS iterates to convergence (so it is the same answer on
        every machine and at every scale of the data); everything else — splits, correlation,
        aggregation, ceiling — is Brain-Score's already. ``regression``, ``alphas``,
        ``alpha_per_target``, ``cv`` and ``n_components`` are ignored with a preset (their
        values in attrs are the preset's).

    Returns
    -------
    xarray.Dataset
        ``r`` (split, neuroid); ``score_per_split`` (split, median over neuroids); ``score``
        (mean over splits); ``error`` (std over splits, ddof 0, / sqrt(n_splits));
        ``r_per_neuroid``; ``is_test`` (split, presentation); for ridge ``alpha`` (split,
        neuroid). With repetitions and ``ceiling=True`` also ``ceiling``,
        ``ceiling_per_neuroid`` and two ceiled scores, named by their formula:
        ``ceiled_score_r2_over_ceiling`` = score² / ceiling (Brain-Score since early 2026) and
        ``ceiled_score_r_over_ceiling_squared`` = (score / ceiling)² (Brain-Score before),
        each with an ``_error``, and the attr ``suspicious`` naming ceiled scores above 1 or a
        ceiling <= 0, also warned (:func:`ceiling_flags`; "" when none). Attrs: ``analysis``, every parameter that applies (``alphas``,
        ``alpha_per_target``, ``cv`` for ridge; ``n_components`` for PLS), the provenance of
        both inputs (``source_*``, ``target_*``), ``neurogeom_version`` and ``references`` (see
        :mod:`neurogeom._results`).

    Raises
    ------
    AlignmentError
        Target stimuli missing from the source (listed).
    AnalysisError
        Fewer stimuli than splits, a missing split/stratification coord, classes too small to
        stratify (unless ``stratify_fallback``), all neuroids constant, bad parameters.
    AssemblyError
        Invalid assemblies, including NaN responses.

    Examples
    --------
    >>> import loaders, neurogeom as ng
    >>> resp = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=20)
    >>> model = ng.average_repetitions(resp)          # a "model" that sees the clean means
    >>> ds = neural_predictivity(model, resp, regression="pls", n_components=5)
    >>> float(ds["score"]) > 0.5
    True

    References
    ----------
    .. [1] Schrimpf, Kubilius, Hong, Majaj, Rajalingham, Issa, Kar, Bashivan, Prescott-Roy,
       Geiger, Schmidt, Yamins & DiCarlo (2018). Brain-Score: which artificial neural network
       for object recognition is most brain-like? bioRxiv 407007.
    .. [2] Spearman (1910). Correlation calculated from faulty data. Br. J. Psychol. 3,
       271-295; Brown (1910). Some experimental results in the correlation of mental abilities.
       Br. J. Psychol. 3, 296-322. Used for the noise ceiling.
    """
    backend, device = resolve(backend, device)   # bad options fail first; attrs record these
    if preset is not None:
        if preset not in PRESETS:
            raise AnalysisError(f"unknown preset {preset!r}; choose one of {PRESETS}")
        given = {"n_splits": n_splits, "train_size": train_size, "split_by": split_by,
                 "stratify_by": stratify_by, "seed": seed,
                 "average_repetitions": average_repetitions, "protocol": protocol}
        changed = [f"{k}={v!r}" for k, v in given.items() if v != _PRESET_PROTOCOL[k]]
        if changed:
            raise AnalysisError(f"preset={preset!r} fixes Brain-Score's protocol, but "
                                f"{', '.join(changed)} was passed; leave these at their "
                                "defaults or pass preset=None")
        regression, regression_name = _preset_estimator(preset, backend, device, dtype)
        if regression_name == "ridge":
            alphas, alpha_per_target, cv = (regression.alphas, regression.alpha_per_target,
                                            regression.cv)
        elif regression_name == "pls":
            n_components = 25
    inputs = {"source": source, "target": target}   # provenance of the data as given
    source = check_source(source)
    target = check_responses(target)
    for name, a in (("source", source), ("target", target)):
        if a.sizes["neuroid"] == 0 or a.sizes["presentation"] == 0:
            raise AnalysisError(f"neural_predictivity: the {name} has {a.sizes['presentation']} "
                                f"presentations and {a.sizes['neuroid']} neuroids; both must be "
                                ">= 1")
    seed = check_seed(seed)
    n_splits = check_int(n_splits, "n_splits")
    train_size = check_fraction(train_size, "train_size", include_one=False)
    alphas = check_alphas(alphas)
    # Pearson r is unchanged by the targets' overall scale: divide it by a power of two (exact,
    # so ordinary data give bit-identical results) so that no square overflows or underflows.
    scaled, y_exponent = unit_scale(np.asarray(target.values))
    target = target.copy(data=scaled)
    target, excluded = drop_constant_neuroids(target, "neural_predictivity")

    ceiling_ds = None
    if has_repeats(target):
        if ceiling:
            with warnings.catch_warnings():
                # a ceiling <= 0 is flagged below with the ceiled scores (ceiling_flags)
                warnings.filterwarnings("ignore", message="noise_ceiling: noise ceiling")
                ceiling_ds = noise_ceiling(target, seed=seed)
        if not average_repetitions:
            raise AnalysisError("the target repeats stimulus_id values; pass "
                                "average_repetitions=True (Brain-Score averages repetitions)")
        target = _average_repetitions(target)
    if has_repeats(source):
        if not average_repetitions:
            raise AnalysisError("the source repeats stimulus_id values; average them first")
        source = _average_repetitions(source)
    target, source = match_stimuli(source, target)

    units, unit_of_row, labels = _split_units(target, split_by, stratify_by, stratify_fallback)
    splits, stratified = stimulus_splits(len(units), labels, n_splits=n_splits,
                                         train_size=train_size, seed=seed, protocol=protocol,
                                         stratify_fallback=stratify_fallback,
                                         stratify_name=str(stratify_by))
    row_splits = _row_splits(splits, unit_of_row)

    X = np.asarray(source.values, dtype=np.float64 if dtype == "float64" else np.float32)
    Y = np.asarray(target.values, dtype=X.dtype)
    n_train_max = max(len(tr) for tr, _ in row_splits)
    x_exponent, fit_alphas = 0, alphas
    if isinstance(regression, str):
        # The built-in readouts are exactly equivariant to the features' overall scale (OLS and
        # PLS predictions do not change; ridge with alpha / s² predicts the same): divide the
        # features by a power of two so that Gram matrices neither overflow nor underflow. Data
        # well inside the float range are left as they are (no copy of the features).
        X, x_exponent = unit_scale(X, keep_within=200 if X.dtype == np.float64 else 24)
        if regression == "ridge":
            fit_alphas = _ridge_alphas_for_scale(alphas, x_exponent, X)
    estimator = _make_estimator(regression, fit_alphas, alpha_per_target, cv, n_components,
                                backend, device, dtype)
    is_ridge = isinstance(estimator, RidgeRegression)
    is_pls = isinstance(estimator, PLSRegression)
    if is_ridge and not isinstance(regression, str):
        # a RidgeRegression passed in runs (and is reported) with its own grid and selection
        alphas = check_alphas(estimator.alphas)
        alpha_per_target, cv = estimator.alpha_per_target, estimator.cv
    if is_pls:
        estimator._check_n_components(X.shape[1])
    n_neuroids = Y.shape[1]
    r = np.empty((len(row_splits), n_neuroids))
    predictions = (np.full((len(row_splits), Y.shape[0], n_neuroids), np.nan)
                   if keep_predictions else None)
    chosen = np.full((len(row_splits), n_neuroids), np.nan)
    if ((is_ridge and estimator.fit_intercept) or is_pls) and X.shape[1] >= n_train_max:
        # One Gram matrix of all stimuli serves every split, for ridge and kernel PLS alike:
        # the estimators' sample-space fit takes it and centers each training fold on the Gram
        # (as in himalaya); centering globally first keeps that subtraction well conditioned.
        xp = get_namespace(backend, device, dtype)
        K = xp.centered_gram(xp.asarray(X))
        Yb = xp.asarray(Y)
        if is_ridge:
            fits = ((estimator._fit_predict_gram(K, Yb, tr, te, xp), estimator.alpha_index_)
                    for tr, te in row_splits)
        else:
            fits = estimator._fit_predict_gram_splits(K, Yb, row_splits, X.shape[1], xp)
        for s, ((tr, te), fit) in enumerate(zip(row_splits, fits)):
            pred = xp.to_numpy(fit[0]).astype(np.float64)
            if is_ridge:
                chosen[s] = alphas[fit[1]]
            r[s] = pearson_columns(pred, Y[te].astype(np.float64))
            if keep_predictions:
                predictions[s, te] = pred
    else:
        for s, (tr, te) in enumerate(row_splits):
            estimator.fit(X[tr], Y[tr])
            pred = np.asarray(estimator.predict(X[te])).reshape(len(te), n_neuroids)
            r[s] = pearson_columns(pred.astype(np.float64), Y[te].astype(np.float64))
            if keep_predictions:
                predictions[s, te] = pred
            if is_ridge:
                # reported in the features' units: the grid value at the chosen position
                chosen[s] = alphas[estimator.alpha_index_]
    undefined = np.isnan(r)
    if undefined.all(axis=1).any():
        raise AnalysisError("neural_predictivity: in some split every neuroid's correlation is "
                            "undefined (constant predictions or responses on the test stimuli)")
    if undefined.any():
        warnings.warn(f"neural_predictivity: {int(undefined.sum())} (split, neuroid) "
                      "correlation(s) are undefined (constant on the test stimuli) and are left "
                      "out of the medians", stacklevel=2)
    if keep_predictions:
        predictions = np.ldexp(predictions, y_exponent)      # back in the target's units
    per_split = np.nanmedian(r, axis=1)
    score = float(per_split.mean())
    error = float(per_split.std() / np.sqrt(len(per_split)))

    is_test = np.zeros((len(row_splits), target.sizes["presentation"]), dtype=np.int8)
    for s, (_, te) in enumerate(row_splits):
        is_test[s, te] = 1
    neuroid_coords = {name: ("neuroid", np.asarray(c.values)) for name, c in target.coords.items()
                      if c.dims == ("neuroid",)}
    data = {"r": (("split", "neuroid"), r),
            "score_per_split": ("split", per_split),
            "score": ((), score), "error": ((), error),
            "r_per_neuroid": ("neuroid", np.nanmean(r, axis=0)),
            "is_test": (("split", "presentation"), is_test)}
    if is_ridge:
        data["alpha"] = (("split", "neuroid"), chosen)
    if keep_predictions:
        data["prediction"] = (("split", "presentation", "neuroid"), predictions)
    parameters = {"regression": regression if isinstance(regression, str)
                  else type(regression).__name__, "preset": preset or "none",
                  "n_splits": int(n_splits), "train_size": float(train_size), "split_by": split_by,
                  "stratify_by": stratify_by, "seed": int(seed), "protocol": protocol,
                  "average_repetitions": bool(average_repetitions),
                  "stratify_fallback": bool(stratify_fallback), "ceiling": bool(ceiling),
                  "keep_predictions": bool(keep_predictions),
                  "dtype": dtype, "backend": backend, "device": str(device)}
    if is_ridge:
        parameters.update(alphas=alphas.tolist(), alpha_per_target=bool(alpha_per_target),
                          cv=str(cv))
    if (isinstance(regression, str) and regression == "pls") or (
            preset is not None and regression_name == "pls"):
        parameters["n_components"] = int(n_components)
    attrs = {"stratified": int(stratified),
             "n_stimuli": int(target.sizes["presentation"]), "n_features": int(X.shape[1]),
             "n_excluded_constant_neuroids": len(excluded),
             "excluded_constant_neuroids": [str(i) for i in excluded],
             "n_undefined_correlations": int(undefined.sum()),
             "score_definition": "mean over splits of the median over neuroids of Pearson r",
             "error_definition": "std over splits (ddof 0) / sqrt(n_splits)"}
    if ceiling_ds is not None:
        c = float(ceiling_ds["ceiling"])
        data.update({
            "ceiling": ((), c), "ceiling_error": ((), float(ceiling_ds["ceiling_error"])),
            "ceiled_score_r2_over_ceiling": ((), score ** 2 / c),
            "ceiled_score_r2_over_ceiling_error": ((), 2 * abs(score) / c * error),
            "ceiled_score_r_over_ceiling_squared": ((), (score / c) ** 2),
            "ceiled_score_r_over_ceiling_squared_error": ((), 2 * abs(score) / c ** 2 * error)})
        # Same neuroids in the same order: constant ones were dropped before both analyses.
        data["ceiling_per_neuroid"] = ("neuroid", np.asarray(ceiling_ds["ceiling_per_neuroid"]))
        flags = ceiling_flags(score, c)
        if flags:
            warnings.warn("neural_predictivity: " + flags, stacklevel=2)
        attrs["suspicious"] = flags
        attrs.update(
            ceiling_method=ceiling_ds.attrs["method"],
            ceiled_score_r2_over_ceiling="score**2 / ceiling (Brain-Score convention since 2026)",
            ceiled_score_r_over_ceiling_squared="(score / ceiling)**2 (earlier Brain-Score "
                                                "convention)")
    coords = {"split": np.arange(len(row_splits)),
              "stimulus_id": ("presentation", np.asarray(target["stimulus_id"].values)),
              **neuroid_coords}
    references = ("brainscore", "spearman_brown") if ceiling_ds is not None else ("brainscore",)
    return build_result(data, coords, analysis="neural_predictivity", parameters=parameters,
                        inputs=inputs, references=references, details=attrs)
