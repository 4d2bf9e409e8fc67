"""``neurogeom batch "sessions/*.nwb" --load spikes ... --analysis capacity``: many recordings on Dask.

Every source is loaded and analyzed in its own Dask task by :func:`neurogeom.map_recordings`
(the local threaded scheduler, a ``--workers N`` LocalCluster or a ``--scheduler ADDRESS``
cluster). The command prints a closing table (recording, status, seconds, the headline number
or the error) and writes the combined Dataset. Exit codes: 0 all recordings succeeded, 1 some
failed (their errors are in the table), 2 bad arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

ANALYSES = ("capacity", "compare", "latents")
LOADS = ("spikes", "calcium", "binned")

#: The headline variable of each analysis' result, shown in the closing table.
HEADLINES = {"capacity": ("capacity_overall", "capacity"), "compare": ("score", "score"),
             "latents": ("dimension", "dimension (mean over splits)")}


def add_parser(sub) -> None:
    from .capacity import METHODS
    from .load import add_load_options

    p = sub.add_parser(
        "batch", help="run one analysis over many recordings on Dask",
        description="Load every recording (files, glob patterns, http(s) URLs) in its own Dask "
                    "task and run one analysis on it; one bad recording is a failed row, not a "
                    "failed batch. Runs on Dask's local scheduler, on a LocalCluster "
                    "(--workers N) or on any running Dask cluster (--scheduler ADDRESS, e.g. "
                    "one started by dask-jobqueue on Slurm/PBS or by dask-kubernetes). Exit "
                    "code 0 when every recording succeeded, 1 when some failed.")
    p.add_argument("sources", nargs="+", help="NWB files, glob patterns (quote them) or URLs")
    p.add_argument("--load", required=True, choices=LOADS, help="what to read from each file")
    p.add_argument("--analysis", required=True, choices=ANALYSES,
                   help="capacity (--by), compare (--features) or latents")
    p.add_argument("-o", "--output", required=True, help="combined result (.nc)")
    add_load_options(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="start a LocalCluster with N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="use a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--store", help="folder receiving each recording's result as it finishes")
    p.add_argument("--resume", action="store_true",
                   help="skip the recordings already in --store")
    p.add_argument("--retries", type=int, default=1, help="reruns of a failed task (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.add_argument_group("analysis options")
    a.add_argument("--by", help="(capacity) coord whose labels define the manifolds")
    a.add_argument("--method", choices=METHODS, default="mft", help="(capacity) default mft")
    a.add_argument("--kappa", type=float, default=0.0, help="(capacity) margin (default 0)")
    a.add_argument("--n-t", type=int, default=200, help="(capacity) Gaussian samples t")
    a.add_argument("--average-repetitions", action="store_true",
                   help="(capacity, compare) average repeated presentations first")
    a.add_argument("--features", help="(compare) model features file (.nc assembly)")
    a.add_argument("--regression", choices=("ridge", "pls", "ols"), default="ridge",
                   help="(compare) readout (default ridge)")
    a.add_argument("--stratify-by", default="object_name",
                   help="(compare) presentation coord to stratify splits by ('none' to disable)")
    a.add_argument("--n-splits", type=int, default=10, help="(compare, latents) splits")
    a.add_argument("--dims", default="1:20", help="(latents) latent dimensions, e.g. 1:20")
    a.add_argument("--methods", default="rrr", help="(latents) nce,rrr (default rrr)")
    a.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class BatchAnalysis:
    """The per-recording analysis of a batch, picklable to any worker (plain fields only: a
    features file travels as its path and is read inside the task)."""

    name: str
    options: tuple = ()

    def __call__(self, a):
        import neurogeom as ng

        opts = dict(self.options)
        if opts.pop("average_repetitions", False):
            a = ng.average_repetitions(a)
        if self.name == "capacity":
            method = opts.pop("method")
            if method == "mft":
                return ng.manifold_capacity(a, **opts)
            if method == "glue":
                return ng.effective_geometry(a, opts["by"], n_t=opts["n_t"],
                                             kappa=opts["kappa"], seed=opts["seed"])
            return ng.simulated_capacity(a, opts["by"], seed=opts["seed"])
        if self.name == "compare":
            features = ng.io.open(opts.pop("features"))
            return ng.neural_predictivity(features, a, **opts)
        return ng.latent_dimensionality(a, **opts)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options)
        return f"{self.name}({args})"


def analysis_from_args(args) -> BatchAnalysis:
    from neurogeom.errors import AnalysisError

    if args.analysis == "capacity":
        if not args.by:
            raise AnalysisError("neurogeom batch --analysis capacity needs --by COORD")
        opts = {"method": args.method, "by": args.by, "kappa": args.kappa, "n_t": args.n_t,
                "seed": args.seed}
    elif args.analysis == "compare":
        if not args.features:
            raise AnalysisError("neurogeom batch --analysis compare needs --features FILE")
        from pathlib import Path

        if not Path(args.features).is_file():
            raise AnalysisError(f"--features: no such file: {args.features}")
        opts = {"features": str(Path(args.features).resolve()), "regression": args.regression,
                "n_splits": args.n_splits, "seed": args.seed,
                "stratify_by": None if args.stratify_by.lower() == "none" else args.stratify_by}
    else:
        from .latents import parse_dims

        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        opts = {"dims": parse_dims(args.dims), "methods": methods, "n_splits": args.n_splits,
                "seed": args.seed, "progress": False}
    opts["average_repetitions"] = bool(args.average_repetitions)
    return BatchAnalysis(args.analysis, tuple(opts.items()))


def run(args) -> int:
    import loaders
    from neurogeom import map_recordings
    from neurogeom.errors import AnalysisError
    from neurogeom.io import check_destination, to_netcdf

    from .load import load_spec

    if args.resume and not args.store:
        raise AnalysisError("neurogeom batch --resume needs --store DIR")
    check_destination(args.output)                        # before the work, not after
    load = loaders.from_spec(load_spec(args, args.load, "neurogeom batch"))
    analysis = analysis_from_args(args)
    result = map_recordings(args.sources, analysis, load, client=args.scheduler,
                            workers=args.workers, retries=args.retries, store=args.store,
                            resume=args.resume, progress=not args.quiet)
    result.attrs["command"] = "neurogeom batch"
    print(table(result, args.analysis))
    out = to_netcdf(result, args.output)
    n_failed = int((result["status"] == "failed").sum())
    print(f"{result.sizes['recording'] - n_failed} of {result.sizes['recording']} recordings "
          f"succeeded; wrote {out}")
    return 1 if n_failed else 0


def headline(result, analysis: str) -> list[str]:
    """The headline number of every row, as text (the mean over any other dim)."""
    import numpy as np

    name, _ = HEADLINES[analysis]
    out = []
    for i in range(result.sizes["recording"]):
        row = result.isel(recording=i)
        if str(row["status"].values) != "ok":
            out.append(str(row["error"].values))
        elif name in result:
            values = np.asarray(row[name].values, dtype=np.float64)
            out.append(f"{np.nanmean(values):.4g}" if np.isfinite(values).any() else "nan")
        else:
            out.append("")
    return out


def table(result, analysis: str) -> str:
    """``recording  status  seconds  <headline or error>``, one line per recording."""
    keys = [str(k) for k in result["recording"].values]
    width = max(len("recording"), *map(len, keys))
    _, title = HEADLINES[analysis]
    lines = [f"{'recording':<{width}}  {'status':<6}  {'seconds':>8}  {title} / error"]
    for key, status, seconds, text in zip(keys, result["status"].values,
                                          result["seconds"].values, headline(result, analysis)):
        lines.append(f"{key:<{width}}  {str(status):<6}  {float(seconds):8.2f}  {text}")
    return "\n".join(lines)


__all__ = ["add_parser", "run", "table", "headline", "BatchAnalysis", "analysis_from_args",
           "ANALYSES", "LOADS"]
