"""The self-contained HTML report: one file, a section per result, nothing loaded from outside.

Figures are embedded as PNG data URIs, styles are inline in one ``<style>`` element, and there
are no scripts, fonts or links to other files, so the report opens offline and can be mailed.
"""

from __future__ import annotations

import base64
import datetime
import html as _html
import io as _bytes_io

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from .. import io
from .._version import __version__
from ..errors import AnalysisError, StorageError
from .plots import figures, headline_variable

__all__ = ["html", "save_figures", "headline_numbers", "figure_data_uri"]

_STYLE = """
body{font-family:sans-serif;margin:2em auto;max-width:72em;color:#222;line-height:1.4}
h1{border-bottom:2px solid #446}h2{margin-top:2em;border-bottom:1px solid #aab}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccd;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#eef}img{max-width:100%;height:auto;display:block;margin:.5em 0}
.failed{color:#b00;font-weight:bold}.note{color:#666;font-size:.85em}
details{margin:.5em 0}code{font-size:.9em}
"""

#: variables whose single value is the headline of a result (the first ones present are shown)
_HEADLINE = ("capacity_overall", "radius_overall", "dimension_overall", "center_correlation",
             "capacity_overall_se", "center_alignment_overall", "score", "error", "ceiling",
             "ceiled_score_r2_over_ceiling", "ceiled_score_r_over_ceiling_squared",
             "power_outside_span", "accuracy", "accuracy_std", "chance",
             "center_alignment_mean", "subspace_alignment_mean", "center_axis_alignment_mean")


def figure_data_uri(fig, *, dpi: int = 90) -> str:
    """A matplotlib Figure as a ``data:image/png;base64,…`` URI (rendered with the Agg canvas,
    not pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = _bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def headline_numbers(ds: xr.Dataset) -> dict[str, str]:
    """The result's headline numbers as text: its scalar variables, the usual ones first; for
    per-recording and per-layer results the headline variable of each label."""
    out: dict[str, str] = {}
    names = [n for n in _HEADLINE if n in ds.data_vars and ds[n].ndim == 0]
    names += [str(n) for n, v in ds.data_vars.items()
              if v.ndim == 0 and str(n) not in names and v.dtype.kind in "fiub"]
    for name in names:
        out[name] = _number(ds[name].values)
    if "recording" in ds.dims:
        variable = headline_variable(ds)
        status = (np.asarray(ds["status"].values).astype(str) if "status" in ds.data_vars
                  else None)
        for i, label in enumerate(np.asarray(ds["recording"].values).astype(str)):
            if status is not None and status[i] != "ok":
                error = str(ds["error"].values[i]) if "error" in ds.data_vars else ""
                out[f"{label}"] = f"FAILED {error}".strip()
            elif variable is not None:
                out[f"{label}: {variable}"] = _number(
                    np.nanmean(np.asarray(ds[variable].values[i], dtype=float)))
    for dim in ("layer", "region"):
        if dim in ds.dims and "recording" not in ds.dims:
            for name in ("capacity", "predictivity", "decoding_accuracy"):
                if name in ds.data_vars and ds[name].dims == (dim,):
                    for label, value in zip(np.asarray(ds[dim].values).astype(str),
                                            ds[name].values):
                        out[f"{name} [{label}]"] = _number(value)
    return out


def _number(value) -> str:
    value = np.asarray(value)
    if value.dtype.kind in "fc":
        return f"{float(value):.4g}" if np.isfinite(value) else "nan"
    return str(value.item() if value.ndim == 0 else value)


def _table(rows: Mapping[str, str], header=("name", "value")) -> str:
    body = "".join(f"<tr><td>{_html.escape(str(k))}</td><td>{_html.escape(str(v))}</td></tr>"
                   for k, v in rows.items())
    return (f"<table><tr><th>{header[0]}</th><th>{header[1]}</th></tr>{body}</table>"
            if rows else "<p class='note'>none</p>")


def _attr_text(value) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return "; ".join(str(v) for v in np.asarray(value).ravel().tolist())
    return str(value)


def _attrs_tables(ds: xr.Dataset) -> str:
    attrs = dict(ds.attrs)
    parameters = [str(p) for p in np.atleast_1d(attrs.get("parameters", [])) if str(p)]
    inputs = [str(p) for p in np.atleast_1d(attrs.get("inputs", [])) if str(p)]
    params = {p: _attr_text(attrs[p]) for p in parameters if p in attrs}
    provenance = {k: _attr_text(v) for k, v in attrs.items()
                  if any(k.startswith(f"{prefix}_") for prefix in inputs)}
    versions = {k: _attr_text(v) for k, v in attrs.items() if k.endswith("version")}
    references = [str(r) for r in np.atleast_1d(attrs.get("references", [])) if str(r)]
    used = set(params) | set(provenance) | set(versions) | {
        "parameters", "inputs", "references", "analysis"}
    other = {k: _attr_text(v) for k, v in attrs.items() if k not in used}
    parts = ["<h3>Parameters</h3>", _table(params),
             "<h3>Input provenance</h3>", _table(provenance),
             "<h3>Versions</h3>", _table(versions)]
    if references:
        parts += ["<h3>References</h3><ul>"
                  + "".join(f"<li>{_html.escape(r)}</li>" for r in references) + "</ul>"]
    if other:
        parts += ["<details><summary>Other attributes</summary>", _table(other), "</details>"]
    return "".join(parts)


def _variables_table(ds: xr.Dataset) -> str:
    rows = {}
    for name, var in ds.data_vars.items():
        shape = " × ".join(f"{d} {n}" for d, n in var.sizes.items()) or "scalar"
        if var.dtype.kind in "fiu" and var.size:
            values = np.asarray(var.values, dtype=float)
            finite = values[np.isfinite(values)]
            summary = (f"{shape}; min {finite.min():.4g}, mean {finite.mean():.4g}, max "
                       f"{finite.max():.4g}" if finite.size else f"{shape}; no finite values")
        else:
            summary = shape if var.ndim else f"{shape}: {_number(var.values)}"
        rows[str(name)] = summary
    return _table(rows, header=("variable", "dims and values"))


def _section(index: int, label: str, ds: xr.Dataset, dpi: int) -> str:
    kind = str(ds.attrs.get("analysis", "unknown analysis"))
    parts = [f"<section id='result-{index}'><h2>{index}. {_html.escape(kind)}"
             f" <span class='note'>{_html.escape(label)}</span></h2>"]
    try:
        figs = figures(ds)
        problem = None
    except (AnalysisError, KeyError, ValueError, TypeError, IndexError) as exc:
        # a result that does not fit its kind's picture still gets its tables
        figs, problem = [], f"{type(exc).__name__}: {exc}"
    if "status" in ds.data_vars and "recording" in ds.dims:
        failed = [str(r) for r, s in zip(ds["recording"].values, ds["status"].values)
                  if str(s) != "ok"]
        if failed:
            parts.append(f"<p class='failed'>failed recordings: "
                         f"{_html.escape(', '.join(failed))}</p>")
    parts.append("<h3>Headline numbers</h3>" + _table(headline_numbers(ds)))
    for fig in figs:
        alt = _html.escape(str(fig.get_suptitle()) or kind)
        parts.append(f"<img alt='{alt}' src='{figure_data_uri(fig, dpi=dpi)}'>")
    if problem is not None:
        parts.append(f"<p class='note'>no figure for this result ({_html.escape(problem)})</p>")
    if not figs:
        parts.append("<h3>Variables</h3>" + _variables_table(ds))
    else:
        parts.append("<details><summary>Variables</summary>" + _variables_table(ds)
                     + "</details>")
    parts.append(_attrs_tables(ds))
    parts.append("</section>")
    return "".join(parts)


def _as_results(results) -> list[tuple[str, xr.Dataset]]:
    if isinstance(results, (xr.Dataset, str, Path)):
        results = [results]
    items = results.items() if isinstance(results, Mapping) else (
        (None, r) for r in results)
    out = []
    for label, r in items:
        if isinstance(r, (str, Path)):
            ds = io.open(r)
            label = label or Path(r).name
        else:
            ds = r
        if isinstance(ds, xr.DataArray):
            ds = ds.to_dataset(name=ds.name or "assembly")
            ds.attrs.setdefault("analysis", "assembly")
        if not isinstance(ds, xr.Dataset):
            raise AnalysisError(f"report results must be xarray Datasets or netCDF paths; got "
                                f"{type(ds).__name__} for {label!r}")
        out.append((str(label or ds.attrs.get("analysis", f"result {len(out) + 1}")), ds))
    if not out:
        raise AnalysisError("the report needs at least one result")
    return out


def html(results, path, title: str | None = None, *, dpi: int = 90) -> Path:
    """Write one self-contained HTML report of neurogeom results.

    Parameters
    ----------
    results : Dataset, path, or a sequence or mapping of them
        Result Datasets (or netCDF files written by :func:`neurogeom.io.to_netcdf`); a mapping's
        keys label the sections (default: the file name or the analysis).
    path : str or Path
        The ``.html`` file, written atomically (:func:`neurogeom.io.atomic_write`).
    title : str, optional
        Page title (default "neurogeom report").
    dpi : int
        Resolution of the embedded PNG figures.

    Returns
    -------
    Path
        The file written. It has a contents list, then per result: the headline numbers, the
        figures of :func:`neurogeom.report.figures` as PNG data URIs, the variables, and the
        parameters, input provenance, versions and references from the result's attrs. Results
        of unknown kinds get their variables and attrs (no figure); nothing in the file refers
        to another file or to the network.

    Raises
    ------
    StorageError
        The destination cannot be written.
    AnalysisError
        No results, or an item that is neither a Dataset nor a path.
    """
    path = Path(path)
    io.check_destination(path)
    items = _as_results(results)
    title = title or "neurogeom report"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    contents = "".join(
        f"<li><a href='#result-{i}'>{_html.escape(str(ds.attrs.get('analysis', 'unknown')))}"
        f"</a> <span class='note'>{_html.escape(label)}</span></li>"
        for i, (label, ds) in enumerate(items, 1))
    sections = "".join(_section(i, label, ds, dpi) for i, (label, ds) in enumerate(items, 1))
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_html.escape(title)}</h1><p class='note'>written {now} by neurogeom "
            f"{_html.escape(__version__)}; {len(items)} result(s)</p><ol>{contents}</ol>"
            f"{sections}</body></html>")

    def write(tmp):
        Path(tmp).write_text(page, encoding="utf-8")

    try:
        return io.atomic_write(path, write, suffix=".html")
    except OSError as exc:   # atomic_write names most failures itself
        raise StorageError(f"cannot write the report {path}: {exc}") from exc




def save_figures(results, folder, *, prefix: str = "", dpi: int = 72) -> list[Path]:
    """Write every figure of :func:`neurogeom.report.figures` for each result as a PNG file.

    Parameters
    ----------
    results : Dataset, path, or a sequence or mapping of them
        As for :func:`html`; a mapping's keys name the files.
    folder : str or Path
        Where the files go (created if missing); each is written atomically
        (:func:`neurogeom.io.atomic_write`).
    prefix : str
        Put in front of every file name.
    dpi : int
        Resolution of the PNG files.

    Returns
    -------
    list of Path
        ``folder / f"{prefix}{label}_{i}.png"`` for the ``i``-th figure of the result labelled
        ``label`` (characters other than letters, digits, ``.``, ``-`` and ``_`` become ``_``),
        in the order of the results. Results of kinds without a picture add no file.

    Raises
    ------
    StorageError
        A file cannot be written.
    AnalysisError
        No results, or an item that is neither a Dataset nor a path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    folder = Path(folder)
    written = []
    for label, ds in _as_results(results):
        stem = prefix + "".join(c if c.isalnum() or c in "._-" else "_" for c in label)
        for i, fig in enumerate(figures(ds)):
            FigureCanvasAgg(fig)

            def write(tmp, fig=fig):
                fig.savefig(tmp, format="png", dpi=dpi)

            try:
                written.append(io.atomic_write(folder / f"{stem}_{i}.png", write, suffix=".png"))
            except OSError as exc:
                raise StorageError(f"cannot write the figure {folder / f'{stem}_{i}.png'}: "
                                   f"{exc}") from exc
    return written
