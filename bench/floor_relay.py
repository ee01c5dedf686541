"""The floor: the least a Python HTTP relay on uvloop can cost, as a reference row for the
benchmark (`bench/run.sh --only floor ...`). It parses nothing but where each message ends:
a client's request goes byte for byte to an upstream connection (a kept-alive one when one
is idle), the answer comes back byte for byte. No routing, checks, rewriting, logging or
metrics: what the gateway, vllm-router or SMG spend above this row is their own work.

    python bench/floor_relay.py PORT SLOW_PORT UPSTREAM_PORT SLOW_UPSTREAM_PORT

PORT relays to UPSTREAM_PORT, SLOW_PORT to SLOW_UPSTREAM_PORT (both on 127.0.0.1), as the
peer routers' two processes do. Answers must carry a content-length or be chunked.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import sys

import uvloop

CHUNKED_END = b"\r\n0\r\n\r\n"


def _content_length(head: bytes) -> int:
    _, found, rest = head.lower().partition(b"content-length:")
    return int(rest.split(b"\r\n", 1)[0]) if found else 0


class Upstream(asyncio.Protocol):
    """One connection to the upstream; relays one answer at a time to its client."""

    def __init__(self, idle: list[Upstream]) -> None:
        self.idle = idle
        self.transport: asyncio.Transport | None = None
        self.client: asyncio.Transport | None = None
        self.buffer = b""  # the answer's head, until it is whole
        self.left: int | None = None  # body bytes to come; -1: chunked; None: head not read
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, client: asyncio.Transport, request: bytes) -> None:
        self.client, self.buffer, self.left, self.tail = client, b"", None, b""
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self.client is None:
            return
        self.client.write(data)
        if self.left is None:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.buffer[:end].lower(), self.buffer[end + 4 :]
            self.buffer = b""
            if b"transfer-encoding: chunked" not in head:
                self.left = _content_length(head)
            else:
                self.left = -1
        if self.left >= 0:
            self.left -= len(data)
            if self.left <= 0:
                self._done()
            return
        self.tail = (self.tail + data)[-len(CHUNKED_END) :]
        if self.tail == CHUNKED_END:
            self._done()

    def _done(self) -> None:
        self.client = None
        self.idle.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.idle:
            self.idle.remove(self)
        if self.client is not None:
            self.client.close()


class Client(asyncio.Protocol):
    """One client connection: each whole request goes to an upstream connection."""

    def __init__(self, upstream_port: int, idle: list[Upstream]) -> None:
        self.upstream_port = upstream_port
        self.idle = idle
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.connecting: asyncio.Future[None] | None = None  # held: a task is not kept alive

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        size = end + 4 + _content_length(self.buffer[:end])
        if len(self.buffer) < size:
            return
        request, self.buffer = self.buffer[:size], self.buffer[size:]
        if self.idle:
            self.idle.pop().send(self.transport, request)  # type: ignore[arg-type]
        else:
            self.connecting = asyncio.ensure_future(self._connect(request))

    async def _connect(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(
            lambda: Upstream(self.idle), "127.0.0.1", self.upstream_port
        )
        upstream.send(self.transport, request)  # type: ignore[arg-type]


async def serve(pairs: list[tuple[int, int]]) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for port, upstream_port in pairs:
        idle: list[Upstream] = []
        factory = functools.partial(Client, upstream_port, idle)
        servers.append(await loop.create_server(factory, "127.0.0.1", port, backlog=4096))
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    port, slow_port, upstream, slow_upstream = (int(a) for a in sys.argv[1:5])
    gc.freeze()
    uvloop.run(serve([(port, upstream), (slow_port, slow_upstream)]))


if __name__ == "__main__":
    main()
