"""Run one analysis over many recordings on Dask: one task per recording, one combined Dataset.

:func:`map_recordings` turns every source (a file, a glob pattern, an ``http(s)://`` URL or an
assembly already in memory) into one Dask task that loads the recording *inside the task* with
``load(source)``, runs ``analysis(assembly)`` and returns only the small result Dataset. Tasks
receive sources, never open files: h5py handles cannot be pickled, and a worker on another
machine opens the file (or URL) itself.

Scheduling is Dask's own (Rocklin 2015):

- no ``client`` and no ``workers``: Dask's local threaded scheduler running one recording at a
  time (BLAS on every core; threads of one process do not speed up the GIL-bound analyses),
  nothing to start;
- ``workers=N``: a :class:`distributed.LocalCluster` of ``N`` single-threaded worker processes
  on 127.0.0.1, closed afterwards;
- ``client=``: a :class:`distributed.Client` or a scheduler address (``tcp://host:8786``), so
  a cluster started by dask-jobqueue (Slurm, PBS), dask-kubernetes or Coiled is used unchanged.

Failures are per recording: a task that raises is retried by Dask (``retries=``; a worker
process that dies mid-task is rescheduled by the distributed scheduler on its own), and a
recording that still fails becomes a ``"failed"`` row with its error, never a crash of the
batch and never values mixed with the good rows.

The layering rule holds here too: this module does not import ``loaders``. What reads a file is
the ``load`` callable the caller passes (``functools.partial(loaders.spike_responses, ...)``, or
``loaders.from_spec({"kind": "spikes", ...})`` for the declarative form the CLI uses).

``distributed`` is imported only when a client or workers are used, so ``import neurogeom``
does not pay for it.

References
----------
Rocklin (2015). Dask: parallel computation with blocked algorithms and task scheduling.
Proc. 14th Python in Science Conf., 130-136.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import xarray as xr

from ._blas import limit_threads
from ._process import SharedSetting
from ._results import REFERENCES, attr_value, build_result
from .errors import AnalysisError, LoaderError, NeurogeomError, format_list

__all__ = ["map_recordings", "local_cluster", "recording_keys", "COMBINED_NAME"]

#: File name (in ``store``) of the combined Dataset; no recording key takes this name.
COMBINED_NAME = "map_recordings"

#: Attrs of a stored per-recording file that hold the row's bookkeeping (removed on reading).
_STORE_ATTRS = ("neurogeom_recording_key", "neurogeom_recording_source",
                "neurogeom_recording_seconds", "neurogeom_recording_info")

#: Names of the combined Dataset's own variables; an analysis variable of such a name is
#: renamed ``analysis_<name>`` (recorded in the ``renamed_variables`` attr).
_RESERVED = ("recording", "status", "error", "seconds", "source")

#: Assembly attrs (or single-valued neuroid coords) that become coords on ``recording``.
_INFO_ATTRS = ("subject", "session", "species", "identifier", "units", "loader")


# --------------------------------------------------------------------------------------------
# sources and recording keys
# --------------------------------------------------------------------------------------------

def _is_url(source) -> bool:
    return isinstance(source, str) and "://" in source


def _expand(sources) -> list:
    """Sources as a list: a glob pattern becomes the sorted files it matches."""
    if isinstance(sources, (str, PurePath, xr.DataArray)):
        sources = [sources]
    out = []
    for source in sources:
        if isinstance(source, str) and not _is_url(source) and glob.has_magic(source):
            matches = sorted(glob.glob(os.path.expanduser(source)))
            if not matches:
                raise LoaderError(f"the pattern {source!r} matches no file")
            out.extend(matches)
        elif isinstance(source, (str, PurePath, xr.DataArray)):
            out.append(str(source) if isinstance(source, PurePath) else source)
        else:
            raise AnalysisError(f"map_recordings takes paths, glob patterns, URLs or assemblies "
                                f"(xarray.DataArray) as sources, got {type(source).__name__}")
    if not out:
        raise AnalysisError("map_recordings got no sources")
    return out


def redact(source: str) -> str:
    """A URL without what can hold credentials (``user:password@`` and the query string, kept
    as ``?REDACTED``); local paths unchanged. Stricter than ``loaders.redact_url``, which keeps
    the harmless query parameters: this module cannot import loaders."""
    if not _is_url(source):
        return source
    parts = urlsplit(source)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path,
                       "REDACTED" if parts.query else "", ""))


def _stem(source, index: int) -> str:
    if isinstance(source, xr.DataArray):
        text = str(source.name) if source.name is not None else str(
            source.attrs.get("session", source.attrs.get("source", f"recording_{index}")))
    else:
        text = urlsplit(source).path if _is_url(source) else source
    name = text.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".zarr", ".nwb", ".nc", ".h5", ".hdf5"):
        name = name[: -len(suffix)] if name.lower().endswith(suffix) and len(name) > len(suffix) \
            else name
    # the key names a file in the store: keep it to portable file-name characters
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or f"recording_{index}"
    return name


def recording_keys(sources: Iterable) -> list[str]:
    """Unique keys for ``sources``: the file name stem (``.nwb``/``.nc``/``.zarr`` dropped),
    an assembly's name or ``session`` attr; repeats get ``-2``, ``-3``, …"""
    taken = {COMBINED_NAME}
    keys = []
    for i, source in enumerate(sources):
        stem = key = _stem(source, i)
        n = 1
        while key in taken:
            n += 1
            key = f"{stem}-{n}"
        taken.add(key)
        keys.append(key)
    return keys


# --------------------------------------------------------------------------------------------
# the task
# --------------------------------------------------------------------------------------------

class RecordingFailed(Exception):
    """What a task raises when its recording fails: the one-line error and the seconds spent.

    Plain ``args`` only, so it pickles back from any worker.
    """

    def __init__(self, message: str, seconds: float):
        super().__init__(message, seconds)
        self.message, self.seconds = message, seconds

    def __str__(self):
        return self.message


#: the BLAS/OpenMP limit of :func:`_blas_threads`, shared by the tasks of this process
_BLAS_LIMIT = SharedSetting(limit_threads, lambda limiter: limiter.restore_original_limits())


@contextlib.contextmanager
def _blas_threads(n: int | None):
    """Limit BLAS/OpenMP to ``n`` threads while any task of this process runs.

    threadpoolctl changes a process-wide setting, so concurrent tasks in one worker share one
    limit (:class:`~neurogeom._process.SharedSetting`: the first task to enter sets it and the
    last to leave restores it).
    """
    if not n:
        yield
        return
    with _BLAS_LIMIT.held(n):
        yield


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error_text(exc: BaseException, source) -> str:
    text = f"{type(exc).__name__}: {_one_line(exc)}"
    if isinstance(source, str) and _is_url(source) and redact(source) != source:
        text = text.replace(source, redact(source))
    return text


def recording_info(a) -> dict:
    """Per-recording facts of an assembly, stored as coords on ``recording``: the attrs in
    ``_INFO_ATTRS`` (or the single value of a neuroid coord of that name), ``n_units`` (the
    neuroid count) and the size of its first dim (``n_presentations`` or ``n_time``)."""
    info: dict = {}
    for name in _INFO_ATTRS:
        value = a.attrs.get(name)
        if value is None and name in a.coords and a[name].ndim == 1:
            labels = sorted({str(v) for v in np.asarray(a[name].values).tolist()})
            value = labels[0] if len(labels) == 1 else ",".join(labels)
        if value is not None:
            info[name] = str(value)
    if "neuroid" in a.dims:
        info["n_units"] = int(a.sizes["neuroid"])
    first = a.dims[0] if a.dims and a.dims[0] != "neuroid" else None
    if first is not None:
        info[f"n_{first}s" if first == "presentation" else f"n_{first}"] = int(a.sizes[first])
    return info


def _run_recording(key: str, source, load, analysis, blas_threads, store):
    """Load one recording, analyze it, return ``(result, info, seconds)``; write it to the store.

    Runs inside a Dask task (on a worker process under distributed). Every exception becomes
    :class:`RecordingFailed` carrying the one-line error, so Dask's ``retries`` apply to it and
    the client can make a ``failed`` row of it.
    """
    start = time.perf_counter()
    try:
        with _blas_threads(blas_threads):
            a = source if isinstance(source, xr.DataArray) else load(source)
            if not isinstance(a, xr.DataArray):
                raise AnalysisError(f"load({redact(str(source))!r}) returned "
                                    f"{type(a).__name__}, not an assembly (xarray.DataArray)")
            result = analysis(a)
            if not isinstance(result, xr.Dataset):
                raise AnalysisError(f"the analysis returned {type(result).__name__}, not an "
                                    "xarray.Dataset")
            # a lazy result is computed here, in the task, not on the client
            result = result.compute()
            info = recording_info(a)
        seconds = time.perf_counter() - start
        if store is not None:
            _store_write(store, key, source, result, info, seconds)
    except Exception as exc:
        raise RecordingFailed(_error_text(exc, source), time.perf_counter() - start) from None
    return result, info, seconds


def _attempts(retries: int, *args):
    """The local scheduler has no ``retries``: try ``1 + retries`` times, return the failure."""
    for attempt in range(retries + 1):
        try:
            return _run_recording(*args)
        except RecordingFailed as exc:
            if attempt == retries:
                return exc


# --------------------------------------------------------------------------------------------
# the store: one file per finished recording
# --------------------------------------------------------------------------------------------

def _source_text(source) -> str:
    if isinstance(source, xr.DataArray):
        return f"assembly {source.name!r}" if source.name is not None else "assembly"
    return redact(str(source))


def _store_write(store: Path, key: str, source, result: xr.Dataset, info: dict,
                 seconds: float) -> None:
    from .io import to_netcdf

    ds = result.copy()
    ds.attrs = {**result.attrs, "neurogeom_recording_key": key,
                "neurogeom_recording_source": _source_text(source),
                "neurogeom_recording_seconds": float(seconds),
                "neurogeom_recording_info": json.dumps(info, sort_keys=True)}
    to_netcdf(ds, store / f"{key}.nc")


def _store_read(store: Path, key: str, source):
    """The stored row of ``key``, or None when absent or made from another source."""
    from .io import open as open_result

    path = store / f"{key}.nc"
    if not path.is_file():
        return None
    try:
        ds = open_result(path)
    except (NeurogeomError, OSError, ValueError):
        return None                 # unreadable (a foreign file): compute it again
    if not isinstance(ds, xr.Dataset) or \
            ds.attrs.get("neurogeom_recording_source") != _source_text(source):
        return None
    seconds = float(ds.attrs["neurogeom_recording_seconds"])
    info = json.loads(ds.attrs["neurogeom_recording_info"])
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in _STORE_ATTRS}
    return ds, info, seconds


# --------------------------------------------------------------------------------------------
# schedulers
# --------------------------------------------------------------------------------------------

def _show_progress(progress) -> bool:
    """``True``: a bar when stderr is a terminal; ``"always"`` / ``False`` force it."""
    if progress == "always":
        return True
    if not progress:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _run_local(tasks, retries, blas_threads, store, progress):
    """Dask's local threaded scheduler with one task at a time, BLAS on every core; failures
    returned as values.

    One thread, not one per core: the analyses are many small numpy calls that hold the GIL
    between them, so tasks in threads of one process slow each other down (capacity per
    region on 8 sessions, benchmarks/parallel.py: 4.16 s in 2 threads vs 2.75 s one after
    another). Parallelism across recordings comes from processes: ``workers=`` or ``client=``.
    """
    import dask

    n_threads = 1
    blas = blas_threads
    delayed = [dask.delayed(_attempts, pure=False)(retries, key, source, load, analysis, None,
                                                   store)
               for key, source, load, analysis in tasks]
    bar = contextlib.nullcontext()
    if _show_progress(progress):
        from dask.diagnostics import ProgressBar
        bar = ProgressBar(out=sys.stderr)
    # one limit for the whole process (threads share it): set here, not per task
    with bar, _blas_threads(blas):
        return list(dask.compute(*delayed, scheduler="threads", num_workers=n_threads))


def _worker_blas_threads(client) -> int:
    """Each worker thread's share of its host's cores (at least 1)."""
    info = client.scheduler_info(n_workers=-1)["workers"] if _accepts_n_workers(client) \
        else client.scheduler_info()["workers"]
    if not info:
        return 1
    cores = client.run(os.cpu_count)
    threads_on_host: dict = {}
    for w in info.values():
        threads_on_host[w["host"]] = threads_on_host.get(w["host"], 0) + int(w["nthreads"])
    shares = [max(1, int(cores.get(addr) or 1) // max(threads_on_host[w["host"]], 1))
              for addr, w in info.items()]
    return min(shares)


def _accepts_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def _run_distributed(client, tasks, retries, blas_threads, store, progress):
    """Futures on a distributed cluster, Dask retrying failed tasks; results in source order."""
    import distributed

    blas = blas_threads if blas_threads is not None else _worker_blas_threads(client)
    futures = [client.submit(_run_recording, key, source, load, analysis, blas, store,
                             retries=retries, pure=False, key=f"neurogeom-recording-{key}-"
                             f"{os.urandom(4).hex()}")
               for key, source, load, analysis in tasks]
    try:
        if _show_progress(progress):
            # distributed's text bar writes to stdout: stderr keeps stdout for the results
            with contextlib.redirect_stdout(sys.stderr):
                distributed.progress(futures)
        distributed.wait(futures)
        out = []
        for future in futures:
            if future.status == "finished":
                out.append(future.result())
            else:
                try:
                    exc = future.exception()
                except Exception as lost:      # cancelled: the scheduler forgot the task
                    exc = lost
                out.append(exc if isinstance(exc, RecordingFailed)
                           else RecordingFailed(_error_text(exc, None), math.nan))
        return out
    finally:
        for future in futures:
            future.release()


@contextlib.contextmanager
def local_cluster(n_workers: int):
    """A :class:`distributed.Client` on a new LocalCluster of ``n_workers`` single-threaded
    worker processes on 127.0.0.1 (no dashboard), closed on exit.

    The workers keep distributed's one-thread BLAS/OpenMP environment but not its
    ``MALLOC_TRIM_THRESHOLD_``: setting that variable turns off glibc's dynamic mmap
    threshold, so every numpy temporary above 128 KiB is mmap-ed and unmapped again, and the
    page faults made the analyses' tasks 2-3x slower on two workers (benchmarks/parallel.py).
    Memory is still returned when a task's arrays are freed; it is only returned lazily.

    The workers' statistical profiler is off and their event loops wake less often (the
    blocked-loop tick every 1 s, not 20 ms; the system monitor every 2 s, not 0.5 s): each
    wake-up takes the GIL from the task thread, and the profiler's stack sampling every 10 ms
    made GIL-bound analyses (the capacity solvers' Python loops) 10-20% slower. On 2 cores the
    2-worker throughput went from 1.55-1.67x a serial loop to 1.8-2.1x (benchmarks/parallel.py).
    An existing cluster passed as ``client=`` keeps its own Dask configuration
    (``distributed.worker.profile.enabled``, ``distributed.admin.tick.interval``).
    """
    import logging

    import dask
    import distributed

    environ = {k: v for k, v in
               (dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}).items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    # for the cluster's whole life: a nanny restarting a dead worker reads it again
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                          "distributed.worker.profile.enabled": False,
                          "distributed.admin.tick.interval": "1s",
                          "distributed.admin.system-monitor.interval": "2s"}), \
            distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None,
                                     silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@contextlib.contextmanager
def _client_for(client, workers):
    """The distributed client to use (None: the local scheduler), closing what it started."""
    if client is not None and workers is not None:
        raise AnalysisError("give client= (an existing cluster) or workers= (a local one), "
                            "not both")
    if client is None and workers is None:
        yield None, "dask threads (local)"
        return
    import distributed

    if workers is not None:
        from ._params import check_int
        workers = check_int(workers, "workers", minimum=1)
        with local_cluster(workers) as started:
            yield started, f"distributed.LocalCluster ({workers} workers, 127.0.0.1)"
        return
    if isinstance(client, str):
        try:
            started = distributed.Client(client, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise AnalysisError(f"cannot connect to the Dask scheduler at {client!r}: "
                                f"{_one_line(exc)}") from None
        with started:
            yield started, f"distributed scheduler {client}"
        return
    if not isinstance(client, distributed.Client):
        raise AnalysisError(f"client= takes a distributed.Client or a scheduler address such "
                            f"as 'tcp://host:8786', got {type(client).__name__}")
    yield client, f"distributed scheduler {client.scheduler.address}"


# --------------------------------------------------------------------------------------------
# combining rows
# --------------------------------------------------------------------------------------------

def _name_of(func) -> str:
    while isinstance(func, functools.partial):
        func = func.func
    return str(getattr(func, "__name__", type(func).__name__))


def _describe(func) -> str:
    """A callable in words, for the result's attrs (``describe()`` when it has one)."""
    if func is None:
        return "none"
    if hasattr(func, "describe"):
        return str(func.describe())
    if isinstance(func, functools.partial):
        args = [repr(a) for a in func.args] + [f"{k}={v!r}" for k, v in func.keywords.items()]
        return f"{_name_of(func)}({', '.join(['...', *args])})"
    return _name_of(func)


def _strings(values) -> np.ndarray:
    """Object/str values with NaN or None (an outer join's fill) as ``""``, as a str array."""
    flat = [("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
            for v in np.asarray(values, dtype=object).ravel().tolist()]
    return np.array(flat, dtype=str).reshape(np.shape(values))


def _storable(ds: xr.Dataset) -> xr.Dataset:
    """String variables with their fills as ``""``; bools (NaN-filled) as floats 1/0/NaN."""
    for name, var in list(ds.variables.items()):
        if var.dtype.kind in "OU" and name not in ds.indexes:
            ds[name] = var.copy(data=_strings(var.values))
        elif var.dtype.kind == "b":
            ds[name] = var.astype(np.float64)
    return ds


def _combine(keys, sources, rows, analysis_name, analysis, load, parameters) -> xr.Dataset:
    ok = [(k, r) for k, r in zip(keys, rows) if not isinstance(r, RecordingFailed)]
    parts = []
    renamed: dict = {}
    for key, (result, _, _) in ok:
        # a row read back from the store carries its file's encoding (int dtypes): dropped, so
        # the NaN of the outer join and of failed rows are written as NaN
        part = result.drop_encoding()
        part.attrs = {}
        # the bookkeeping names are reserved (neural_predictivity has an `error` of its own)
        clash = {n: f"analysis_{n}" for n in part.variables if n in _RESERVED}
        renamed.update(clash)
        parts.append(part.rename(clash).expand_dims(recording=[key]))
    # a dim without labels whose size differs between recordings (the neuroids of an SVCA
    # split, components) is labeled by position, so the outer join pads it rather than failing
    sizes: dict = {}
    for part in parts:
        for dim, n in part.sizes.items():
            if dim not in part.indexes:
                sizes.setdefault(dim, set()).add(n)
    ragged = [d for d, ns in sizes.items() if len(ns) > 1]
    parts = [part.assign_coords({d: np.arange(part.sizes[d]) for d in ragged
                                 if d in part.dims and d not in part.indexes})
             for part in parts]
    if parts:
        # labels that differ between recordings (manifold sets, neuroids) are outer-joined:
        # a recording's missing label is NaN, never another recording's value
        combined = xr.concat(parts, dim="recording", data_vars="all", coords="different",
                             compat="equals", join="outer", combine_attrs="drop")
        combined = combined.reindex(recording=list(keys))
    else:
        combined = xr.Dataset(coords={"recording": list(keys)})
    combined = _storable(combined)

    failed = [isinstance(r, RecordingFailed) for r in rows]
    combined["status"] = ("recording", np.array(["failed" if f else "ok" for f in failed]))
    combined["error"] = ("recording", np.array([r.message if f else "" for r, f in
                                                zip(rows, failed)], dtype=str))
    combined["seconds"] = ("recording", np.array([r.seconds if f else r[2] for r, f in
                                                  zip(rows, failed)], dtype=np.float64))
    combined = combined.assign_coords(source=("recording", np.array(
        [_source_text(s) for s in sources], dtype=str)))
    infos = [{} if f else r[1] for r, f in zip(rows, failed)]
    for name in sorted({n for info in infos for n in info}):
        values = [info.get(name) for info in infos]
        if all(isinstance(v, (int, float)) or v is None for v in values):
            column = np.array([np.nan if v is None else float(v) for v in values])
        else:
            column = _strings(np.array(values, dtype=object))
        if name not in combined.variables:
            combined = combined.assign_coords({name: ("recording", column)})

    # the per-recording results' attrs that every good row shares, as recording_<attr>
    shared: dict = {}
    results = [r[0] for r in rows if not isinstance(r, RecordingFailed)]
    if results:
        for name, value in results[0].attrs.items():
            if all(name in r.attrs and _same(r.attrs[name], value) for r in results[1:]):
                shared[f"recording_{name}"] = value
    recording_analysis = str(shared.pop("recording_analysis", analysis_name))
    cited = {text: key for key, text in REFERENCES.items()}
    references = ["dask"]
    for text in np.atleast_1d(shared.get("recording_references", [])).tolist():
        if text in cited and cited[text] not in references:
            references.append(cited[text])
    details = {"n_recordings": len(keys), "n_ok": len(ok), "n_failed": int(sum(failed)),
               "failed_recordings": [k for k, f in zip(keys, failed) if f],
               "renamed_variables": {old: new for old, new in sorted(renamed.items())}}
    for name, value in shared.items():
        try:
            details[name] = attr_value(value)
        except TypeError:
            details[name] = str(value)
    return build_result(dict(combined.data_vars), dict(combined.coords),
                        analysis="map_recordings",
                        parameters={"recording_analysis": recording_analysis,
                                    "analysis_call": _describe(analysis),
                                    "load": _describe(load), **parameters},
                        inputs={}, references=references, details=details)


def _same(a, b) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
    except (TypeError, ValueError):
        return a == b


# --------------------------------------------------------------------------------------------
# the public function
# --------------------------------------------------------------------------------------------

def map_recordings(sources, analysis: Callable, load: Callable | None = None, *, client=None,
                   workers: int | None = None, retries: int = 1, store=None,
                   resume: bool = False, progress=True, blas_threads: int | None = None
                   ) -> xr.Dataset:
    """Run ``analysis(load(source))`` for every recording on Dask and combine the results.

    Each source is one task: the task loads the recording (so a worker opens the file or URL
    itself; nothing unpicklable travels), runs the analysis with BLAS limited to its share of
    the cores, and returns only the small result. The results are concatenated along a
    ``recording`` dim; one bad recording is a ``failed`` row, never a failed batch.

    Parameters
    ----------
    sources : str, path, xarray.DataArray or sequence of them
        Files, glob patterns (``"sessions/*.nwb"``, expanded here, sorted), ``http(s)://`` URLs
        or assemblies already in memory (which are analyzed as they are).
    analysis : callable
        ``analysis(assembly) -> xarray.Dataset``, e.g.
        ``functools.partial(ng.manifold_capacity, by="object_name")``. Must be picklable for a
        distributed cluster (a module-level function or a partial of one).
    load : callable, optional
        ``load(source) -> assembly`` for sources that are not assemblies, e.g.
        ``functools.partial(loaders.spike_responses, intervals="trials", ...)`` or the
        declarative ``loaders.from_spec({"kind": "spikes", "intervals": "trials", ...})``.
    client : distributed.Client or str, optional
        An existing client, or a scheduler address (``"tcp://host:8786"``) to connect to (the
        connection is closed afterwards). Default: Dask's local threaded scheduler, one
        recording at a time (see ``workers`` for parallel processes).
    workers : int, optional
        Start a :class:`distributed.LocalCluster` with this many single-threaded worker
        processes on 127.0.0.1 for this call, and close it afterwards.
    retries : int
        How many times Dask reruns a task that raised (``client.submit(..., retries=)``; on the
        local scheduler the task is rerun in place). A worker process that dies is handled by
        the distributed scheduler itself (``distributed.scheduler.allowed-failures``).
    store : str or path, optional
        Folder receiving each finished recording as ``<recording key>.nc`` (written atomically,
        as it finishes, by the process that ran it: on a cluster the folder must be shared)
        and the combined Dataset as ``map_recordings.nc`` at the end. Failed recordings are
        not stored.
    resume : bool
        Skip the recordings already in ``store`` (same key and source): they are read back, not
        recomputed. The analysis is assumed to be the same as in the run that stored them.
    progress : bool or "always"
        Dask's progress bar (``dask.diagnostics.ProgressBar`` on the local scheduler,
        ``distributed.progress`` on a cluster) on stderr when it is a terminal; ``"always"``
        shows it anyway, ``False`` never.
    blas_threads : int, optional
        BLAS/OpenMP threads per task (threadpoolctl). Default: on a cluster, each task's share
        of its host's cores (cores divided by the worker threads on that host), so N workers on
        N cores do not oversubscribe; without one, BLAS as configured (every core).

    Returns
    -------
    xarray.Dataset
        Dim ``recording`` (the keys: file name stems, made unique with ``-2``, ``-3``…) with
        coords ``source`` (URLs without credentials) and the per-recording facts (``subject``,
        ``session``, ``species``, ``n_units``, ``n_presentations``…, ``""``/NaN for failed
        rows); variables ``status`` (``"ok"``/``"failed"``), ``error`` (``""`` or
        ``"TypeName: message"``), ``seconds`` (wall time of the task), and every variable of
        the analysis' results with a leading ``recording`` dim, labels outer-joined (NaN, or
        ``""`` for strings, where a recording lacks a label, and everywhere on failed rows;
        integers and bools become floats for that NaN). An analysis variable named like one of
        the bookkeeping variables (``error``, ``status``, ``seconds``, ``source``) is renamed
        ``analysis_<name>``, listed in the ``renamed_variables`` attr.
        Attrs: ``analysis = "map_recordings"``, ``recording_analysis`` (the per-recording
        analysis), the per-recording results' shared attrs as ``recording_<attr>``,
        ``n_recordings``, ``n_ok``, ``n_failed``, ``failed_recordings``.

    Raises
    ------
    AnalysisError
        Bad arguments (no sources, ``resume`` without ``store``, ``client`` with ``workers``, a
        path source without ``load``, a declarative spec passed as ``load``).
    LoaderError
        A glob pattern that matches nothing.

    Examples
    --------
    >>> import functools, loaders, neurogeom as ng                          # doctest: +SKIP
    >>> load = loaders.from_spec({"kind": "spikes", "intervals": "trials",
    ...                           "stimulus": "stimulus_presented", "window": (0.07, 0.17)})
    >>> res = ng.map_recordings("sessions/*.nwb",
    ...                         functools.partial(ng.manifold_capacity, by="object_name"),
    ...                         load, workers=4)
    >>> res["capacity_overall"].where(res.status == "ok", drop=True)
    """
    from ._params import check_int

    if isinstance(load, Mapping):
        raise AnalysisError(f"load= takes a callable; turn the spec {dict(load)!r} into one with "
                            "loaders.from_spec(spec) (neurogeom itself does not read files)")
    if load is not None and not callable(load):
        raise AnalysisError(f"load= must be callable, got {type(load).__name__}")
    if not callable(analysis):
        raise AnalysisError(f"analysis must be a callable returning an xarray.Dataset, got "
                            f"{type(analysis).__name__}")
    retries = check_int(retries, "retries", minimum=0)
    if blas_threads is not None:
        blas_threads = check_int(blas_threads, "blas_threads", minimum=1)
    if resume and store is None:
        raise AnalysisError("resume=True needs store= (the folder of an earlier run)")
    if progress not in (True, False, "always"):
        raise AnalysisError(f"progress must be True, False or 'always', got {progress!r}")
    sources = _expand(sources)
    if load is None:
        paths = [s for s in sources if not isinstance(s, xr.DataArray)]
        if paths:
            raise AnalysisError(f"sources {format_list(map(_source_text, paths), 3)} are not "
                                "assemblies: pass load= (e.g. loaders.from_spec(...)) to read them")
    keys = recording_keys(sources)
    if store is not None:
        from .io import check_destination

        store = Path(store)
        if store.exists() and not store.is_dir():
            raise AnalysisError(f"store={str(store)!r} exists and is not a folder")
        store.mkdir(parents=True, exist_ok=True)
        check_destination(store / f"{COMBINED_NAME}.nc")

    rows: list = [None] * len(sources)
    todo = []
    for i, (key, source) in enumerate(zip(keys, sources)):
        stored = _store_read(store, key, source) if resume else None
        if stored is not None:
            rows[i] = stored
        else:
            todo.append(i)
    tasks = [(keys[i], sources[i], load, analysis) for i in todo]

    with _client_for(client, workers) as (dask_client, scheduler):
        if tasks:
            done = (_run_local(tasks, retries, blas_threads, store, progress)
                    if dask_client is None else
                    _run_distributed(dask_client, tasks, retries, blas_threads, store, progress))
            for i, row in zip(todo, done):
                rows[i] = row

    result = _combine(keys, sources, rows, _name_of(analysis), analysis, load,
                      {"retries": retries, "scheduler": scheduler,
                       "store": str(store) if store is not None else None,
                       "resumed": len(sources) - len(todo)})
    if store is not None:
        from .io import to_netcdf

        to_netcdf(result, store / f"{COMBINED_NAME}.nc")
    return result
