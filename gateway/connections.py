"""Client connections that never finish are closed (issue 18): uvicorn's HTTP protocol plus
what it lacks.

uvicorn bounds only the idle time *between* requests (`timeout_keep_alive`). A connection
that sends nothing, or sends its headers a byte a second, or stops half-way through its
body, stays open for ever, and with the descriptor limit reached valid clients get no
answer. This protocol adds, as nginx has them:

* `header_timeout_s`: from the connection (or the first byte of the next request) to the
  end of the headers. Nothing received: closed; part of a request: 408, then closed.
* `body_timeout_s`: the longest gap between two reads of a request body: 408 (or a close
  once the answer has started).
* `max_connections`: past it, the connection that has waited longest without a request in
  the app (idle keep-alive, silent, or still sending headers) is closed to make room; with
  none, the newcomer gets 503. The default keeps client connections to half the process's
  descriptor limit (raised to its hard limit at start-up), so upstream connections, logs
  and the listening socket always have descriptors left.
* lingering close: an answer sent before the request body was all read (an early 413, a
  401) used to be followed by a close while the client was still sending, which the client
  sees as `Connection reset by peer` instead of the answer. Now the rest of the body is read
  and discarded, up to `linger_s` and `linger_max_bytes`, before closing.

Limits, defaults and what a client sees are listed in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("gateway.connections")

# The scope key under which a request's response cycle is found (gateway/relay.py).
CYCLE_KEY = "gateway.cycle"

# The attribute of a response cycle listing what to call if its client goes away first.
_GONE = "gateway_on_gone"

# Descriptors kept for everything but client connections when max_connections is automatic.
RESERVED_DESCRIPTORS = 256


@dataclass(slots=True)
class Limits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 0  # set by configure(); until then, from the current limit
    linger_s: float = 30.0
    linger_max_bytes: int = 256 * 1024 * 1024


LIMITS = Limits()


def raise_descriptor_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (as nginx's worker_rlimit_nofile); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def auto_max_connections(descriptors: int) -> int:
    """Half of what is left after a reserve: each streaming request may hold one upstream
    connection next to its client's."""
    return max(16, (descriptors - RESERVED_DESCRIPTORS) // 2)


LIMITS.max_connections = auto_max_connections(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def configure(server: Any) -> Limits:
    """Set this process's limits from a ServerConfig (each worker process calls it)."""
    descriptors = raise_descriptor_limit()
    LIMITS.header_timeout_s = server.header_timeout_s
    LIMITS.body_timeout_s = server.body_timeout_s
    LIMITS.max_connections = server.max_connections or auto_max_connections(descriptors)
    LIMITS.linger_s = server.linger_s
    LIMITS.linger_max_bytes = server.linger_max_bytes
    return LIMITS


# Connections with no request in the app, oldest first: eviction candidates.
_WAITING: OrderedDict[GatewayHttpProtocol, None] = OrderedDict()


def _plain_response(status: int, code: str, message: str) -> bytes:
    body = (
        b'{"error":{"message":"' + message.encode() + b'","type":"invalid_request_error",'
        b'"param":null,"code":"' + code.encode() + b'"}}'
    )
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


REQUEST_TIMEOUT = _plain_response(
    408, "request_timeout", "The request was not received in time; the connection is closed"
)
OVERLOADED = _plain_response(
    503, "too_many_connections", "The gateway is at its connection limit; retry shortly"
)


_refusals = {"count": 0, "logged_at": -1e9}


def _note_refusal(now: float) -> None:
    """One warning per 10 s at most: under a connection flood, a line per refusal would
    flood the log too."""
    _refusals["count"] += 1
    if now - _refusals["logged_at"] >= 10:
        log.warning(
            "connection limit %d reached: %d connection(s) answered 503 since the last warning",
            LIMITS.max_connections, _refusals["count"],
        )  # fmt: skip
        _refusals["count"], _refusals["logged_at"] = 0, now


def when_client_gone(receive: Any, callback: Callable[[], None]) -> Callable[[], None] | None:
    """Call `callback` if the client's connection is lost before its answer is complete, and
    return what takes the request back. Without a task: a task per request that waits on
    `receive()` for the disconnect cost ~5-10 % of a request's CPU (issue 22). None when
    `receive` is not a request of this protocol (another server, a WebSocket turn) or the
    client is already gone: the caller then waits on `receive()` itself."""
    cycle: Any = getattr(receive, "__self__", None)  # uvicorn's receive: its cycle's method
    callbacks: list[Callable[[], None]] | None = getattr(cycle, _GONE, None)
    if callbacks is None or cycle.disconnected:
        return None
    callbacks.append(callback)

    def forget() -> None:
        with contextlib.suppress(ValueError):  # already called (and the list emptied)
            callbacks.remove(callback)

    return forget


class _LingeringTransport:
    """The connection's transport, except that closing it while the client is still sending
    a request body drains that body first (its protocol decides)."""

    __slots__ = ("_protocol", "_real", "get_extra_info", "is_closing", "write")

    def __init__(self, real: asyncio.Transport, protocol: GatewayHttpProtocol) -> None:
        self._real = real
        self._protocol: GatewayHttpProtocol | None = protocol
        # the hot calls are bound here: no __getattr__ on every write
        self.write = real.write
        self.is_closing = real.is_closing
        self.get_extra_info = real.get_extra_info

    def close(self) -> None:
        protocol = self._protocol
        if protocol is None or not protocol.linger_instead_of_close():
            self._real.close()

    def release(self) -> None:
        """The connection is gone: drop the reference back to its protocol, so that the two
        (and the request's cycle and flow control) are freed at once, not by the GC."""
        self._protocol = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _HeadWithBody:
    """The request's transport as its response cycle sees it: the status line and headers
    are held back until the first body write and go out with it in one `write()`, so a JSON
    answer costs one system call instead of two. If no body write follows in the same turn
    of the event loop (a stream waiting for its first chunk, a 100 Continue), the held bytes
    go out on the next turn by themselves, as before."""

    __slots__ = ("_cycle", "_held", "_loop", "_real")

    # Past this size a body is written after the head rather than copied behind it.
    MERGE_MAX = 64 * 1024

    def __init__(self, real: Any, cycle: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._real = real
        self._cycle = cycle
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            self._loop.call_soon(self._flush)
            return
        self._held = None
        self._cycle.transport = self._real  # later writes go straight to the connection
        if len(data) <= self.MERGE_MAX:
            self._real.write(held + data)
        else:
            self._real.write(held)
            self._real.write(data)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._cycle.transport = self._real
            if not self._real.is_closing():
                self._real.write(held)

    def close(self) -> None:
        self._flush()
        self._real.close()

    def is_closing(self) -> bool:
        return self._real.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts, a connection cap with
    eviction, and lingering close."""

    _timer: asyncio.TimerHandle | None = None
    _timer_kind = ""  # "header" | "body" | "linger"
    _last_read = 0.0
    _drain_left = 0  # bytes still to discard while lingering
    _draining = False
    _close_after_drain = False
    _in_request = False  # headers done, body not yet all read
    _real_transport: asyncio.Transport | None = None

    # -- connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._real_transport = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        if len(self.connections) > LIMITS.max_connections and not self._make_room():
            _note_refusal(self.loop.time())
            transport.write(OVERLOADED)
            transport.close()
            return
        _WAITING[self] = None
        self._arm("header", LIMITS.header_timeout_s)

    def _make_room(self) -> bool:
        """Close the connection that has waited longest without a request in the app."""
        for victim in _WAITING:
            if victim is not self:
                del _WAITING[victim]
                victim._close_now()
                return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        _WAITING.pop(self, None)
        self._disarm()
        self._in_request = self._draining = False  # nothing left to drain: close for real
        cycle = self.cycle
        super().connection_lost(exc)
        if isinstance(self.transport, _LingeringTransport):
            self.transport.release()
        if cycle is not None and cycle.disconnected:  # the answer was not complete
            callbacks = getattr(cycle, _GONE, None)
            if callbacks:
                setattr(cycle, _GONE, [])
                for callback in callbacks:
                    callback()

    def send_400_response(self, msg: str) -> None:
        self._in_request = False  # a request that does not parse is not drained
        super().send_400_response(msg)

    def _close_now(self) -> None:
        self._disarm()
        if self._real_transport is not None:
            self._real_transport.close()

    # -- timers ----------------------------------------------------------------------------
    def _arm(self, kind: str, delay: float) -> None:
        self._disarm()
        self._timer_kind = kind
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        transport = self._real_transport
        if transport is None or transport.is_closing():
            return
        kind = self._timer_kind
        if kind == "body":
            idle = self.loop.time() - self._last_read
            if idle < LIMITS.body_timeout_s or self.flow.read_paused:
                # data came since (or the app is slow to read it): wait out the rest
                self._arm("body", max(LIMITS.body_timeout_s - idle, 0.05))
                return
        if (kind == "header" and self._request_begun) or (kind == "body" and not self._answering()):
            transport.write(REQUEST_TIMEOUT)
        # else: nothing of a request arrived, an answer is under way, or linger time is over
        self._in_request = False  # no lingering: the client is too slow or gone
        transport.close()

    def _answering(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.response_started

    # -- the request -------------------------------------------------------------------------
    _request_begun = False

    def data_received(self, data: bytes) -> None:
        if self._draining:
            self._drain_left -= len(data)
            if self._drain_left < 0:
                self._close_now()
                return
        super().data_received(data)
        # A timer only for what is still incomplete after this read: a request that came
        # whole (the usual case) arms none, instead of a header and a body timer per request.
        if self._timer is None and not self._draining:
            if self._in_request:
                self._arm("body", LIMITS.body_timeout_s)
            elif self._request_begun:  # the next request's head, in part
                self._arm("header", LIMITS.header_timeout_s)

    def on_message_begin(self) -> None:
        self._request_begun = True
        super().on_message_begin()

    def handle_websocket_upgrade(self) -> None:
        # the WebSocket protocol takes the connection over, with timeouts of its own
        _WAITING.pop(self, None)
        self._disarm()
        self._in_request = self._request_begun = False
        wrapper = self.transport
        if isinstance(wrapper, _LingeringTransport) and self._real_transport is not None:
            # the WebSocket protocol gets the connection itself (it closes its own way)
            self.transport = self._real_transport
            wrapper.release()
        super().handle_websocket_upgrade()
        # this protocol's connection_lost will not come: what it would cut (the wrapper's
        # and the parser's references back to it) is cut now, or each WebSocket leaves a
        # reference cycle behind
        self.parser = None  # type: ignore[assignment]

    def on_headers_complete(self) -> None:
        _WAITING.pop(self, None)
        if self.parser.should_upgrade() and self._should_upgrade():
            self._disarm()
            super().on_headers_complete()
            return
        self._in_request = True
        self._last_read = self.loop.time()
        if self._timer_kind == "header":
            self._disarm()  # the body timer, if the body is not all here, after this read
        super().on_headers_complete()
        cycle = self.cycle
        cycle.transport = _HeadWithBody(cycle.transport, cycle, self.loop)  # type: ignore[assignment]
        setattr(cycle, _GONE, [])  # when_client_gone()
        # for gateway/relay.py's push mode (a weak reference: the cycle holds the scope)
        self.scope[CYCLE_KEY] = weakref.ref(cycle)  # type: ignore[literal-required]

    def on_body(self, body: bytes) -> None:
        self._last_read = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_request = False
        self._request_begun = False
        if self._timer_kind == "body":
            self._disarm()
        super().on_message_complete()
        if self._draining:
            self._drained()

    def on_response_complete(self) -> None:
        if self._in_request and not self._draining and self.cycle.keep_alive:
            # answered before the body was read (413, 401): discard the rest, bounded
            self._start_draining(close_after=False)
        super().on_response_complete()
        if not self._in_request and not self.transport.is_closing():
            _WAITING[self] = None

    # -- lingering close ---------------------------------------------------------------------
    def linger_instead_of_close(self) -> bool:
        """Called for every close of the transport: True when the client is still sending a
        body, which is then read and discarded before the close."""
        if self._in_request and self._real_transport is not None and not self._draining:
            self._start_draining(close_after=True)
            return True
        return self._draining and self._close_after_drain

    def _start_draining(self, close_after: bool) -> None:
        self._draining = True
        self._close_after_drain = close_after
        self._drain_left = LIMITS.linger_max_bytes
        self._arm("linger", LIMITS.linger_s)
        self.flow.resume_reading()

    def _drained(self) -> None:
        self._draining = False
        self._disarm()
        if self._close_after_drain:
            self._close_now()
        else:  # the body ended in time: the connection serves the next request
            _WAITING[self] = None


def uvicorn_options() -> dict[str, Any]:
    """What serve() passes to uvicorn for this protocol."""
    return {"http": GatewayHttpProtocol}
