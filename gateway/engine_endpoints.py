"""Engine endpoints the gateway forwards: `POST /tokenize` and `POST /detokenize` (vLLM and
SGLang routes, at the engine's server root, as NeMo Gym calls them) and the legacy
`POST /v1/completions` (every route whose backend serves it; the mock answers it itself).

The body's `model` picks the route, exactly as on /v1/chat/completions; the rest passes on.
Completions take the one request path (gateway/path.py) like Chat; tokenize and detokenize
are plain engine calls (no fidelity verdict, recording or fallbacks).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from backends.base import Driver
from backends.token_in import tokenize as splice_tokenize
from gateway import fidelity, path
from gateway.context import RequestContext
from gateway.errors import InvalidRequest
from gateway.path import Call, request_context
from gateway.relay import ChatEncoder, ModelRewriter, answer_json, relay, sse_answer
from gateway.request_io import read_json_body
from gateway.validation import (
    COMPLETIONS_RANGES,
    check_completions_params,
    check_model,
    check_ranges,
)


async def _root_call(request: Request, endpoint: str) -> Response:
    gateway = request.app.state.gateway
    body = await read_json_body(request, gateway.config.server.max_body_bytes)
    model = check_model(body)
    ctx = request_context(request)
    driver = gateway.router.driver_for(model, ctx)
    return await path.serve_plain(ctx, request.receive, _engine_call(driver, endpoint, body, ctx))


async def _engine_call(
    driver: Driver, endpoint: str, body: dict[str, Any], ctx: RequestContext
) -> dict[str, Any]:
    if endpoint == "/tokenize":
        # a body with a required token prefix is rendered with the RL splice (docs/rl.md)
        answer = await splice_tokenize(driver, body, ctx)
        if answer is not None:
            return answer
    return await driver.engine_call(endpoint, body, ctx)


async def tokenize(request: Request) -> Response:
    return await _root_call(request, "/tokenize")


async def detokenize(request: Request) -> Response:
    return await _root_call(request, "/detokenize")


class CompletionsKind(path.Kind):
    """`POST /v1/completions`: `prompt` in, `text` out; the body passes on."""

    def check(self, body: dict[str, Any]) -> str:
        model = check_model(body)
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)) or (isinstance(prompt, list) and not prompt):
            raise InvalidRequest(
                "'prompt' is required: a string, a list of strings, or token ids", param="prompt"
            )
        check_completions_params(body)
        check_ranges(body, COMPLETIONS_RANGES)
        return model

    def verdict(self, driver: Driver, body: dict[str, Any]) -> fidelity.Verdict:
        return fidelity.check_completions(driver, body)

    async def attempt(self, driver: Driver, call: Call) -> Response:
        ctx = call.ctx
        if call.stream:
            upstream = await driver.open_completions_stream(call.body, ctx)
            rewrite = ModelRewriter(driver.route.target_model, call.model)
            return sse_answer(relay(upstream, ChatEncoder(rewrite, ctx), ctx), ctx)
        answer = await driver.completions(call.body, ctx)
        answer["model"] = call.model
        return answer_json(answer, ctx)


COMPLETIONS = CompletionsKind()


async def completions(request: Request) -> Response:
    gateway = request.app.state.gateway
    body = await read_json_body(request, gateway.config.server.max_body_bytes)
    return await path.serve(gateway, COMPLETIONS, body, request_context(request), request.receive)
