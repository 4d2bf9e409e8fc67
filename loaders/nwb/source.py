"""Open an NWB recording (local HDF5 file, http(s) URL or zarr store) read-only and lazily.

:func:`open_nwb` is a context manager yielding an :class:`NWBSource`: the pynwb ``NWBFile``
plus the name used in error messages. Nothing is read until a dataset is sliced; remote files
are streamed with ``remfile`` (HTTP range requests), never downloaded whole. Files are opened
with mode ``"r"``, so loading can never modify them.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from neurogeom.errors import LoaderError, format_list

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class NWBSource:
    """An open NWB recording.

    Attributes
    ----------
    nwbfile : pynwb.NWBFile
        The lazily read file: tables and series are read only when sliced.
    name : str
        The path or URL, as given, for messages and the ``source`` attr.
    kind : str
        ``"local"``, ``"http"`` or ``"zarr"``.
    """

    nwbfile: object
    name: str
    kind: str

    def where(self, part: str = "") -> str:
        """``"<source>: <part>"`` — the prefix of every error about this file."""
        return f"{self.name}: {part}" if part else self.name


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _is_zarr(source: str) -> bool:
    p = Path(source)
    return source.rstrip("/").endswith(".zarr") or (p.is_dir() and (
        (p / ".zgroup").exists() or (p / "zarr.json").exists()))


@contextlib.contextmanager
def open_nwb(source):
    """Open an NWB recording read-only, as a context manager.

    Parameters
    ----------
    source : str, Path or NWBSource
        A local ``.nwb`` (HDF5) file, an ``http://``/``https://`` URL of one (streamed with HTTP
        range requests, never downloaded whole), or an NWB zarr store (a ``.zarr`` directory,
        read with ``hdmf-zarr``). An already open :class:`NWBSource` is passed through and left
        open.

    Yields
    ------
    NWBSource
        With ``.nwbfile`` the lazily read ``pynwb.NWBFile``.

    Raises
    ------
    LoaderError
        Missing file, a file that is not HDF5, HDF5 that is not NWB, a truncated or corrupt file,
        or a URL that cannot be read — naming the source.

    Examples
    --------
    >>> from loaders import open_nwb                        # doctest: +SKIP
    >>> with open_nwb("session.nwb") as rec:                # doctest: +SKIP
    ...     print(rec.nwbfile.units.colnames)
    """
    if isinstance(source, NWBSource):
        yield source
        return
    if not isinstance(source, (str, os.PathLike)):
        raise LoaderError(f"an NWB source is a path, URL or zarr store, got {type(source).__name__}")
    source = os.fspath(source)
    with contextlib.ExitStack() as stack:
        if _is_url(source):
            nwbfile = _open_http(source, stack)
            kind = "http"
        elif _is_zarr(source):
            nwbfile = _open_zarr(source, stack)
            kind = "zarr"
        else:
            nwbfile = _open_local(source, stack)
            kind = "local"
        yield NWBSource(nwbfile=nwbfile, name=source, kind=kind)


def _read_nwb(h5file, name: str, stack):
    """Read the NWBFile from an open h5py file; errors name the file."""
    from pynwb import NWBHDF5IO

    if "nwb_version" not in h5file.attrs:
        groups = sorted(h5file.keys())
        raise LoaderError(f"{name} is an HDF5 file but not an NWB file (no 'nwb_version' "
                          f"attribute at its root; top-level groups: {format_list(groups)})")
    try:
        with warnings.catch_warnings():
            # files written by older/other tools routinely trigger pynwb's "ignoring cached
            # namespace" chatter; it says nothing about the data
            warnings.filterwarnings("ignore", message=".*namespace.*")
            # pynwb's orientation complaints: calcium.series_layout decides and warns itself
            warnings.filterwarnings("ignore", message=".*oriented incorrectly.*")
            warnings.filterwarnings("ignore", message=".*does not match length of timestamps.*")
            io = stack.enter_context(NWBHDF5IO(file=h5file, mode="r", load_namespaces=True))
            return io.read()
    except LoaderError:
        raise
    except Exception as exc:  # pynwb/hdmf raise many types when a file is damaged
        raise LoaderError(f"{name} is not a readable NWB file: {type(exc).__name__}: {exc}") from exc


def _open_local(path: str, stack):
    import h5py

    p = Path(path)
    if not p.exists():
        raise LoaderError(f"no such file: {path}")
    if p.is_dir():
        raise LoaderError(f"{path} is a directory, not an NWB file (zarr stores end in .zarr)")
    with open(p, "rb") as fh:
        head = fh.read(8)
    size = p.stat().st_size
    try:
        h5 = stack.enter_context(h5py.File(p, "r"))
    except OSError as exc:
        if head == HDF5_SIGNATURE:
            raise LoaderError(f"{path} is truncated or corrupt: it starts like HDF5 but cannot be "
                              f"opened ({size} bytes; {exc})") from exc
        raise LoaderError(f"{path} is not an HDF5/NWB file (it does not start with the HDF5 "
                          f"signature; {size} bytes)") from exc
    try:
        return _read_nwb(h5, path, stack)
    except LoaderError:
        raise
    except OSError as exc:
        raise LoaderError(f"{path} is truncated or corrupt: {exc}") from exc


def _open_http(url: str, stack):
    import h5py

    try:
        import remfile
    except ImportError as exc:  # pragma: no cover - remfile is a dependency
        raise LoaderError(f"cannot stream {url}: the 'remfile' package is not installed") from exc
    try:
        remote = remfile.File(url)
        stack.callback(remote.close)
        head = remote.read(8)
        remote.seek(0)
    except Exception as exc:
        raise LoaderError(f"cannot read {url}: {type(exc).__name__}: {exc}") from exc
    try:
        h5 = stack.enter_context(h5py.File(remote, "r"))
    except OSError as exc:
        if head == HDF5_SIGNATURE:
            raise LoaderError(f"{url} is truncated or corrupt: {exc}") from exc
        raise LoaderError(f"{url} is not an HDF5/NWB file (it does not start with the HDF5 "
                          "signature)") from exc
    return _read_nwb(h5, url, stack)


def _open_zarr(path: str, stack):
    if not _is_url(path) and not Path(path).exists():
        raise LoaderError(f"no such zarr store: {path}")
    try:
        from hdmf_zarr.nwb import NWBZarrIO
    except ImportError as exc:
        raise LoaderError(f"cannot read the zarr store {path}: the 'hdmf-zarr' package is not "
                          f"installed ({exc})") from exc
    try:
        io = stack.enter_context(NWBZarrIO(path, mode="r"))
        return io.read()
    except Exception as exc:
        raise LoaderError(f"{path} is not a readable NWB zarr store: "
                          f"{type(exc).__name__}: {exc}") from exc
