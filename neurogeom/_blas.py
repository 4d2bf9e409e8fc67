"""BLAS thread control shared by the analyses."""

from __future__ import annotations

_CONTROLLER = None


def single_threaded_blas():
    """Context manager limiting BLAS/LAPACK to one thread, for loops of small matrix operations
    where threads only add synchronization (cheap to enter: the threadpoolctl controller, which
    scans the loaded libraries, is built once and reused)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
