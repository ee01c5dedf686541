"""The edges of a request: bounded body reading, JSON answers."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.errors import GatewayError, InvalidRequest

# orjson reads up to 1,024 levels of nesting but writes at most 254, and the gateway nests a
# request's parts a few levels deeper when it forwards or echoes them (tool parameters, SSE
# events, recordings): a body deeper than MAX_DEPTH is refused instead of failing later.
MAX_DEPTH = 200
_WRAP = 254 - MAX_DEPTH
_SMALL = 16 * 1024  # below this, counting brackets is cheaper than serializing


def _too_deep(body: Any, raw: bytes) -> bool:
    if len(raw) < _SMALL and raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    wrapped = body
    for _ in range(_WRAP):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False


async def read_json_body(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object; 413 past `limit` bytes, 400 if not a JSON object."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GatewayError(
            413, f"Request body is {declared} bytes; the limit is {limit}", code="body_too_large"
        )
    # receive() directly, not request.stream(): for the usual one-message body the async
    # generator and its bookkeeping cost more than the read itself.
    receive = request.receive
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise GatewayError(
                    413, f"Request body exceeds the limit of {limit} bytes", code="body_too_large"
                )
            parts.append(chunk)
        if not message.get("more_body", False):
            break
    raw = parts[0] if len(parts) == 1 else b"".join(parts)
    request._body = raw  # as Starlette's own reads leave it: a later body() gets these bytes
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
    if _too_deep(body, raw):
        raise InvalidRequest(
            f"Request body is nested more than {MAX_DEPTH} levels deep", code="invalid_json"
        )
    return body


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    try:
        body = orjson.dumps(content)
    except orjson.JSONEncodeError:
        # only an upstream's answer can hold what orjson will not write back (nesting past
        # 254 levels, integers past 64 bits): that is a bad upstream answer, not our bug
        raise GatewayError(
            502, "the upstream's answer cannot be passed on as JSON (nested too deeply?)",
            code="upstream_invalid",
        ) from None  # fmt: skip
    return Response(body, status, headers, media_type="application/json")


def error_response(exc: GatewayError) -> Response:
    return json_response(exc.body(), exc.status, exc.headers or None)
