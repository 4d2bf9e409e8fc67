"""Storage of assemblies and results: netCDF files, atomic writes, the netCDF attribute rules.

Everything neurogeom writes goes through :func:`atomic_write` (or :func:`atomic_write_dir` for
folder stores such as zarr): the data are written beside the destination under a temporary name
and renamed into place, so a crash never leaves a half-written file and a failed write leaves an
existing file intact. :func:`to_netcdf` and :func:`open` round-trip an assembly (DataArray) or a
result (Dataset) with its name, coords and attrs unchanged. :func:`attr_problem` and
:func:`coord_problem` state what netCDF can store; :func:`neurogeom.assembly.validate` and the
loaders use them so a non-storable attr is reported when it is made, not when it is written.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import time
import uuid
from io import FileIO, RawIOBase
from numbers import Number
from pathlib import Path
from typing import Hashable

import numpy as np
import xarray as xr

from ._process import SharedSetting
from .errors import AssemblyError, LoaderError, NeurogeomError, StorageError

__all__ = ["to_netcdf", "open", "atomic_write", "atomic_write_dir", "check_destination", "attr_problem",
           "coord_problem", "restore_strings", "KIND_ATTR", "NAME_ATTR", "UNNAMED"]

#: Global attribute recording whether a file holds a ``"DataArray"`` or a ``"Dataset"``.
KIND_ATTR = "neurogeom_object"
#: Global attribute naming the stored DataArray's variable.
NAME_ATTR = "neurogeom_dataarray_name"
#: Variable name standing for a DataArray whose ``name`` is None.
UNNAMED = "__neurogeom_unnamed__"


# --------------------------------------------------------------------------------------------
# the netCDF attribute and coord rules
# --------------------------------------------------------------------------------------------

def attr_problem(value) -> str | None:
    """Why ``value`` cannot be a netCDF attribute, or None when it can."""
    if isinstance(value, (bool, np.bool_)):
        return "bool is not a netCDF attribute type (store 0/1 or a string)"
    if isinstance(value, (str, bytes, Number, np.number)):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value)
        if arr.ndim > 1:
            return f"{arr.ndim}-d arrays cannot be netCDF attributes"
        if arr.dtype.kind in "iufUS":
            return None
        if arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr.tolist()):
            return None
        return f"sequence of {arr.dtype} is not a netCDF attribute type (numbers or strings only)"
    return f"{type(value).__name__} is not a netCDF attribute type (use str, numbers or 1-d lists)"


def coord_problem(name: Hashable, coord: xr.DataArray) -> str | None:
    """Why coord ``name`` cannot be written to netCDF, or None when it can."""
    kind = coord.dtype.kind
    if kind in "biufcUSMm":
        return None
    if kind == "O":
        values = coord.values.ravel().tolist()
        types = {type(v) for v in values}
        if all(isinstance(v, str) for v in values):
            return None
        return (f"coord {name!r} has object dtype with {sorted(t.__name__ for t in types)} values; "
                "coords must be numbers, bools, datetimes or strings")
    return f"coord {name!r} has unsupported dtype {coord.dtype}"


# --------------------------------------------------------------------------------------------
# writing and reading
# --------------------------------------------------------------------------------------------

#: errnos that mean the disk (or the process's file-size or quota limit) is full
_NO_SPACE = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
#: errnos that mean the destination cannot be written at all
_CANNOT_WRITE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR,
                           errno.ENAMETOOLONG, errno.ELOOP, errno.ETXTBSY})
#: temporaries left by an earlier process are swept only if older than this (see _sweep_stale)
_PROCESS_START = time.time()


def atomic_write(path, write, *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` then rename into ``path``, so a crash never leaves a half file.

    The temporary file sits beside ``path`` (same filesystem, so the rename is atomic), is named
    ``.NAME.XXXXXXXX<suffix>`` and ends in ``suffix`` (writers that check extensions, like
    pynwb's, want their own). On any error, ``KeyboardInterrupt`` included, the temporary file
    is removed and an existing ``path`` is left untouched; temporaries of this pattern that an
    earlier, killed process left beside ``path`` are removed before writing. The new file gets
    the mode of the file it replaces, or the umask's default (``0o666 & ~umask``) if it is new.

    Raises
    ------
    StorageError
        ``path`` is a directory or not a regular file, its folder cannot be created or written,
        or the disk (file-size limit, quota) filled up during the write.
    """
    path = Path(path)
    check_destination(path, probe=False)
    _make_parent(path)
    _sweep_stale(path)
    mode = _mode_for(path)
    made: list[Path] = []
    with _removed_on_error(made, path):  # from before the temporary exists: see _new_temp
        try:
            tmp = _new_temp(path, path.parent, suffix, made)
        except OSError as exc:
            raise (_storage_error(path, exc) or StorageError(
                f"cannot write {path}: cannot create files in {path.parent} "
                f"({exc.strerror or exc})")) from exc
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    return path


_TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _new_temp(path: Path, folder: Path, suffix: str, made: list) -> Path:
    """Create an empty temporary ``folder/.NAME.XXXXXXXX<suffix>`` (mode 0o600) for ``path``.

    Each name is appended to ``made`` *before* the file is created, so a caller that removes
    everything in ``made`` on any exception also removes a file created just before a signal
    handler raised (between the system call and the assignment of its result, which
    ``tempfile.mkstemp`` cannot guard). A name that turns out to exist belongs to someone else
    and is taken out of ``made`` again.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = folder / f".{path.name}.{''.join(secrets.choice(_TOKEN) for _ in range(8))}{suffix}"
        made.append(name)
        try:
            fd = os.open(name, flags, 0o600)
        except FileExistsError:
            made.pop()
            continue
        except OSError:
            made.pop()
            raise
        os.close(fd)
        return name
    raise FileExistsError(errno.EEXIST, f"no free temporary name in {folder} for {path.name}")


def atomic_write_dir(path, write) -> Path:
    """Folder-store (zarr) counterpart of :func:`atomic_write`.

    ``write(tmp)`` creates the store at a fresh temporary path beside ``path``; only when it
    has finished is an existing store at ``path`` removed and the new one renamed into place.
    On any error the temporary store is removed and ``path`` is left as it was; stale
    temporary stores of an earlier, killed process are removed first. A replaced store's
    folder mode is kept.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StorageError(f"cannot write store {path}: a file (not a folder store) is there")
    _make_parent(path)
    _sweep_stale(path)
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_dir() else None
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    with _removed_on_error([tmp], path):
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    return path


def check_destination(path, *, sources=(), probe: bool = True) -> Path:
    """Check, before any work, that a result can be written to ``path``; return it.

    Refuses a ``path`` that is a directory or another non-regular file (a device, a pipe), whose
    folder sits under a regular file, that resolves to one of ``sources`` (the same file through
    a symlink, a hard link, or ``..``; or a path inside a source folder store), and, with
    ``probe``, a folder in which no file can be created (tested by creating and removing a
    temporary of :func:`atomic_write`'s pattern, which is what the write will do: permission
    bits alone do not tell, e.g. for root or on a read-only filesystem). URL sources are
    skipped. Nothing is left behind.

    Raises
    ------
    StorageError
        Naming ``path`` and the problem.
    """
    text = os.fspath(path)
    if not text:
        raise StorageError("the output path is empty")
    path = Path(text)
    if path.is_dir():
        raise StorageError(f"cannot write {path}: it is a directory (give a file name)")
    if path.exists() and not path.is_file():
        raise StorageError(f"cannot write {path}: it exists and is not a regular file")
    real = Path(os.path.realpath(path))
    for source in sources:
        source = os.fspath(source)
        if not source or "://" in source or not os.path.exists(source):
            continue
        same = real == Path(os.path.realpath(source))
        if not same and path.exists():
            same = os.path.samefile(path, source)   # hard links: same device and inode
        if same:
            raise StorageError(f"output {path} is the input file {source}; inputs are never "
                               "overwritten, choose another output file")
        if os.path.isdir(source) and real.is_relative_to(os.path.realpath(source)):
            raise StorageError(f"output {path} lies inside the input store {source}; inputs "
                               "are never modified, choose another output file")
    folder = real.parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise StorageError(f"cannot write {path}: {existing} is not a directory")
    if probe:
        made: list[Path] = []
        try:    # its own suffix, so it is never taken for the write's temporary (".tmp")
            _new_temp(path, existing, ".probe", made)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: cannot create files in {existing} "
                               f"({exc.strerror or exc})") from exc
        finally:
            for name in made:
                _remove(name)
    return path


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: cannot create its folder {path.parent} "
                           f"({exc.strerror or exc})") from exc


def _storage_error(path: Path, exc: BaseException) -> StorageError | None:
    """The one-line StorageError for an OSError (or h5py's wrapped form) met while writing."""
    code = getattr(exc, "errno", None)
    if code is None:    # h5py puts the C errno in the message: "... errno = 28, error message"
        found = re.search(r"errno = (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    reason = os.strerror(code) if code is not None else str(exc)
    if code in _NO_SPACE:
        return StorageError(f"no space left writing {path} ({reason}); any previous file "
                            "there is unchanged")
    if code in _CANNOT_WRITE:
        return StorageError(f"cannot write {path}: {reason}")
    return None


@contextlib.contextmanager
def _removed_on_error(temps: list, path: Path):
    """Remove the temporaries named in ``temps`` (read when an error happens, so names added
    inside the block count) on any error, interrupts included, and re-raise it, an OSError
    that means a full disk or quota as the :class:`StorageError` naming ``path``."""
    try:
        yield
    except BaseException as exc:
        for tmp in temps:
            _remove(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, NeurogeomError):
            error = _storage_error(path, exc)
            if error is not None:
                raise error from exc
        raise


def _remove(tmp) -> None:
    """Remove a temporary file or folder if it is there; never raises."""
    try:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.unlink(tmp)
    except OSError:
        pass


def _sweep_stale(path: Path) -> None:
    """Remove temporaries of our pattern for ``path`` left by an earlier process (one killed
    with SIGKILL, or by a power cut): those last modified before this process started.
    Temporaries of a writer running concurrently are fresher than that and are kept."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}(\.[A-Za-z0-9]+)$")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < _PROCESS_START:
                _remove(entry.path)
        except OSError:
            pass


def _mode_for(path: Path) -> int:
    """The mode the written file should get: that of the file it replaces, else the umask's."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:    # Linux >= 4.7 reports it without changing it (os.umask would race with threads)
        with builtins.open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _GuardedFile(RawIOBase):
    """The file object HDF5 writes through (h5py's ``fileobj`` driver) in :func:`to_netcdf`.

    When a write fails (disk full, a file-size limit) or a signal handler raises inside one of
    HDF5's callbacks (Ctrl-C, SIGTERM), the first exception is kept and from then on writes are
    dropped while reporting success, so HDF5 finishes and closes the file cleanly; the caller
    then re-raises the kept exception and removes the file. Letting the error reach HDF5
    instead leaves its metadata cache unflushable: it retries on every object's release,
    printing a traceback each time, and crashes the interpreter at exit (SIGSEGV).
    """

    def __init__(self, raw):
        self.raw = raw
        self.error: BaseException | None = None

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def _keep(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    def _retry(self, op, *args):
        for _ in range(3):      # a signal handler's exception can land on any call
            try:
                return op(*args)
            except BaseException as exc:  # noqa: BLE001 - kept and re-raised after the write
                self._keep(exc)
        return op(*args)

    def seek(self, offset, whence=0):
        return self._retry(self.raw.seek, offset, whence)

    def tell(self):
        return self._retry(self.raw.tell)

    def readinto(self, buffer):
        return self._retry(self.raw.readinto, buffer)

    def write(self, data):
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and done < len(view):
            try:
                done += self.raw.write(view[done:])
            except BaseException as exc:  # noqa: BLE001 - kept and re-raised after the write
                self._keep(exc)
        return len(view)

    def truncate(self, size=None):
        if self.error is None:
            try:
                return self.raw.truncate(size)
            except BaseException as exc:  # noqa: BLE001
                self._keep(exc)
        return size

    def flush(self):
        if self.error is None:
            try:
                self.raw.flush()
            except BaseException as exc:  # noqa: BLE001
                self._keep(exc)


def _threaded_scheduler():
    import dask

    return dask.config.set(scheduler="threads")    # applied here; __exit__ restores


#: Dask's threaded scheduler while any write of this process runs (see _local_scheduler)
_LOCAL_WRITES = SharedSetting(_threaded_scheduler,
                              lambda config: config.__exit__(None, None, None))


@contextlib.contextmanager
def _local_scheduler():
    """Dask's threaded scheduler while any write of this process runs.

    With a distributed Client active (or inside a Dask worker) xarray guards a write with a
    distributed lock named after the target, which a file object cannot be; the write happens
    in this process, so a local lock is the right one. The setting is process-wide, so
    concurrent writes (threads) share it (:class:`~neurogeom._process.SharedSetting`).
    """
    import sys

    if "distributed" not in sys.modules:    # no client or worker can exist: nothing to do
        yield
        return
    with _LOCAL_WRITES.held():
        yield


def _write_h5netcdf(ds: xr.Dataset, tmp) -> None:
    with FileIO(tmp, "r+") as raw:
        sink = _GuardedFile(raw)
        try:
            with _local_scheduler():
                ds.to_netcdf(sink, engine="h5netcdf")
        except BaseException:
            if sink.error is None:
                raise
        if sink.error is not None:
            raise sink.error


def to_netcdf(obj, path, *, engine: str = "h5netcdf") -> Path:
    """Write an assembly (DataArray) or result (Dataset) to netCDF atomically.

    The file is written next to ``path`` under a temporary name and renamed into place, so
    readers never see a partial file and a failed write leaves any previous file intact.
    :func:`open` reads it back as the same type, with names, coords and attrs unchanged.
    """
    if isinstance(obj, xr.DataArray):
        if obj.name is not None and obj.name in obj.coords:
            raise AssemblyError(f"cannot store assembly named {obj.name!r}: a coord has that name")
        name = obj.name if obj.name is not None else UNNAMED
        ds = obj.to_dataset(name=name)
        ds.attrs = {KIND_ATTR: "DataArray", NAME_ATTR: str(name)}
    elif isinstance(obj, xr.Dataset):
        ds = obj.copy()
        ds.attrs = {**obj.attrs, KIND_ATTR: "Dataset"}
    else:
        raise AssemblyError(f"to_netcdf writes xarray DataArrays or Datasets, got {type(obj).__name__}")
    _mark_list_attrs(ds)
    if engine == "h5netcdf":
        return atomic_write(path, lambda tmp: _write_h5netcdf(ds, tmp))
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine=engine))


_LIST_ATTRS = "_neurogeom_list_attrs"


def _mark_list_attrs(ds: xr.Dataset) -> None:
    """Record which attrs are lists: netCDF stores them as arrays, and a one-element list would
    come back as a scalar, so :func:`open` uses the record to restore the exact value."""
    for holder in (ds, *ds.variables.values()):
        names = [k for k, v in holder.attrs.items() if isinstance(v, (list, tuple))]
        if names:
            holder.attrs = {**holder.attrs, _LIST_ATTRS: ",".join(names)}


def _restore_list_attrs(ds: xr.Dataset) -> xr.Dataset:
    for holder in (ds, *ds.variables.values()):
        names = holder.attrs.pop(_LIST_ATTRS, None)
        for name in (names.split(",") if names else []):
            holder.attrs[name] = np.atleast_1d(holder.attrs[name]).tolist()
    return ds


def open(path, *, lazy: bool = False):  # noqa: A001 - mirrors xarray.open_dataset
    """Read a file written by :func:`to_netcdf` (or any netCDF) as a DataArray or Dataset.

    With ``lazy=False`` (default) the data are loaded and the file is closed. Object-dtype
    string coords are restored to numpy unicode, as they were written. netCDF4 (HDF5) files are
    read with h5netcdf; netCDF3 files (classic and 64-bit offset, as written by
    ``to_netcdf(engine="scipy")`` and many older tools) with scipy's reader.
    """
    path = Path(path)
    if not path.exists():
        raise LoaderError(f"no such file: {path}")
    if path.is_dir():
        raise LoaderError(f"{path} is a directory, not a netCDF file")
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise LoaderError(f"cannot read {path}: {exc.strerror}") from exc
    engine = "scipy" if head in (b"CDF\x01", b"CDF\x02") else "h5netcdf"
    if head == b"CDF\x05":
        raise LoaderError(f"{path} is a netCDF3 64-bit data (CDF-5) file, which is not supported; "
                          f"convert it to netCDF4 with `nccopy -k nc4 {path} out.nc`")
    # h5netcdf: HDF5 datasets without dimension scales get phony dims as they are read, as its
    # default does (said explicitly: h5netcdf warns about the default changing, for every file)
    kwargs = {"phony_dims": "access"} if engine == "h5netcdf" else {}
    try:
        if lazy:
            ds = xr.open_dataset(path, engine=engine, chunks={}, **kwargs)
        else:
            ds = xr.load_dataset(path, engine=engine, **kwargs)
    except Exception as exc:  # h5py/h5netcdf/scipy raise OSError/ValueError/TypeError
        if engine == "scipy":  # its errors describe its parse (IndexError…), not the file
            raise LoaderError(
                f"{path} is not a readable netCDF3 file: it starts like one but cannot be read, "
                f"truncated or corrupt ({path.stat().st_size} bytes; {type(exc).__name__}: "
                f"{exc})") from exc
        raise LoaderError(f"{path} is not a readable netCDF file: {exc}") from exc
    if "nwb_version" in ds.attrs:
        # an NWB file is HDF5 too, and its root reads as a Dataset of a few scalars: say what
        # it is, and how to make an assembly of it
        ds.close()
        raise LoaderError(f"{path} is an NWB recording, not an assembly or result file; make an "
                          "assembly of it first (`neurogeom load`, or loaders.spike_responses, "
                          "calcium_responses, binned_activity)")
    ds = _restore_list_attrs(restore_strings(ds))
    kind = ds.attrs.get(KIND_ATTR)
    if kind == "DataArray":
        name = ds.attrs[NAME_ATTR]
        da = ds[name]
        da.name = None if name == UNNAMED else name
        return da
    if kind == "Dataset":
        ds.attrs = {k: v for k, v in ds.attrs.items() if k != KIND_ATTR}
    return ds


def restore_strings(ds: xr.Dataset) -> xr.Dataset:
    updates = {}
    for name, c in ds.coords.items():
        if c.dtype.kind == "O" and c.size and all(isinstance(v, str) for v in c.values.ravel().tolist()):
            updates[name] = c.copy(data=c.values.astype(str))
    return ds.assign_coords(updates) if updates else ds
