"""WebSocket mode on `/v1/responses` (Open Responses 2026-04-24, OpenAI's WebSocket mode).

The client opens `ws://gateway/v1/responses` (with `Authorization: Bearer <key>` as on HTTP)
and sends `{"type": "response.create", ...}` messages: a create body without `stream`,
`stream_options` or `background`. Each turn runs the HTTP streaming path unchanged
(gateway/path.py, through responses_api.serve_response) and every SSE event goes out as one
text message: the same event types, in the same order. Turns are sequential: a message sent
during a turn waits for it. A failure before a turn's stream starts is one WebSocket error event,
`{"type": "error", "status": 400, "error": {"type", "code", "message", "param"}}`.

Continuation: the connection keeps its latest response in memory (ConnectionCache), so a
`previous_response_id` naming it needs only the new input and no store round trip; with
`store: false` that is the only copy, and a new connection gets `previous_response_not_found`.
A continuation that fails evicts its `previous_response_id` from the connection's memory.
Each turn passes the control plane (refit pause, policy version, which the terminal
response carries as `policy_version`), is counted, logged and limited as an HTTP request,
and a connection is closed at `responses.ws_max_age_s` (60 minutes) with an error event
`websocket_connection_limit_reached`, after the turn in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from backends.token_in import uses_token_path
from gateway.context import RequestContext
from gateway.errors import GatewayError, InvalidRequest
from gateway.observe import ObserveMiddleware, new_request_id
from gateway.relay import SSEResponse
from gateway.request_io import MAX_DEPTH, _too_deep, error_response
from gateway.responses_api import serve_response
from gateway.responses_events import response_events
from gateway.responses_state import ConnectionCache

if TYPE_CHECKING:
    from gateway.state import GatewayState as Gateway

log = logging.getLogger("gateway.responses_ws")

# Fields of an HTTP create body a WebSocket `response.create` must not carry (the spec's
# WebSocketResponseCreateEvent marks them disallowed).
_DISALLOWED = ("stream", "stream_options", "background")
_TERMINAL = (b"event: response.completed\n", b"event: response.incomplete\n",
             b"event: response.failed\n")  # fmt: skip
QUEUE_LIMIT = 16  # messages read ahead of the running turn; then the socket is not read


def error_event(exc: GatewayError) -> dict[str, Any]:
    """The WebSocket error envelope (WebSocketErrorEvent of the 2026-04-24 spec)."""
    return {
        "type": "error",
        "status": exc.status,
        "error": {
            "type": exc.type,
            "code": str(exc.code) if exc.code is not None else exc.type,
            "message": exc.message,
            "param": exc.param,
        },
    }


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def responses_websocket(websocket: WebSocket) -> None:
    gateway: Gateway = websocket.app.state.gateway
    scope = websocket.scope
    base = RequestContext(request_id=new_request_id(), endpoint="/v1/responses")
    try:
        size = sum(len(k) + len(v) for k, v in scope["headers"])
        if size > gateway.config.server.max_header_bytes:
            raise GatewayError(431, "Request headers are too large", code="headers_too_large")
        gateway.auth.authenticate(scope, _header(scope, b"authorization"), base)
    except GatewayError as exc:
        if "websocket.http.response" in scope.get("extensions", {}):
            await websocket.send_denial_response(error_response(exc))
        else:
            await websocket.close(1008, exc.message[:120])
        return
    session = _header(scope, b"x-session-id")
    await websocket.accept()
    await Connection(gateway, websocket, base, session.decode() if session else None).run()


class Connection:
    def __init__(
        self, gateway: Gateway, websocket: WebSocket, base: RequestContext, session: str | None
    ) -> None:
        self.gateway = gateway
        self.websocket = websocket
        self.base = base
        self.session = session
        self.cache = ConnectionCache()
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue(QUEUE_LIMIT)
        self.gone = asyncio.Event()
        self.turn: asyncio.Task[None] | None = None
        self.observe = ObserveMiddleware(None, gateway)  # type: ignore[arg-type]  # finish()
        self.deadline = time.monotonic() + gateway.config.responses.ws_max_age_s

    async def run(self) -> None:
        reader = asyncio.ensure_future(self._read())
        try:
            while not self.gone.is_set():
                message = await self._next()
                if message is None:
                    break
                self.turn = asyncio.ensure_future(self._serve(message))
                with contextlib.suppress(asyncio.CancelledError):
                    await self.turn
                self.turn = None
        finally:
            left = self.gone.is_set()  # the client closed (else: the age cap, or shutdown)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if not left:
                with contextlib.suppress(Exception):
                    await self.websocket.close(1000)

    async def _read(self) -> None:
        """Reads ahead into the queue; on a disconnect, cancels the turn in progress (which
        closes its upstream request, freeing the engine's slot)."""
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("text")
                await self.queue.put(data if data is not None else message.get("bytes") or b"")
        finally:
            self.gone.set()
            if self.turn is not None:
                self.turn.cancel()
            if self.queue.empty():  # wake run() waiting for a message
                self.queue.put_nowait("")

    async def _next(self) -> str | bytes | None:
        """The next message, or None when the client left or the connection's age is up."""
        remaining = self.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            message = await asyncio.wait_for(self.queue.get(), remaining)
        except TimeoutError:
            cap = self.gateway.config.responses.ws_max_age_s
            exc = GatewayError(
                400, f"The WebSocket connection reached its age limit ({cap:g} s); open a "
                "new one and continue with previous_response_id (stored responses) or the "
                "full input.", code="websocket_connection_limit_reached",
            )  # fmt: skip
            await self._send(error_event(exc))
            return None
        return None if self.gone.is_set() else message

    async def _send(self, event: dict[str, Any] | bytes) -> None:
        data = event if isinstance(event, bytes) else orjson.dumps(event)
        try:
            await self.websocket.send_text(data.decode())
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.gone.set()
            raise asyncio.CancelledError() from None

    def _body(self, raw: str | bytes) -> dict[str, Any]:
        limit = self.gateway.config.server.max_body_bytes
        if len(raw) > limit:
            raise GatewayError(413, f"The message exceeds the limit of {limit} bytes",
                               code="body_too_large")  # fmt: skip
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"The message is not valid JSON: {exc}",
                                 code="invalid_json") from None  # fmt: skip
        if not isinstance(body, dict):
            raise InvalidRequest("The message must be a JSON object", code="invalid_json")
        if _too_deep(body, raw if isinstance(raw, bytes) else raw.encode()):
            raise InvalidRequest(f"The message is nested more than {MAX_DEPTH} levels deep",
                                 code="invalid_json")  # fmt: skip
        if body.get("type") != "response.create":
            raise InvalidRequest(
                f"Unsupported event type {body.get('type')!r}: send 'response.create'.",
                param="type", code="unsupported_event_type",
            )  # fmt: skip
        for name in _DISALLOWED:
            if name in body:
                raise InvalidRequest(
                    f"`{name}` is not allowed in WebSocket mode (every turn streams); "
                    "remove it.", param=name, code="unsupported_parameter",
                )  # fmt: skip
        body = {k: v for k, v in body.items() if k != "type"}
        body["stream"] = True
        return body

    def _token_turn(self, body: dict[str, Any]) -> bool:
        """Whether the turn takes the RL token path (then it runs non-streaming)."""
        driver = self.gateway.router.drivers.get(body.get("model"))  # type: ignore[arg-type]
        return (
            driver is not None
            and not driver.native_responses
            and uses_token_path(driver.route, body)
        )

    def _context(self) -> RequestContext:
        base = self.base
        ctx = RequestContext(
            request_id=new_request_id(), endpoint="/v1/responses", session_id=self.session,
            key_name=base.key_name, allowed_routes=base.allowed_routes,
        )  # fmt: skip
        ctx.started = time.perf_counter()
        return ctx

    async def _receive(self) -> dict[str, Any]:
        """The path's `receive`: reports the socket's close as an HTTP disconnect (so the
        turn's upstream work is cancelled)."""
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _serve(self, raw: str | bytes) -> None:
        gateway = self.gateway
        ctx = self._context()
        generation = gateway.reloader.current if gateway.reloader is not None else None
        if generation is not None:
            generation.active += 1
        admitted = False
        previous = None
        try:
            body = self._body(raw)
            previous = body.get("previous_response_id")
            ctx.policy_version = await gateway.control.admit()
            admitted = True
            if self._token_turn(body):
                body["stream"] = False  # the bundle is a non-streaming field (docs/rl.md)
            response = await serve_response(gateway, body, ctx, self._receive, self.cache)
            ctx.status = response.status_code
            if isinstance(response, SSEResponse):
                await self._relay(response, ctx)
            elif response.status_code == 200:
                for event in response_events(orjson.loads(response.body)):
                    await self._send(event)
        except GatewayError as exc:
            ctx.status, ctx.error_code = exc.status, str(exc.code) if exc.code else None
            self.cache.evict(previous if isinstance(previous, str) else None)
            await self._send(error_event(exc))
        except asyncio.CancelledError:
            ctx.status = ctx.status or 499
            raise
        except Exception:
            log.exception("WebSocket turn failed inside the gateway")
            ctx.status, ctx.error_code = 500, "internal"
            internal = GatewayError(500, "The gateway hit an internal error; see its log",
                                    code="internal")  # fmt: skip
            await self._send(error_event(internal))
        finally:
            if admitted:
                gateway.control.done()
            if generation is not None:
                generation.active -= 1
            self.observe.finish(ctx, {"method": "WS"})

    async def _relay(self, response: SSEResponse, ctx: RequestContext) -> None:
        """Each SSE event of the turn as one text message (its `data:` JSON)."""
        version = ctx.policy_version
        stamp = b'"response":{"policy_version":' + orjson.dumps(version) + b","
        frames = response.body_iterator
        try:
            async for chunk in frames:
                for frame in chunk.split(b"\n\n"):
                    start = frame.find(b"data: ")
                    if start < 0:
                        continue
                    data = frame[start + 6 :]
                    if data == b"[DONE]":  # a native backend's SSE end: not an event
                        continue
                    if version is not None and frame.startswith(_TERMINAL):
                        data = data.replace(b'"response":{', stamp, 1)
                    await self._send(data)
        finally:
            await frames.aclose()  # type: ignore[attr-defined]
