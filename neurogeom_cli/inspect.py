"""``neurogeom inspect FILE``: summarize an assembly or result file (dims, coords, attrs)."""

from __future__ import annotations

from pathlib import Path

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="summarize an assembly/result (.nc) or recording file",
                       description="Print what a file holds: dims, coords and attrs of an "
                                   "assembly or result; or, for an NWB recording (local, "
                                   "http(s) URL or .zarr store), its subject, units and "
                                   "regions, intervals tables, imaging series and behaviour, "
                                   "so you can choose loader and analysis arguments.")
    p.add_argument("path", help="file to inspect (.nc assembly or result, .nwb file, URL, .zarr)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def summarize_xarray(obj) -> dict:
    """A JSON-ready summary of an assembly or result."""
    import numpy as np
    import xarray as xr

    def coord_info(c):
        values = np.asarray(c.values)
        info = {"dims": list(c.dims), "dtype": str(values.dtype)}
        if values.ndim == 1 and values.size:
            uniq = np.unique(values.astype(str)) if values.dtype.kind in "OUS" else np.unique(values)
            info["n_unique"] = int(uniq.size)
            info["examples"] = [str(v) for v in uniq[:5]]
        return info

    out = {"type": type(obj).__name__,
           "dims": {str(k): int(v) for k, v in obj.sizes.items()},
           "coords": {str(k): coord_info(c) for k, c in obj.coords.items()},
           "attrs": {str(k): (v.tolist() if isinstance(v, np.ndarray) else
                              v.item() if isinstance(v, np.generic) else v)
                     for k, v in obj.attrs.items()}}
    if isinstance(obj, xr.Dataset):
        out["variables"] = {str(k): list(v.dims) for k, v in obj.data_vars.items()}
    return out


def run(args) -> int:
    import json

    from neurogeom.errors import LoaderError
    from neurogeom.io import open as open_assembly

    source = args.path
    is_url = "://" in source
    if not is_url and not Path(source).exists():
        raise LoaderError(f"no such file: {source}")
    if not is_url and Path(source).suffix.lower() in NETCDF_SUFFIXES:
        summary = summarize_xarray(open_assembly(source))
    else:
        summary = _summarize_recording(source)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(_render(summary))
    return 0


def _summarize_recording(source: str) -> dict:
    """Recording files (NWB, local or remote) are summarized by the loaders package."""
    from neurogeom.errors import LoaderError

    try:
        from loaders.nwb import nwb_summary
    except ImportError as exc:
        raise LoaderError(f"cannot inspect {source}: it is not a netCDF assembly "
                          f"({', '.join(NETCDF_SUFFIXES)}) and NWB support is unavailable ({exc})")
    return nwb_summary(source)


def _render(summary: dict, indent: str = "") -> str:
    lines = []
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(_render(value, indent + "  ") if value else f"{indent}  (none)")
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(lines)
