"""Run a torch model over stimuli and return the activations of named layers as assemblies.

:func:`model_activations` is the one entry point. It returns a plain ``dict`` mapping each
requested layer name to a ``(presentation, neuroid)`` assembly (see :mod:`neurogeom.assembly`),
in the order the layers were requested. A layer whose output would not fit in
``memory_budget`` bytes is streamed batch by batch into a zarr store on disk and comes back
dask-backed, so its full array never needs RAM.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import tempfile
import uuid
import zlib
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from neurogeom import __version__
from neurogeom.io import coord_problem
from neurogeom.errors import LoaderError, NeurogeomError, format_list

__all__ = ["model_activations", "RandomProjection", "fit_pca", "layer_names"]

#: Default per-layer memory budget (bytes) above which a layer is streamed to disk.
DEFAULT_MEMORY_BUDGET = 2 * 1024 ** 3


# --------------------------------------------------------------------------------------------
# reductions
# --------------------------------------------------------------------------------------------

class RandomProjection:
    """Seeded Gaussian random projection of a layer's flattened output to ``n_components`` dims.

    The projection matrix has i.i.d. ``N(0, 1/n_components)`` entries, so squared norms and
    pairwise distances are preserved in expectation (Johnson–Lindenstrauss). Each layer gets
    its own matrix, drawn from ``seed`` and the layer name, so the result does not depend on
    which other layers were requested.

    Parameters
    ----------
    n_components : int
        Output dimension ``k``.
    seed : int
        Seed of the projection matrices.
    """

    def __init__(self, n_components: int, seed: int = 0):
        if int(n_components) < 1:
            raise LoaderError(f"RandomProjection needs n_components >= 1, got {n_components}")
        self.n_components = int(n_components)
        self.seed = int(seed)

    def matrix(self, layer: str, n_features: int) -> torch.Tensor:
        """The ``(n_features, n_components)`` float32 projection matrix used for ``layer``."""
        # crc32 is stable across processes (unlike hash()), so the same seed gives the same matrix
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(layer.encode()))
        return torch.randn(n_features, self.n_components, generator=gen) / np.sqrt(self.n_components)

    def __repr__(self):
        return f"RandomProjection(n_components={self.n_components}, seed={self.seed})"


class _Reducer:
    """Turns one layer's batch output ``(batch, ...)`` into ``(batch, n_features)`` on the device."""

    def __init__(self, layer: str, reduce, device: torch.device):
        self.layer, self.reduce, self.device = layer, reduce, device
        self.weight = self.offset = self.scale = None
        self.passthrough = False
        self.kind = self._kind(reduce)

    def _kind(self, reduce) -> str:
        if reduce is None or (isinstance(reduce, str) and reduce == "none"):
            return "none"
        if isinstance(reduce, str) and reduce == "gap":
            return "gap"
        if isinstance(reduce, RandomProjection):
            return "random_projection"
        if isinstance(reduce, Mapping):
            if self.layer not in reduce:
                raise LoaderError(
                    f"reduce has no fitted PCA for layer {self.layer!r}; it has "
                    f"{format_list(list(reduce))} (fit one per layer, e.g. with fit_pca)")
            pca = reduce[self.layer]
            missing = [a for a in ("components_", "mean_") if not hasattr(pca, a)]
            if missing:
                raise LoaderError(
                    f"reduce[{self.layer!r}] is a {type(pca).__name__} without {missing}; "
                    "pass a fitted sklearn.decomposition.PCA")
            return "pca"
        raise LoaderError(
            f"unknown reduce={reduce!r}; expected None, 'gap', RandomProjection(k, seed) or a "
            "dict layer -> fitted PCA")

    def setup(self, n_features: int):
        if self.kind == "random_projection":
            self.weight = self.reduce.matrix(self.layer, n_features).to(self.device)
        elif self.kind == "pca":
            pca = self.reduce[self.layer]
            comps = np.asarray(pca.components_, dtype=np.float64)
            if comps.shape[1] != n_features:
                raise LoaderError(
                    f"the PCA for layer {self.layer!r} was fit on {comps.shape[1]} features but "
                    f"the layer has {n_features}; fit it on this layer with the same reduce=None")
            self.offset = torch.as_tensor(np.asarray(pca.mean_), dtype=torch.float32,
                                          device=self.device)
            weight = comps.T
            if getattr(pca, "whiten", False):
                # sklearn's whitening divides each component score by sqrt(explained_variance_)
                weight = weight / np.sqrt(np.asarray(pca.explained_variance_))[None, :]
            self.weight = torch.as_tensor(weight, dtype=torch.float32, device=self.device)

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        if self.kind == "gap":
            if out.ndim < 3:  # (batch, features): nothing to pool, the layer passes unchanged
                self.passthrough = True
                return out
            return out.flatten(2).mean(dim=2)
        flat = out.reshape(out.shape[0], -1)
        if self.kind in ("random_projection", "pca"):
            if self.weight is None:
                self.setup(flat.shape[1])
            flat = flat.float()
            if self.offset is not None:
                flat = flat - self.offset
            return flat @ self.weight
        return flat

    def describe(self) -> str:
        if self.kind == "gap" and self.passthrough:
            return "gap (no spatial dims: unchanged)"
        return "none" if self.kind == "none" else (
            "gap" if self.kind == "gap" else repr(self.reduce) if self.kind == "random_projection"
            else f"pca(n_components={self.weight.shape[1] if self.weight is not None else '?'})")


# --------------------------------------------------------------------------------------------
# stimuli
# --------------------------------------------------------------------------------------------

def _load_image(path: str) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise LoaderError(f"cannot read image {path}: {exc}") from exc
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class _Stimuli:
    """Uniform access to the accepted stimulus sources; ``n`` is None for a DataLoader."""

    def __init__(self, stimuli, preprocess):
        self.preprocess = preprocess
        self.loader = None
        self.tensor = None
        self.items = None
        self.paths = None
        if isinstance(stimuli, torch.utils.data.DataLoader):
            self.loader = stimuli
            self.kind = "DataLoader"
        elif isinstance(stimuli, torch.Tensor):
            # integer images (uint8) become float32, as for numpy arrays
            self.tensor = stimuli if stimuli.is_floating_point() else stimuli.float()
            self.kind = "tensor"
        elif isinstance(stimuli, np.ndarray):
            if stimuli.dtype.kind not in "biuf":
                raise LoaderError(f"stimuli array has dtype {stimuli.dtype}; expected numbers")
            t = torch.from_numpy(np.ascontiguousarray(stimuli))
            self.tensor, self.kind = (t if t.is_floating_point() else t.float()), "numpy array"
        elif isinstance(stimuli, torch.utils.data.Dataset):
            self.items, self.kind = stimuli, "Dataset"
        elif isinstance(stimuli, (str, os.PathLike)):
            raise LoaderError(f"stimuli is a single path {stimuli!r}; pass a list of image paths")
        elif isinstance(stimuli, Sequence) and len(stimuli) and all(
                isinstance(s, (str, os.PathLike)) for s in stimuli):
            self.paths = [os.fspath(s) for s in stimuli]
            missing = [p for p in self.paths if not os.path.isfile(p)]
            if missing:
                raise LoaderError(f"{len(missing)} stimulus file(s) do not exist: "
                                  f"{format_list(missing)}")
            self.kind = "image paths"
        else:
            raise LoaderError(
                f"stimuli of type {type(stimuli).__name__} are not supported; pass a torch "
                "tensor, a numpy array, a torch Dataset/DataLoader or a list of image paths")
        if self.tensor is not None and self.tensor.ndim < 2:
            raise LoaderError(f"stimuli {self.kind} has shape {tuple(self.tensor.shape)}; "
                              "expected (n_stimuli, ...) with at least one dim per stimulus")

    @property
    def n(self):
        if self.tensor is not None:
            return len(self.tensor)
        if self.items is not None:
            return len(self.items)
        if self.paths is not None:
            return len(self.paths)
        return None

    def item(self, i: int) -> torch.Tensor:
        if self.paths is not None:
            if self.preprocess is not None:
                from PIL import Image
                with Image.open(self.paths[i]) as img:
                    x = self.preprocess(img.convert("RGB"))
            else:
                x = _load_image(self.paths[i])
        else:
            x = self.tensor[i] if self.tensor is not None else self.items[i]
            if isinstance(x, (tuple, list)):  # (image, label) datasets
                x = x[0]
            if self.preprocess is not None:
                x = self.preprocess(x)
        return torch.as_tensor(x)

    def batch(self, index: np.ndarray) -> torch.Tensor:
        if self.tensor is not None and self.preprocess is None:
            if len(index) and index[-1] - index[0] == len(index) - 1 and np.all(np.diff(index) == 1):
                return self.tensor[int(index[0]):int(index[-1]) + 1]  # a view: no copy
            return self.tensor[torch.from_numpy(index)]
        return torch.stack([self.item(int(i)) for i in index])


def _digest(x: torch.Tensor) -> str:
    x = x.detach().cpu().contiguous()
    h = hashlib.blake2b(digest_size=16)
    h.update(str((tuple(x.shape), str(x.dtype))).encode())
    h.update(x.numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# per-layer output buffers: in memory, or streamed to zarr
# --------------------------------------------------------------------------------------------

def _create_zarr_array(path: str, shape, chunks, dtype):
    """A new uncompressed zarr array at ``path`` on zarr 2 or zarr 3.

    The project pins zarr 2 (hdmf-zarr, the NWB zarr backend, needs it on Python 3.11), whose
    ``open_array`` takes ``compressor=``; zarr 3 renamed it ``compressors=`` in ``create_array``.
    """
    import zarr

    if hasattr(zarr, "create_array"):  # zarr >= 3
        return zarr.create_array(store=path, shape=shape, chunks=chunks, dtype=dtype,
                                 fill_value=0, compressors=None)
    return zarr.open_array(path, mode="w", shape=shape, chunks=chunks, dtype=dtype,
                           fill_value=0, compressor=None)


class _LayerBuffer:
    """Collects one layer's reduced rows; switches to a zarr store once the budget is exceeded."""

    def __init__(self, layer: str, budget: int | None, expected_rows: int | None,
                 spill_root: Path, store_name: str):
        self.layer, self.budget, self.expected_rows = layer, budget, expected_rows
        self.spill_root, self.store_name = spill_root, store_name
        self.chunks: list[np.ndarray] = []
        self.array = None  # preallocated in-memory array when the row count is known
        self.n_rows = 0
        self.n_features = None
        self.dtype = None
        self.zarr = None
        self.tmp_path: Path | None = None
        self.final_path: Path | None = None

    def _spill(self, rows_per_chunk: int):
        self.spill_root.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.spill_root / f".{self.store_name}.{uuid.uuid4().hex[:8]}.tmp"
        # chunks of at most 16 MB and a quarter of the budget (zarr holds a chunk and its
        # encoded copy while writing): whole batches along presentations, split along neuroids.
        # Uncompressed: activations are dense floats that compress poorly, and compressing
        # cost more time than the write in benchmarks/activations.py
        target = min(16 * 1024 ** 2, max(self.budget // 4, 1)) if self.budget else 16 * 1024 ** 2
        col_chunk = max(1, min(self.n_features,
                               target // (self.dtype.itemsize * max(rows_per_chunk, 1))))
        self.zarr = _create_zarr_array(str(self.tmp_path), shape=(0, self.n_features),
                                       chunks=(rows_per_chunk, col_chunk), dtype=self.dtype)
        if self.array is not None:
            held = [self.array[:self.n_rows]]
        else:
            held = self.chunks
        self.array, self.chunks = None, []
        for block in held:
            self.zarr.append(block, axis=0)

    def append(self, rows: np.ndarray):
        if self.n_features is None:
            self.n_features, self.dtype = rows.shape[1], rows.dtype
            row_bytes = rows.shape[1] * rows.dtype.itemsize
            if self.expected_rows is not None:
                if self.budget is not None and self.expected_rows * row_bytes > self.budget:
                    self._spill(len(rows))
                else:
                    self.array = np.empty((self.expected_rows, self.n_features), dtype=self.dtype)
        elif rows.shape[1] != self.n_features:
            raise LoaderError(f"layer {self.layer!r} gave {rows.shape[1]} features for one batch "
                              f"and {self.n_features} for an earlier one; stimuli must share a shape")
        if self.zarr is not None:
            self.zarr.append(rows, axis=0)
        elif self.array is not None:
            if self.n_rows + len(rows) > len(self.array):
                raise LoaderError(f"more stimuli arrived than the {len(self.array)} expected")
            self.array[self.n_rows:self.n_rows + len(rows)] = rows
        else:
            self.chunks.append(rows)
            nbytes = (self.n_rows + len(rows)) * rows.shape[1] * rows.dtype.itemsize
            if self.budget is not None and nbytes > self.budget:
                self.n_rows += len(rows)
                self._spill(len(rows))
                return
        self.n_rows += len(rows)

    def finish(self):
        """The collected ``(rows, features)`` array: numpy, or dask over the renamed zarr store."""
        if self.zarr is None:
            if self.array is not None:
                return self.array[:self.n_rows]
            return np.concatenate(self.chunks) if self.chunks else np.empty((0, 0), np.float32)
        import dask.array as da

        self.final_path = self.spill_root / f"{self.store_name}.zarr"
        if self.final_path.exists():
            shutil.rmtree(self.final_path)
        os.replace(self.tmp_path, self.final_path)
        self.tmp_path = None
        return da.from_zarr(str(self.final_path))

    def discard(self):
        if self.tmp_path is not None and self.tmp_path.exists():
            shutil.rmtree(self.tmp_path, ignore_errors=True)
        self.tmp_path = None


# --------------------------------------------------------------------------------------------
# the public function
# --------------------------------------------------------------------------------------------

def layer_names(model: torch.nn.Module) -> list[str]:
    """Dotted names of every submodule of ``model`` that :func:`model_activations` can hook."""
    return [name for name, _ in model.named_modules() if name]


def _resolve_layers(model, layers) -> dict[str, torch.nn.Module]:
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise LoaderError("no layers requested; available: " + format_list(layer_names(model), 30))
    dup = sorted({l for l in layers if layers.count(l) > 1})
    if dup:
        raise LoaderError(f"layers requested twice: {format_list(dup)}")
    modules = dict(model.named_modules())
    available = layer_names(model)
    problems = []
    for name in layers:
        if name not in modules or not name:
            close = difflib.get_close_matches(str(name), available, n=3, cutoff=0.5)
            hint = f" (did you mean {format_list(close)}?)" if close else ""
            problems.append(f"{name!r}{hint}")
    if problems:
        raise LoaderError(f"unknown layer(s) of {type(model).__name__}: {'; '.join(problems)}; "
                          f"available: {format_list(available, 40)}")
    return {name: modules[name] for name in layers}


def _metadata_table(metadata, n: int | None) -> pd.DataFrame | None:
    if metadata is None:
        return None
    table = metadata.reset_index(drop=True) if isinstance(metadata, pd.DataFrame) \
        else pd.DataFrame({k: np.asarray(v) for k, v in dict(metadata).items()})
    if n is not None and len(table) != n:
        raise LoaderError(f"metadata has {len(table)} rows but there are {n} stimuli")
    problems = []
    for col in table.columns:
        values = table[col].to_numpy()
        if values.dtype.kind == "O" and all(isinstance(v, str) for v in values.tolist()):
            table[col] = values.astype(str)
        why = coord_problem(str(col), xr.DataArray(table[col].to_numpy()))
        if why:
            problems.append(why)
    if problems:  # checked before the model runs, not after
        raise LoaderError("metadata cannot become presentation coords: " + "; ".join(problems))
    return table


def _neuroid_coords(model_name, layer, shape, kind) -> dict:
    n = int(np.prod(shape)) if shape else 1
    index = np.arange(n)
    # vectorised string building: layers can have 10^5-10^6 units
    coords = {"neuroid_id": ("neuroid", np.char.add(f"{model_name}.{layer}.", index.astype(str))),
              "layer": ("neuroid", np.full(n, layer)),
              "region": ("neuroid", np.full(n, layer))}
    if kind in ("random_projection", "pca"):
        coords["component"] = ("neuroid", index)
    elif kind == "gap" or len(shape) == 1:
        coords["channel"] = ("neuroid", index)
    elif len(shape) == 3:  # conv map (C, H, W), flattened channel-major as torch does
        c, h, w = shape
        coords["channel"] = ("neuroid", index // (h * w))
        coords["channel_y"] = ("neuroid", (index // w) % h)
        coords["channel_x"] = ("neuroid", index % w)
    elif len(shape) == 2:  # 1-d conv map (C, L)
        coords["channel"] = ("neuroid", index // shape[1])
        coords["channel_x"] = ("neuroid", index % shape[1])
    else:
        coords["channel"] = ("neuroid", index // int(np.prod(shape[1:])))
    return coords


def model_activations(model: torch.nn.Module, stimuli, layers: str | Sequence[str],
                      stimulus_ids: Sequence | None = None, *, batch_size: int = 64,
                      device: str | torch.device = "cpu", preprocess: Callable | None = None,
                      reduce=None, progress: bool = True, metadata=None,
                      model_name: str | None = None,
                      memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
                      spill_dir: str | os.PathLike | None = None,
                      check_finite: bool = True) -> dict[str, xr.DataArray]:
    """Activations of named layers of a torch model, one assembly per layer.

    Forward hooks capture each layer's output; the model runs in ``eval()`` mode under
    ``torch.no_grad()`` (its previous training mode is restored afterwards) and every hook is
    removed when the call ends, also when the forward pass raises. Stimuli with the same id are
    run once and their rows repeated.

    Parameters
    ----------
    model : torch.nn.Module
        The model. It is moved to ``device`` (in place, as ``Module.to`` does).
    stimuli : torch.Tensor, numpy.ndarray, torch.utils.data.Dataset, DataLoader or list of paths
        Tensors/arrays are ``(n_stimuli, ...)`` and are batched as given (integer tensors and
        arrays are cast to float32, values unchanged). Dataset items and DataLoader batches may be ``(input, label)`` pairs;
        the first element is used. Image paths are read with Pillow as RGB, scaled to [0, 1],
        ``(3, H, W)``.
    layers : str or sequence of str
        Dotted module names as in ``model.named_modules()`` (see :func:`layer_names`).
    stimulus_ids : sequence of str, optional
        One id per stimulus. Default: ``metadata["stimulus_id"]`` when present, else the paths
        for image paths, else ``"stimulus_<i>"``. Repeated ids must have identical stimuli.
    batch_size : int
        Stimuli per forward pass (a DataLoader keeps its own batches).
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, … Reductions run on the device; rows are copied to the host.
    preprocess : callable, optional
        Applied to each stimulus before batching: a PIL image for paths, a tensor otherwise.
    reduce : None, "gap", RandomProjection or dict, optional
        ``None``: every unit of the flattened output. ``"gap"``: global average pooling over the
        spatial dims of conv maps (layers without spatial dims pass unchanged). ``RandomProjection(k, seed)``: a seeded Gaussian projection
        to ``k`` dims. A dict layer -> fitted ``sklearn.decomposition.PCA`` (fit on a separate
        stimulus set, e.g. with :func:`fit_pca`) projects onto its components.
    progress : bool
        Show a tqdm progress bar (stimuli done / total).
    metadata : pandas.DataFrame or dict of arrays, optional
        One row per stimulus; every column becomes a ``presentation`` coord (``object_name``,
        ``position_x``, …).
    model_name : str, optional
        Prefix of ``neuroid_id`` (``"<model_name>.<layer>.<i>"``). Default: the model's class.
    memory_budget : int or None
        Bytes one layer's output may take in RAM. A layer that would exceed it is streamed to a
        zarr store under ``spill_dir`` and returned dask-backed. ``None`` never spills.
    spill_dir : path, optional
        Where zarr stores go (``<model_name>.<layer>.zarr``, replacing a store of that name).
        Default: a new ``neurogeom-activations-*`` folder in the system temp dir. Stores are
        written under a temporary name and renamed when the run succeeds; a failed run leaves
        no store behind.
    check_finite : bool
        Raise when a layer produces NaN or inf (default). ``False`` keeps such values; the
        assembly then fails :func:`neurogeom.assembly.validate` in analyses.

    Returns
    -------
    dict of str -> xarray.DataArray
        For each layer, in request order, a ``(presentation, neuroid)`` assembly with
        presentation coords ``stimulus_id`` and the ``metadata`` columns, neuroid coords
        ``neuroid_id``, ``layer``, ``region`` (= layer) and ``channel`` (+ ``channel_y``,
        ``channel_x`` for unreduced conv maps; ``component`` for projections), and attrs
        ``source``, ``model``, ``layer``, ``reduce``, ``units``, ``neurogeom_version``,
        ``layer_output_shape`` (per stimulus, e.g. ``"8x16x16"``; a string because netCDF turns
        one-element list attrs into scalars), ``device`` and ``spilled`` (1 when dask-backed,
        with ``store`` the zarr path).

    Raises
    ------
    LoaderError
        Unknown layer (with close matches and the available names), ids count differing from
        the stimuli count, one id with different stimuli, non-finite activations (naming the
        layer), a layer output that is not a tensor, unreadable image files, bad ``reduce``.

    Examples
    --------
    >>> import torch, loaders
    >>> net = loaders.synthetic.untrained_convnet()
    >>> acts = loaders.model_activations(net, torch.rand(4, 1, 16, 16), ["block1.conv", "fc"],
    ...                                  progress=False)
    >>> acts["fc"].dims
    ('presentation', 'neuroid')
    """
    if not isinstance(model, torch.nn.Module):
        raise LoaderError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if int(batch_size) < 1:
        raise LoaderError(f"batch_size must be >= 1, got {batch_size}")
    modules = _resolve_layers(model, layers)
    source = _Stimuli(stimuli, preprocess)
    n_total = source.n
    table = _metadata_table(metadata, n_total)
    device = torch.device(device)
    model_name = model_name or type(model).__name__

    if stimulus_ids is None and table is not None and "stimulus_id" in table:
        stimulus_ids = table["stimulus_id"].to_numpy()
    if stimulus_ids is not None:
        ids = np.asarray([str(s) for s in stimulus_ids])
        if n_total is not None and len(ids) != n_total:
            raise LoaderError(f"{len(ids)} stimulus_ids for {n_total} stimuli ({source.kind}); "
                              "pass one id per stimulus")
    elif source.paths is not None:
        ids = np.asarray(source.paths)
    elif n_total is not None:
        ids = np.asarray([f"stimulus_{i}" for i in range(n_total)])
    else:
        ids = None  # DataLoader without ids: ids are assigned as batches arrive
    if table is not None and ids is not None and len(table) != len(ids):
        raise LoaderError(f"metadata has {len(table)} rows but there are {len(ids)} stimulus ids")

    reducers = {name: _Reducer(name, reduce, device) for name in modules}
    spill_root = Path(spill_dir) if spill_dir is not None else None

    # unique stimuli in order of first appearance; `inverse` maps presentations to them
    if ids is not None:
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        unique_index = first[order]
        inverse = rank[inverse.ravel()]
    if ids is not None and source.loader is None:
        dup_rows = np.flatnonzero(np.isin(np.arange(len(ids)), unique_index, invert=True))
        for row in dup_rows:
            ref = unique_index[inverse[row]]
            if not torch.equal(source.item(int(row)), source.item(int(ref))):
                raise LoaderError(
                    f"stimulus id {str(ids[row])!r} is used for different stimuli (positions {ref} "
                    f"and {row} of {source.kind}); ids must identify identical stimuli")
        expected_rows = len(unique_index)
    else:
        expected_rows = None

    temp_root = None
    if spill_dir is None and memory_budget is not None:
        temp_root = Path(tempfile.mkdtemp(prefix="neurogeom-activations-"))
        spill_root = temp_root
    buffers = {name: _LayerBuffer(name, memory_budget, expected_rows, spill_root,
                                  f"{model_name}.{name}".replace(os.sep, "_"))
               for name in modules}
    shapes: dict[str, tuple] = {}
    captured: dict[str, torch.Tensor] = {}

    def make_hook(name):
        def hook(module, args, output):
            out = output
            if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
                out = out[0]  # e.g. recurrent layers return (output, state)
            if not isinstance(out, torch.Tensor):
                raise LoaderError(f"layer {name!r} returned a {type(output).__name__}, "
                                  "not a tensor; hook a module that outputs a tensor")
            if name in captured:  # e.g. one nn.ReLU object reused at several depths
                raise LoaderError(
                    f"layer {name!r} runs more than once per forward pass, so its output is "
                    "ambiguous; hook a module that is used once (give each use its own module)")
            shapes.setdefault(name, tuple(out.shape[1:]))
            captured[name] = reducers[name](out.detach())
        return hook

    # per-module flags: model.train(True) afterwards would also flip submodules the user had
    # deliberately put in eval mode (e.g. frozen batch norm)
    training_modes = [(m, m.training) for m in model.modules()]
    handles = []
    succeeded = False
    try:
        from tqdm.auto import tqdm

        model.to(device)
        model.eval()
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        bar = tqdm(total=expected_rows, disable=not progress, unit="stim",
                   desc=f"activations {model_name}", leave=False)
        loader_ids: list[str] = []
        loader_seen: dict[str, tuple[int, str]] = {}
        loader_inverse: list[int] = []
        with torch.no_grad(), bar:
            for x, batch_ids in _batches(source, ids, unique_index if ids is not None else None,
                                         batch_size, loader_ids, loader_seen, loader_inverse):
                captured.clear()
                try:
                    model(x.to(device))
                except NeurogeomError:
                    raise
                except Exception as exc:
                    raise LoaderError(
                        f"{model_name} raised during the forward pass on stimuli "
                        f"{format_list(np.asarray(batch_ids).tolist(), 5)}: "
                        f"{type(exc).__name__}: {exc}") from exc
                for name in modules:
                    if name not in captured:
                        raise LoaderError(f"layer {name!r} did not run in the forward pass")
                    rows = captured[name]
                    # NaN and inf propagate through a sum, so a finite sum proves every value
                    # finite at the cost of one reduction; only a non-finite sum (or an
                    # overflowing one) needs the elementwise check
                    if (check_finite and rows.is_floating_point()
                            and not torch.isfinite(rows.sum()) and not torch.isfinite(rows).all()):
                        bad = ~torch.isfinite(rows).all(dim=1).cpu().numpy()
                        raise LoaderError(
                            f"layer {name!r} produced non-finite activations (NaN or inf) for "
                            f"stimuli {format_list(np.asarray(batch_ids)[bad].tolist())}; pass "
                            "check_finite=False to keep them")
                    if rows.dtype == torch.bfloat16:  # numpy has no bfloat16
                        rows = rows.float()
                    rows = rows.cpu().numpy()
                    if rows.dtype.kind != "f":
                        rows = rows.astype(np.float32)
                    buffers[name].append(rows)
                captured.clear()
                bar.update(len(x))
        if ids is None:  # DataLoader without ids
            ids = np.asarray(loader_ids)
            inverse = np.arange(len(ids))
        elif source.loader is not None:
            if len(loader_inverse) != len(ids):
                raise LoaderError(f"{len(ids)} stimulus_ids for {len(loader_inverse)} stimuli "
                                  "(DataLoader); pass one id per stimulus")
            inverse = np.asarray(loader_inverse)
        if table is not None and len(table) != len(ids):
            raise LoaderError(f"metadata has {len(table)} rows but there are {len(ids)} stimuli")
        results = {name: buffers[name].finish() for name in modules}
        succeeded = True
    finally:
        for h in handles:
            h.remove()
        for m, mode in training_modes:
            m.training = mode
        if not succeeded:
            for buf in buffers.values():
                buf.discard()
        if temp_root is not None and (not succeeded or not any(
                b.zarr is not None for b in buffers.values())):
            shutil.rmtree(temp_root, ignore_errors=True)

    out = {}
    pres_coords = {"stimulus_id": ("presentation", ids)}
    if table is not None:
        for col in table.columns:
            if col != "stimulus_id":
                pres_coords[str(col)] = ("presentation", table[col].to_numpy())
    identity = np.array_equal(inverse, np.arange(len(inverse)))
    for name in modules:
        data = results[name]
        if not identity:
            data = data[inverse]  # repeated ids share the rows computed once
        red = reducers[name]
        feat_shape = shapes[name] if red.kind == "none" else (data.shape[1],)
        coords = dict(pres_coords)
        coords.update(_neuroid_coords(model_name, name, feat_shape, red.kind))
        attrs = {"source": "model_activations", "model": model_name, "layer": name,
                 "reduce": red.describe(), "units": "a.u.", "neurogeom_version": __version__,
                 "layer_output_shape": "x".join(map(str, shapes[name])) or "1",
                 "spilled": int(buffers[name].zarr is not None),
                 "device": str(device)}
        if buffers[name].final_path is not None:
            attrs["store"] = str(buffers[name].final_path)
        # through a Dataset: the DataArray constructor deep-copies every coord, which for a
        # conv layer's 10^5 string neuroid ids costs more time and memory than the values
        ds = xr.Dataset({"__values__": (("presentation", "neuroid"), data)}, coords=coords)
        da_ = ds["__values__"]
        da_.name, da_.attrs = name, attrs
        # the contract holds by construction (unique "<model>.<layer>.<i>" ids, string coords,
        # serializable attrs; tests run validate on every layout); validate's uniqueness check
        # on 10^5 string ids would cost a tenth of a small model's extraction time
        out[name] = da_
    return out


def _batches(source: _Stimuli, ids, unique_index, batch_size, loader_ids, loader_seen,
             loader_inverse) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """Batches of unique stimuli with their ids; a DataLoader's repeats are dropped on the fly."""
    if source.loader is None:
        for start in range(0, len(unique_index), batch_size):
            index = unique_index[start:start + batch_size]
            yield source.batch(index), ids[index]
        return
    position = 0
    for batch in source.loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = torch.as_tensor(x)
        if source.preprocess is not None:
            x = torch.stack([torch.as_tensor(source.preprocess(xi)) for xi in x])
        keep, keep_ids = [], []
        for j in range(len(x)):
            if ids is None:
                sid = f"stimulus_{position}"
            elif position >= len(ids):
                raise LoaderError(f"the DataLoader yields more stimuli than the {len(ids)} "
                                  "stimulus_ids; pass one id per stimulus")
            else:
                sid = str(ids[position])
            position += 1
            loader_ids.append(sid)
            digest = _digest(x[j])
            if sid in loader_seen:
                row, seen_digest = loader_seen[sid]
                if seen_digest != digest:
                    raise LoaderError(f"stimulus id {sid!r} is used for different stimuli "
                                      f"(DataLoader positions {row} and {position - 1})")
                loader_inverse.append(loader_inverse[row])
                continue
            loader_seen[sid] = (position - 1, digest)
            loader_inverse.append(len(loader_seen) - 1)
            keep.append(j)
            keep_ids.append(sid)
        if keep:
            yield (x if len(keep) == len(x) else x[keep]), np.asarray(keep_ids)


def fit_pca(model: torch.nn.Module, stimuli, layers: str | Sequence[str], n_components: int,
            *, random_state: int = 0, **kwargs) -> dict:
    """Fit one PCA per layer on a separate stimulus set, for ``reduce=`` of :func:`model_activations`.

    Brain-Score selects layers on PCA-reduced activations whose components were fit on
    different images than the benchmark's; this is that step.

    Parameters
    ----------
    model, stimuli, layers
        As in :func:`model_activations` (``stimuli`` is the fitting set).
    n_components : int
        Components per layer (at most the number of fitting stimuli).
    random_state : int
        Seed of the (randomized) PCA solver.
    **kwargs
        Passed to :func:`model_activations` (``batch_size``, ``device``, ``preprocess``…).

    Returns
    -------
    dict of str -> sklearn.decomposition.PCA
        Fitted PCAs keyed by layer.
    """
    from sklearn.decomposition import PCA

    acts = model_activations(model, stimuli, layers, reduce=None, **kwargs)
    fitted = {}
    for name, a in acts.items():
        n_max = min(a.sizes["presentation"], a.sizes["neuroid"])
        if n_components > n_max:
            raise LoaderError(f"n_components={n_components} for layer {name!r} exceeds "
                              f"min(n_stimuli, n_features) = {n_max}")
        fitted[name] = PCA(n_components=n_components, random_state=random_state).fit(
            np.asarray(a.values))
    return fitted
