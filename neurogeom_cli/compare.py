"""``neurogeom compare MODEL.nc NEURAL.nc``: cross-validated predictivity, ceiling, spectra."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="how well model features predict neurons (CV regression, ceiling)",
        description="Regress neural responses on model features with Brain-Score's protocol "
                    "(10 stratified 90/10 splits, Pearson r per neuroid, median, mean over "
                    "splits), ceil by split-half consistency, and optionally explain the error "
                    "spectrally (Canatar et al. 2023). Both inputs are (presentation, neuroid) "
                    "assemblies in netCDF sharing stimulus_id values.")
    p.add_argument("model", help="model features (.nc assembly)")
    p.add_argument("neural", help="neural responses (.nc assembly, repetitions allowed)")
    p.add_argument("--regression", choices=("ridge", "pls", "ols"), default="ridge",
                   help="readout (default ridge with alpha chosen per neuroid by LOO)")
    p.add_argument("--n-splits", type=int, default=10, help="number of splits (default 10)")
    p.add_argument("--seed", type=int, default=1, help="split random_state (default 1)")
    p.add_argument("--n-components", type=int, default=25, help="PLS components (default 25)")
    p.add_argument("--stratify-by", default="auto",
                   help="presentation coord to stratify splits by ('none' to disable); default "
                        "auto: object_name when the neural assembly has it and every class is "
                        "large enough, else unstratified (said on stdout)")
    p.add_argument("--stratify-fallback", action="store_true",
                   help="fall back to unstratified splits when a class is too small")
    p.add_argument("--spectral", action="store_true",
                   help="add the spectral decomposition (eigenspectrum, alignment, E_g(p))")
    p.add_argument("--n-trials", type=int, default=5, help="spectral: subsets per p (default 5)")
    p.add_argument("-o", "--output", required=True, help="result file (.nc)")
    p.set_defaults(func=run)


def run(args) -> int:
    import warnings

    import xarray as xr

    from neurogeom.errors import AnalysisError
    from neurogeom.io import check_destination, open as open_assembly, to_netcdf
    from neurogeom import neural_predictivity
    from neurogeom import spectral_decomposition

    check_destination(args.output, sources=[args.model, args.neural])   # before the work
    model = open_assembly(args.model)
    neural = open_assembly(args.neural)
    for path, obj in ((args.model, model), (args.neural, neural)):
        if not isinstance(obj, xr.DataArray):
            raise AnalysisError(f"{path} holds a result Dataset, not an assembly")
    stratify, fallback = args.stratify_by, args.stratify_fallback
    if stratify.lower() == "auto":
        # Brain-Score stratifies by object_name; an assembly loaded from a recording may not
        # have it, or have classes too small for stratified 90/10 splits: fall back, and say so
        stratify = "object_name" if "object_name" in neural.coords else None
        fallback = True
    elif stratify.lower() == "none":
        stratify = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = neural_predictivity(model, neural, regression=args.regression,
                                         n_splits=args.n_splits, seed=args.seed,
                                         n_components=args.n_components, stratify_by=stratify,
                                         stratify_fallback=fallback)
    except AnalysisError as exc:
        raise AnalysisError(str(exc).replace("stratify_by=None", "--stratify-by none")
                            .replace("stratify_fallback=True", "--stratify-fallback")) from None
    for w in caught:
        if "ceiled score" in str(w.message) or "noise ceiling" in str(w.message):
            continue    # printed below, beside the numbers
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    how = (f"stratified by {stratify}" if result.attrs.get("stratified")
           else "unstratified" + (" (no object_name coord)" if args.stratify_by == "auto"
                                  and stratify is None else ""))
    print(f"splits: {args.n_splits}, {how}")
    result.attrs["model_file"] = str(args.model)
    result.attrs["neural_file"] = str(args.neural)
    print(f"{args.regression} predictivity: {float(result['score']):.4f} "
          f"± {float(result['error']):.4f} (median Pearson r, {args.n_splits} splits)")
    if "ceiling" in result:
        print(f"noise ceiling: {float(result['ceiling']):.4f}; ceiled score r^2/ceiling = "
              f"{float(result['ceiled_score_r2_over_ceiling']):.4f}, (r/ceiling)^2 = "
              f"{float(result['ceiled_score_r_over_ceiling_squared']):.4f}")
        if result.attrs.get("suspicious"):
            print(f"warning: {result.attrs['suspicious']}")
    if args.spectral:
        spec = spectral_decomposition(model, neural, n_trials=args.n_trials)
        spec = spec.rename({k: f"spectral_{k}" for k in spec.data_vars})
        spec.attrs = {f"spectral_{k}": v for k, v in spec.attrs.items()}
        result = xr.merge([result, spec], compat="no_conflicts", join="outer",
                          combine_attrs="no_conflicts")
        last = int(spec["p"][-1])
        print(f"spectral: rank {spec.attrs['spectral_rank']}, power outside span "
              f"{float(spec['spectral_power_outside_span']):.4f}; E_g(p={last}) theory "
              f"{float(spec['spectral_theory_error'][-1]):.4f}, empirical "
              f"{float(spec['spectral_empirical_error'][-1]):.4f}")
    out = to_netcdf(result, Path(args.output))
    print(f"wrote {out}")
    return 0
