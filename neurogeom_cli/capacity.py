"""``neurogeom capacity ASSEMBLY.nc --by COORD``: manifold capacity of an assembly file."""

from __future__ import annotations

from pathlib import Path

METHODS = ("mft", "glue", "simulated")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "capacity", help="manifold capacity (replica MFT, GLUE geometry or simulated)",
        description="Group the points of an assembly into manifolds by a coord and measure their "
                    "capacity. mft: replica mean-field theory (capacity, radius, dimension, "
                    "center correlation); glue: effective geometry; simulated: empirical "
                    "capacity by random projection.")
    p.add_argument("path", help="assembly file (.nc) written by neurogeom")
    p.add_argument("--by", required=True, help="coord whose labels define the manifolds")
    p.add_argument("--method", choices=METHODS, default="mft", help="estimator (default mft)")
    p.add_argument("-o", "--output", help="write the result Dataset to this .nc file")
    p.add_argument("--kappa", type=float, default=0.0, help="margin kappa >= 0 (mft, glue)")
    p.add_argument("--n-t", type=int, default=200,
                   help="number of Gaussian samples t (mft: per manifold; glue: per "
                        "dichotomy; default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--dimension", choices=("rank", "reference"), default="rank",
                   help="manifold dimension reduction (mft; default rank)")
    p.add_argument("--no-center-correlations", action="store_true",
                   help="skip the center-correlation removal step (mft)")
    p.add_argument("--average-repetitions", action="store_true",
                   help="average repeated presentations of each stimulus first")
    p.add_argument("--backend", choices=("numpy", "torch"), default=None,
                   help="QP solver array backend (mft; default numpy, or torch when --device "
                        "names a GPU)")
    p.add_argument("--device", default=None,
                   help="cpu (default) or a GPU such as cuda:0, which runs torch (mft)")
    p.set_defaults(func=run)


def run(args) -> int:
    from neurogeom import assembly as asm, io
    from neurogeom.errors import LoaderError
    import xarray as xr

    path = Path(args.path)
    if not path.exists():
        raise LoaderError(f"no such file: {path}")
    if args.output is not None:
        io.check_destination(args.output, sources=[path])   # before the work, not after
    a = io.open(path)
    if not isinstance(a, xr.DataArray):
        raise LoaderError(f"{path} holds a result Dataset, not an assembly; "
                          f"variables: {sorted(map(str, a.data_vars))}")
    repeats = _repeated_stimuli(a)
    if args.average_repetitions:
        a = asm.average_repetitions(a)

    from neurogeom import effective_geometry, manifold_capacity, simulated_capacity

    if args.method == "mft":
        result = manifold_capacity(
            a, by=args.by, kappa=args.kappa, n_t=args.n_t, seed=args.seed,
            center_correlations=not args.no_center_correlations, dimension=args.dimension,
            backend=args.backend, device=args.device)
    elif args.method == "glue":
        result = effective_geometry(a, args.by, n_t=args.n_t, kappa=args.kappa, seed=args.seed)
    else:
        result = simulated_capacity(a, args.by, seed=args.seed)
    result.attrs["input_file"] = str(path)
    result.attrs["points"] = ("repetition averages" if args.average_repetitions else
                              f"single trials ({repeats})" if repeats else "presentations")
    _print_summary(result, args.method)
    if args.output is not None:
        out = io.to_netcdf(result, args.output)
        print(f"wrote {out}")
    if repeats and not args.average_repetitions:
        # single trials as points give a different (smaller) capacity than trial averages:
        # say which one this is, and how to get the other (last: a failed run's error stays
        # its only line on stderr)
        _warn(f"{path} has repeated presentations ({repeats}): each single trial is a point "
              "of its manifold; pass --average-repetitions to average the repeats first")
    return 0


def _repeated_stimuli(a) -> str:
    """"" when no stimulus_id repeats, else how often they repeat (``"4 per stimulus_id"``)."""
    import numpy as np

    if "presentation" not in a.dims or "stimulus_id" not in a.coords:
        return ""
    counts = np.unique(np.asarray(a["stimulus_id"].values).astype(str), return_counts=True)[1]
    if counts.size == 0 or counts.max() < 2:
        return ""
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo if lo == hi else f'{lo}-{hi}'} per stimulus_id"


def _warn(message: str) -> None:
    import sys

    print(f"neurogeom capacity: warning: {message}", file=sys.stderr)


def _print_summary(ds, method: str) -> None:
    lines = [f"{method} capacity by {ds.attrs.get('by', '?')}: {ds.sizes.get('manifold', 0)} "
             "manifolds"]
    for name in ("capacity_overall", "radius_overall", "dimension_overall",
                 "center_correlation", "K", "center_step_spread"):
        if name in ds:
            lines.append(f"  {name}: {float(ds[name]):.6g}")
    if "capacity" in ds and "manifold" in ds["capacity"].dims and ds.sizes["manifold"] <= 20:
        for label in ds["manifold"].values:
            row = ds.sel(manifold=label)
            parts = [f"{v}={float(row[v]):.4g}" for v in ("capacity", "radius", "dimension")
                     if v in ds]
            lines.append(f"  {label}: " + " ".join(parts))
    print("\n".join(lines))


__all__ = ["add_parser", "run", "METHODS"]
