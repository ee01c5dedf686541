"""A load generator on raw asyncio protocols: closed-loop HTTP/1.1 keep-alive clients.

Not aiohttp: a Python HTTP client costs more CPU per request than the gateway's own work,
and the load generator shares a core with the fake upstream. A bare protocol that only
finds where each answer ends drives 10k+ requests/s from one core, so the "direct" row
measures the upstream, not the client.

Per request it records the latency (request written -> answer complete) and, for streams,
the time to the first body chunk (TTFT: the first SSE event reaches the client). A stream
counts as complete only if it carried the scenario's end marker and no error marker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

now = time.perf_counter


@dataclass(slots=True)
class Scenario:
    """One kind of request: its bytes, and how a complete stream is recognised."""

    name: str
    request: bytes
    stream: bool = False
    done_marker: bytes = b""  # must appear in a stream's body (e.g. b"[DONE]")
    error_marker: bytes = b""  # must not appear (e.g. b'data: {"error"')


def build_request(host: str, port: int, path: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"{extra}content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(slots=True)
class Outcome:
    ok: bool
    latency: float
    ttft: float | None
    status: int = 0  # 0: the connection ended before an answer's head


def _content_length(head: bytes) -> int:
    idx = head.find(b"content-length:")
    if idx < 0:
        return 0
    end = head.find(b"\r\n", idx)
    return int(head[idx + 15 : end if end > 0 else None])


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time; parses only where answers end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.lost = ""  # how the connection ended (EOF or the exception's type)
        self.waiter: asyncio.Future[Outcome] | None = None
        self.buf = b""
        self._reset(None)

    def _reset(self, scenario: Scenario | None) -> None:
        self.scenario = scenario
        self.head_done = False
        self.status = 0
        self.remaining = -1  # content-length body still to read; -1: chunked
        self.chunk_left = 0  # bytes of the current chunk (+2 for its CRLF) still to skip
        self.sent = 0.0
        self.first: float | None = None
        self.saw_done = False
        self.saw_error = False
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = type(exc).__name__ if exc is not None else "EOF"
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Outcome(False, now() - self.sent, None, self.status))
        self.waiter = None

    def send(self, scenario: Scenario) -> asyncio.Future[Outcome]:
        assert self.transport is not None
        self._reset(scenario)
        self.waiter = asyncio.get_running_loop().create_future()
        self.sent = now()
        self.transport.write(scenario.request)
        return self.waiter

    def _finish(self, ok: bool) -> None:
        sc = self.scenario
        if sc is not None and sc.stream:
            ok = ok and (self.saw_done or not sc.done_marker) and not self.saw_error
        waiter, self.waiter = self.waiter, None
        self.head_done = False  # whatever follows is the next answer's head
        ttft = None if self.first is None else self.first - self.sent
        if waiter is not None and not waiter.done():
            waiter.set_result(
                Outcome(ok and self.status == 200, now() - self.sent, ttft, self.status)
            )

    def _data(self, data: bytes) -> None:
        if self.first is None:
            self.first = now()
        sc = self.scenario
        if sc is None or not sc.stream:
            return
        window = self.tail + data
        if sc.done_marker and sc.done_marker in window:
            self.saw_done = True
        if sc.error_marker and sc.error_marker in window:
            self.saw_error = True
        self.tail = data[-48:]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        self.buf = b""
        pos = 0
        while True:
            if not self.head_done:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    self.buf = buf[pos:]
                    return
                head = buf[pos:end].lower()
                self.status = int(head[9:12])
                self.head_done = True
                pos = end + 4
                if b"transfer-encoding: chunked" in head:
                    self.remaining = -1
                else:
                    self.remaining = _content_length(head)
                if b"connection: close" in head and self.transport is not None:
                    self.closed = True
            if self.remaining >= 0:  # content-length body
                take = min(self.remaining, len(buf) - pos)
                if take:
                    self._data(buf[pos : pos + take])
                self.remaining -= take
                pos += take
                if self.remaining > 0:
                    return
                self._finish(True)
                if pos >= len(buf):
                    return
                continue
            # chunked body
            if self.chunk_left:
                take = min(self.chunk_left, len(buf) - pos)
                data_len = min(take, self.chunk_left - 2)  # the chunk's data, not its CRLF
                if data_len > 0:
                    self._data(buf[pos : pos + data_len])
                self.chunk_left -= take
                pos += take
                if self.chunk_left:
                    return
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                self.buf = buf[pos:]
                return
            size = int(buf[pos:line_end].split(b";", 1)[0], 16)
            if size == 0:
                if len(buf) < line_end + 4:  # wait for the final CRLF
                    self.buf = buf[pos:]
                    return
                pos = line_end + 4
                self._finish(True)
                if pos >= len(buf):
                    return
                continue
            self.chunk_left = size + 2
            pos = line_end + 2


async def _connect(host: str, port: int) -> _Conn:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(_Conn, host, port)
    return proto


def _close(conn: _Conn) -> None:
    if conn.transport is not None and not conn.closed:
        conn.transport.close()


@dataclass
class CellResult:
    completed: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(
    host: str,
    port: int,
    scenario: Scenario,
    concurrency: int,
    warmup: float,
    duration: float,
    drain: float = 10.0,
    on_window: Callable[[bool], None] | None = None,
    max_duration: float = 30.0,
) -> CellResult:
    """`concurrency` connections each sending requests back to back; only answers that
    finish inside the measuring window count. A slow target gets a longer window (up to
    `max_duration`) until at least `concurrency` answers came, so its rate is not read as 0.
    `on_window(True/False)` marks the window's edges (the caller samples CPU time there)."""
    conns = await asyncio.gather(
        *(_connect(host, port) for _ in range(concurrency)), return_exceptions=True
    )
    live = [c for c in conns if isinstance(c, _Conn)]
    result = CellResult(errors=concurrency - len(live))
    if not live:  # the target accepts nothing (it died, or its backlog is full)
        result.seconds = duration
        return result
    t_measure = now() + warmup
    window = [t_measure + duration]  # its end; moved later for slow targets

    async def worker(conn: _Conn) -> None:
        try:
            while now() < window[0]:
                if conn.closed:
                    try:
                        conn = await _connect(host, port)
                    except OSError:
                        result.errors += 1
                        await asyncio.sleep(0.05)
                        continue
                outcome = await conn.send(scenario)
                done = now()
                if done < t_measure or done > window[0]:  # count what completes inside the window
                    continue
                if not outcome.ok:
                    result.errors += 1
                    continue
                result.completed += 1
                result.latencies.append(outcome.latency)
                if outcome.ttft is not None and scenario.stream:
                    result.ttfts.append(outcome.ttft)
        finally:
            _close(conn)

    tasks = [asyncio.ensure_future(worker(c)) for c in live]
    await asyncio.sleep(max(0.0, t_measure - now()))
    if on_window is not None:
        on_window(True)
    while True:
        await asyncio.sleep(max(0.0, window[0] - now()))
        if result.completed >= concurrency or window[0] - t_measure >= max_duration:
            break
        window[0] += duration
    if on_window is not None:
        on_window(False)
    _, pending = await asyncio.wait(tasks, timeout=drain)
    for task in pending:
        task.cancel()
    for conn in live:
        _close(conn)
    result.seconds = window[0] - t_measure
    return result


@dataclass
class SlowResult:
    requested: int
    completed: int = 0
    failed: int = 0
    unfinished: int = 0
    connect_errors: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)  # why streams failed
    ttfts: list[float] = field(default_factory=list)


async def many_streams(
    host: str,
    port: int,
    scenario: Scenario,
    count: int,
    deadline: float,
    rate: float = 2000.0,
    batch: int = 50,
) -> SlowResult:
    """`count` streams open at once: they start at `rate` new streams per second (in small
    batches, as a pool of rollout workers would start), each lasts as long as the upstream
    stream; waits for all of them up to `deadline` seconds."""
    result = SlowResult(requested=count)
    conns: list[_Conn] = []
    t0 = now()

    async def one() -> None:
        try:
            conn = await _connect(host, port)
        except OSError as exc:
            result.connect_errors += 1
            reason = f"connect: {exc.strerror or type(exc).__name__}"
            result.reasons[reason] = result.reasons.get(reason, 0) + 1
            return
        conns.append(conn)
        outcome = await conn.send(scenario)
        if outcome.ok:
            result.completed += 1
            if outcome.ttft is not None:
                result.ttfts.append(outcome.ttft)
        else:
            result.failed += 1
            if outcome.status == 0:
                reason = f"closed before an answer ({conn.lost})"
            elif outcome.status != 200:
                reason = f"HTTP {outcome.status}"
            else:
                reason = "stream incomplete or error event"
            result.reasons[reason] = result.reasons.get(reason, 0) + 1
        _close(conn)

    tasks: list[asyncio.Task[None]] = []
    for start in range(0, count, batch):
        tasks += [asyncio.ensure_future(one()) for _ in range(min(batch, count - start))]
        await asyncio.sleep(max(0.0, t0 + (start + batch) / rate - now()))
    _, pending = await asyncio.wait(tasks, timeout=max(0.1, deadline - (now() - t0)))
    result.unfinished = len(pending)
    for task in pending:
        task.cancel()
    for conn in conns:
        _close(conn)
    result.seconds = now() - t0
    return result
