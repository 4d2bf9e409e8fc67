"""Zarr (format 2) stores read safely: Pickle codecs refused, corrupt chunks named.

A chunk that fails to decode makes zarr raise whatever its codec raises (``RuntimeError: error
during blosc decompression``, ``ValueError: destination buffer too small``, ``zlib.error``),
which names neither the store nor the array. The helpers here find the chunk at fault by
decompressing the suspects again with the array's compressor only (never its filters, so a
Pickle filter is never run) and say which it is.
"""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path

import numpy as np

from neurogeom.errors import LoaderError

_META = (".zarray", ".zgroup", ".zattrs", ".zmetadata")


def is_pickled(array) -> bool:
    """Whether a zarr array decodes through the Pickle codec (as filter, object codec or
    compressor): decoding it would unpickle bytes from the file, which can run code."""
    codecs = list(getattr(array, "filters", None) or []) + [getattr(array, "compressor", None)]
    return any(getattr(c, "codec_id", None) == "pickle" for c in codecs)


def pickle_refusal(store, name: str) -> LoaderError:
    return LoaderError(
        f"{store}: array {name!r} is encoded with the Pickle codec, which is never decoded "
        "(unpickling a file can run arbitrary code); re-save it with fixed-width strings, "
        "VLenUTF8 or JSON")


def _array_dir(root: Path, key: str):
    """``(array path, chunk name)`` of a chunk key; the array is the nearest folder with a
    ``.zarray`` (chunk names may nest, with ``dimension_separator="/"``)."""
    parts = key.split("/")
    for i in range(len(parts) - 1, 0, -1):
        if (root.joinpath(*parts[:i]) / ".zarray").is_file():
            return "/".join(parts[:i]), "/".join(parts[i:])
    return None, None


def chunk_problem(root, key: str) -> str | None:
    """Why chunk ``key`` of the store folder ``root`` cannot be decompressed, or None."""
    root = Path(root)
    array, _ = _array_dir(root, key)
    if array is None:
        return None
    try:
        meta = json.loads((root / array / ".zarray").read_text())
        raw = (root / key).read_bytes()
    except (OSError, ValueError):
        return None
    if meta.get("compressor"):
        import numcodecs

        try:
            numcodecs.get_codec(dict(meta["compressor"])).decode(raw)
        except Exception as exc:  # codecs raise RuntimeError, ValueError, zlib.error, …
            return f"{type(exc).__name__}: {exc}"
        return None
    dtype = np.dtype(meta["dtype"]) if not isinstance(meta["dtype"], list) else None
    if dtype is not None and dtype.kind != "O" and not meta.get("filters"):
        expected = math.prod(meta["chunks"]) * dtype.itemsize
        if len(raw) != expected:
            return f"{len(raw)} bytes where an uncompressed chunk has {expected}"
    return None


def corrupt_chunk_error(store, root, keys) -> LoaderError | None:
    """A LoaderError naming the first of ``keys`` (chunk keys of the folder store ``root``)
    that cannot be decompressed, or None when they all can."""
    for key in keys:
        problem = chunk_problem(root, key)
        if problem is not None:
            array, chunk = _array_dir(Path(root), key)
            return LoaderError(f"{store}: chunk {chunk!r} of array {array!r} is corrupt and "
                               f"cannot be decompressed ({problem})")
    return None


def chunk_keys(root, array: str) -> list[str]:
    """Every stored chunk key of ``array`` in the folder store ``root``."""
    folder = Path(root) / array
    return sorted(str(p.relative_to(root).as_posix()) for p in folder.rglob("*")
                  if p.is_file() and p.name not in _META and
                  not (p.parent != folder and (p.parent / ".zarray").exists()))


def recording_store(path):
    """A read-only zarr ``DirectoryStore`` over ``path`` that remembers the chunk keys it
    served last (``.recent``), so that a decode error raised far away (inside pynwb, hdmf or
    a loader) can be traced to its chunk by :func:`corrupt_chunk_error`."""
    from zarr.storage import DirectoryStore

    class RecordingStore(DirectoryStore):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.recent = collections.deque(maxlen=1024)

        def __getitem__(self, key):
            if not key.endswith(_META):
                self.recent.append(key)
            return super().__getitem__(key)

        def __setitem__(self, key, value):
            raise PermissionError(f"{self.path} is opened read-only")

        def __delitem__(self, key):
            raise PermissionError(f"{self.path} is opened read-only")

        def diagnose(self, name) -> LoaderError | None:
            keys = list(dict.fromkeys(reversed(self.recent)))  # newest first, once each
            return corrupt_chunk_error(name, self.path, keys)

    return RecordingStore(str(path))


class CheckedArray:
    """A zarr array for ``dask.array.from_array`` whose decode errors become a LoaderError
    naming the store, the array and the chunk (dask computes far from the loader)."""

    def __init__(self, array, store, root, name: str):
        self.array, self.store, self.root, self.name = array, store, root, name
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.chunks = array.chunks

    def __getitem__(self, selection):
        try:
            return self.array[selection]
        except Exception as exc:
            error = corrupt_chunk_error(self.store, self.root, self._keys(selection))
            if error is None:
                raise
            raise error from exc

    def _keys(self, selection) -> list[str]:
        """Chunk keys a selection of slices touches (dask asks for whole chunks); every chunk
        of the array for any other selection."""
        import itertools

        selection = selection if isinstance(selection, tuple) else (selection,)
        if len(selection) != self.ndim or not all(isinstance(s, slice) for s in selection):
            return chunk_keys(self.root, self.name)
        ranges = []
        for s, n, c in zip(selection, self.shape, self.chunks):
            start, stop, _ = s.indices(n)
            ranges.append(range(start // c, max(start, stop - 1) // c + 1))
        try:
            meta = json.loads((Path(self.root) / self.name / ".zarray").read_text())
        except (OSError, ValueError):
            meta = {}
        sep = meta.get("dimension_separator") or "."
        return [f"{self.name}/{sep.join(map(str, idx)) or '0'}"
                for idx in itertools.product(*ranges)]
