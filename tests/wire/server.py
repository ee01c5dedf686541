"""Serving the wire fixtures and the engine endpoints from the scripted upstream
(tests/upstream.py calls these)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.wire import FIXTURES


def _data(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def serve_fixture(
    request: web.Request, model: str, body: dict[str, Any]
) -> web.StreamResponse:
    fx = FIXTURES[model]
    headers = fx.get("headers") or {}
    if fx["status"] >= 400:
        return web.json_response(fx["json"], status=fx["status"], headers=headers)
    if body.get("stream") and fx.get("chunks") is not None:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", **headers})
        await response.prepare(request)
        for payload in fx["chunks"]:
            await response.write(_data(payload))
        await response.write(b"data: [DONE]\n\n")
        return response
    return web.json_response(fx["json"], headers=headers)


def _completion(model: str, text: str, finish: str | None) -> dict[str, Any]:
    return {
        "id": "cmpl-up",
        "object": "text_completion",
        "created": 1_790_000_000,
        "model": model,
        "choices": [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
             "stop_reason": None, "prompt_token_ids": [1, 2]}
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    }  # fmt: skip


async def engine_endpoint(request: web.Request, record: Any) -> web.StreamResponse:
    """POST /tokenize, /detokenize (server root) and /v1/completions."""
    body = await request.json()
    record(body, {k.lower(): v for k, v in request.headers.items()}, request.path)
    if request.path == "/tokenize":
        return web.json_response(
            {"count": 3, "max_model_len": 2048, "tokens": [1, 2, 3], "token_strs": None}
        )
    if request.path == "/detokenize":
        return web.json_response({"prompt": "ids " + ",".join(map(str, body.get("tokens", [])))})
    model = body.get("model", "")
    if model in FIXTURES and FIXTURES[model]["status"] >= 400:
        return await serve_fixture(request, model, body)
    if not body.get("stream"):
        return web.json_response(_completion(model, " world!", "length"))
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for text, finish in ((" world", None), ("!", None), ("", "length")):
        await response.write(_data(_completion(model, text, finish)))
    await response.write(b"data: [DONE]\n\n")
    return response
