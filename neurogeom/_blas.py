"""BLAS thread control shared by the analyses."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

_CONTROLLER = None


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def limit_threads(n: int):
    """Limit BLAS and OpenMP (torch's, too) to ``n`` threads; returns the threadpoolctl limiter,
    whose ``restore_original_limits()`` undoes it (the controller is reused, as below)."""
    return _controller().limit(limits=int(n))


def single_threaded_blas():
    """Context manager limiting BLAS/LAPACK to one thread, for loops of small matrix operations
    where threads only add synchronization (cheap to enter: the threadpoolctl controller, which
    scans the loaded libraries, is built once and reused)."""
    return _controller().limit(limits=1, user_api="blas")


def blas_threads() -> int:
    """The BLAS thread limit in force now (the smallest over the loaded BLAS libraries; 1 when
    none is found): how many cores this process may use for its own parallel work."""
    libs = _controller().select(user_api="blas").lib_controllers
    return max(1, min((lc.num_threads for lc in libs), default=1))


def threaded_map(fn, items, max_workers: int | None = None) -> list:
    """``[fn(x) for x in items]`` over the cores, each call with single-threaded BLAS.

    For many small matrix products and LAPACK calls: BLAS threads only add synchronization
    there (on a busy machine, several times the work), while numpy releases the GIL inside
    them, so one Python thread per core does the work in parallel. Cores: the BLAS thread
    limit in force (:func:`blas_threads`; e.g. a :func:`neurogeom.map_recordings` worker's
    share), at most ``max_workers``.
    """
    items = list(items)
    workers = min(len(items), blas_threads(), max_workers or len(items))
    with single_threaded_blas():
        if workers <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))
