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


async def _echo_ws(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
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
