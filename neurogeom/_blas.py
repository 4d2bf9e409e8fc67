"""BLAS thread control shared by the analyses."""

from __future__ import annotations

import os
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


def threaded_map(fn, items) -> list:
    """``[fn(x) for x in items]`` over the cores, each call with single-threaded BLAS.

    For many small matrix products and LAPACK calls: BLAS threads only add synchronization
    there (on a busy machine, several times the work), while numpy releases the GIL inside
    them, so one Python thread per core does the work in parallel.
    """
    items = list(items)
    workers = min(len(items), os.cpu_count() or 1)
    with single_threaded_blas():
        if workers <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))
