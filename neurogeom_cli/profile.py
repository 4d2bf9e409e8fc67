"""``neurogeom profile FEATURES... --neural RESP.nc --by COORD``: geometry layer by layer."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "profile", help="capacity, alignment, decoding and brain agreement, layer by layer",
        description="Measure the manifolds by a coord in every model layer (one assembly file "
                    "per layer, in the order given): manifold capacity, radius, dimension, "
                    "alignment and linear decoding accuracy; with --neural also the neural "
                    "predictivity of each brain region from each layer and the agreement of "
                    "their geometry. A neural assembly whose neuroids carry several 'region' "
                    "values is split into one region each.")
    p.add_argument("features", nargs="+",
                   help="layer assemblies (.nc); a layer is named by its 'layer' attr, else by "
                        "the file name")
    p.add_argument("--neural", default=None, help="neural responses (.nc assembly)")
    p.add_argument("--by", required=True, help="coord whose labels define the manifolds")
    p.add_argument("--analyses", default=None,
                   help="comma-separated subset of capacity,alignment,decoding,predictivity,"
                        "agreement (default: all that apply)")
    p.add_argument("--n-t", type=int, default=200,
                   help="Gaussian samples of the capacity estimates (default 200)")
    p.add_argument("--n-splits", type=int, default=5, help="decoding folds (default 5)")
    p.add_argument("--n-permutations", type=int, default=1000,
                   help="permutation null of the agreement (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, help="result file (.nc)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from neurogeom import io, layer_profile
    from neurogeom.errors import LoaderError

    from .align import open_assembly

    sources = list(args.features) + ([args.neural] if args.neural else [])
    io.check_destination(args.output, sources=sources)   # before the work, not after
    features = {}
    for path in args.features:
        a = open_assembly(path)
        name = str(a.attrs.get("layer") or Path(path).stem)
        if name in features:
            raise LoaderError(f"two feature files are layer {name!r} ({path} and an earlier "
                              "one); give each layer its own file")
        features[name] = a
    neural = None
    if args.neural is not None:
        neural = open_assembly(args.neural)
        if "region" in neural.coords and neural["region"].dims == ("neuroid",):
            names = list(dict.fromkeys(np.asarray(neural["region"].values).tolist()))
            if len(names) > 1:
                neural = {str(r): neural.isel(neuroid=np.asarray(neural["region"].values) == r)
                          for r in names}
            elif neural.name is None:
                neural = neural.rename(str(names[0]))
    analyses = None if args.analyses is None else \
        [s.strip() for s in args.analyses.split(",") if s.strip()]
    result = layer_profile(features, neural, args.by, analyses=analyses, n_t=args.n_t,
                           n_splits=args.n_splits, n_permutations=args.n_permutations,
                           seed=args.seed)
    result.attrs["feature_files"] = [str(p) for p in args.features]
    if args.neural is not None:
        result.attrs["neural_file"] = str(args.neural)
    shown = [v for v in ("capacity", "radius", "dimension", "center_alignment",
                         "subspace_alignment", "decoding_accuracy") if v in result]
    print(f"{'layer':16s}" + "".join(f"{v[:12]:>13s}" for v in shown))
    for layer in result["layer"].values:
        row = result.sel(layer=layer)
        print(f"{str(layer):16s}" + "".join(f"{float(row[v]):13.4f}" for v in shown))
    if "region" in result.dims:
        for region in result["region"].values:
            row = result.sel(region=region)
            extra = "".join(f"{float(row['neural_' + v]):13.4f}" for v in shown
                            if "neural_" + v in result)
            print(f"{'[' + str(region) + ']':16s}{extra}")
            for v in ("predictivity", "procrustes_alignment"):
                if v in result:
                    values = ", ".join(f"{float(x):.3f}" for x in row[v].values)
                    print(f"  {v} from each layer: {values}")
    out = io.to_netcdf(result, Path(args.output))
    print(f"wrote {out}")
    return 0
