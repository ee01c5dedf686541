"""Engine endpoints the gateway forwards: `POST /tokenize` and `POST /detokenize` (vLLM and
SGLang routes, at the engine's server root, as NeMo Gym calls them) and the legacy
`POST /v1/completions` (every route whose backend serves it; the mock answers it itself).

The body's `model` picks the route, exactly as on /v1/chat/completions; the rest passes on.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from backends.base import Driver
from gateway.context import RequestContext
from gateway.endpoints import request_context
from gateway.errors import GatewayError, InvalidRequest
from gateway.relay import (
    CLIENT_CLOSED,
    SSE_HEADERS,
    ClientGone,
    ModelRewriter,
    relay_chat_stream,
    until_disconnect,
)
from gateway.request_io import json_response, read_json_body
from gateway.validation import (
    COMPLETIONS_RANGES,
    check_completions_params,
    check_model,
    check_ranges,
)
from gateway.weight_version import stamp_engine_version


async def _route(request: Request) -> tuple[dict[str, Any], str, Driver, RequestContext]:
    gateway = request.app.state.gateway
    body = await read_json_body(request, gateway.config.server.max_body_bytes)
    model = check_model(body)
    ctx = request_context(request)
    return body, model, gateway.router.driver_for(model, ctx), ctx


async def _root_call(request: Request, path: str) -> Response:
    body, _, driver, ctx = await _route(request)
    try:
        answer = None
        if path == "/tokenize":
            # a body with a required token prefix is rendered with the RL splice (docs/rl.md)
            from backends.token_in import tokenize as splice_tokenize

            answer = await until_disconnect(request, splice_tokenize(driver, body, ctx))
        if answer is None:
            answer = await until_disconnect(request, driver.engine_call(path, body, ctx))
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    except GatewayError as exc:
        exc.headers = {**ctx.response_headers, **exc.headers}
        raise
    return json_response(answer, headers=ctx.response_headers or None)


async def tokenize(request: Request) -> Response:
    return await _root_call(request, "/tokenize")


async def detokenize(request: Request) -> Response:
    return await _root_call(request, "/detokenize")


def _check_prompt(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if not isinstance(prompt, (str, list)) or (isinstance(prompt, list) and not prompt):
        raise InvalidRequest(
            "'prompt' is required: a string, a list of strings, or token ids", param="prompt"
        )
    check_completions_params(body)
    check_ranges(body, COMPLETIONS_RANGES)


async def completions(request: Request) -> Response:
    body, model, driver, ctx = await _route(request)
    _check_prompt(body)
    try:
        if body.get("stream"):
            ctx.stream = True
            stream = await until_disconnect(request, driver.open_completions_stream(body, ctx))
            rewrite = ModelRewriter(driver.route.target_model, model)
            return StreamingResponse(
                relay_chat_stream(stream, rewrite, ctx),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **ctx.response_headers},
            )
        answer = await until_disconnect(request, driver.completions(body, ctx))
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    except GatewayError as exc:
        exc.headers = {**ctx.response_headers, **exc.headers}
        raise
    answer["model"] = model
    stamp_engine_version(answer, ctx)  # x-policy-version: the engine's, where it says
    ctx.note_usage(answer.get("usage"))
    return json_response(answer, headers=ctx.response_headers or None)
