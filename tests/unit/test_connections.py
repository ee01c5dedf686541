"""gateway/connections.py in a real uvicorn server on loopback: the header and body timers
leave upgraded (WebSocket) connections alone, and the limits come from the config."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from websockets.asyncio.client import connect

from gateway import connections
from gateway.config import ServerConfig
from gateway.connections import LIMITS, GatewayHttpProtocol, auto_max_connections, configure


async def _lifespan(receive, send) -> None:  # type: ignore[no-untyped-def]
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def _echo_ws(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    assert scope["type"] == "websocket"
    await receive()  # connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or ""})


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_websocket_outlives_header_and_body_timeouts() -> None:
    saved = (LIMITS.header_timeout_s, LIMITS.body_timeout_s)
    LIMITS.header_timeout_s = LIMITS.body_timeout_s = 0.2

    async def scenario() -> str:
        port = _port()
        config = uvicorn.Config(
            _echo_ws, port=port, http=GatewayHttpProtocol, ws="auto", log_level="error"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                await asyncio.sleep(0.6)  # three times both timeouts
                await ws.send("still here")
                return str(await ws.recv())
        finally:
            server.should_exit = True
            await task

    try:
        assert asyncio.run(scenario()) == "still here"
    finally:
        LIMITS.header_timeout_s, LIMITS.body_timeout_s = saved


def test_limits_come_from_the_config() -> None:
    saved = (LIMITS.header_timeout_s, LIMITS.max_connections)
    try:
        limits = configure(ServerConfig(header_timeout_s=3, max_connections=0))
        assert limits.header_timeout_s == 3
        assert limits.max_connections >= 16
        assert configure(ServerConfig(max_connections=5)).max_connections == 5
        assert auto_max_connections(1024) == 384
        assert auto_max_connections(100) == 16
    finally:
        LIMITS.header_timeout_s, LIMITS.max_connections = saved
    assert connections.LIMITS is LIMITS


def test_a_lost_client_cancels_its_work_without_a_watcher_task() -> None:
    """until_disconnect on this protocol: the connection's loss cancels the request's work
    directly (no task waits on receive()); a request that finishes leaves nothing behind."""
    from gateway.relay import ClientGone, until_disconnect

    seen: dict[str, object] = {}

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await receive()  # the (empty) body
        tasks_before = len(asyncio.all_tasks())
        slow = scope["path"] == "/slow"

        async def work() -> bytes:
            seen["tasks_during"] = len(asyncio.all_tasks()) - tasks_before
            await asyncio.sleep(30 if slow else 0)
            return b"done"

        try:
            body = await until_disconnect(receive, work())
        except ClientGone:
            seen["gone"] = True
            return
        callbacks = getattr(receive.__self__, "gateway_on_gone", None)
        seen["left_behind"] = callbacks
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def scenario() -> None:
        port = _port()
        config = uvicorn.Config(app, port=port, http=GatewayHttpProtocol, log_level="error")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            assert seen == {"tasks_during": 0, "left_behind": []}
            writer.write(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            await asyncio.sleep(0.2)
            writer.close()
            for _ in range(100):
                if "gone" in seen:
                    break
                await asyncio.sleep(0.02)
            assert seen.get("gone") is True
        finally:
            server.should_exit = True
            await task

    asyncio.run(scenario())
