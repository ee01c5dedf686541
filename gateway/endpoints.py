"""The HTTP endpoints. Hot paths are plain Starlette handlers: no per-request pydantic."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from backends.token_in import TokenPath, uses_token_path
from gateway import fidelity
from gateway.context import RequestContext
from gateway.fallback import answer_routed
from gateway.relay import (
    SSE_HEADERS,
    ModelRewriter,
    SSEResponse,
    answer_json,
    relay_chat_stream,
    until_disconnect,
)
from gateway.request_io import json_response, read_json_body
from gateway.validation import check_chat_body

if TYPE_CHECKING:
    from backends.base import Driver
    from gateway.state import GatewayState as Gateway


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def request_context(request: Request) -> RequestContext:
    """The context the observability middleware opened for this request."""
    return request.scope["state"]["ctx"]


async def chat_completions(request: Request) -> Response:
    gateway = _gateway(request)
    body = await read_json_body(request, gateway.config.server.max_body_bytes)
    model = check_chat_body(body)
    ctx = request_context(request)
    driver = gateway.router.driver_for(model, ctx)
    if uses_token_path(driver.route, body):  # RL token contract (docs/rl.md)
        driver = TokenPath(driver)
    ctx.fidelity = verdict = fidelity.check_chat(driver, body)
    ctx.response_headers[fidelity.HEADER] = fidelity.header_value(verdict)
    if gateway.recording is not None:
        gateway.recording.attach(ctx, body)
    stream = bool(body.get("stream"))
    ctx.stream = stream

    async def serve(route_driver: Driver) -> Response:
        if route_driver is not driver and uses_token_path(route_driver.route, body):
            route_driver = TokenPath(route_driver)  # a fallback route on the token path
        if stream:
            upstream = await until_disconnect(request, route_driver.open_chat_stream(body, ctx))
            rewrite = ModelRewriter(route_driver.route.target_model, model)
            chunks = relay_chat_stream(upstream, rewrite, ctx)
            if ctx.recorder is not None and ctx.recorder.bodies:
                chunks = ctx.recorder.tee(ctx, chunks)
            # SSEResponse, not StreamingResponse: no anyio task group per stream (relay.py)
            return SSEResponse(chunks, {**SSE_HEADERS, **ctx.response_headers})
        answer = await until_disconnect(request, route_driver.chat(body, ctx))
        answer["model"] = model
        return answer_json(answer, ctx)

    # a token-contract request never moves to another model's route
    token_request = isinstance(driver, TokenPath)
    return await answer_routed(gateway.router, driver, ctx, serve, not token_request)


async def list_models(request: Request) -> Response:
    gateway = _gateway(request)
    return json_response(
        {"object": "list", "data": [gateway.model_card(r) for r in gateway.config.models]}
    )


async def get_model(request: Request) -> Response:
    gateway = _gateway(request)
    name = request.path_params["model"]
    route = gateway.router.routes.get(name)
    if route is None:
        gateway.router.driver_for(name)  # raises the 404 in OpenAI's shape
    return json_response(gateway.model_card(route))


async def health(request: Request) -> Response:
    gateway = _gateway(request)
    doc = {
        "status": "ok",
        "routes": len(gateway.config.models),
        "uptime_s": round(time.time() - gateway.started, 3),
    }
    if getattr(gateway, "engines", None) is not None:
        doc["engines"] = gateway.engines.status()  # managed engines: state, pid, restarts
    return json_response(doc)
