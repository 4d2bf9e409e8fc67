"""``neurogeom load FILE --spikes|--calcium|--binned -o out.nc``: an NWB recording to an assembly."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "load", help="load an NWB recording into an assembly (.nc)",
        description="Read spikes or calcium responses around stimulus presentations, or binned "
                    "continuous activity with behavioural covariates, from an NWB file, URL or "
                    "zarr store, and write the assembly to netCDF. Run `neurogeom inspect FILE` "
                    "first to see the intervals tables, columns and covariates.")
    p.add_argument("source", help="NWB file, http(s) URL or .zarr store")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--spikes", action="store_true", help="spike rates/counts per presentation")
    kind.add_argument("--calcium", action="store_true", help="mean dF/F per presentation")
    kind.add_argument("--binned", action="store_true", help="(time, neuroid) activity in bins")
    p.add_argument("-o", "--output", required=True, help="output netCDF file (.nc)")
    add_load_options(p)
    p.set_defaults(func=run)


def add_load_options(p) -> None:
    """The options of every kind of load (shared with ``neurogeom batch``)."""
    p.add_argument("--intervals", help="intervals table (e.g. trials, natural_scenes_presentations)")
    p.add_argument("--stimulus", help="column identifying the stimulus (e.g. stimulus_presented)")
    p.add_argument("--window", nargs=2, type=float, metavar=("START", "STOP"),
                   help="window in s relative to onset")
    p.add_argument("--bins", type=int, help="divide the window into this many time bins")
    p.add_argument("--baseline", nargs=2, type=float, metavar=("START", "STOP"),
                   help="(calcium) baseline window subtracted from the response")
    p.add_argument("--series", help="(calcium/binned) RoiResponseSeries name or path")
    p.add_argument("--counts", action="store_true", help="spike counts instead of spikes/s")
    p.add_argument("--region", action="append", help="keep units in this area (repeatable)")
    p.add_argument("--units", type=int, nargs="+", help="unit/ROI ids to keep")
    p.add_argument("--exclude", action="append", metavar="COLUMN=VALUE",
                   help="drop presentations whose COLUMN equals VALUE (repeatable), "
                        "e.g. --exclude frame=-1")
    p.add_argument("--bin-size", type=float, help="(binned) bin width in s")
    p.add_argument("--epoch", metavar="TABLE|START:STOP[,START:STOP...]",
                   help="(binned) restrict the bins to the rows of an intervals table (e.g. "
                        "epochs) or to explicit spans in s, e.g. --epoch 0:600,600:1200")
    p.add_argument("--onsets", metavar="TABLE.csv",
                   help="(spikes/calcium) presentations from a CSV file with a start_time "
                        "column (onsets, s) and the --stimulus column, instead of --intervals")
    p.add_argument("--covariates", nargs="+", help="(binned) behavioural series to add as coords")


def _parse_exclude(items):
    from neurogeom.errors import LoaderError

    if not items:
        return None
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise LoaderError(f"--exclude takes COLUMN=VALUE, got {item!r}")
        col, value = item.split("=", 1)
        for convert in (int, float):
            try:
                value = convert(value)
                break
            except ValueError:
                continue
        else:
            value = {"true": True, "false": False}.get(value.lower(), value)
        out.setdefault(col, []).append(value)
        if isinstance(value, int) and not isinstance(value, bool):
            out[col].append(float(value))  # Allen stores frame as float: -1 must match -1.0
    return out


def _need(args, command, *names):
    from neurogeom.errors import LoaderError

    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise LoaderError(f"{command} needs {' and '.join(missing)} for this kind of load")


def load_spec(args, kind: str, command: str = "neurogeom load") -> dict:
    """The declarative spec (:func:`loaders.from_spec`) of a load of ``kind`` ("spikes",
    "calcium" or "binned") from the parsed options; LoaderError when a needed one is missing."""
    region = args.region[0] if args.region and len(args.region) == 1 else args.region
    if kind == "binned":
        _need(args, command, "bin_size")
        return {"kind": kind, "bin_size": args.bin_size, "epoch": _parse_epoch(args.epoch),
                "covariates": args.covariates, "units": args.units, "region": region,
                "rate": not args.counts, "series": args.series}
    if getattr(args, "onsets", None) is not None:
        _need(args, command, "stimulus", "window")
        intervals = _onsets(args.onsets)
    else:
        _need(args, command, "intervals", "stimulus", "window")
        intervals = args.intervals
    spec = {"kind": kind, "intervals": intervals, "stimulus": args.stimulus,
            "window": tuple(args.window), "bins": args.bins, "region": region,
            "exclude": _parse_exclude(args.exclude)}
    if kind == "spikes":
        return {**spec, "units": args.units, "rate": not args.counts}
    return {**spec, "rois": args.units, "series": args.series,
            "baseline": tuple(args.baseline) if args.baseline else None}


def _parse_epoch(text):
    """``--epoch``: an intervals table name, or ``START:STOP[,START:STOP...]`` in seconds."""
    from neurogeom.errors import LoaderError

    if text is None or ":" not in text:
        return text
    spans = []
    for part in text.split(","):
        try:
            a, b = (float(x) for x in part.split(":"))
        except ValueError:
            raise LoaderError(f"--epoch takes an intervals table name or START:STOP[,START:STOP"
                              f"...] in seconds, got {text!r}") from None
        spans.append((a, b))
    return spans


def _onsets(path):
    """The presentations of ``--onsets TABLE.csv`` as a DataFrame (start_time + columns)."""
    import pandas as pd

    from neurogeom.errors import LoaderError

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise LoaderError(f"--onsets {path}: cannot read it as CSV ({exc})") from None
    if "start_time" not in table.columns:
        raise LoaderError(f"--onsets {path} has no start_time column; columns: "
                          f"{', '.join(map(str, table.columns))}")
    return table


def _epoch_hint(message: str) -> str:
    """The loaders suggest explicit spans as ``epoch=[(a, b), ...]``; the flag takes
    ``--epoch a:b,c:d``."""
    import re

    def flag(match) -> str:
        pairs = re.findall(r"\(([^,()]+), ([^,()]+)\)", match.group(1))
        return "--epoch " + ",".join(f"{a}:{b}" for a, b in pairs)

    return re.sub(r"epoch=\[((?:\([^()]*\)(?:, )?)+)(?:, …)?\]", flag, message)


def run(args) -> int:
    import loaders
    from neurogeom.errors import LoaderError
    from neurogeom.io import check_destination, to_netcdf

    check_destination(args.output, sources=[args.source])   # before the work, not after

    kind = "binned" if args.binned else "spikes" if args.spikes else "calcium"
    try:
        result = loaders.from_spec(load_spec(args, kind))(args.source)
    except LoaderError as exc:
        raise LoaderError(_epoch_hint(str(exc))) from None
    path = to_netcdf(result, args.output)
    sizes = ", ".join(f"{k}: {v}" for k, v in result.sizes.items())
    print(f"wrote {path} ({sizes}; {result.attrs.get('units', '')})")
    return 0
