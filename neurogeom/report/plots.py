"""Figures of neurogeom results: one function per result kind, each returning a matplotlib Figure.

Every function takes a result Dataset (as returned by an analysis or read back with
:func:`neurogeom.io.open`) and returns a :class:`matplotlib.figure.Figure` built with the object
API (no pyplot state, nothing shown), so figures can be saved, embedded in the HTML report
(:func:`neurogeom.report.html`) or drawn in a notebook. :func:`figures` picks the functions that
apply to a result from its ``analysis`` attr.

Every function accepts the ``recording``, ``layer`` and ``region`` dims a result has (a batch
from :func:`neurogeom.map_recordings`, a layer profile, a stack of regions): the keywords
``recording=``, ``layer=`` and ``region=`` pick one label along them (``report.decoding(batch,
recording="s1.nwb")``). :func:`capacity_geometry`, :func:`layer_profile`, :func:`predictivity`
(of a layer profile), :func:`cvpca_spectrum` and :func:`batch_summary` also draw along such a
dim, one line (or group of bars) per label; the others draw one label at a time and, given a
result with such a dim and no label picked, raise an :class:`~neurogeom.errors.AnalysisError`
naming the dim and its labels.
"""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

from ..errors import AnalysisError

__all__ = ["capacity_geometry", "alignment_matrices", "decoding", "predictivity",
           "spectral", "latent_dimensionality", "cvpca_spectrum", "noise_ceiling", "separability",
           "batch_summary", "layer_profile", "figures", "PLOTS"]

#: dims along which a result can be repeated (one line / bar group per label)
GROUP_DIMS = ("recording", "layer", "region")


def _figure(n_axes: int = 1, *, width: float = 4.2, height: float = 3.4):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_axes, height), layout="constrained")
    axes = fig.subplots(1, n_axes, squeeze=False)[0]
    return fig, list(axes)


def _need(ds: xr.Dataset, names, what: str) -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise AnalysisError(f"cannot draw {what}: the result has no variable(s) {missing}; "
                            f"it has {sorted(map(str, ds.data_vars))} "
                            f"(analysis {ds.attrs.get('analysis', 'unknown')!r})")


def _labels(ds: xr.Dataset, dim: str) -> list[str]:
    return [str(v) for v in (ds[dim].values if dim in ds.coords else range(ds.sizes[dim]))]


def _group_dim(var: xr.DataArray, inner: str | None = None) -> str | None:
    """The first of :data:`GROUP_DIMS` that ``var`` has (other than ``inner``)."""
    for d in GROUP_DIMS:
        if d in var.dims and d != inner:
            return d
    return None


def _title(ds: xr.Dataset, text: str) -> str:
    name = ds.attrs.get("analysis")
    return f"{text} ({name})" if name else text


def _groups(*, along: tuple = (), needs: tuple = ()):
    """Give a plot function the ``recording=``, ``layer=``, ``region=`` keywords.

    ``along``: the group dims the function draws along itself (one line per label); any other
    group dim left in the result after the picks is refused with the labels it has. ``needs``:
    dims the function cannot draw without (a pick along them is refused).
    """
    def decorate(func):
        @functools.wraps(func)
        def wrapper(ds: xr.Dataset, *args, recording=None, layer=None, region=None, **kwargs):
            picks = {d: v for d, v in (("recording", recording), ("layer", layer),
                                       ("region", region)) if v is not None}
            for dim, value in picks.items():
                if dim in needs:
                    raise AnalysisError(f"{func.__name__} draws along {dim!r}; it cannot pick "
                                        f"one {dim} ({dim}={value!r}): leave {dim}= out")
                if dim not in ds.dims:
                    raise AnalysisError(f"{func.__name__}: {dim}={value!r} given, but the result "
                                        f"has no {dim!r} dim; its dims are "
                                        f"{sorted(map(str, ds.dims))}")
                labels = _labels(ds, dim)
                if str(value) not in labels:
                    raise AnalysisError(f"{func.__name__}: {dim} {value!r} is not in the result; "
                                        f"its {dim} labels are {labels}")
                ds = ds.isel({dim: labels.index(str(value))})
            left = [d for d in GROUP_DIMS if d in ds.dims and d not in along]
            if left:
                dim = left[0]
                raise AnalysisError(
                    f"{func.__name__} draws one {dim} at a time; the result has a {dim!r} dim "
                    f"with labels {_labels(ds, dim)}: pick one with {dim}=..., e.g. "
                    f"{func.__name__}(result, {dim}={_labels(ds, dim)[0]!r})")
            fig = func(ds, *args, **kwargs)
            if picks:
                fig.suptitle(f"{fig.get_suptitle()}: "
                             + ", ".join(f"{d} {v}" for d, v in picks.items()))
            return fig
        return wrapper
    return decorate


# --------------------------------------------------------------------------------------------
# capacity and manifold geometry
# --------------------------------------------------------------------------------------------

_GEOMETRY = (("capacity", "capacity α_M"), ("radius", "radius R_M"), ("dimension", "dimension D_M"))


@_groups(along=GROUP_DIMS)
def capacity_geometry(ds: xr.Dataset):
    """Capacity, radius and dimension of each object manifold (one axis each).

    Per-manifold values are bars; the overall value (``*_overall``, the harmonic mean for
    capacity, Chung, Lee & Sompolinsky 2018 eq. 16) is a dashed horizontal line, with its
    sampling standard error (``*_overall_se``: over the sampled dichotomies and t-vectors, as
    effective and correlated capacity report it) as a grey band around it. With a
    ``recording``/``layer``/``region`` dim, the overall value is a line along that dim (error
    bars: its sampling SE) and the range over manifolds a shaded band (Cohen et al. 2020
    Fig. 2).
    """
    names = [n for n, _ in _GEOMETRY if n in ds.data_vars or f"{n}_overall" in ds.data_vars]
    if not names:
        _need(ds, ["capacity"], "the manifold geometry")
    fig, axes = _figure(len(names))
    for ax, name in zip(axes, names):
        label = dict(_GEOMETRY)[name]
        per = ds[name] if name in ds.data_vars and "manifold" in ds[name].dims else None
        overall = ds.get(f"{name}_overall")
        group = _group_dim(per if per is not None else overall) if (
            per is not None or overall is not None) else None
        if group is not None:
            x = np.arange(ds.sizes[group])
            if overall is not None:
                y = overall.transpose(group, ...).values.reshape(len(x), -1)[:, 0]
                se = ds.get(f"{name}_overall_se")
                if se is not None and group in se.dims:
                    ax.errorbar(x, y, yerr=se.transpose(group, ...).values.reshape(len(x), -1)
                                [:, 0], fmt="o-", color="k", capsize=3, label="overall ± SE")
                else:
                    ax.plot(x, y, "o-", color="k", label="overall")
            if per is not None:
                values = np.asarray(per.transpose(group, "manifold").values, dtype=float)
                values = np.where(np.isfinite(values), values, np.nan)
                lo = np.full(len(x), np.nan)
                hi = np.full(len(x), np.nan)
                rows = np.isfinite(values).any(1)      # a failed recording: a gap
                lo[rows], hi[rows] = np.nanmin(values[rows], 1), np.nanmax(values[rows], 1)
                ax.fill_between(x, lo, hi, alpha=0.25, label="manifold range")
            ax.set_xticks(x, _labels(ds, group), rotation=30, ha="right")
            ax.set_xlabel(group)
            ax.legend(fontsize=7)
        else:
            if per is not None:
                x = np.arange(ds.sizes["manifold"])
                values = np.asarray(per.values, dtype=float)
                finite = np.isfinite(values)
                ax.bar(x[finite], values[finite], color="C0", alpha=0.8)
                for i in np.flatnonzero(~finite):   # inf capacity: every dichotomy separable
                    ax.annotate("∞" if values[i] > 0 else "nan", (x[i], 0), ha="center",
                                va="bottom", color="C3")
                ax.set_xticks(x, _labels(ds, "manifold"), rotation=45, ha="right", fontsize=7)
                ax.set_xlabel("manifold")
            if overall is not None:
                ax.axhline(float(overall), color="k", ls="--",
                           label=f"overall {float(overall):.3g}")
                se = ds.get(f"{name}_overall_se")
                if se is not None and se.ndim == 0 and np.isfinite(float(se)):
                    ax.axhspan(float(overall) - float(se), float(overall) + float(se),
                               color="k", alpha=0.12, label=f"± SE {float(se):.2g} (sampling)")
                ax.legend(fontsize=7)
        ax.set_ylabel(label)
    fig.suptitle(_title(ds, "manifold geometry"))
    return fig


@_groups()
def separability(ds: xr.Dataset):
    """Simulated capacity (Cohen et al. 2020): the fraction of separable dichotomies against
    the projection dimension n, with the critical n* (50% separable) and its confidence
    interval; the capacity is P / n*."""
    _need(ds, ["p_separable", "n_star"], "the separable fraction")
    fig, (ax,) = _figure(1, width=5.0)
    n = ds["projection_dim"].values
    order = np.argsort(n)
    ax.plot(n[order], ds["p_separable"].values[order], "o-", color="C0",
            label="separable fraction")
    n_star = float(ds["n_star"])
    ax.axvline(n_star, color="k", ls="--", label=f"n* = {n_star:.3g}")
    if "n_star_ci_low" in ds.data_vars:
        ax.axvspan(float(ds["n_star_ci_low"]), float(ds["n_star_ci_high"]), color="gray",
                   alpha=0.2, label="n* interval")
    ax.axhline(0.5, color="gray", ls=":", lw=1)
    ax.set_xlabel("projection dimension n")
    ax.set_ylabel("fraction of dichotomies separable")
    if "capacity" in ds.data_vars and ds["capacity"].ndim == 0:
        ax.set_title(f"capacity P/n* = {float(ds['capacity']):.3g}", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(_title(ds, "simulated capacity"))
    return fig


@_groups(along=("layer", "region"), needs=("layer",))
def layer_profile(ds: xr.Dataset):
    """Capacity, radius and dimension (and alignment, decoding where present) along ``layer``.

    The model's value per layer is a line (one line per label of any other dim it has). Each
    brain region's own value (``neural_capacity``, … on ``region``, as
    :func:`neurogeom.layer_profile` writes them) is a dashed horizontal line in its colour, so
    the layers can be read against the regions (Kuoch et al. 2024; Cohen et al. 2020); chance
    is a dotted line on the decoding axis.
    """
    _need(ds, ["capacity"], "a layer profile")
    names = [n for n in ("capacity", "radius", "dimension", "center_correlation",
                         "center_alignment", "subspace_alignment", "decoding_accuracy")
             if n in ds.data_vars and "layer" in ds[n].dims]
    fig, axes = _figure(len(names), width=3.3)
    x = np.arange(ds.sizes["layer"])
    for ax, name in zip(axes, names):
        var = ds[name]
        others = [d for d in var.dims if d != "layer"]
        if others:
            var = var.transpose("layer", *others)
            series = var.values.reshape(len(x), -1)
            labels = (_labels(ds, others[0]) if len(others) == 1
                      else [str(i) for i in range(series.shape[1])])
            for j in range(series.shape[1]):
                ax.plot(x, series[:, j], "o-", label=labels[j])
        else:
            ax.plot(x, var.values, "o-", color="C0", label="model")
        neural = ds.get(f"neural_{name}")
        if neural is not None:
            values = np.asarray(neural.values, dtype=float).ravel()
            regions = (_labels(ds, neural.dims[0]) if neural.ndim == 1
                       else [str(ds.attrs.get("region", "brain"))])
            if neural.ndim == 0 and "region" in ds.coords and ds["region"].ndim == 0:
                regions = [str(ds["region"].values)]     # one region picked (region=...)
            for j, (label, value) in enumerate(zip(regions, values)):
                if np.isfinite(value):
                    ax.axhline(value, color=f"C{j + 1}", ls="--", lw=1, label=label)
        if name == "decoding_accuracy" and "chance" in ds.data_vars:
            ax.axhline(float(np.nanmean(ds["chance"].values)), color="gray", ls=":",
                       label="chance")
        if len(ax.get_lines()) > 1:
            ax.legend(fontsize=7)
        ax.set_xticks(x, _labels(ds, "layer"), rotation=30, ha="right", fontsize=7)
        ax.set_xlabel("layer")
        ax.set_ylabel(name.replace("_", " "))
    fig.suptitle(_title(ds, "geometry across layers"))
    return fig


# --------------------------------------------------------------------------------------------
# alignment and decoding
# --------------------------------------------------------------------------------------------

@_groups()
def alignment_matrices(ds: xr.Dataset):
    """Center and subspace alignment between manifolds as two matrices with manifold labels.

    Also the principal angles (degrees) of each manifold with the others, when present.
    """
    _need(ds, ["center_alignment", "subspace_alignment"], "alignment matrices")
    fig, axes = _figure(2, width=4.4)
    for ax, name in zip(axes, ("center_alignment", "subspace_alignment")):
        var = ds[name]
        if var.ndim != 2:
            raise AnalysisError(f"{name} must be a manifold × manifold_other matrix, got dims "
                                f"{var.dims}")
        image = ax.imshow(var.values, vmin=0, vmax=1 if np.nanmax(var.values) <= 1 else None,
                          cmap="viridis")
        rows, cols = var.dims
        ax.set_xticks(np.arange(var.shape[1]), _labels(ds, cols), rotation=90, fontsize=7)
        ax.set_yticks(np.arange(var.shape[0]), _labels(ds, rows), fontsize=7)
        ax.set_xlabel(cols)
        ax.set_ylabel(rows)
        mean = ds.get(f"{name}_mean")
        ax.set_title(name.replace("_", " ") + (f" (mean {float(mean):.3g})"
                                               if mean is not None else ""), fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(_title(ds, "manifold alignment"))
    return fig


@_groups()
def decoding(ds: xr.Dataset):
    """Decoding accuracy against chance: overall accuracy with its spread over splits and
    one-vs-rest accuracy per manifold (bars), chance as a dashed line; the pairwise accuracy
    matrix when present."""
    _need(ds, ["accuracy", "chance"], "decoding accuracy")
    pairwise = "pairwise_accuracy" in ds.data_vars
    fig, axes = _figure(2 if pairwise else 1, width=4.4)
    ax = axes[0]
    labels = ["all"]
    heights = [float(ds["accuracy"].mean())]
    errors = [float(ds["accuracy_std"]) if "accuracy_std" in ds.data_vars else 0.0]
    if "one_vs_rest_accuracy" in ds.data_vars:
        ovr = ds["one_vs_rest_accuracy"]
        labels += _labels(ds, ovr.dims[0])
        heights += [float(v) for v in ovr.values]
        errors += [0.0] * ovr.size
    x = np.arange(len(labels))
    ax.bar(x, heights, yerr=errors, color=["C1"] + ["C0"] * (len(x) - 1), capsize=3)
    ax.axhline(float(ds["chance"]), color="k", ls="--", label=f"chance {float(ds['chance']):.2f}")
    if "accuracy_split" in ds.data_vars:
        splits = ds["accuracy_split"].values.ravel()
        ax.plot(np.zeros(splits.size), splits, "k.", ms=3, label="splits")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("manifold (one vs rest)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)
    if pairwise:
        var = ds["pairwise_accuracy"]
        image = axes[1].imshow(var.values, vmin=0.5, vmax=1.0, cmap="magma")
        rows, cols = var.dims
        axes[1].set_xticks(np.arange(var.shape[1]), _labels(ds, cols), rotation=90, fontsize=7)
        axes[1].set_yticks(np.arange(var.shape[0]), _labels(ds, rows), fontsize=7)
        axes[1].set_xlabel(cols)
        axes[1].set_ylabel(rows)
        axes[1].set_title("pairwise accuracy", fontsize=9)
        fig.colorbar(image, ax=axes[1], shrink=0.8)
    fig.suptitle(_title(ds, "decoding"))
    return fig


# --------------------------------------------------------------------------------------------
# model-to-brain
# --------------------------------------------------------------------------------------------

@_groups(along=("layer", "region"))
def predictivity(ds: xr.Dataset):
    """Neural predictivity: the median Pearson r with its per-neuroid spread and the noise
    ceiling as a band (Schrimpf et al. 2018).

    For a ``neural_predictivity`` result: the per-neuroid r (points, jittered) and their median
    per split, beside each neuroid's ceiling. For a ``layer_profile`` (``predictivity`` on
    ``layer`` [× ``region``]): one line per region across layers, each region's ceiling as a
    shaded band (0.9–1 × ceiling) in the line's colour. For ``neural_predictivity`` results of
    one region stacked along ``layer`` (``xr.concat([...], dim="layer")``): each layer's
    per-neuroid r (points), the median r with its error (line) and the ceiling ± its error
    (band).
    """
    if "predictivity" in ds.data_vars and "layer" in ds["predictivity"].dims:
        var = ds["predictivity"].transpose("layer", ...)
        fig, (ax,) = _figure(1, width=5.5)
        x = np.arange(ds.sizes["layer"])
        series = var.values.reshape(len(x), -1)
        regions = _labels(ds, var.dims[1]) if var.ndim == 2 else ["all"]
        for j in range(series.shape[1]):
            ax.plot(x, series[:, j], "o-", color=f"C{j}", label=regions[j])
            if "ceiling" in ds.data_vars:
                ceiling = ds["ceiling"]
                # one ceiling per region (a single region keeps its length-1 'region' dim)
                values = np.asarray(ceiling.values, dtype=float).ravel()
                c = float(values[j] if values.size > 1 else values[0])
                ax.axhspan(0.9 * c, c, color=f"C{j}", alpha=0.15)
                ax.axhline(c, color=f"C{j}", ls=":", lw=1)
        ax.set_xticks(x, _labels(ds, "layer"), rotation=30, ha="right")
        ax.set_xlabel("layer")
        ax.set_ylabel("predictivity (median r)")
        ax.legend(fontsize=7, title="region")
        fig.suptitle(_title(ds, "predictivity across layers"))
        return fig
    _need(ds, ["r", "score"], "predictivity")
    if "layer" in ds["score"].dims:
        return _predictivity_by_layer(ds)
    fig, axes = _figure(2)
    ax = axes[0]
    r = ds["r_per_neuroid"].values if "r_per_neuroid" in ds.data_vars else \
        ds["r"].mean("split").values
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, r.size)   # fixed: same picture
    ax.plot(jitter, r, ".", color="C0", alpha=0.6, label="neuroids")
    ax.errorbar([0.4], [float(ds["score"])],
                yerr=[float(ds["error"])] if "error" in ds.data_vars else None,
                fmt="o", color="k", capsize=4, label=f"median r {float(ds['score']):.3f}")
    if "ceiling" in ds.data_vars:
        c = float(ds["ceiling"])
        err = float(ds["ceiling_error"]) if "ceiling_error" in ds.data_vars else 0.0
        ax.axhspan(c - err, c + err, color="C2", alpha=0.25)
        ax.axhline(c, color="C2", ls="--", label=f"ceiling {c:.3f}")
    ax.set_xlim(-0.5, 0.8)
    ax.set_xticks([])
    ax.set_ylabel("Pearson r (held-out stimuli)")
    ax.legend(fontsize=7)
    ax = axes[1]
    if "ceiling_per_neuroid" in ds.data_vars:
        ax.plot(ds["ceiling_per_neuroid"].values, r, ".", color="C0")
        lim = [min(0.0, np.nanmin(r)), 1.0]
        ax.plot(lim, lim, color="gray", lw=1, label="r = ceiling")
        ax.set_xlabel("neuroid ceiling")
        ax.set_ylabel("neuroid r")
        ax.legend(fontsize=7)
    else:
        ax.plot(np.arange(1, ds.sizes["split"] + 1), ds["score_per_split"].values, "o-")
        ax.set_xlabel("split")
        ax.set_ylabel("median r")
    fig.suptitle(_title(ds, "neural predictivity"))
    return fig


def _predictivity_by_layer(ds: xr.Dataset):
    """Neural predictivity results of one region stacked along ``layer``
    (``xr.concat(results, dim="layer")``): each layer's per-neuroid r as jittered points, the
    median r with its error as a line, the region's noise ceiling (± its error) as a band."""
    others = [d for d in ds["score"].dims if d != "layer"]
    if others:
        raise AnalysisError(f"predictivity across layers draws one {others[0]} at a time; pick "
                            f"one with {others[0]}=..., e.g. {others[0]}="
                            f"{_labels(ds, others[0])[0]!r}")
    fig, (ax,) = _figure(1, width=5.5)
    x = np.arange(ds.sizes["layer"])
    r = (ds["r_per_neuroid"] if "r_per_neuroid" in ds.data_vars else ds["r"].mean("split"))
    r = np.asarray(r.transpose("layer", ...).values, dtype=float).reshape(len(x), -1)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, r.shape)   # fixed: same picture
    ax.plot((x[:, None] + jitter).ravel(), r.ravel(), ".", color="C0", alpha=0.35, ms=3,
            label="neuroids")
    error = ds["error"].values if "error" in ds.data_vars else None
    ax.errorbar(x, ds["score"].values, yerr=error, fmt="o-", color="k", capsize=3,
                label="median r")
    if "ceiling" in ds.data_vars:
        c = float(np.nanmean(ds["ceiling"].values))       # one target: the same at every layer
        err = (float(np.nanmean(ds["ceiling_error"].values)) if "ceiling_error" in ds.data_vars
               else 0.0)
        ax.axhspan(c - err, c + err, color="C2", alpha=0.25)
        ax.axhline(c, color="C2", ls="--", label=f"ceiling {c:.3f}")
    ax.set_xticks(x, _labels(ds, "layer"), rotation=30, ha="right")
    ax.set_xlabel("layer")
    ax.set_ylabel("Pearson r (held-out stimuli)")
    ax.legend(fontsize=7)
    fig.suptitle(_title(ds, "neural predictivity across layers"))
    return fig


@_groups()
def noise_ceiling(ds: xr.Dataset):
    """Split-half noise ceiling: histogram of the per-neuroid ceilings, the median as a line."""
    _need(ds, ["ceiling_per_neuroid", "ceiling"], "the noise ceiling")
    fig, (ax,) = _figure(1)
    values = ds["ceiling_per_neuroid"].values
    ax.hist(values[np.isfinite(values)], bins=20, color="C2", alpha=0.8)
    ax.axvline(float(ds["ceiling"]), color="k", ls="--", label=f"ceiling {float(ds['ceiling']):.3f}")
    ax.set_xlabel("Spearman–Brown corrected split-half r")
    ax.set_ylabel("neuroids")
    ax.legend(fontsize=7)
    fig.suptitle(_title(ds, "noise ceiling"))
    return fig


@_groups()
def spectral(ds: xr.Dataset):
    """Spectral theory of neural prediction (Canatar et al. 2023): E_g(p) in theory (line) and
    measured (points with SEM) against the number of training stimuli p; the model's
    eigenspectrum and the neural alignment per mode (log–log); the error-mode radius R_em and
    dimension D_em against p."""
    _need(ds, ["theory_error", "empirical_error", "eigenvalue", "alignment"],
          "the spectral decomposition")
    fig, axes = _figure(3)
    p = ds["p"].values
    ax = axes[0]
    ax.plot(p, ds["theory_error"].values, "-", color="C0", label="theory")
    sem = ds["empirical_error_sem"].values if "empirical_error_sem" in ds.data_vars else None
    ax.errorbar(p, ds["empirical_error"].values, yerr=sem, fmt="o", color="C1", ms=3, capsize=2,
                label="empirical")
    ax.set_xscale("log")
    ax.set_xlabel("training stimuli p")
    ax.set_ylabel("normalized error E_g(p)")
    ax.legend(fontsize=7)
    ax = axes[1]
    mode = np.arange(1, ds.sizes["mode"] + 1)
    lam = ds["eigenvalue"].values
    keep = lam > 0
    ax.loglog(mode[keep], lam[keep] / lam[keep].sum(), "-", color="C0", label="eigenvalue λ_i")
    w = ds["alignment"].values
    keep_w = w > 0
    ax.loglog(mode[keep_w], w[keep_w] / w[keep_w].sum(), ".", color="C3", ms=3,
              label="alignment W_i")
    ax.set_xlabel("mode i")
    ax.set_ylabel("fraction")
    ax.legend(fontsize=7)
    ax = axes[2]
    if "error_mode_radius" in ds.data_vars:
        ax.plot(p, ds["error_mode_radius"].values, "o-", ms=3, color="C4", label="R_em")
        ax.set_xscale("log")
        ax.set_ylabel("R_em")
        ax.set_xlabel("training stimuli p")
        twin = ax.twinx()
        twin.plot(p, ds["error_mode_dimension"].values, "s--", ms=3, color="C5", label="D_em")
        twin.set_ylabel("D_em")
        lines = ax.get_lines() + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], fontsize=7)
    fig.suptitle(_title(ds, "spectral decomposition"))
    return fig


# --------------------------------------------------------------------------------------------
# latent dimensionality and spectra
# --------------------------------------------------------------------------------------------

@_groups()
def latent_dimensionality(ds: xr.Dataset):
    """R² of NCE and RRR against the latent dimension d (mean over splits, each split thin),
    with the dimension estimate (``dimension_of_mean``, 95% of the maximum) marked as a vertical
    line per method (Schmutz et al. 2025)."""
    _need(ds, ["r2"], "latent dimensionality")
    fig, (ax,) = _figure(1, width=5.0)
    d = ds["latent_dim"].values
    for i, method in enumerate(_labels(ds, "method")):
        r2 = ds["r2"].sel({"method": method}).transpose("latent_dim", ...).values.reshape(len(d), -1)
        ax.plot(d, np.nanmean(r2, 1), "o-", color=f"C{i}", label=method.upper())
        if "dimension_of_mean" in ds.data_vars:
            est = float(ds["dimension_of_mean"].sel({"method": method}))
            if np.isfinite(est):
                ax.axvline(est, color=f"C{i}", ls="--", lw=1,
                           label=f"{method.upper()} d₉₅ = {est:g}")
    ax.set_xlabel("latent dimension d")
    ax.set_ylabel("test R²")
    ax.legend(fontsize=7)
    fig.suptitle(_title(ds, "latent dimensionality"))
    return fig


@_groups(along=GROUP_DIMS)
def cvpca_spectrum(ds: xr.Dataset):
    """Cross-validated PCA spectrum (or an SVCA result's shared-variance spectrum) on log–log
    axes with the fitted power law (Stringer et al. 2019): variance of mode n ∝ n^-α, fitted
    over ranks 11–500 where the spectrum has them (otherwise over every positive mode). With a
    ``recording`` (``layer``, ``region``) dim: one spectrum and fit per label."""
    name = next((n for n in ("cv_variance", "shared_variance", "eigenvalue", "variance")
                 if n in ds.data_vars), None)
    if name is None:
        _need(ds, ["cv_variance"], "an eigenspectrum")
    var = ds[name]
    dim = var.dims[-1]
    fig, (ax,) = _figure(1, width=5.0)
    group = _group_dim(var, dim)
    rows = [(None, var.values)] if group is None else [
        (lab, var.isel({group: i}).values) for i, lab in enumerate(_labels(ds, group))]
    for j, (label, values) in enumerate(rows):
        values = np.asarray(values, dtype=float).ravel()
        n = np.arange(1, values.size + 1)
        keep = values > 0
        ax.loglog(n[keep], values[keep], ".", ms=3, color=f"C{j}",
                  label=label if label is not None else name.replace("_", " "))
        fit = keep & (n >= 11) & (n <= 500) if (keep & (n >= 11)).sum() >= 3 else keep
        if fit.sum() >= 2:
            slope, intercept = np.polyfit(np.log(n[fit]), np.log(values[fit]), 1)
            ax.loglog(n[fit], np.exp(intercept) * n[fit] ** slope, "-", color=f"C{j}",
                      label=f"power law α = {-slope:.2f}")
    ax.set_xlabel(f"{dim} (rank)")
    ax.set_ylabel("variance")
    ax.legend(fontsize=7)
    fig.suptitle(_title(ds, "eigenspectrum"))
    return fig


# --------------------------------------------------------------------------------------------
# batches of recordings
# --------------------------------------------------------------------------------------------

def headline_variable(ds: xr.Dataset) -> str | None:
    """The name of a result's headline number: the first scalar-per-recording variable among
    the usual ones (capacity, score, …), else the first numeric variable on ``recording``."""
    preferred = ("capacity_overall", "score", "accuracy", "ceiling", "dimension_of_mean",
                 "center_alignment_mean", "power_outside_span")
    for name in preferred:
        if name in ds.data_vars and ds[name].dims[:1] == ("recording",):
            return name
    for name, var in ds.data_vars.items():
        if var.dims == ("recording",) and var.dtype.kind in "fiu" and name != "seconds":
            return str(name)
    return None


@_groups(along=GROUP_DIMS, needs=("recording",))
def batch_summary(ds: xr.Dataset, variable: str | None = None):
    """One bar per recording of its headline number (``variable``, or the first of
    :func:`headline_variable`); failed recordings are red crosses at zero, labelled 'failed'."""
    if "recording" not in ds.dims:
        raise AnalysisError(f"a batch summary needs a 'recording' dim; the result has dims "
                            f"{sorted(map(str, ds.dims))}")
    variable = variable or headline_variable(ds)
    fig, (ax,) = _figure(1, width=max(4.5, 0.45 * ds.sizes["recording"] + 2))
    labels = _labels(ds, "recording")
    x = np.arange(len(labels))
    status = (np.asarray(ds["status"].values).astype(str) if "status" in ds.data_vars
              else np.full(len(labels), "ok"))
    failed = status != "ok"
    if variable is not None:
        values = ds[variable].values.astype(float)
        if values.ndim > 1:
            values = np.nanmean(values.reshape(len(labels), -1), 1)
        ok = ~failed & np.isfinite(values)
        ax.bar(x[ok], values[ok], color="C0")
        ax.set_ylabel(variable.replace("_", " "))
    else:
        ax.bar(x[~failed], np.ones((~failed).sum()), color="C0")
        ax.set_ylabel("completed")
    if failed.any():
        ax.plot(x[failed], np.zeros(failed.sum()), "x", color="red", ms=10, mew=2,
                label="failed")
        ax.legend(fontsize=7)
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("recording")
    inner = ds.attrs.get("recording_analysis", "")
    fig.suptitle(_title(ds, f"batch summary{': ' + inner if inner else ''}"))
    return fig


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------

#: plot functions per ``analysis`` attr, in the order the report shows them
PLOTS = {
    "manifold_capacity": (capacity_geometry,),
    "effective_geometry": (capacity_geometry,),
    "correlated_capacity": (capacity_geometry,),
    "simulated_capacity": (separability,),
    "manifold_alignment": (alignment_matrices,),
    "decoding_accuracy": (decoding,),
    "layer_profile": (layer_profile, predictivity),
    "neural_predictivity": (predictivity,),
    "noise_ceiling": (noise_ceiling,),
    "spectral_decomposition": (spectral,),
    "latent_dimensionality": (latent_dimensionality,),
    "cvpca": (cvpca_spectrum,),
    "eigenspectrum": (cvpca_spectrum,),
    "svca": (cvpca_spectrum,),
    "map_recordings": (batch_summary,),
}


def figures(ds: xr.Dataset) -> list:
    """The figures that apply to a result, chosen by its ``analysis`` attr.

    A ``map_recordings`` result gets its batch summary and then the figures of its
    ``recording_analysis``, one per recording that succeeded. A ``layer_profile`` without
    ``predictivity`` gets only its geometry figure. Unknown analyses get none (the report
    shows their variables as a table).
    """
    kind = str(ds.attrs.get("analysis", ""))
    out = []
    for plot in PLOTS.get(kind, ()):
        if kind == "layer_profile" and plot is predictivity and "predictivity" not in ds.data_vars:
            continue
        out.append(plot(ds))
    if kind == "map_recordings":
        inner = str(ds.attrs.get("recording_analysis", ""))
        status = (np.asarray(ds["status"].values).astype(str) if "status" in ds.data_vars
                  else None)
        for i, label in enumerate(_labels(ds, "recording")):
            if status is not None and status[i] != "ok":
                continue
            one = ds.isel(recording=i).drop_vars(["status", "error", "seconds"], errors="ignore")
            one.attrs = {**ds.attrs, "analysis": inner}
            for plot in PLOTS.get(inner, ()):
                try:
                    fig = plot(one)
                except (AnalysisError, KeyError, ValueError):
                    continue
                fig.suptitle(f"{label}: {inner}")
                out.append(fig)
    return out
