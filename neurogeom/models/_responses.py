"""Layer responses of a torch model to a batch of images, as assemblies: the one hook helper.

Every manifold builder of :mod:`neurogeom.models` (augmentation, adversarial, stochastic)
produces a set of images with per-image labels, runs the model over them and needs the outputs
of named layers as ``(presentation, neuroid)`` assemblies. This module does that once:
:func:`resolve_layers` checks layer names against ``model.named_modules()``,
:func:`capture` records their outputs with forward hooks during a forward pass, and
:func:`layer_assemblies` wraps the recorded rows into assemblies with the same neuroid coords
``loaders.model_activations`` gives (``neuroid_id = "<model>.<layer>.<i>"``, ``layer``,
``region`` = layer), so results from either route can be compared directly.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from .._results import REFERENCES, attr_value
from .._version import __version__
from ..errors import AnalysisError, format_list

__all__ = ["as_images", "capture", "image_ids", "layer_assemblies", "resolve_layers",
           "run_layers", "stochastic_modules", "training_mode"]


def resolve_layers(model: torch.nn.Module, layers) -> list[str]:
    """``layers`` (a name or names of ``model.named_modules()``) as a list, checked.

    Raises
    ------
    AnalysisError
        No layer, a repeated layer, or an unknown one (with close matches and the names).
    """
    if not isinstance(model, torch.nn.Module):
        raise AnalysisError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = [layers] if isinstance(layers, str) else list(layers)
    available = [n for n, _ in model.named_modules() if n]
    if not names:
        raise AnalysisError("no layers requested; available: " + format_list(available, 30))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AnalysisError(f"layers requested twice: {format_list(dup)}")
    unknown = [n for n in names if n not in available]
    if unknown:
        hints = [f"{n!r} (close: {format_list(difflib.get_close_matches(n, available, 3))})"
                 for n in unknown]
        raise AnalysisError(f"unknown layer(s) of {type(model).__name__}: {'; '.join(hints)}; "
                            f"available: {format_list(available, 30)}")
    return names


@contextlib.contextmanager
def capture(model: torch.nn.Module, layers: Sequence[str], *, detach: bool = True):
    """Record the outputs of ``layers`` during forward passes in this block.

    Yields a dict that each forward pass fills with ``layer -> (batch, n_features)`` tensors
    (flattened after the batch dim; detached unless ``detach=False``, which keeps the graph for
    training on a hidden layer). A layer that returns a tuple contributes its first element.
    """
    modules = dict(model.named_modules())
    store: dict[str, torch.Tensor] = {}

    def make_hook(name):
        def hook(module, args, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, torch.Tensor):
                raise AnalysisError(f"layer {name!r} returned a {type(output).__name__}, "
                                    "not a tensor; pick another layer")
            out = out.reshape(out.shape[0], -1)
            store[name] = out.detach() if detach else out
        return hook

    handles = [modules[name].register_forward_hook(make_hook(name)) for name in layers]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def stochastic_modules(model: torch.nn.Module) -> list[str]:
    """Names of the modules whose output is random in training mode: dropout variants and
    :class:`~neurogeom.models.PoissonNoise` (any module with ``stochastic = True``)."""
    kinds = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d,
             torch.nn.AlphaDropout, torch.nn.FeatureAlphaDropout)
    return [n for n, m in model.named_modules()
            if isinstance(m, kinds) or getattr(m, "stochastic", False) is True]


@contextlib.contextmanager
def training_mode(model: torch.nn.Module, mode: bool, *, stochastic: bool = False):
    """Put ``model`` in ``train(mode)`` for the block (with only its stochastic modules in
    training mode when ``stochastic``), and restore every module's own mode afterwards."""
    saved = {m: m.training for m in model.modules()}
    try:
        model.train(mode)
        if stochastic:
            modules = dict(model.named_modules())
            for name in stochastic_modules(model):
                modules[name].train(True)
        yield model
    finally:
        for m, was in saved.items():
            m.training = was


def as_images(images, device) -> torch.Tensor:
    """``images`` (numpy array or tensor, ``(n, ...)``) as a float tensor on ``device``."""
    if isinstance(images, np.ndarray):
        if images.dtype.kind not in "biuf":
            raise AnalysisError(f"images have dtype {images.dtype}; expected numbers")
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise AnalysisError(f"images must be a numpy array or a torch tensor of shape (n_images, "
                            f"...), got {type(images).__name__}")
    if images.ndim < 2 or len(images) == 0:
        raise AnalysisError(f"images have shape {tuple(images.shape)}; expected (n_images, ...) "
                            "with at least one image")
    if not images.is_floating_point():
        images = images.float()
    if not torch.isfinite(images).all():
        raise AnalysisError("images contain NaN or inf values")
    return images.to(device)


def image_ids(ids, n: int) -> np.ndarray:
    """Unique string ids of ``n`` images: ``ids`` checked, or ``img0 … img<n-1>``."""
    if ids is None:
        return np.array([f"img{i}" for i in range(n)])
    ids = np.asarray([str(i) for i in ids])
    if len(ids) != n:
        raise AnalysisError(f"image_ids has {len(ids)} entries for {n} images")
    if len(set(ids.tolist())) != n:
        dup = sorted({i for i in ids.tolist() if (ids == i).sum() > 1})
        raise AnalysisError(f"image_ids are not unique: {format_list(dup)}")
    return ids


@torch.no_grad()
def run_layers(model: torch.nn.Module, images: torch.Tensor, layers: Sequence[str],
               batch_size: int | None) -> dict[str, np.ndarray]:
    """The flattened outputs of ``layers`` for every image, as ``(n, n_features)`` numpy rows
    (float32 as the model computes them), in batches of ``batch_size`` (None: one batch)."""
    n = len(images)
    step = n if batch_size is None else batch_size
    rows: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    with capture(model, layers) as store:
        for start in range(0, n, step):
            store.clear()
            model(images[start:start + step])
            for name in layers:
                if name not in store:
                    raise AnalysisError(f"layer {name!r} did not run in the forward pass")
                rows[name].append(store[name].float().cpu().numpy())
    out = {name: np.concatenate(parts) for name, parts in rows.items()}
    for name, values in out.items():
        if not np.isfinite(values).all():
            raise AnalysisError(f"layer {name!r} produced NaN or inf activations")
    return out


def layer_assemblies(values: Mapping[str, np.ndarray], presentation: Mapping[str, np.ndarray],
                     *, model: torch.nn.Module, source: str, attrs: Mapping,
                     references: Sequence[str]) -> dict:
    """One ``(presentation, neuroid)`` assembly per layer, with ``presentation`` coords and the
    neuroid coords/attrs of ``loaders.model_activations`` plus ``source``, ``attrs`` and the
    ``references`` (keys of :data:`neurogeom._results.REFERENCES`, stored as citations)."""
    model_name = type(model).__name__
    out = {}
    for layer, data in values.items():
        n_features = data.shape[1]
        index = np.arange(n_features).astype(str)
        coords = {key: ("presentation", np.asarray(v)) for key, v in presentation.items()}
        coords.update({"neuroid_id": ("neuroid", np.char.add(f"{model_name}.{layer}.", index)),
                       "layer": ("neuroid", np.full(n_features, layer)),
                       "region": ("neuroid", np.full(n_features, layer))})
        a = xr.DataArray(data, dims=("presentation", "neuroid"), coords=coords, name=layer)
        a.attrs = {"source": source, "model": model_name, "layer": layer, "units": "a.u.",
                   "neurogeom_version": __version__,
                   **{k: attr_value(v) for k, v in attrs.items()},
                   "references": [REFERENCES[key] for key in references]}
        out[layer] = a
    return out
