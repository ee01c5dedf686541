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
from gateway import fidelity, responses_state
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
from gateway.sse import SSEEvent, frame_named
from gateway.translate import (
    RESPONSE_EVENTS,
    TERMINAL_EVENTS,
    ResponsesStreamTranslator,
    chat_to_response,
    effective_params,
    error_event,
    fill_response,
    responses_to_chat,
)
from gateway.translate.response_object import response_error
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
                if not isinstance(chunk, dict):
                    raise GatewayError(
                        502, f"route '{route_name}': the upstream sent a stream event that is "
                        "not a JSON object", code="upstream_invalid",
                    )  # fmt: skip
                if chunk.get("usage"):
                    ctx.note_usage(chunk["usage"])
                try:
                    events += translator.feed(chunk)
                except (AttributeError, TypeError, KeyError, ValueError) as exc:
                    # a chunk of the wrong shape (`{"choices": [5]}`): the upstream's fault
                    log.warning("route %s: unreadable upstream chunk", route_name, exc_info=True)
                    raise GatewayError(
                        502, f"route '{route_name}': the upstream sent a chunk of the wrong "
                        f"shape ({type(exc).__name__}: {exc})", code="upstream_invalid",
                    ) from None  # fmt: skip
            if events:
                yield _frames(events)
        if not getattr(stream, "saw_done", True) and translator.finish_reason is None:
            message = (
                f"route '{route_name}': the upstream stream ended before the answer was complete"
            )
            yield _frames(translator.fail(message, "upstream_truncated", "upstream_error"))
        else:
            yield _frames(translator.finish())
    except GatewayError as exc:
        log.warning("responses stream on route %s broke: %s", route_name, exc.message)
        ctx.error_code = str(exc.code or "server_error")
        yield _frames(translator.fail(exc.message, str(exc.code or "server_error"), exc.type))
    except Exception:
        log.exception("responses stream on route %s failed inside the gateway", route_name)
        ctx.error_code = "internal"
        yield _frames(translator.fail("The gateway failed while relaying the stream", "internal"))
    finally:
        await stream.aclose()


class NativeStreamState:
    """What a native Responses stream relay must know to end it the spec's way: the last
    sequence number, the latest Response snapshot, and whether a terminal event passed."""

    __slots__ = ("effective", "model", "request", "response", "seq", "terminal")

    def __init__(self, request: dict[str, Any], effective: dict[str, Any], model: str) -> None:
        self.model = model  # the route name clients see
        self.request = request
        self.effective = effective
        self.response: dict[str, Any] | None = None
        self.seq = -1
        self.terminal = False

    def rewrite(self, event: SSEEvent, rewrite: ModelRewriter) -> bytes:
        """One upstream event's data, with the Response gaps filled and `error` events in
        the spec's nested shape. Delta events (nearly all) are not parsed."""
        name = event.event
        data = event.data
        if name is not None and name not in RESPONSE_EVENTS and name != "error":
            self.seq += 1  # the upstream numbers its events 0, 1, 2, …
            return rewrite(data)
        if name is None and b'"response"' not in data and b'"error"' not in data:
            self.seq += 1
            return rewrite(data)
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.seq += 1
            return rewrite(data)
        if not isinstance(doc, dict):
            return rewrite(data)
        kind = doc.get("type")
        if isinstance(doc.get("sequence_number"), int):
            self.seq = doc["sequence_number"]
        else:
            self.seq += 1
            doc["sequence_number"] = self.seq
        if kind in RESPONSE_EVENTS and isinstance(doc.get("response"), dict):
            self.response = fill_response(doc["response"], self.request, self.effective)
            self.terminal = self.terminal or kind in TERMINAL_EVENTS
        elif kind == "error":
            doc = _spec_error_event(doc)
        else:
            return rewrite(data)
        return rewrite(orjson.dumps(doc))

    def fail(self, message: str, code: str, type_: str) -> bytes:
        """The gateway's own end of a broken stream: `error`, then `response.failed`."""
        self.seq += 1
        out = frame_named("error", error_event(self.seq, message, code, type_))
        if self.response is not None and not self.terminal:
            self.seq += 1
            failed = {**self.response, "status": "failed", "completed_at": None}
            failed["model"] = self.model
            failed["error"] = response_error(code, message)
            event = {"type": "response.failed", "sequence_number": self.seq, "response": failed}
            out += frame_named("response.failed", event)
        self.terminal = True
        return out


def _spec_error_event(doc: dict[str, Any]) -> dict[str, Any]:
    """An upstream `error` event (OpenAI's flat fields, or nested) in the spec's shape, with
    the flat fields the openai SDK reads kept too."""
    nested = doc.get("error") if isinstance(doc.get("error"), dict) else {}
    message = nested.get("message") or doc.get("message") or "upstream error"
    code = nested.get("code", doc.get("code"))
    param = nested.get("param", doc.get("param"))
    type_ = nested.get("type") or "server_error"
    event = error_event(
        doc["sequence_number"],
        str(message),
        code if isinstance(code, str) else None,
        str(type_),
        param if isinstance(param, str) else None,
    )
    return {**doc, **event}


async def relay_native_stream(
    stream: ChatStream, rewrite: ModelRewriter, ctx: RequestContext, state: NativeStreamState
) -> AsyncIterator[bytes]:
    """A backend's own Responses events, passed on with `model` rewritten, the Response
    objects completed to the spec and errors in its shape; a broken or truncated stream ends
    with `error` and `response.failed`."""
    route_name = ctx.route_name
    try:
        async for batch in stream:
            if ctx.first_token is None:
                ctx.first_token = time.perf_counter()
            out = []
            for event in batch:
                head = f"event: {event.event}\n".encode() if event.event else b""
                out.append(head + b"data: " + state.rewrite(event, rewrite) + b"\n\n")
            yield b"".join(out)
        if not state.terminal:
            message = f"route '{route_name}': the upstream stream ended before its terminal event"
            ctx.error_code = "upstream_truncated"
            yield state.fail(message, "upstream_truncated", "upstream_error")
    except GatewayError as exc:
        log.warning("native responses stream on route %s broke: %s", route_name, exc.message)
        ctx.error_code = str(exc.code or "server_error")
        yield state.fail(exc.message, str(exc.code or "server_error"), exc.type)
    except Exception:
        log.exception("native responses stream on route %s failed inside the gateway", route_name)
        ctx.error_code = "internal"
        yield state.fail("The gateway failed while relaying the stream", "internal", "server_error")
    finally:
        await stream.aclose()


def effective_for(driver: Driver, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    """The sampling values the route will use for `body` (route overrides, clamps, drops and
    defaults as the fidelity verdict saw them), for the Response object."""
    verdict = ctx.fidelity
    route = driver.route
    return effective_params(
        body,
        defaults=route.defaults,
        overrides=route.overrides,
        clamped=verdict.clamped if verdict is not None else None,
        dropped=verdict.dropped if verdict is not None else (),
    )


async def _native(
    request: Request, driver: Driver, body: dict[str, Any], model: str, ctx: RequestContext
) -> Response:
    reject_native(driver, body)
    effective = effective_for(driver, body, ctx)
    if body.get("stream"):
        stream = await until_disconnect(request, driver.open_responses_stream(body, ctx))
        rewrite = ModelRewriter(driver.route.target_model, model)
        state = NativeStreamState(body, effective, model)
        # SSEResponse, not StreamingResponse: no anyio task group per stream (relay.py)
        frames = _recorded(ctx, relay_native_stream(stream, rewrite, ctx, state))
        return SSEResponse(frames, {**SSE_HEADERS, **ctx.response_headers})
    answer = await until_disconnect(request, driver.responses(body, ctx))
    answer["model"] = model
    return answer_json(fill_response(answer, body, effective), ctx)


async def _translated(
    request: Request, driver: Driver, body: dict[str, Any], model: str, ctx: RequestContext
) -> Response:
    chat_body = responses_to_chat(body, driver.dialect)
    if uses_token_path(driver.route, chat_body):  # RL token contract (docs/rl.md)
        driver = TokenPath(driver)
    if body.get("stream"):
        stream = await until_disconnect(request, driver.open_chat_stream(chat_body, ctx))
        translator = ResponsesStreamTranslator(
            body, model=model, framed=True, effective=effective_for(driver, body, ctx)
        )
        # SSEResponse, not StreamingResponse: no anyio task group per stream (relay.py)
        frames = _recorded(ctx, relay_translated_stream(stream, translator, ctx))
        return SSEResponse(frames, {**SSE_HEADERS, **ctx.response_headers})
    chat = await until_disconnect(request, driver.chat(chat_body, ctx))
    answer = chat_to_response(chat, body, model=model, effective=effective_for(driver, body, ctx))
    return answer_json(answer, ctx, chat.get("usage"), engine_answer=chat)


def _recorded(ctx: RequestContext, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream as is, or teed into the recording when the route records bodies."""
    if ctx.recorder is not None and ctx.recorder.bodies:
        return ctx.recorder.tee(ctx, frames)
    return frames


async def create_response(request: Request) -> Response:
    gateway = request.app.state.gateway
    body = await read_json_body(request, gateway.config.server.max_body_bytes)
    return await serve_response(request, body, request.scope["state"]["ctx"])


async def serve_response(
    request: Request, body: dict[str, Any], ctx: RequestContext, cache: Any = None
) -> Response:
    """One Responses turn, over HTTP or (with a connection `cache`) a WebSocket."""
    gateway = request.app.state.gateway
    model = check_responses_body(body)
    driver = gateway.router.driver_for(model, ctx)
    # store, previous_response_id, compaction items (gateway/responses_state.py)
    turn = await responses_state.begin(gateway, body, ctx, driver.native_responses, cache)
    body = turn.body
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
    response = await answer_routed(gateway.router, driver, ctx, serve, not token_request)
    return await turn.finish(response)
