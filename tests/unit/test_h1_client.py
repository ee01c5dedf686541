"""backends/h1.py against real loopback sockets: a scripted asyncio server per test, no mocks.

Each test's server is a handler `(server, index, reader, writer)` run for every accepted
connection (`index` counts connections from 0); it records the requests it read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from backends import h1
from backends.h1 import (
    HIGH_WATER,
    H1Client,
    H1Error,
    InvalidResponse,
    ServerDisconnected,
    Target,
    Unreachable,
    encode_headers,
)
from gateway.config import ConfigError, Timeouts, parse_config

JSON_BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
HEAD = encode_headers({"content-type": "application/json", "authorization": "Bearer sk-h1"})
# asyncio's selector transports read at most this much per recv (one data_received call)
RECV_SIZE = 256 * 1024


def limits(
    connect: float | None = 2.0,
    first_byte: float | None = 2.0,
    idle: float | None = 2.0,
    total: float | None = 5.0,
) -> Timeouts:
    """Generous defaults so that a broken test fails instead of hanging."""
    return Timeouts(connect=connect, first_byte=first_byte, idle=idle, total=total)


@dataclass
class Request:
    line: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]


def answer(
    body: bytes = b'{"ok":true}',
    status: str = "200 OK",
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),),
) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


Handler = Callable[["Loopback", int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Loopback:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[Request] = []
        self.eofs = 0  # connections the client closed, as the server saw them
        self.eof = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.target = Target(self.base_url)

    async def stop(self) -> None:
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        index = self.connections
        self.connections += 1
        try:
            await self.handler(self, index, reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def request(self, reader: asyncio.StreamReader) -> Request | None:
        """The next request on a connection (recorded), or None when the client closed it."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        line, *rest = head.decode("latin-1").split("\r\n")[:-2]
        headers = [(k.strip(), v.strip()) for k, v in (h.split(":", 1) for h in rest)]
        length = sum(int(v) for k, v in headers if k.lower() == "content-length")
        request = Request(line, headers, await reader.readexactly(length))
        self.requests.append(request)
        return request

    async def wait_eof(self, reader: asyncio.StreamReader) -> None:
        """Read until the client closes the connection; count it."""
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        self.eofs += 1
        self.eof.set()


@contextlib.asynccontextmanager
async def loopback(handler: Handler) -> AsyncIterator[Loopback]:
    server = Loopback(handler)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def serve_ok(up: Loopback, index: int, reader: asyncio.StreamReader, writer) -> None:
    """A keep-alive server: answers every request on the connection."""
    while await up.request(reader) is not None:
        writer.write(answer())
        await writer.drain()


async def until(predicate: Callable[[], bool], timeout: float = 1.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- 1. one JSON POST ------------------------------------------------------------------------
async def test_json_post_answer_and_request_shape() -> None:
    answer_body = b'{"id":"chatcmpl-1","choices":[]}'

    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(
            answer(
                answer_body,
                status="201 Created",
                headers=(
                    ("Content-Type", "Application/JSON; charset=utf-8"),
                    ("X-Multi", "a"),
                    ("x-multi", "b"),
                    ("X-RateLimit-Remaining", "3"),
                ),
            )
        )
        await writer.drain()
        await up.wait_eof(reader)

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(
            up.target, "/chat/completions", HEAD + b"x-request-id: r-1\r\n", JSON_BODY, limits()
        )
        assert response.status == 201
        assert response.headers == {
            "content-type": "Application/JSON; charset=utf-8",
            "x-multi": "a, b",
            "x-ratelimit-remaining": "3",
            "content-length": str(len(answer_body)),
        }
        assert response.content_type == "application/json"
        assert response.content is response
        assert await response.read() == answer_body
        assert response.complete and response.keep_alive
        response.release()
        await client.aclose()

    [request] = up.requests
    assert request.line == "POST /v1/chat/completions HTTP/1.1"
    assert request.header("host") == [f"127.0.0.1:{up.port}"]
    assert request.header("content-length") == [str(len(JSON_BODY))]
    assert request.header("content-type") == ["application/json"]
    assert request.header("authorization") == ["Bearer sk-h1"]
    assert request.header("x-request-id") == ["r-1"]
    assert request.body == JSON_BODY
    assert len(request.headers) == 5  # nothing else added


async def test_trailing_slash_and_root_base_urls() -> None:
    async with loopback(serve_ok) as up:
        client = H1Client()
        for base, line in (
            (f"http://127.0.0.1:{up.port}/v1/", "POST /v1/x HTTP/1.1"),
            (f"http://127.0.0.1:{up.port}", "POST /x HTTP/1.1"),
        ):
            response = await client.post(client.target(base), "/x", b"", b"", limits())
            assert await response.read() == b'{"ok":true}'
            response.release()
            assert up.requests[-1].line == line
            assert up.requests[-1].header("content-length") == ["0"]
        assert client.target(up.base_url) is client.target(up.base_url)  # cached
        await client.aclose()


# -- 2. keep-alive -----------------------------------------------------------------------------
async def test_keep_alive_reuses_one_connection() -> None:
    async with loopback(serve_ok) as up:
        client = H1Client()
        for _ in range(3):
            response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
            assert await response.read() == b'{"ok":true}'
            response.release()
        await client.aclose()
    assert up.connections == 1
    assert len(up.requests) == 3


async def test_idle_connections_expire_after_keep_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection idle for KEEP_ALIVE_S is closed, not reused: at the next release (the
    oldest one) or the next request (all of them, when even the newest is too old)."""
    monkeypatch.setattr(h1, "KEEP_ALIVE_S", 0.2)

    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await serve_ok(up, index, reader, writer)
        up.eofs += 1

    async with loopback(handler) as up:
        client = H1Client()
        first = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        second = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        assert up.connections == 2
        first.release()
        await asyncio.sleep(0.3)  # the first connection is now past its keep-alive
        second.release()  # ... and this release closes it
        await until(lambda: up.eofs == 1)
        await asyncio.sleep(0.05)
        assert up.eofs == 1  # the second connection waits in the pool
        await asyncio.sleep(0.3)  # now the second one too: the next request connects anew
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        assert await response.read() == b'{"ok":true}'
        response.release()
        await until(lambda: up.eofs == 2)
        assert up.connections == 3
        await client.aclose()


async def test_connection_close_answer_is_not_reused() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(answer(b"bye", headers=(("Connection", "close"),)))
        await writer.drain()

    async with loopback(handler) as up:
        client = H1Client()
        for _ in range(2):
            response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
            assert await response.read() == b"bye"
            assert response.complete and not response.keep_alive
            response.release()
        await client.aclose()
    assert up.connections == 2
    assert len(up.requests) == 2


async def test_unread_answer_is_not_reused() -> None:
    """Released before the body arrived: the connection cannot serve another request."""

    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        await writer.drain()
        await up.wait_eof(reader)

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        assert not response.complete
        response.release()
        await asyncio.wait_for(up.eof.wait(), 1)  # dropped, not pooled
        await client.aclose()
    assert up.eofs == 1


# -- 3. chunked --------------------------------------------------------------------------------
def sse_server(pieces: list[bytes], gap: float, stall: bool = False) -> Handler:
    """An SSE answer in chunks `gap` s apart (`stall`: then silent until the client leaves)."""

    async def handler(up: Loopback, index: int, reader, writer) -> None:
        while await up.request(reader) is not None:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for piece in pieces:
                writer.write(chunk(piece))
                await writer.drain()
                await asyncio.sleep(gap)
            if stall:
                await up.wait_eof(reader)
                return
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return handler


async def test_chunked_body_read_piece_by_piece() -> None:
    pieces = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]

    async with loopback(sse_server(pieces, 0.03)) as up:
        client = H1Client()
        response = await client.post(up.target, "/s", HEAD, JSON_BODY, limits())
        assert response.content_type == "text/event-stream"
        assert not response.until_close
        got = []
        while piece := await response.content.readany():
            got.append(piece)
        assert got == pieces  # one readany per chunk: they arrived 30 ms apart
        assert await response.readany() == b""  # and stays at the end
        assert response.complete and response.keep_alive
        response.release()
        # the connection is clean for the next request
        response = await client.post(up.target, "/s", HEAD, JSON_BODY, limits())
        assert await response.read() == b"".join(pieces)
        response.release()
        await client.aclose()
    assert up.connections == 1


# -- 4. body until the connection closes -------------------------------------------------------
async def test_body_without_length_ends_with_the_connection() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, ")
        await writer.drain()
        await asyncio.sleep(0.03)
        writer.write(b"second part")
        await writer.drain()
        writer.close()

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/t", HEAD, JSON_BODY, limits())
        assert response.until_close
        assert await response.read() == b"first part, second part"
        assert response.complete and not response.keep_alive
        response.release()
        response = await client.post(up.target, "/t", HEAD, JSON_BODY, limits())
        assert await response.read() == b"first part, second part"
        response.release()
        await client.aclose()
    assert up.connections == 2


# -- 5. stale keep-alive connections -----------------------------------------------------------
async def test_keep_alive_closed_by_server_while_idle() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(answer())  # keep-alive answer, then the server drops the idle connection
        await writer.drain()

    async with loopback(handler) as up:
        client = H1Client()
        for _ in range(2):
            response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
            assert await response.read() == b'{"ok":true}'
            response.release()
        await client.aclose()
    assert up.connections == 2
    assert len(up.requests) == 2


async def test_reused_connection_dying_before_the_answer_is_retried_once() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        if index == 0:
            writer.write(answer(b"first"))
            await writer.drain()
            await up.request(reader)  # the request on the reused connection: no answer
            return
        writer.write(answer(b"second"))
        await writer.drain()
        await up.wait_eof(reader)

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        assert await response.read() == b"first"
        response.release()
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        assert await response.read() == b"second"
        response.release()
        await client.aclose()
    assert up.connections == 2
    assert len(up.requests) == 3  # the lost one, then the retry on a fresh connection


async def test_reused_connection_dying_twice_is_not_retried_again() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        if index == 0:
            writer.write(answer(b"first"))
            await writer.drain()
            await up.request(reader)

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        assert await response.read() == b"first"
        response.release()
        with pytest.raises(ServerDisconnected):
            await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        await client.aclose()
    assert up.connections == 2  # one retry, no more
    assert len(up.requests) == 3


async def test_fresh_connection_closed_before_answer_is_not_retried() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)

    async with loopback(handler) as up:
        client = H1Client()
        with pytest.raises(ServerDisconnected):
            await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        await client.aclose()
    assert up.connections == 1
    assert len(up.requests) == 1


async def test_connection_closed_mid_body_fails_the_read() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        assert await response.readany() == b"partial"
        with pytest.raises(ServerDisconnected):
            await response.readany()
        response.release()
        await client.aclose()


# -- 6. timeouts and unreachable upstreams -----------------------------------------------------
async def test_first_byte_timeout() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        await up.wait_eof(reader)  # never answers

    async with loopback(handler) as up:
        client = H1Client()
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await client.post(up.target, "/a", HEAD, JSON_BODY, limits(first_byte=0.2))
        assert 0.18 <= loop.time() - start < 0.6
        await asyncio.wait_for(up.eof.wait(), 1)  # the connection was dropped
        await client.aclose()


async def test_idle_timeout_mid_body() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"one"))
        await writer.drain()
        await up.wait_eof(reader)  # stalls

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits(idle=0.2))
        assert await response.readany() == b"one"
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await response.readany()
        assert 0.18 <= loop.time() - start < 0.6
        response.close()
        await asyncio.wait_for(up.eof.wait(), 1)
        await client.aclose()


async def test_total_deadline_spans_the_whole_answer() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:  # a byte every 20 ms: the idle timeout never fires
            writer.write(chunk(b"x"))
            await writer.drain()
            await asyncio.sleep(0.02)

    async with loopback(handler) as up:
        client = H1Client()
        loop = asyncio.get_running_loop()
        start = loop.time()
        response = await client.post(
            up.target, "/a", HEAD, JSON_BODY, limits(first_byte=None, idle=0.2, total=0.3)
        )
        with pytest.raises(TimeoutError):
            await response.read()
        assert 0.28 <= loop.time() - start < 0.7
        response.close()
        await client.aclose()


async def test_total_deadline_bounds_first_byte() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        await up.wait_eof(reader)

    async with loopback(handler) as up:
        client = H1Client()
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await client.post(
                up.target, "/a", HEAD, JSON_BODY, limits(first_byte=None, idle=None, total=0.2)
            )
        assert 0.18 <= loop.time() - start < 0.6
        await client.aclose()


async def test_connect_to_closed_port_is_unreachable() -> None:
    client = H1Client(max_connections=1)
    target = Target(f"http://127.0.0.1:{closed_port()}/v1")
    for _ in range(2):  # the slot is given back after the failure
        with pytest.raises(Unreachable) as info:
            await asyncio.wait_for(client.post(target, "/a", HEAD, JSON_BODY, limits()), 2)
        assert isinstance(info.value.os_error, ConnectionRefusedError)
        assert isinstance(info.value, H1Error)
    await client.aclose()


# -- 7. back-pressure --------------------------------------------------------------------------
async def test_back_pressure_pauses_reading_and_delivers_everything() -> None:
    body = os.urandom(6 * 1024 * 1024)

    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        for start in range(0, len(body), 64 * 1024):
            writer.write(body[start : start + 64 * 1024])
            await writer.drain()

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/big", HEAD, JSON_BODY, limits())
        await until(lambda: response._paused)
        await asyncio.sleep(0.05)  # the server keeps writing; nothing more is buffered here
        transport = response._conn.transport
        assert transport is not None and not transport.is_reading()
        assert response._paused
        assert HIGH_WATER < response._size <= HIGH_WATER + RECV_SIZE
        assert not response.complete
        got = []
        while piece := await response.readany():
            assert len(piece) <= HIGH_WATER + RECV_SIZE
            got.append(piece)
        assert b"".join(got) == body
        assert len(got) > 3
        response.release()
        await client.aclose()


async def test_released_paused_answer_leaves_a_readable_connection() -> None:
    """A complete answer larger than HIGH_WATER, released unread (a retried 5xx): the pooled
    connection must read again, or the next request on it never sees its answer."""
    big = b"e" * (HIGH_WATER + 1)  # reading pauses only once the last byte is in

    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(answer(big, status="503 Service Unavailable"))
        await writer.drain()
        while await up.request(reader) is not None:
            writer.write(answer(b"fine"))
            await writer.drain()

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        assert response.status == 503
        await until(lambda: response.complete)
        assert response._paused
        response.release()
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits(first_byte=0.5))
        assert await response.read() == b"fine"
        response.release()
        await client.aclose()
    assert up.connections == 1


async def test_read_never_pauses() -> None:
    body = os.urandom(2 * 1024 * 1024)

    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        await up.wait_eof(reader)

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/big", HEAD, JSON_BODY, limits())
        await until(lambda: response._paused)  # paused before anyone read
        assert await response.read() == body  # read() resumes and keeps everything
        assert not response._paused
        response.release()
        await client.aclose()


# -- 8. close() while a reader waits -----------------------------------------------------------
async def test_close_wakes_a_waiting_reader() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"one"))
        await writer.drain()
        await up.wait_eof(reader)

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/s", HEAD, JSON_BODY, limits(idle=None))
        assert await response.readany() == b"one"
        waiting = asyncio.create_task(response.readany())
        await asyncio.sleep(0.02)
        assert not waiting.done()
        response.close()
        with pytest.raises(ServerDisconnected):
            await asyncio.wait_for(waiting, 1)
        await asyncio.wait_for(up.eof.wait(), 1)  # the engine sees its client go away
        assert up.eofs == 1
        response.close()  # twice is harmless
        response.release()
        await client.aclose()


# -- 9. not HTTP -------------------------------------------------------------------------------
async def test_garbage_answer_raises_invalid_response() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\nthis is not http\r\n\r\n")
        await writer.drain()
        await up.wait_eof(reader)

    async with loopback(handler) as up:
        client = H1Client(max_connections=1)
        with pytest.raises(InvalidResponse):
            await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        await asyncio.wait_for(up.eof.wait(), 1)  # and the connection is dropped
        await client.aclose()


async def test_garbage_in_the_body_fails_the_read() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"ok"))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"zz-not-a-chunk-size\r\n")
        await writer.drain()
        await up.wait_eof(reader)

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        with pytest.raises(InvalidResponse):
            await response.read()
        response.release()
        await asyncio.wait_for(up.eof.wait(), 1)
        await client.aclose()


# -- 10. max_connections -----------------------------------------------------------------------
async def test_max_connections_queues_the_second_post() -> None:
    async with loopback(serve_ok) as up:
        client = H1Client(max_connections=1)
        first = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        second = asyncio.create_task(client.post(up.target, "/b", HEAD, JSON_BODY, limits()))
        await asyncio.sleep(0.05)
        assert not second.done()
        assert len(up.requests) == 1  # not even sent
        assert await first.read() == b'{"ok":true}'
        assert not second.done()  # read is not release
        first.release()
        response = await asyncio.wait_for(second, 1)
        assert await response.read() == b'{"ok":true}'
        response.release()
        await client.aclose()
    assert [r.line for r in up.requests] == ["POST /v1/a HTTP/1.1", "POST /v1/b HTTP/1.1"]
    assert up.connections == 1


async def test_closing_an_answer_frees_the_slot() -> None:
    async with loopback(serve_ok) as up:
        client = H1Client(max_connections=1)
        first = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        first.close()
        first.release()  # after close(): no second release of the slot
        for _ in range(2):
            response = await asyncio.wait_for(
                client.post(up.target, "/b", HEAD, JSON_BODY, limits()), 1
            )
            assert await response.read() == b'{"ok":true}'
            response.release()
        # one slot only: a second concurrent post still waits
        held = await client.post(up.target, "/c", HEAD, JSON_BODY, limits())
        waiting = asyncio.create_task(client.post(up.target, "/d", HEAD, JSON_BODY, limits()))
        await asyncio.sleep(0.03)
        assert not waiting.done()
        held.release()
        (await asyncio.wait_for(waiting, 1)).release()
        await client.aclose()


# -- 11. cancellation --------------------------------------------------------------------------
async def test_cancelling_a_waiting_post_closes_and_frees_the_slot() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        if index == 0:
            await up.wait_eof(reader)  # never answers; sees the cancellation as EOF
            return
        writer.write(answer(b"later"))
        await writer.drain()
        await up.wait_eof(reader)

    async with loopback(handler) as up:
        client = H1Client(max_connections=1)
        task = asyncio.create_task(
            client.post(up.target, "/a", HEAD, JSON_BODY, limits(first_byte=None))
        )
        await until(lambda: len(up.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(up.eof.wait(), 1)
        response = await asyncio.wait_for(
            client.post(up.target, "/b", HEAD, JSON_BODY, limits()), 1
        )
        assert await response.read() == b"later"
        response.release()
        await client.aclose()
    assert up.connections == 2


async def test_cancelling_a_post_waiting_for_a_slot() -> None:
    async with loopback(serve_ok) as up:
        client = H1Client(max_connections=1)
        held = await client.post(up.target, "/a", HEAD, JSON_BODY, limits())
        queued = asyncio.create_task(client.post(up.target, "/b", HEAD, JSON_BODY, limits()))
        await asyncio.sleep(0.02)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        held.release()
        # the cancelled waiter took no slot with it
        response = await asyncio.wait_for(
            client.post(up.target, "/c", HEAD, JSON_BODY, limits()), 1
        )
        response.release()
        await client.aclose()
    assert [r.line for r in up.requests] == ["POST /v1/a HTTP/1.1", "POST /v1/c HTTP/1.1"]


# -- 12. header encoding, URL support, config ----------------------------------------------
def test_encode_headers() -> None:
    assert encode_headers({"a": "1", "X-B": "two words"}) == b"a: 1\r\nX-B: two words\r\n"
    assert encode_headers({}) == b""
    for headers in (
        {"x-evil": "a\r\nInjected: 1"},
        {"x-evil": "a\nb"},
        {"x-evil": "a\rb"},
        {"x-evil\r\nInjected": "1"},
    ):
        with pytest.raises(ValueError, match="line break"):
            encode_headers(headers)


@pytest.mark.parametrize(
    ("url", "supported"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://localhost/v1/", True),
        ("http://engine:8000", True),
        ("http://[::1]:8000/v1", True),
        ("https://api.openai.com/v1", False),
        ("http://user:pw@engine:8000/v1", False),
        ("http://user@engine:8000/v1", False),
        ("http://:pw@engine:8000/v1", False),
        ("http://engine:8000/v1?key=1", False),
        ("http://engine:8000/v1#frag", False),
        ("http:///v1", False),
        ("ftp://engine/v1", False),
    ],
)
def test_target_supports(url: str, supported: bool) -> None:
    assert Target.supports(url) is supported


def test_target_parts() -> None:
    target = Target("http://127.0.0.1:8000/v1/")
    assert (target.host, target.port, target.key) == ("127.0.0.1", 8000, ("127.0.0.1", 8000))
    assert target.path_prefix == "/v1"
    assert target.request_head == b"Host: 127.0.0.1:8000\r\n"
    target = Target("http://engine")
    assert (target.port, target.path_prefix, target.request_head) == (80, "", b"Host: engine\r\n")
    target = Target("http://[::1]:9000/v1")
    assert (target.host, target.request_head) == ("::1", b"Host: [::1]:9000\r\n")


@pytest.mark.parametrize(
    "headers", ['{x-bad: "a\\r\\nInjected: 1"}', '{x-bad: "a\\nb"}', '{"x-bad\\r\\nI": ok}']
)
def test_config_refuses_a_route_header_with_a_line_break(headers: str) -> None:
    text = (
        "models:\n - name: r\n   backend: vllm\n   base_url: http://127.0.0.1:8000/v1\n"
        f"   upstream_model: m\n   headers: {headers}\n"
    )
    with pytest.raises(ConfigError, match="line break"):
        parse_config(text, "routes.yaml")
    ok = text.replace(f"headers: {headers}", "headers: {x-good: fine}")
    assert parse_config(ok, "routes.yaml").models[0].headers == {"x-good": "fine"}


# -- answers outside the plain shape -----------------------------------------------------------
async def test_interim_1xx_answer_is_skipped() -> None:
    """A 103 Early Hints (in its own packet or with the real answer) is not the answer."""

    async def handler(up: Loopback, index: int, reader, writer) -> None:
        while await up.request(reader) is not None:
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(answer(b"real"))
            await writer.drain()

    async with loopback(handler) as up:
        client = H1Client()
        for _ in range(2):  # and the connection stays usable
            response = await client.post(up.target, "/i", HEAD, JSON_BODY, limits())
            assert response.status == 200
            assert "link" not in response.headers
            assert await response.read() == b"real"
            response.release()
        await client.aclose()
    assert up.connections == 1


async def test_non_chunked_transfer_encoding_body_ends_with_the_connection() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/te", HEAD, JSON_BODY, limits())
        assert response.until_close
        assert await response.read() == b"all of it"
        response.release()
        await client.aclose()


async def test_bytes_past_the_end_of_the_answer_drop_the_connection() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        while await up.request(reader) is not None:
            writer.write(answer(b"one"))
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")
            await writer.drain()

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/x", HEAD, JSON_BODY, limits())
        assert await response.read() == b"one"
        await asyncio.sleep(0.06)  # the unasked-for answer arrives before the release
        assert response.status == 200 and response.headers["content-length"] == "3"
        response.release()
        response = await client.post(up.target, "/x", HEAD, JSON_BODY, limits())
        assert await response.read() == b"one"
        response.release()
        await client.aclose()
    assert up.connections == 2  # the first connection was not reused


async def test_a_second_answer_in_the_same_packet_leaves_the_first_intact() -> None:
    async def handler(up: Loopback, index: int, reader, writer) -> None:
        while await up.request(reader) is not None:
            writer.write(answer(b"one") + answer(b"two", status="500 Oops"))
            await writer.drain()

    async with loopback(handler) as up:
        client = H1Client()
        response = await client.post(up.target, "/x", HEAD, JSON_BODY, limits())
        assert response.status == 200
        assert await response.read() == b"one"
        response.release()
        response = await client.post(up.target, "/x", HEAD, JSON_BODY, limits())
        assert response.status == 200 and await response.read() == b"one"
        response.release()
        await client.aclose()
    assert up.connections == 2


async def test_get_has_no_body_and_no_length() -> None:
    """Health checks: GET on the URL's own path, no content-length."""
    async with loopback(serve_ok) as up:
        client = H1Client()
        target = Target(f"http://127.0.0.1:{up.port}/health")
        response = await client.post(target, "", b"", b"", limits(), method=b"GET")
        assert response.status == 200 and await response.read() == b'{"ok":true}'
        response.release()
        await client.aclose()
    [request] = up.requests
    assert request.line == "GET /health HTTP/1.1"
    assert request.header("content-length") == [] and request.body == b""


# -- push mode (the stream relay's: pieces handed over from the data callback) ----------------
def collect(got: list[bytes]) -> Callable[[bytes], bool]:
    def sink(piece: bytes) -> bool:
        got.append(piece)
        return False

    return sink


async def no_drain() -> None:
    raise AssertionError("nothing was held")


async def test_push_hands_every_piece_then_the_end_and_keeps_the_connection() -> None:
    pieces = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]
    async with loopback(sse_server(pieces, 0.02)) as up:
        client = H1Client()
        for _ in range(2):
            response = await client.post(up.target, "/s", HEAD, JSON_BODY, limits())
            got: list[bytes] = []
            await response.push(collect(got), no_drain)
            assert got == [*pieces, b""]  # b"": the end of the body, once
            assert response.complete and response.keep_alive
            response.release()
        await client.aclose()
    assert up.connections == 1


async def test_push_stops_when_the_sink_says_so_and_settle_waits_for_the_end() -> None:
    pieces = [b"data: one\n\n", b"data: [DONE]\n\n"]
    async with loopback(sse_server(pieces, 0.05)) as up:
        client = H1Client()
        response = await client.post(up.target, "/s", HEAD, JSON_BODY, limits())
        got: list[bytes] = []

        def sink(piece: bytes) -> bool:
            got.append(piece)
            return b"[DONE]" in piece

        await response.push(sink, no_drain)
        assert got == pieces and not response.complete  # the last chunk is 50 ms behind
        await response.settle(2.0)
        assert response.complete and response.keep_alive
        response.release()
        response = await client.post(up.target, "/s", HEAD, JSON_BODY, limits())
        response.close()
        await client.aclose()
    assert up.connections == 1


async def test_push_idle_timeout_counts_from_the_last_piece() -> None:
    # five pieces 80 ms apart outlast the 200-ms idle timeout; the stall after them does not
    pieces = [b"data: %d\n\n" % n for n in range(5)]
    async with loopback(sse_server(pieces, 0.08, stall=True)) as up:
        client = H1Client()
        response = await client.post(up.target, "/s", HEAD, JSON_BODY, limits(idle=0.2))
        got: list[bytes] = []
        with pytest.raises(TimeoutError):
            await response.push(collect(got), no_drain)
        assert got == pieces
        response.close()
        await asyncio.wait_for(up.eof.wait(), 1)
        await client.aclose()


async def test_push_hold_pauses_reading_until_drained() -> None:
    pieces = [b"data: %d\n\n" % n for n in range(4)]
    async with loopback(sse_server(pieces, 0.01)) as up:
        client = H1Client()
        response = await client.post(up.target, "/s", HEAD, JSON_BODY, limits())
        got: list[bytes] = []
        drained = asyncio.Event()
        drains = 0

        def sink(piece: bytes) -> bool:
            got.append(piece)
            if len(got) == 1:
                response.hold()
            return False

        async def drain() -> None:
            nonlocal drains
            drains += 1
            await asyncio.sleep(0.1)  # the client's buffer drains meanwhile
            assert response._paused  # reading the upstream stayed paused
            drained.set()

        await response.push(sink, drain)
        assert drains == 1 and drained.is_set()
        assert b"".join(got) == b"".join(pieces)
        assert response.complete
        response.release()
        await client.aclose()
