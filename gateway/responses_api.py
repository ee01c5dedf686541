"""`POST /v1/responses`: native pass-through where the backend speaks it, else translation
to Chat Completions and back (gateway/translate), streaming events included."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from backends.base import ChatStream, Driver
from backends.token_in import TokenPath, reject_native, uses_token_path
from gateway import fidelity
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.fallback import answer_routed
from gateway.relay import (
    SSE_HEADERS,
    ModelRewriter,
    SSEResponse,
    answer_json,
    until_disconnect,
)
from gateway.request_io import read_json_body
from gateway.sse import frame_named
from gateway.translate import ResponsesStreamTranslator, chat_to_response, responses_to_chat
from gateway.validation import check_responses_body

log = logging.getLogger("gateway.responses")


def _frames(events: list[Any]) -> bytes:
    """SSE bytes of a framed translator's events (dicts, or bytes framed already)."""
    return b"".join(e if type(e) is bytes else frame_named(e["type"], e) for e in events)


async def relay_translated_stream(
    stream: ChatStream, translator: ResponsesStreamTranslator, ctx: RequestContext
) -> AsyncIterator[bytes]:
    """Chat chunks in, Responses events out; always one terminal event, never a hang."""
    route_name = ctx.route_name
    try:
        yield _frames(translator.start())
        async for batch in stream:
            if ctx.first_token is None:
                ctx.first_token = time.perf_counter()
            events: list[dict[str, Any]] = []
            for payload in batch:
                try:
                    chunk = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise GatewayError(
                        502,
                        f"route '{route_name}': the upstream sent invalid JSON in its stream",
                        code="upstream_invalid",
                    ) from None
                if isinstance(chunk, dict):
                    if chunk.get("usage"):
                        ctx.note_usage(chunk["usage"])
                    events += translator.feed(chunk)
            if events:
                yield _frames(events)
        if not getattr(stream, "saw_done", True) and translator.finish_reason is None:
            message = (
                f"route '{route_name}': the upstream stream ended before the answer was complete"
            )
            yield _frames(translator.fail(message, "upstream_truncated"))
        else:
            yield _frames(translator.finish())
    except GatewayError as exc:
        log.warning("responses stream on route %s broke: %s", route_name, exc.message)
        ctx.error_code = str(exc.code or "server_error")
        yield _frames(translator.fail(exc.message, str(exc.code or "server_error")))
    except Exception:
        log.exception("responses stream on route %s failed inside the gateway", route_name)
        ctx.error_code = "internal"
        yield _frames(translator.fail("The gateway failed while relaying the stream", "internal"))
    finally:
        await stream.aclose()


async def relay_native_stream(
    stream: ChatStream, rewrite: ModelRewriter, ctx: RequestContext
) -> AsyncIterator[bytes]:
    """A backend's own Responses events, passed on with only `model` rewritten."""
    route_name = ctx.route_name
    try:
        async for batch in stream:
            if ctx.first_token is None:
                ctx.first_token = time.perf_counter()
            out = []
            for event in batch:
                head = f"event: {event.event}\n".encode() if event.event else b""
                out.append(head + b"data: " + rewrite(event.data) + b"\n\n")
            yield b"".join(out)
    except GatewayError as exc:
        log.warning("native responses stream on route %s broke: %s", route_name, exc.message)
        ctx.error_code = str(exc.code or "server_error")
        error = {
            "type": "error",
            "code": exc.code or "server_error",
            "message": exc.message,
            "param": None,
        }
        yield frame_named("error", error)
    finally:
        await stream.aclose()


async def _native(
    request: Request, driver: Driver, body: dict[str, Any], model: str, ctx: RequestContext
) -> Response:
    reject_native(driver, body)
    if body.get("stream"):
        stream = await until_disconnect(request, driver.open_responses_stream(body, ctx))
        rewrite = ModelRewriter(driver.route.target_model, model)
        # SSEResponse, not StreamingResponse: no anyio task group per stream (relay.py)
        frames = _recorded(ctx, relay_native_stream(stream, rewrite, ctx))
        return SSEResponse(frames, {**SSE_HEADERS, **ctx.response_headers})
    answer = await until_disconnect(request, driver.responses(body, ctx))
    answer["model"] = model
    return answer_json(answer, ctx)


async def _translated(
    request: Request, driver: Driver, body: dict[str, Any], model: str, ctx: RequestContext
) -> Response:
    chat_body = responses_to_chat(body, driver.dialect)
    if uses_token_path(driver.route, chat_body):  # RL token contract (docs/rl.md)
        driver = TokenPath(driver)
    if body.get("stream"):
        stream = await until_disconnect(request, driver.open_chat_stream(chat_body, ctx))
        translator = ResponsesStreamTranslator(body, model=model, framed=True)
        # SSEResponse, not StreamingResponse: no anyio task group per stream (relay.py)
        frames = _recorded(ctx, relay_translated_stream(stream, translator, ctx))
        return SSEResponse(frames, {**SSE_HEADERS, **ctx.response_headers})
    chat = await until_disconnect(request, driver.chat(chat_body, ctx))
    response = chat_to_response(chat, body, model=model)
    return answer_json(response, ctx, chat.get("usage"), engine_answer=chat)


def _recorded(ctx: RequestContext, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream as is, or teed into the recording when the route records bodies."""
    if ctx.recorder is not None and ctx.recorder.bodies:
        return ctx.recorder.tee(ctx, frames)
    return frames


async def create_response(request: Request) -> Response:
    gateway = request.app.state.gateway
    body = await read_json_body(request, gateway.config.server.max_body_bytes)
    model = check_responses_body(body)
    ctx: RequestContext = request.scope["state"]["ctx"]
    driver = gateway.router.driver_for(model, ctx)
    ctx.stream = bool(body.get("stream"))
    ctx.fidelity = verdict = fidelity.check_responses(driver, body)
    ctx.response_headers[fidelity.HEADER] = fidelity.header_value(verdict)
    if gateway.recording is not None:
        gateway.recording.attach(ctx, body)

    async def serve(route_driver: Driver) -> Response:
        handler = _native if route_driver.native_responses else _translated
        return await handler(request, route_driver, body, model, ctx)

    # a token-contract request never moves to another model's route
    token_request = uses_token_path(driver.route, body)
    return await answer_routed(gateway.router, driver, ctx, serve, not token_request)
