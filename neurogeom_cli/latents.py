"""``neurogeom latents ASSEMBLY.nc``: latent dimensionality (NCE vs ridge RRR) of an assembly."""

from __future__ import annotations

from pathlib import Path


def parse_dims(text: str) -> list[int]:
    """``"1:20"`` (inclusive range), ``"1:20:2"`` (with step) or ``"1,2,4,8"``."""
    from neurogeom.errors import AnalysisError

    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            step = parts[2] if len(parts) == 3 else 1
            dims = list(range(parts[0], parts[1] + 1, step))
        else:
            dims = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise AnalysisError(f"--dims must look like 1:20, 1:20:2 or 1,2,4; got {text!r}") from None
    if not dims:
        raise AnalysisError(f"--dims {text!r} selects no dimension")
    return dims


#: The largest latent dimension of the default sweep.
DEFAULT_MAX_DIM = 20


def default_dims(a, source_fraction: float) -> list[int]:
    """``1 … min(20, n_source, n_target)``: no more latents than either side has neuroids
    (48 units split 1/3 : 2/3 allow 16). Prints the cap when it bites."""
    if not 0 < source_fraction < 1:     # NaN too: latent_dimensionality says what is wrong
        return list(range(1, DEFAULT_MAX_DIM + 1))
    n = a.sizes["neuroid"]
    n_source = int(round(source_fraction * n))
    top = max(1, min(DEFAULT_MAX_DIM, n_source, n - n_source))
    if top < DEFAULT_MAX_DIM:
        print(f"latent dimensions 1:{top} (default 1:{DEFAULT_MAX_DIM}, capped: {n_source} "
              f"source and {n - n_source} target neuroids)")
    return list(range(1, top + 1))


def add_parser(sub) -> None:
    p = sub.add_parser(
        "latents", help="latent dimensionality: NCE vs reduced-rank regression, R2 versus d",
        description="Split neuroids into sources and targets, predict targets through d latents "
                    "with the Neural Cross-Encoder and ridge reduced-rank regression, and report "
                    "the smallest d reaching 95% of the best test R2.")
    p.add_argument("path", help="assembly (.nc): (presentation, neuroid) or (time, neuroid)")
    p.add_argument("-o", "--output", required=True, help="result file (.nc), written atomically")
    p.add_argument("--dims", default=None,
                   help="latent dimensions, e.g. 1:20 or 1,2,4 (default 1:20, capped at the "
                        "number of source and of target neuroids)")
    p.add_argument("--methods", default="nce,rrr", help="comma-separated: nce, rrr")
    p.add_argument("--splits", type=int, default=5, help="neuron/sample splits (default 5)")
    p.add_argument("--source-fraction", type=float, default=1 / 3,
                   help="fraction of neuroids used as sources (default 1/3)")
    p.add_argument("--window", type=int, default=1, help="time bins of source input "
                                                         "(continuous data; paper: 6)")
    p.add_argument("--threshold", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", default=None,
                   help="NCE encoder widths, e.g. 500,250,100 (default: the NCE's own)")
    p.add_argument("--max-epochs", type=int, default=None, help="default: the NCE's own")
    p.add_argument("--batch-size", type=int, default=None, help="default: the NCE's own")
    p.add_argument("--lr", type=float, default=None, help="default: the NCE's own")
    p.add_argument("--device", default="cpu", help="torch device for the NCE (cpu, cuda)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from neurogeom.errors import AnalysisError
    from neurogeom.io import check_destination, open as open_assembly, to_netcdf
    from neurogeom import latent_dimensionality

    check_destination(args.output, sources=[args.path])   # before the work, not after
    a = open_assembly(args.path)
    if not hasattr(a, "dims") or "neuroid" not in a.dims:
        raise AnalysisError(f"{args.path} holds no assembly with a 'neuroid' dim")
    nce_params = {}
    if args.hidden is not None:
        try:
            nce_params["hidden"] = tuple(int(h) for h in args.hidden.split(",") if h.strip())
        except ValueError:
            raise AnalysisError(f"--hidden must be comma-separated integers, got "
                                f"{args.hidden!r}") from None
    for name in ("max_epochs", "batch_size", "lr"):
        if getattr(args, name) is not None:
            nce_params[name] = getattr(args, name)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    ds = latent_dimensionality(
        a, dims=parse_dims(args.dims) if args.dims else default_dims(a, args.source_fraction),
        source_fraction=args.source_fraction,
        n_splits=args.splits, seed=args.seed, methods=methods, threshold=args.threshold,
        window=args.window,
        nce_params=nce_params,
        device=args.device,
        progress=False if args.quiet else None)
    ds.attrs["input"] = str(Path(args.path))
    to_netcdf(ds, args.output)
    mean = ds["r2"].mean("split")
    print(f"{args.path}: {ds.attrs['n_source']} sources -> {ds.attrs['n_target']} targets, "
          f"{ds.sizes['split']} split(s), split by {ds.attrs['split_by']}")
    print("d      " + "  ".join(f"{m:>7}" for m in ds.method.values))
    for d in ds.latent_dim.values:
        row = "  ".join(f"{float(mean.sel({'method': m, 'latent_dim': d})):7.3f}"
                        for m in ds.method.values)
        print(f"{int(d):<6} {row}")
    for m in ds.method.values:
        dim = ds["dimension"].sel({"method": m}).values
        shown = ", ".join("none" if np.isnan(v) else str(int(v)) for v in dim)
        print(f"{m}: {args.threshold:.0%} dimension per split: {shown}")
    print(f"wrote {args.output}")
    return 0
