"""``neurogeom inspect FILE``: summarize an assembly or result file (dims, coords, attrs)."""

from __future__ import annotations

import json
import math
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
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary (strict JSON: NaN and infinities are written as "
                        "null)")
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
        # the numbers a result is read for (capacity_overall, score, ceiling…), as numbers
        out["results"] = {str(k): _number(v.values) for k, v in obj.data_vars.items()
                          if v.ndim == 0 and v.dtype.kind in "biuf"}
    return out


def _number(value):
    """A 0-d numeric array as a Python int or float."""
    value = value.item()
    return int(value) if isinstance(value, (bool, int)) else float(value)


def run(args) -> int:
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
        print(json.dumps(jsonable(summary), indent=2, allow_nan=False))
    else:
        print(_render(summary))
    return 0


def jsonable(value):
    """``value`` as strict JSON data: non-finite floats (NaN, +-inf, which ``json`` would write
    as the invalid tokens ``NaN``/``Infinity``) become None (``null``), numpy scalars and arrays
    become Python numbers and lists, and anything else its ``str``."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, bool, int)):
        return value
    return str(value)


def _summarize_recording(source: str) -> dict:
    """Recording files (NWB, local or remote) are summarized by the loaders package."""
    from neurogeom.errors import LoaderError

    try:
        from loaders.nwb import nwb_summary
    except ImportError as exc:
        what = "a URL" if "://" in source else source  # a URL may hold credentials
        raise LoaderError(f"cannot inspect {what}: it is not a netCDF assembly "
                          f"({', '.join(NETCDF_SUFFIXES)}) and NWB support is unavailable "
                          f"({exc})") from None
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
