"""A minimal HTTP/1.1 client for plain-http upstreams (local vLLM, SGLang, TGI replicas).

Why not aiohttp here: on the hot path its client cost ~80 µs of CPU per upstream request
(URL and header objects, a request writer, a connector) against ~15 µs for this one, and its
StreamReader added to every relayed chunk (docs/performance.md). This client does only what
the gateway needs: POST with a JSON body on keep-alive connections, the answer's status and
headers, the body whole or piece by piece as it arrives, with back-pressure, timeouts and
cancellation. The parser is llhttp through httptools (C), as uvicorn uses for the server side.
https origins (OpenAI, Gemini) and everything off the hot path still use aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httptools

# Bytes buffered from the upstream before reading pauses (the client is slower than the engine).
HIGH_WATER = 256 * 1024
# Idle keep-alive connections kept per origin, and how long each is kept. The pool keeps
# what a burst opened (2,000 streams open 2,000 connections; with 1,024 kept, the next
# burst connected half its streams anew, each connect several event-loop turns before its
# first byte); the cap only bounds a pathological case. 75 s as on the aiohttp path (the
# engines' servers usually close idle connections sooner: uvicorn after 5 s).
MAX_IDLE_PER_ORIGIN = 16384
KEEP_ALIVE_S = 75.0


class H1Error(Exception):
    """The upstream connection failed; the name says how (it reaches error messages)."""


class ServerDisconnected(H1Error):
    """The upstream closed the connection before the answer was complete."""


class InvalidResponse(H1Error):
    """The upstream sent bytes that are not HTTP/1.1."""


class TooLarge(H1Error):
    """The answer is longer than the reader accepts (declared, or counted as it arrived)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the answer has more than {limit} bytes ({size} seen)")
        self.size = size
        self.limit = limit


class Unreachable(H1Error):
    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class Target:
    """A parsed base URL: where to connect and what to put in the request line and Host."""

    __slots__ = ("host", "key", "path_prefix", "port", "request_head")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.key = (self.host, self.port)
        self.path_prefix = quote(parts.path.rstrip("/"), safe="/%:@!$&'()*+,;=-._~")
        self.request_head = f"Host: {parts.netloc}\r\n".encode("latin-1")

    @staticmethod
    def supports(base_url: str) -> bool:
        """Plain http without credentials or a query: everything else goes through aiohttp."""
        parts = urlsplit(base_url)
        return (
            parts.scheme == "http"
            and bool(parts.hostname)
            and "@" not in parts.netloc  # credentials, even with an empty user name
            and not parts.query
            and not parts.fragment
        )


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """Header lines for every request of a route; CR or LF in them is refused."""
    lines = []
    for name, value in headers.items():
        line = f"{name}: {value}"
        if "\r" in line or "\n" in line:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(line + "\r\n")
    return "".join(lines).encode("latin-1")


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class H1Response:
    """One answer: status and headers once they arrived, then the body as it arrives. Every
    wait for bytes is bounded by `idle` seconds and by the request's `deadline` (loop time)."""

    __slots__ = (
        "_chunks", "_conn", "_error", "_headers", "_hold", "_last", "_limit", "_loop", "_paused",
        "_sink", "_size", "_stop", "_waiter", "complete", "deadline", "headers_done", "idle",
        "keep_alive", "raw_headers", "status", "until_close",
    )  # fmt: skip

    def __init__(
        self,
        conn: _Conn,
        loop: asyncio.AbstractEventLoop,
        idle: float | None,
        deadline: float | None,
    ) -> None:
        self._conn = conn
        self._loop = loop
        self.idle = idle
        self.deadline = deadline
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: dict[str, str] | None = None
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False  # no length and not chunked: the body ends with the connection
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit: int | None = HIGH_WATER
        self._paused = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        # push mode (push()): pieces go to the sink from the data callback, unbuffered
        self._sink: Callable[[bytes], bool] | None = None
        self._stop = False  # the sink asked for no more
        self._hold = False  # the sink's consumer is full: reading paused until it drains
        self._last = 0.0  # loop time of the last piece pushed (the idle timeout's clock)

    # -- what the reader sees ------------------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names; repeated headers joined with ', '."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for raw_name, raw_value in self.raw_headers:
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._headers = headers
        return self._headers

    @property
    def content_type(self) -> str:
        value = self.headers.get("content-type", "application/octet-stream")
        return value.partition(";")[0].strip().lower()

    @property
    def content(self) -> H1Response:
        """So stream readers can say `response.content.readany()`, as with aiohttp."""
        return self

    async def wait_headers(self, first_byte: float | None) -> None:
        while not self.headers_done:
            await self._wait(first_byte)

    async def read(self, max_bytes: int | None = None) -> bytes:
        """The whole body; TooLarge once it is (or says it will be) over `max_bytes`: the
        pieces are counted as they arrive, so a huge answer is refused, not buffered."""
        if max_bytes is not None:
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(int(declared), max_bytes)
        self._limit = None  # everything is kept anyway: never pause
        if self._paused:
            self._resume()
        while not self.complete:
            if max_bytes is not None and self._size > max_bytes:
                raise TooLarge(self._size, max_bytes)
            await self._wait(None)
        if max_bytes is not None and self._size > max_bytes:
            raise TooLarge(self._size, max_bytes)
        body = b"".join(self._chunks)
        self._chunks.clear()
        return body

    async def readany(self) -> bytes:
        """What arrived since the last call (waiting for something); b"" at the end."""
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._size = 0
                if self._paused:
                    self._resume()
                return data
            if self.complete:
                return b""
            await self._wait(None)

    async def push(
        self, sink: Callable[[bytes], bool], drain: Callable[[], Awaitable[None]]
    ) -> None:
        """Push mode: each piece of the body goes to `sink` from the connection's data
        callback as it arrives (no buffering, no task wake-up per piece); `sink(b"")` once
        at the end of the body. Returns when the body ended or `sink` returned True (no
        more wanted). The sink's consumer calls hold() when it is full: reading pauses until
        `drain()` returns. Timeouts as for the pull reads: `idle` between pieces, `deadline`."""
        loop = self._loop
        self._last = loop.time()
        self._limit = None  # nothing is buffered: back-pressure is hold()'s
        if self._paused:
            self._resume()
        chunks = self._chunks
        if chunks:  # what arrived before push mode began (a fast answer: all of it), at once
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self._stop = sink(data)
        self._size = 0
        self._sink = None if self._stop else sink
        try:
            while not self._stop:
                if self.complete:
                    self._stop = True
                    sink(b"")
                    return
                if self._hold:
                    await drain()
                    self._hold = False
                    if self._paused:
                        self._resume()
                    continue
                idle = self.idle
                try:
                    await self._wait(None if idle is None else idle - (loop.time() - self._last))
                except TimeoutError:
                    now = loop.time()
                    if (
                        idle is not None
                        and now - self._last < idle
                        and (self.deadline is None or now < self.deadline)
                    ):
                        continue  # pieces came since the timer was set: wait out the rest
                    raise
        finally:
            self._sink = None

    async def settle(self, timeout: float) -> None:
        """Wait up to `timeout` for the body to end (the reader stopped early at a marker);
        whether it ended is `complete`. Never raises for the upstream's faults."""
        if self.complete or self._error is not None:
            return
        self._limit = HIGH_WATER  # nothing more is wanted: pause reading past this
        try:
            async with asyncio.timeout(timeout):
                while not self.complete and self._error is None:
                    await self._wait(None)
        except (TimeoutError, H1Error, OSError):
            pass

    def hold(self) -> None:
        """From a push sink: stop reading the upstream until the consumer drains."""
        if not self._hold:
            self._hold = True
            if not self._paused:
                self._paused = True
                transport = self._conn.transport
                if transport is not None and not transport.is_closing():
                    transport.pause_reading()
            self._wake()

    def release(self) -> None:
        """Done with the answer: its connection goes back to the pool if it can be reused."""
        reusable = self.complete and self.keep_alive and self._error is None
        if reusable and self._paused:  # released unread: an idle connection must read again
            self._resume()
        self._conn.finished(self, reusable)

    def close(self) -> None:
        """Drop the connection (an engine aborts the request when its client goes away); a
        read waiting on it fails at once."""
        self._conn.finished(self, False)
        if not self.complete:
            self.fail(ServerDisconnected("closed by the gateway"))

    async def _wait(self, limit: float | None) -> None:
        if self._error is not None:
            raise self._error
        timeout = limit
        if self.idle is not None and (timeout is None or self.idle < timeout):
            timeout = self.idle
        if self.deadline is not None:
            left = self.deadline - self._loop.time()
            if left <= 0:
                raise TimeoutError()
            if timeout is None or left < timeout:
                timeout = left
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if self._error is not None and not self._chunks and not self.complete:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume(self) -> None:
        self._paused = False
        transport = self._conn.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    # -- what the connection feeds in ------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._limit is not None and self._size > self._limit and not self._paused:
            self._paused = True
            self._conn.transport.pause_reading()  # type: ignore[union-attr]
        self._wake()

    def flush(self) -> None:
        """Push mode, after each network read: its body pieces to the sink, in one call (a
        fast upstream's read holds many HTTP chunks: one client write for them all)."""
        sink = self._sink
        chunks = self._chunks
        if sink is None or not chunks:
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._last = self._loop.time()
        if sink(data):
            self._sink = None
            self._stop = True
            self._wake()

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wake()


class _Conn(asyncio.Protocol):
    """One keep-alive connection to one origin; serves one request at a time."""

    def __init__(self, client: H1Client, key: tuple[str, int]) -> None:
        self.client = client
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: H1Response | None = None
        self.closed = False
        self.interim = False  # inside a 1xx answer
        self.used = False  # served a request before: as a stale keep-alive it may have died

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or response.complete:
            # bytes on an idle connection or past the end of the answer: nothing to follow
            if response is not None:
                response.keep_alive = False
            self.drop()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            response.fail(InvalidResponse("the upstream switched protocols"))
            self.drop()
        except httptools.HttpParserError as exc:
            response.fail(InvalidResponse(str(exc) or "unparseable answer"))
            self.drop()
        if response._sink is not None:
            response.flush()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client.forget(self)
        # the parser calls back into this protocol: a reference cycle, freed at once when
        # cut here rather than by the GC (as uvicorn does for its server side)
        self.parser = None  # type: ignore[assignment]
        response = self.response
        if response is None or response.complete:
            return
        if response.until_close and response.headers_done and exc is None:
            response.complete = True  # the body was "until the connection closes"
            response._wake()
        else:
            response.fail(exc if exc is not None else ServerDisconnected())

    # -- llhttp callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        response = self.response
        if response is not None and response.complete:  # a second answer in the same bytes
            response.keep_alive = False
            raise InvalidResponse("more bytes than the answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.raw_headers.append((name, value))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # interim answer (103 Early Hints, ...): the real one follows
            self.interim = True
            response.raw_headers = []
            return
        response.status = status
        response.headers_done = True
        length = chunked = False
        for name, value in response.raw_headers:
            name = name.lower()
            if name == b"content-length":
                length = True
            elif name == b"transfer-encoding":
                chunked = value.lower().rstrip().endswith(b"chunked")
        response.until_close = not length and not chunked
        response._wake()

    def on_body(self, body: bytes) -> None:
        response: H1Response = self.response  # type: ignore[assignment]
        if response._sink is not None:  # push mode: held for flush() after this read
            response._chunks.append(body)
        else:
            response.feed(body)

    def on_message_complete(self) -> None:
        response = self.response
        assert response is not None
        if self.interim:
            self.interim = False
            return
        response.complete = True
        response.keep_alive = self.parser.should_keep_alive()
        response._wake()

    # -- the client's side -----------------------------------------------------------------
    def finished(self, response: H1Response, reusable: bool) -> None:
        """`response` is done with (called by its reader; only the first call counts)."""
        if self.response is not response:
            return
        self.response = None
        self.used = True
        self.client.finished(self, reusable and not self.closed)

    def drop(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class H1Client:
    """Keep-alive connections per origin, at most `max_connections` requests in flight (0:
    no limit; a default cap of 100 would silently cap throughput)."""

    def __init__(self, max_connections: int = 0) -> None:
        # per origin, the idle connections and when each became idle (a dict as an ordered
        # set: LIFO reuse, O(1) removal, the oldest first)
        self._idle: dict[tuple[str, int], dict[_Conn, float]] = {}
        self._slots = asyncio.Semaphore(max_connections) if max_connections else None
        self._targets: dict[str, Target] = {}

    def target(self, base_url: str) -> Target:
        target = self._targets.get(base_url)
        if target is None:
            target = self._targets[base_url] = Target(base_url)
        return target

    async def post(
        self,
        target: Target,
        path: str,
        head: bytes,
        body: bytes,
        timeouts: Any,
        method: bytes = b"POST",
    ) -> H1Response:
        """Send one request (a POST unless `method` says otherwise; a GET carries no body);
        return once the answer's status and headers arrived. `head` holds the request's
        header lines (each ending in CRLF); `timeouts` has connect, first_byte, idle and total
        (gateway.config.Timeouts). The caller must release() or close() the answer. A reused
        keep-alive connection that died before answering is retried once on a fresh one: the
        engine closed it while idle, so the request never reached it."""
        length = b"" if method == b"GET" else b"content-length: %d\r\n" % len(body)
        request = b"".join(
            (
                method, b" ", target.path_prefix.encode("latin-1"), path.encode("latin-1"),
                b" HTTP/1.1\r\n", target.request_head, head, length, b"\r\n", body,
            )
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        total = timeouts.total
        deadline = None if total is None else loop.time() + total
        if self._slots is not None:
            await self._slots.acquire()
        try:
            for attempt in range(2):
                conn = self._idle_conn(target.key)
                if conn is None:
                    conn = await self._connect(target, loop, timeouts.connect, deadline)
                response = H1Response(conn, loop, timeouts.idle, deadline)
                conn.response = response
                conn.transport.write(request)  # type: ignore[union-attr]
                try:
                    await response.wait_headers(timeouts.first_byte)
                    return response
                except (ServerDisconnected, ConnectionError):
                    conn.response = None
                    conn.drop()
                    if not conn.used or attempt:
                        raise
                except BaseException:
                    conn.response = None
                    conn.drop()
                    raise
            raise AssertionError("unreachable")
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise

    def _idle_conn(self, key: tuple[str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn, since = idle.popitem()  # the newest: if it is too old, all are
            if time.monotonic() - since >= KEEP_ALIVE_S:
                conn.drop()
                self._drop_all(idle)
                return None
            if not conn.closed:
                return conn
        return None

    @staticmethod
    def _drop_all(idle: dict[_Conn, float]) -> None:
        conns = list(idle)
        idle.clear()
        for conn in conns:
            conn.drop()

    async def _connect(
        self,
        target: Target,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        deadline: float | None,
    ) -> _Conn:
        if deadline is not None:
            left = deadline - loop.time()
            timeout = left if timeout is None else min(timeout, left)
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Conn(self, target.key), target.host, target.port
                )
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            raise Unreachable(exc) from None
        return conn

    def finished(self, conn: _Conn, reusable: bool) -> None:
        if self._slots is not None:
            self._slots.release()
        if reusable:
            idle = self._idle.setdefault(conn.key, {})
            if len(idle) < MAX_IDLE_PER_ORIGIN:
                now = idle[conn] = time.monotonic()
                for oldest, since in idle.items():  # expire from the oldest end, if due
                    if now - since < KEEP_ALIVE_S:
                        break
                    del idle[oldest]
                    oldest.drop()
                    break  # one per release: the dict must not change under the loop
                return
        conn.drop()

    def forget(self, conn: _Conn) -> None:
        """A connection closed: never hand it out again."""
        idle = self._idle.get(conn.key)
        if idle:
            idle.pop(conn, None)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            self._drop_all(idle)
        self._idle.clear()


__all__ = ["H1Client", "H1Error", "H1Response", "Target", "TooLarge", "encode_headers"]
