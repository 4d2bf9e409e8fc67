"""Process-wide settings held while any of several concurrent users (threads) needs them."""

from __future__ import annotations

import contextlib
import threading
from typing import Callable


class SharedSetting:
    """A process-wide setting (a BLAS thread limit, a Dask config value) that concurrent
    threads need at the same time: the first to enter applies it, the last to leave undoes it.
    Per-thread enter/exit of the setting itself would restore a neighbour's value out of order.

    ``apply(*args)`` applies the setting and returns what ``undo(token)`` needs to restore it;
    the ``args`` of :meth:`held` are those of the first entrant (the one that applies it).
    """

    def __init__(self, apply: Callable[..., object], undo: Callable[[object], None]):
        self._apply, self._undo = apply, undo
        self._lock = threading.Lock()
        self._depth = 0
        self._token = None

    @contextlib.contextmanager
    def held(self, *args):
        with self._lock:
            if self._depth == 0:
                self._token = self._apply(*args)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    token, self._token = self._token, None
                    self._undo(token)
