"""Open an NWB recording (local HDF5 file, http(s) URL or zarr store) read-only and lazily.

:func:`open_nwb` is a context manager yielding an :class:`NWBSource`: table accessors (units,
intervals, electrodes, stimulus images, subject) that read HDF5 datasets directly, the pynwb
``NWBFile`` built on first use, and the name used in error messages. Nothing is read until a
dataset is sliced; remote files are streamed with HTTP range requests (:mod:`.http`: bounded
in time, retried, never downloaded whole) and their URL is recorded and printed only redacted
(:func:`loaders.redact_url`). Files are opened with mode ``"r"``, so loading can never modify
them.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np

from neurogeom.errors import LoaderError, NeurogeomError, format_list

from .._urls import redact_text, redact_url

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class NWBSource:
    """An open NWB recording.

    The tables the spike loader needs (units, intervals, electrodes, stimulus images, subject)
    are read straight from HDF5 when the source is an HDF5 file; the full pynwb ``NWBFile`` is
    built only when something asks for :attr:`nwbfile` (imaging series, behaviour, summaries).

    Attributes
    ----------
    name : str
        The path, or the URL without its credentials (:func:`loaders.redact_url`), for
        messages and the ``source`` attr.
    kind : str
        ``"local"``, ``"http"`` or ``"zarr"``.
    """

    def __init__(self, name: str, kind: str, *, h5=None, nwbfile=None, reader=None,
                 remote=None):
        self.name = name
        self.kind = kind
        self._h5 = h5
        self._nwbfile = nwbfile
        self._reader = reader
        self._remote = remote

    def failure(self):
        """The LoaderError behind a read that failed, or None: for a URL, the stall or HTTP
        error that ended reading (h5py turns a file object's exception into a bare OSError);
        for a zarr store, the corrupt chunk among those read last (codecs name no chunk)."""
        if hasattr(self._remote, "diagnose"):
            return self._remote.diagnose(self.name)
        return getattr(self._remote, "failure", None)

    @property
    def nwbfile(self):
        """The lazily read ``pynwb.NWBFile`` (built on first access)."""
        if self._nwbfile is None:
            self._nwbfile = self._reader()
        return self._nwbfile

    def where(self, part: str = "") -> str:
        """``"<source>: <part>"`` — the prefix of every error about this file."""
        return f"{self.name}: {part}" if part else self.name

    # -- tables -------------------------------------------------------------------------------
    def units(self):
        """The units table (:class:`~.tables.H5Table`/``PynwbTable``), or None."""
        from .tables import H5Table, PynwbTable

        if self._h5 is not None:
            g = self._h5.get("units")
            return H5Table(g, "units table") if g is not None else None
        units = self.nwbfile.units
        return PynwbTable(units, "units table") if units is not None else None

    def electrodes(self):
        from .tables import H5Table, PynwbTable

        if self._h5 is not None:
            g = self._h5.get("general/extracellular_ephys/electrodes")
            return H5Table(g, "electrodes table") if g is not None else None
        table = self.nwbfile.electrodes
        return PynwbTable(table, "electrodes table") if table is not None else None

    def intervals_names(self) -> list[str]:
        """Names of the intervals tables (``trials``, ``*_presentations``, …), sorted."""
        if self._h5 is not None:
            g = self._h5.get("intervals")
            if g is None:
                return []
            return sorted(k for k in g.keys() if "colnames" in g[k].attrs)
        f = self.nwbfile
        return sorted(f.intervals.keys()) if f.intervals else []

    def intervals(self, name: str):
        """The intervals table ``name``; LoaderError listing the tables the file has."""
        from .tables import H5Table, PynwbTable

        available = self.intervals_names()
        if name not in available:
            raise LoaderError(f"{self.where()} has no intervals table {name!r}; intervals "
                              f"tables in the file: {format_list(available)}")
        label = f"intervals table {name!r}"
        if self._h5 is not None:
            return H5Table(self._h5["intervals"][name], label)
        return PynwbTable(self.nwbfile.intervals[name], label)

    def stimulus_images(self):
        """``(path, image names in order_of_images order)`` of the first ``Images`` container
        with ``order_of_images`` in ``/stimulus``, or None. (pynwb returns images sorted by
        name; ``order_of_images`` is the order the stimulus indices refer to.)"""
        if self._h5 is not None:
            for where in ("stimulus/presentation", "stimulus/templates"):
                g = self._h5.get(where)
                for key in (g.keys() if g is not None else ()):
                    item = g[key]
                    if hasattr(item, "keys") and "order_of_images" in item:
                        names = _reference_names(self._h5, item, item["order_of_images"])
                        return f"/{where}/{key}/order_of_images", np.array(names, dtype=str)
            return None
        from pynwb.base import Images

        f = self.nwbfile
        for where, group in (("stimulus/presentation", f.stimulus),
                             ("stimulus/templates", f.stimulus_template)):
            for key, obj in (group or {}).items():
                if isinstance(obj, Images) and obj.order_of_images is not None:
                    names = [img.name for img in obj.order_of_images.data[:]]
                    return f"/{where}/{key}/order_of_images", np.array(names, dtype=str)
        return None

    def info(self) -> dict:
        """``session``, ``subject`` and ``species`` ("unknown" when not recorded)."""
        if self._h5 is not None:
            def text(path):
                item = self._h5.get(path)
                if item is None:
                    return None
                value = item[()]
                return value.decode() if isinstance(value, bytes) else str(value)

            session = text("general/session_id") or text("identifier")
            subject = text("general/subject/subject_id")
            species = text("general/subject/species")
        else:
            f = self.nwbfile
            sub = getattr(f, "subject", None)
            session = f.session_id or f.identifier
            subject = getattr(sub, "subject_id", None)
            species = getattr(sub, "species", None)
        return {"session": str(session or "unknown"), "subject": str(subject or "unknown"),
                "species": str(species or "unknown")}


def _reference_names(h5file, group, refs) -> list[str]:
    """Names of the objects that the dataset ``refs`` of object references points to, usually
    members of ``group``.

    h5py's ``file[ref].name`` asks HDF5 to search for a path (about a millisecond each: seconds
    for a stimulus set of thousands of images), and even dereferencing each reference to read
    its object address costs ~15 us. An HDF5 object reference *is* the referenced object's
    header address, so the whole dataset is read as addresses in one call and matched against
    the addresses of the group's hard links, listed in one iteration. References that do not
    resolve this way (objects outside ``group``, reference types stored differently) are
    dereferenced one by one.
    """
    import h5py

    by_address: dict[int, str] = {}

    def member(name, info):
        if info.type == h5py.h5l.TYPE_HARD:
            by_address[int(info.u)] = name.decode()

    try:
        group.id.links.iterate(member, info=True)
        addresses = np.empty(refs.shape, dtype=np.uint64)
        refs.id.read(h5py.h5s.ALL, h5py.h5s.ALL, addresses, mtype=h5py.h5t.STD_REF_OBJ)
        names = [by_address.get(a) for a in addresses.tolist()]
    except Exception:  # an unusual reference layout
        names = [None]
    if not names or any(name is None for name in names):
        return _reference_names_slowly(h5file, group, refs[()])
    # check the first against a real dereference, so that an h5py whose link info does not
    # carry addresses can never silently mis-name the images
    first = h5py.h5o.get_info(h5py.h5r.dereference(refs[0], h5file.id)).addr
    if h5py.h5o.get_info(group.id, names[0].encode()).addr != first:
        return _reference_names_slowly(h5file, group, refs[()])
    return names


def _reference_names_slowly(h5file, group, refs) -> list[str]:
    """:func:`_reference_names` by dereferencing each reference (``refs``: h5py references)."""
    import h5py

    by_address = {h5py.h5o.get_info(group.id, n).addr: n.decode() for n in group.id}
    names = []
    for ref in refs:
        address = h5py.h5o.get_info(h5py.h5r.dereference(ref, h5file.id)).addr
        name = by_address.get(address)
        names.append(name if name is not None else h5file[ref].name.rsplit("/", 1)[-1])
    return names


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _is_zarr(source: str) -> bool:
    p = Path(source)
    return source.rstrip("/").endswith(".zarr") or (p.is_dir() and (
        (p / ".zgroup").exists() or (p / "zarr.json").exists()))


@contextlib.contextmanager
def open_nwb(source, *, timeout=None):
    """Open an NWB recording read-only, as a context manager.

    Parameters
    ----------
    source : str, Path or NWBSource
        A local ``.nwb`` (HDF5) file, an ``http://``/``https://`` URL of one (streamed with HTTP
        range requests, never downloaded whole), or an NWB zarr store (a ``.zarr`` directory,
        read with ``hdmf-zarr``). An already open :class:`NWBSource` is passed through and left
        open.
    timeout : float, optional
        For URLs: seconds allowed to connect, to receive response headers, and for each
        stretch of a body (a body slower than 1 KiB per ``timeout`` is stalled). Default: the
        ``NEUROGEOM_HTTP_TIMEOUT`` environment variable, else 30. A failed request is retried
        twice with backoff before a LoaderError says which phase stalled.

    Yields
    ------
    NWBSource
        With ``.nwbfile`` the lazily read ``pynwb.NWBFile``.

    Raises
    ------
    LoaderError
        Missing file, a file that is not HDF5, HDF5 that is not NWB, a truncated or corrupt file,
        or a URL that cannot be read (HTTP error, connection refused, a stalled server) —
        naming the source (URLs without credentials or signatures).

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
    name = redact_url(source)
    if "://" in source and not _is_url(source):
        raise LoaderError(f"cannot read {name}: only http:// and https:// URLs are read (or "
                          "local files and zarr stores)")
    with contextlib.ExitStack() as stack:
        if _is_url(source):
            rec = _open_http(source, stack, timeout)
        elif _is_zarr(source):
            rec = _open_zarr(source, stack)
        else:
            rec = _open_local(source, stack)
        try:
            yield rec
        except Exception as exc:
            # our own errors already say what is wrong; a zarr store is checked (its recent
            # chunks decompressed again) only behind an error a library raised
            failure = None if rec.kind == "zarr" and isinstance(exc, NeurogeomError) else \
                rec.failure()
            if failure is not None and str(failure) != str(exc):
                raise failure from exc  # the stall/HTTP error behind h5py's OSError
            if isinstance(exc, OSError):  # h5py reading a damaged file mid-way
                raise LoaderError(f"{name}: reading failed, the file is truncated or corrupt "
                                  f"({redact_text(str(exc), source)})") from exc
            raise


def _check_nwb(h5file, name: str) -> None:
    if "nwb_version" not in h5file.attrs:
        groups = sorted(h5file.keys())
        raise LoaderError(f"{name} is an HDF5 file but not an NWB file (no 'nwb_version' "
                          f"attribute at its root; top-level groups: {format_list(groups)})")


def _source(h5file, name: str, kind: str, stack) -> NWBSource:
    """An NWBSource over an open h5py file; the pynwb NWBFile is read on first use."""
    _check_nwb(h5file, name)
    return NWBSource(name, kind, h5=h5file, reader=lambda: _read_nwb(h5file, name, stack))


@contextlib.contextmanager
def _quiet_pynwb():
    """Silence pynwb's read-time chatter that says nothing a loader's user can act on.

    The other warnings of a read are held back until it succeeds: when it fails, the
    LoaderError says what is wrong in one line, and the warnings that preceded it (hdmf-zarr
    warns once per array of a store that is not NWB) would bury it."""
    with warnings.catch_warnings(record=True) as held:
        # files written by older/other tools routinely trigger pynwb's "ignoring cached
        # namespace" chatter; it says nothing about the data
        warnings.filterwarnings("ignore", message=".*namespace.*")
        # pynwb's orientation complaints: calcium.series_layout decides and warns itself
        warnings.filterwarnings("ignore", message=".*oriented incorrectly.*")
        warnings.filterwarnings("ignore", message=".*does not match length of timestamps.*")
        yield
    for w in held:  # the read succeeded: its warnings are worth seeing
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _read_nwb(h5file, name: str, stack, remote=None):
    """Read the NWBFile from an open h5py file; errors name the file."""
    from pynwb import NWBHDF5IO

    try:
        with _quiet_pynwb():
            io = stack.enter_context(NWBHDF5IO(file=h5file, mode="r", load_namespaces=True))
            return io.read()
    except Exception as exc:  # pynwb/hdmf raise many types when a file is damaged
        failure = getattr(remote, "failure", None)
        if failure is not None:
            raise failure from exc
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
    return _source(h5, path, "local", stack)


def _open_http(url: str, stack, timeout=None):
    import h5py

    from .http import HTTPRangeFile

    remote = HTTPRangeFile(url, timeout=timeout)  # LoaderError naming what failed
    stack.callback(remote.close)
    name = remote.name
    head = remote.read(8)
    remote.seek(0)
    try:
        h5 = stack.enter_context(h5py.File(remote, "r"))
    except OSError as exc:
        failure = remote.failure
        if failure is not None:
            raise failure from exc
        if head == HDF5_SIGNATURE:
            raise LoaderError(f"{name} is truncated or corrupt: {exc}") from exc
        raise LoaderError(f"{name} is not an HDF5/NWB file (it does not start with the HDF5 "
                          "signature)") from exc
    _check_nwb(h5, name)
    return NWBSource(name, "http", h5=h5, remote=remote,
                     reader=lambda: _read_nwb(h5, name, stack, remote))


def _open_zarr(path: str, stack):
    if not _is_url(path) and not Path(path).exists():
        raise LoaderError(f"no such zarr store: {path}")
    try:
        from hdmf_zarr.nwb import NWBZarrIO
    except ImportError as exc:
        raise LoaderError(f"cannot read the zarr store {path}: the 'hdmf-zarr' package is not "
                          f"installed ({exc})") from exc
    if not _is_url(path) and (Path(path) / "zarr.json").exists():
        raise LoaderError(f"{path} is a zarr format 3 store; NWB zarr stores (hdmf-zarr) are "
                          "zarr format 2, with '.zgroup' at their root")
    if not _is_url(path) and Path(path).is_dir() and not (Path(path) / ".zgroup").exists():
        found = sorted(p.name for p in Path(path).iterdir())[:10]
        raise LoaderError(f"{path} is not an NWB zarr store (no '.zgroup' at its root; it holds "
                          f"{format_list(found) if found else 'nothing'})")
    if not _is_url(path):
        _check_nwb_zarr_root(path)
    from .._zarr import recording_store

    store = recording_store(path)  # remembers the chunks read, to name a corrupt one
    try:
        with _quiet_pynwb():  # as for HDF5 files
            io = stack.enter_context(NWBZarrIO(store, mode="r"))
            return NWBSource(path, "zarr", nwbfile=io.read(), remote=store)
    except Exception as exc:
        corrupt = store.diagnose(path)
        if corrupt is not None:
            raise corrupt from exc
        if "UnsafeDecodeError" in _exception_chain(exc):
            # hdmf-zarr's default codec for object references is Pickle; decoding pickles from
            # a file runs arbitrary code, so numcodecs refuses unless the user opts in
            raise LoaderError(
                f"{path} stores object references with the Pickle codec (hdmf-zarr's default), "
                "which is not decoded because unpickling can run arbitrary code; if you trust "
                "the store, set NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE=1 before starting Python, "
                "or re-export it with object_codec_class=numcodecs.JSON") from exc
        raise LoaderError(f"{path} is not a readable NWB zarr store: "
                          f"{type(exc).__name__}: {exc}") from exc


def _check_nwb_zarr_root(path: str) -> None:
    """A local zarr store whose root is not an NWBFile (hdmf-zarr writes ``neurodata_type:
    NWBFile`` into the root's ``.zattrs``) is refused before hdmf-zarr reads it; a features
    store written by :func:`loaders.write_features` is named as such. Attributes that cannot be
    read are left to hdmf-zarr, whose error is then reported."""
    import json

    try:
        attrs = json.loads((Path(path) / ".zattrs").read_text())
    except FileNotFoundError:
        attrs = {}
    except (OSError, ValueError):
        return
    if not isinstance(attrs, dict) or attrs.get("neurodata_type") == "NWBFile":
        return
    if "neurogeom_object" in attrs:
        raise LoaderError(f"{path} is a features store written by loaders.write_features, not "
                          "an NWB zarr store; open it with loaders.read_features")
    kind = attrs.get("neurodata_type")
    raise LoaderError(f"{path} is not an NWB zarr store: " + (
        f"its root is a {kind!r}, not an 'NWBFile'" if kind else
        "its root's .zattrs do not make it an 'NWBFile' (no neurodata_type)"))


def _exception_chain(exc) -> str:
    """Names of ``exc`` and the exceptions it was raised from (hdmf wraps codec errors)."""
    names, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names.append(type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    return " ".join(names)
