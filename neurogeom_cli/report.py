"""``neurogeom report RESULT.nc ... -o report.html``: one self-contained HTML page of results."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report", help="an HTML report (figures, headline numbers, provenance) of result files",
        description="Write one self-contained HTML file (figures embedded as PNG, no external "
                    "scripts, fonts or styles) with a section per result file: its figures, "
                    "headline numbers, parameters, input provenance, versions and references. "
                    "Results of unknown kinds get their variables and attributes.")
    p.add_argument("results", nargs="+", help="result files (.nc) written by neurogeom")
    p.add_argument("-o", "--output", required=True, help="the report (.html)")
    p.add_argument("--title", default=None, help="page title (default 'neurogeom report')")
    p.add_argument("--dpi", type=int, default=90, help="figure resolution (default 90)")
    p.set_defaults(func=run)


def run(args) -> int:
    import xarray as xr

    from neurogeom import report
    from neurogeom.errors import AnalysisError
    from neurogeom.io import check_destination, open as open_result

    check_destination(args.output, sources=args.results)   # before reading anything
    if args.dpi < 10:
        raise AnalysisError(f"--dpi must be at least 10, got {args.dpi}")
    results = {}
    for path in args.results:
        obj = open_result(path)
        if isinstance(obj, xr.DataArray):
            obj = obj.to_dataset(name=obj.name or "assembly")
            obj.attrs.setdefault("analysis", "assembly")
        results[str(path)] = obj
    out = report.html(results, args.output, title=args.title, dpi=args.dpi)
    print(f"wrote {out} ({len(results)} result(s))")
    return 0
