"""The edges of a request: request ids, bounded body reading, JSON answers."""

from __future__ import annotations

import os
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError, InvalidRequest

REQUEST_ID_HEADER = b"x-request-id"
_MAX_ID_LEN = 200


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()


def _acceptable_id(raw: bytes) -> bool:
    return 0 < len(raw) <= _MAX_ID_LEN and all(33 <= b < 127 for b in raw)


class RequestIdMiddleware:
    """Every answer carries `x-request-id`: the client's (if sane) or a new one.

    Pure ASGI (no BaseHTTPMiddleware) so streams are not buffered and the cost stays tiny.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER and _acceptable_id(value):
                request_id = value.decode()
                break
        if request_id is None:
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        await self.app(scope, receive, send_with_id)


async def read_json_body(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object; 413 past `limit` bytes, 400 if not a JSON object."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GatewayError(
            413, f"Request body is {declared} bytes; the limit is {limit}", code="body_too_large"
        )
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(
                413, f"Request body exceeds the limit of {limit} bytes", code="body_too_large"
            )
        parts.append(chunk)
    raw = parts[0] if len(parts) == 1 else b"".join(parts)
    if not raw:
        raise InvalidRequest("Request body is empty; send a JSON object", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"Request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object", code="invalid_json")
    return body


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


def error_response(exc: GatewayError) -> Response:
    return json_response(exc.body(), exc.status, exc.headers or None)
