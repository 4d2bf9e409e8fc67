"""``neurogeom align ASSEMBLY.nc --by COORD``: manifold alignment, or agreement with a second system."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "align", help="manifold alignment analysis (centers, subspaces, principal angles)",
        description="Group the points of an assembly into manifolds by a coord and measure how "
                    "they are aligned: center alignment, subspace alignment (principal angles "
                    "between the manifolds' principal subspaces), center-axis alignment and "
                    "relative positions. --other-by compares the manifolds of one coord with "
                    "those of another on the same stimuli; --other compares the geometry of the "
                    "same manifolds in a second system (rank agreement of capacity, radius and "
                    "dimension, similarity of center alignments, held-out Procrustes alignment, "
                    "with a permutation p-value).")
    p.add_argument("path", help="assembly file (.nc) written by neurogeom")
    p.add_argument("--by", required=True, help="coord whose labels define the manifolds")
    p.add_argument("--other-by", default=None,
                   help="a second coord on the same points: align its manifolds with --by's")
    p.add_argument("--other", default=None,
                   help="a second assembly (.nc) on the same stimuli and labels: compare the "
                        "two systems' geometry instead (compare_geometry)")
    p.add_argument("--n-components", type=int, default=None,
                   help="dimension of every manifold subspace (default: by --variance)")
    p.add_argument("--variance", type=float, default=0.9,
                   help="fraction of each manifold's variance its subspace keeps (default 0.9)")
    p.add_argument("--average-repetitions", action="store_true",
                   help="average repeated presentations of each stimulus first")
    p.add_argument("--n-permutations", type=int, default=1000,
                   help="--other: size of the permutation null (default 1000)")
    p.add_argument("--n-t", type=int, default=200,
                   help="--other: Gaussian samples of the capacity estimates (default 200)")
    p.add_argument("--seed", type=int, default=0, help="--other: random seed (default 0)")
    p.add_argument("-o", "--output", help="write the result Dataset to this .nc file")
    p.set_defaults(func=run)


def open_assembly(path):
    """The assembly in ``path``; LoaderError when it is missing or holds a result Dataset."""
    import xarray as xr

    from neurogeom import io
    from neurogeom.errors import LoaderError

    path = Path(path)
    if not path.exists():
        raise LoaderError(f"no such file: {path}")
    a = io.open(path)
    if not isinstance(a, xr.DataArray):
        raise LoaderError(f"{path} holds a result Dataset, not an assembly; "
                          f"variables: {sorted(map(str, a.data_vars))}")
    return a


def run(args) -> int:
    from neurogeom import assembly as asm, io
    from neurogeom.errors import AnalysisError

    sources = [args.path] + ([args.other] if args.other else [])
    if args.output is not None:
        io.check_destination(args.output, sources=sources)   # before the work, not after
    a = open_assembly(args.path)
    if args.average_repetitions:
        a = asm.average_repetitions(a)
    from neurogeom import compare_geometry, manifold_alignment

    if args.other is not None:
        if args.other_by is not None:
            raise AnalysisError("--other and --other-by cannot be combined: --other compares "
                                "the manifolds by --by in two systems")
        other = open_assembly(args.other)
        result = compare_geometry(a, other, args.by, n_permutations=args.n_permutations,
                                  n_t=args.n_t, n_components=args.n_components,
                                  variance=args.variance, seed=args.seed)
        result.attrs["input_file"] = str(args.path)
        result.attrs["other_file"] = str(args.other)
        print(f"geometry agreement by {args.by}: {result.sizes['manifold']} manifolds, "
              f"{args.n_permutations} permutations")
        for name in ("rank_agreement_capacity", "rank_agreement_radius",
                     "rank_agreement_dimension", "center_alignment_similarity",
                     "procrustes_alignment"):
            print(f"  {name:28s} {float(result[name]):8.4f}  "
                  f"p = {float(result[name + '_pvalue']):.4f}")
    else:
        result = manifold_alignment(a, args.by, n_components=args.n_components,
                                    variance=args.variance, other_by=args.other_by)
        result.attrs["input_file"] = str(args.path)
        against = f" against {args.other_by} ({result.sizes['manifold_other']})" \
            if args.other_by else ""
        print(f"manifold alignment by {args.by} ({result.sizes['manifold']} manifolds){against}")
        for name in ("center_alignment_mean", "subspace_alignment_mean",
                     "center_axis_alignment_mean"):
            print(f"  {name:28s} {float(result[name]):8.4f}")
        ks = result["n_components"].values
        print(f"  subspace dimensions          {int(ks.min())}-{int(ks.max())}")
    if args.output is not None:
        out = io.to_netcdf(result, args.output)
        print(f"wrote {out}")
    return 0
