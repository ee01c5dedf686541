"""A byte-exact misbehaving upstream on loopback: each answer is a script of raw pieces,
written one by one with a pause between them, so the gateway's reads split exactly where
the script says (TCP_NODELAY is on for asyncio sockets). Used by the attack battery
(tests/e2e/test_attack_battery.py) to send what no well-behaved engine would.

A script is picked by the request body's `model` (less a ":engine" suffix); it is a function of the request (its
headers, to echo the Authorization header back as a leaky engine would) returning
(status line and headers, [body pieces]). Pieces are sent with chunked encoding unless the
head sets a content-length.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tests.upstream import free_port

PAUSE_S = 0.03  # between pieces: long enough for the gateway to read each one on its own


@dataclass
class Answer:
    status: int = 200
    content_type: str = "text/event-stream"
    pieces: list[bytes] | None = None
    length: bool = False  # content-length framing instead of chunked
    extra_head: bytes = b""


Script = Callable[[dict[str, str], dict], Answer]


class RawUpstream:
    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = scripts
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RawUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("raw upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers: dict[str, str] = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = json.loads(body) if body else {}
                model = str(request.get("model", ""))
                script = self.scripts.get(model.removesuffix(":engine"))
                answer = script(headers, request) if script else Answer(404, pieces=[b"{}"])
                await self._answer(writer, answer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, answer: Answer) -> None:
        pieces = answer.pieces or []
        reason = {200: "OK", 302: "Found", 500: "Internal Server Error"}.get(answer.status, "X")
        head = f"HTTP/1.1 {answer.status} {reason}\r\ncontent-type: {answer.content_type}\r\n"
        if answer.length:
            head += f"content-length: {sum(map(len, pieces))}\r\n"
        else:
            head += "transfer-encoding: chunked\r\n"
        writer.write(head.encode() + answer.extra_head + b"\r\n")
        for piece in pieces:
            writer.write(piece if answer.length else b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(PAUSE_S)
        if not answer.length:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
