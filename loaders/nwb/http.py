"""Read a remote file over HTTP range requests, with timeouts, bounded retries and clear errors.

:class:`HTTPRangeFile` is the read-only, seekable file object h5py reads a remote NWB file
through. Every request is bounded in time: connecting, waiting for the response headers and
reading the body each have a limit (``timeout`` seconds, default :data:`DEFAULT_TIMEOUT` or the
``NEUROGEOM_HTTP_TIMEOUT`` environment variable), a body that trickles in slower than
:data:`LOW_SPEED_BYTES` per ``timeout`` counts as stalled, and a failed request is retried
:data:`RETRIES` times with exponential backoff. What finally fails is a
:class:`~neurogeom.errors.LoaderError` naming the URL (redacted) and the phase that stalled;
after it, every read fails at once, so a reader such as h5py that swallows exceptions cannot
wait again.

(remfile, which this replaces, calls ``requests`` without a timeout: a server that accepts a
connection and then stalls blocked forever.)
"""

from __future__ import annotations

import io
import math
import numbers
import os
import socket
import threading
import time
from collections import OrderedDict

from neurogeom.errors import LoaderError

from .._urls import redact_url

#: Seconds allowed to connect, to receive the response headers, and per stretch of body.
DEFAULT_TIMEOUT = 30.0
#: Environment variable overriding :data:`DEFAULT_TIMEOUT` (seconds, a positive number).
TIMEOUT_ENV = "NEUROGEOM_HTTP_TIMEOUT"
#: Retries of a failed request (connection error, stall, HTTP 5xx or 429) before giving up.
RETRIES = 2
#: First backoff between tries, in seconds; doubled at each retry.
BACKOFF = 0.25
#: A body delivering fewer bytes than this within ``timeout`` seconds is stalled (a 1 byte/s
#: trickle never trips a per-recv timeout; curl calls this the low-speed limit).
LOW_SPEED_BYTES = 1024
#: Bytes per cache block; HDF5 metadata reads are small and scattered, so blocks are modest.
BLOCK_SIZE = 256 * 1024
#: Largest read-ahead, in blocks, grown while reads are sequential.
MAX_READ_AHEAD = 32
#: Blocks kept in memory (LRU).
CACHE_BLOCKS = 256


def resolve_timeout(timeout=None) -> float:
    """``timeout`` or, when None, ``$NEUROGEOM_HTTP_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`;
    LoaderError unless a finite positive number of seconds."""
    origin = "timeout"
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_TIMEOUT
        origin = f"{TIMEOUT_ENV}={raw!r}"
        try:
            timeout = float(raw)
        except ValueError:
            raise LoaderError(f"{origin} is not a number of seconds") from None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise LoaderError(f"{origin} must be a number of seconds, got {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise LoaderError(f"{origin} must be a positive, finite number of seconds, got {timeout}")
    return float(timeout)


class _Stall(Exception):
    """A request that failed in a way worth retrying; ``str`` says what happened."""

    def __init__(self, message: str, timed_out: bool = True):
        super().__init__(message)
        self.timed_out = timed_out


class _Permanent(Exception):
    """A request that retrying cannot fix (HTTP 4xx, a server ignoring ranges)."""


def _cut(sock) -> None:
    """Shut a socket down from another thread, which wakes a read blocked on it."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _watched(connection_cls):
    """``connection_cls`` whose wait for response headers is bounded in total, not only per
    recv: urllib3's read timeout applies to each recv, so a status line trickled a byte at a
    time would otherwise never time out. The socket is cut when the limit passes."""

    class Watched(connection_cls):
        def getresponse(self):
            limit, sock = self.timeout, self.sock
            if sock is None or not isinstance(limit, (int, float)) or limit <= 0:
                return super().getresponse()
            timer = threading.Timer(limit, _cut, (sock,))
            timer.daemon = True
            timer.start()
            try:
                return super().getresponse()
            finally:
                timer.cancel()

    Watched.__name__ = f"Watched{connection_cls.__name__}"
    return Watched


def _session():
    """A ``requests`` session whose connections bound the wait for response headers."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3 import ProxyManager
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = _watched(HTTPConnectionPool.ConnectionCls)

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = _watched(HTTPSConnectionPool.ConnectionCls)

    def watch(manager):
        manager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}
        return manager

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            watch(self.poolmanager)

        def proxy_manager_for(self, proxy, **kwargs):
            manager = super().proxy_manager_for(proxy, **kwargs)
            # SOCKS managers have pools of their own: they keep urllib3's per-recv timeouts
            return watch(manager) if isinstance(manager, ProxyManager) else manager

    session = requests.Session()
    session.mount("http://", Adapter())
    session.mount("https://", Adapter())
    return session


def _reason(exc) -> str:
    """The innermost OS-level reason of a requests/urllib3 error ("Connection refused"), or
    the exception's type: their messages repeat the URL, query string included."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror
        nxt = exc.__cause__ or exc.__context__
        if nxt is None and exc.args and isinstance(exc.args[0], BaseException):
            nxt = exc.args[0]
        if nxt is None:
            nxt = getattr(exc, "reason", None)
        exc = nxt if isinstance(nxt, BaseException) else None
    return "connection failed"


class HTTPRangeFile(io.RawIOBase):
    """A remote file read with HTTP range requests: seekable, read-only, block-cached.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL; userinfo is sent as basic auth (by ``requests``).
    timeout : float, optional
        Seconds; see :func:`resolve_timeout`.
    retries : int
        Retries per request after the first try.

    Attributes
    ----------
    name : str
        The redacted URL (safe to print and record).
    length : int
        File size in bytes, from the first reply's ``Content-Range``.
    failure : LoaderError or None
        The error that ended reading, once one has (a new exception object at each access);
        every later read raises it again.
    """

    def __init__(self, url: str, *, timeout=None, retries: int = RETRIES):
        super().__init__()
        self.url = url
        self.name = redact_url(url)
        self.timeout = resolve_timeout(timeout)
        self.retries = int(retries)
        self._failure: str | None = None
        self.requests = 0
        self._session = _session()
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._position = 0
        self._last_block = -2
        self._read_ahead = 1
        self.length = None
        try:
            first = self._fetch(0, BLOCK_SIZE - 1)  # the first reply also tells the size
        except LoaderError:
            self.close()
            raise
        self._keep(0, first)

    # -- io.RawIOBase -------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if self._failure is not None:
            raise LoaderError(self._failure)
        if size is None or size < 0:
            size = self.length - self._position
        size = max(0, min(size, self.length - self._position))
        if size == 0:
            return b""
        first = self._position // BLOCK_SIZE
        last = (self._position + size - 1) // BLOCK_SIZE
        data = b"".join(self._load(first, last))
        offset = self._position - first * BLOCK_SIZE
        self._position += size
        return data[offset:offset + size]

    def close(self) -> None:
        if not self.closed:
            self._session.close()
            self._blocks.clear()
        super().close()

    # -- blocks -------------------------------------------------------------------------------
    def _keep(self, index: int, data: bytes) -> None:
        self._blocks[index] = data
        self._blocks.move_to_end(index)
        while len(self._blocks) > CACHE_BLOCKS:
            self._blocks.popitem(last=False)

    def _load(self, first: int, last: int) -> list[bytes]:
        """Blocks ``first..last``: cached ones from the cache, missing ones fetched, each
        contiguous run in one request; sequential reads grow a read-ahead (doubling up to
        :data:`MAX_READ_AHEAD` blocks). Returned directly, so a read larger than the cache
        never depends on blocks the cache has already dropped."""
        sequential = first in (self._last_block, self._last_block + 1)
        self._read_ahead = min(self._read_ahead * 2, MAX_READ_AHEAD) if sequential else 1
        self._last_block = last
        got = {}
        for i in range(first, last + 1):
            if i in self._blocks:
                got[i] = self._blocks[i]
                self._blocks.move_to_end(i)
        wanted = [i for i in range(first, last + 1) if i not in got]
        if wanted:
            n_blocks = math.ceil(self.length / BLOCK_SIZE)
            stop = min(max(wanted[-1] + 1, wanted[0] + self._read_ahead), n_blocks)
            runs, start = [], None
            for i in range(wanted[0], stop + 1):
                missing = i < stop and i not in got and i not in self._blocks
                if missing and start is None:
                    start = i
                elif not missing and start is not None:
                    runs.append((start, i))
                    start = None
            for a, b in runs:
                data = self._fetch(a * BLOCK_SIZE, min(b * BLOCK_SIZE, self.length) - 1)
                for i in range(a, b):
                    block = data[(i - a) * BLOCK_SIZE:(i - a + 1) * BLOCK_SIZE]
                    self._keep(i, block)
                    if i <= last:
                        got[i] = block
        return [got[i] for i in range(first, last + 1)]

    # -- requests -----------------------------------------------------------------------------
    def _fetch(self, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive), retried with backoff; LoaderError when it fails."""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            try:
                return self._request(start, end)
            except _Permanent as exc:
                self._failure = f"cannot read {self.name}: {exc}"
                break
            except _Stall as exc:
                tries = f"{attempt + 1} {'try' if attempt == 0 else 'tries'}"
                hint = (f"; timeout {self.timeout:g} s, set by timeout= or ${TIMEOUT_ENV}"
                        if exc.timed_out else "")
                self._failure = f"cannot read {self.name}: {exc} ({tries}{hint})"
        raise LoaderError(self._failure)

    @property
    def failure(self) -> LoaderError | None:
        # only the message is kept: a kept exception would hold its traceback, whose frames
        # hold this file and h5py's objects, a cycle that outlives the read and, collected at
        # interpreter exit after h5py's teardown, crashes the process
        return LoaderError(self._failure) if self._failure is not None else None

    def _request(self, start: int, end: int) -> bytes:
        import requests

        t = self.timeout
        what = f"bytes {start}-{end}"
        began = time.monotonic()
        self.requests += 1
        try:
            response = self._session.get(
                self.url, headers={"Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"},
                stream=True, timeout=(t, t))
        except requests.exceptions.ConnectTimeout:
            raise _Stall(f"connecting timed out after {t:g} s") from None
        except requests.exceptions.RequestException as exc:
            if time.monotonic() - began >= t * 0.99:
                raise _Stall(f"the server accepted the connection but sent no response "
                             f"headers within {t:g} s (asking for {what})") from None
            if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                                requests.exceptions.InvalidSchema)):
                raise _Permanent(f"invalid URL ({type(exc).__name__})") from None
            raise _Stall(f"{_reason(exc)} (asking for {what})", timed_out=False) from None
        with response:
            status = response.status_code
            if status == 416 and start == 0:
                raise _Permanent("the file is empty (HTTP 416 for its first bytes)")
            if status not in (200, 206):
                message = f"HTTP {status} {response.reason or ''}".rstrip()
                if 400 <= status < 500 and status != 429:
                    raise _Permanent(message)
                raise _Stall(f"{message} (asking for {what})", timed_out=False)
            total = self._total(response, start, status)
            if total == 0:
                raise _Permanent("the file is empty (0 bytes)")
            if self.length is None:
                self.length = total
            end = min(end, total - 1)
            if status == 200 and not (start == 0 and end == total - 1):
                raise _Permanent("the server does not answer HTTP range requests (it sent the "
                                 f"whole file, {total} bytes, when asked for {what})")
            return self._body(response, start, end, what)

    @staticmethod
    def _total(response, start: int, status: int) -> int:
        if status == 206:
            crange = response.headers.get("Content-Range", "")
            try:
                first, total = crange.split(" ", 1)[1].split("/")
                if int(first.split("-")[0]) != start:
                    raise ValueError
                return int(total)
            except (IndexError, ValueError):
                raise _Permanent(f"the server's range reply has an unusable Content-Range "
                                 f"header ({crange!r})") from None
        try:
            return int(response.headers["Content-Length"])
        except (KeyError, ValueError):
            raise _Permanent("the server sends no Content-Length") from None

    def _body(self, response, start: int, end: int, what: str) -> bytes:
        """Read the body, failing when it stalls: a recv waiting ``timeout`` (urllib3's read
        timeout) or fewer than :data:`LOW_SPEED_BYTES` arriving in ``timeout`` seconds."""
        import requests
        import urllib3

        t = self.timeout
        want = end - start + 1
        raw = response.raw
        read = getattr(raw, "read1", None) or raw.read
        chunks, got = [], 0
        window_start, window_bytes = time.monotonic(), 0
        while got < want:
            try:
                chunk = read(min(want - got, 1 << 20))
            except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException,
                    OSError) as exc:
                timed_out = "timed out" in str(exc).lower() or isinstance(
                    exc, (urllib3.exceptions.ReadTimeoutError, socket.timeout))
                how = f"no data for {t:g} s" if timed_out else _reason(exc)
                raise _Stall(f"the body stalled after {got} of {want} bytes ({what}): "
                             f"{how}", timed_out=timed_out) from None
            if not chunk:
                raise _Stall(f"the connection closed after {got} of {want} bytes ({what})",
                             timed_out=False)
            chunks.append(chunk)
            got += len(chunk)
            window_bytes += len(chunk)
            now = time.monotonic()
            if now - window_start >= t:
                if window_bytes < LOW_SPEED_BYTES and got < want:
                    raise _Stall(f"the body stalled after {got} of {want} bytes ({what}): "
                                 f"under {LOW_SPEED_BYTES} bytes in {t:g} s")
                window_start, window_bytes = now, 0
        data = b"".join(chunks)
        return data[:want]
