"""The HTTP endpoints. Hot paths are plain Starlette handlers: no per-request pydantic."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from backends.token_in import TokenPath
from gateway import fidelity, path
from gateway.path import Call, request_context
from gateway.relay import ChatEncoder, ModelRewriter, answer_json, relay, sse_answer
from gateway.request_io import json_response, read_json_body
from gateway.validation import check_chat_body

if TYPE_CHECKING:
    from backends.base import Driver
    from gateway.state import GatewayState as Gateway

__all__ = ["CHAT", "chat_completions", "get_model", "health", "list_models", "request_context"]


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


class ChatKind(path.Kind):
    """`POST /v1/chat/completions`: the body passes on; the token contract may apply."""

    def check(self, body: dict[str, Any]) -> str:
        return check_chat_body(body)

    def verdict(self, driver: Driver, body: dict[str, Any]) -> fidelity.Verdict:
        return fidelity.check_chat(driver, body)

    async def attempt(self, driver: Driver, call: Call) -> Response:
        ctx = call.ctx
        chat: Driver = TokenPath(driver) if call.token else driver  # type: ignore[assignment]
        if call.stream:
            upstream = await chat.open_chat_stream(call.body, ctx)
            rewrite = ModelRewriter(driver.route.target_model, call.model)
            return sse_answer(relay(upstream, ChatEncoder(rewrite, ctx), ctx), ctx)
        answer = await chat.chat(call.body, ctx)
        answer["model"] = call.model
        return answer_json(answer, ctx)


CHAT = ChatKind()


async def chat_completions(request: Request) -> Response:
    gateway = _gateway(request)
    body = await read_json_body(request, gateway.config.server.max_body_bytes)
    return await path.serve(gateway, CHAT, body, request_context(request), request.receive)


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
