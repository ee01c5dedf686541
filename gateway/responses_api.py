"""`POST /v1/responses`: native pass-through where the backend speaks it, else translation
to Chat Completions and back (gateway/translate), streaming events included."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from backends.base import ChatStream, Driver
from backends.token_in import TokenPath, reject_native
from gateway import fidelity, path, responses_state
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.path import Call, request_context
from gateway.relay import ModelRewriter, answer_json, relay, sse_answer
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

if TYPE_CHECKING:
    from gateway.state import GatewayState as Gateway

log = logging.getLogger("gateway.responses")


def _frames(events: list[Any]) -> bytes:
    """SSE bytes of a framed translator's events (dicts, or bytes framed already)."""
    return b"".join(e if type(e) is bytes else frame_named(e["type"], e) for e in events)


class TranslatedEncoder:
    """Chat chunks in, Responses events out; always one terminal event."""

    __slots__ = ("ctx", "translator")
    label = "responses stream"

    def __init__(self, translator: ResponsesStreamTranslator, ctx: RequestContext) -> None:
        self.translator = translator
        self.ctx = ctx

    def start(self) -> bytes:
        return _frames(self.translator.start())

    def feed(self, batch: list[bytes]) -> bytes:
        ctx = self.ctx
        route_name = ctx.route_name
        translator = self.translator
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
        return _frames(events) if events else b""

    def end(self, stream: ChatStream) -> bytes:
        translator = self.translator
        if not getattr(stream, "saw_done", True) and translator.finish_reason is None:
            message = (
                f"route '{self.ctx.route_name}': the upstream stream ended before the answer "
                "was complete"
            )
            return _frames(translator.fail(message, "upstream_truncated", "upstream_error"))
        return _frames(translator.finish())

    def fail(self, exc: GatewayError) -> bytes:
        code = str(exc.code or "server_error")
        self.ctx.error_code = code
        return _frames(self.translator.fail(exc.message, code, exc.type))

    def crash(self) -> bytes:
        return _frames(
            self.translator.fail("The gateway failed while relaying the stream", "internal")
        )


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


class NativeEncoder:
    """A backend's own Responses events, passed on with `model` rewritten, the Response
    objects completed to the spec and errors in its shape; a broken or truncated stream ends
    with `error` and `response.failed`."""

    __slots__ = ("ctx", "rewrite", "state")
    label = "native responses stream"

    def __init__(
        self, state: NativeStreamState, rewrite: ModelRewriter, ctx: RequestContext
    ) -> None:
        self.state = state
        self.rewrite = rewrite
        self.ctx = ctx

    def start(self) -> bytes:
        return b""

    def feed(self, batch: list[SSEEvent]) -> bytes:
        state, rewrite = self.state, self.rewrite
        out = []
        for event in batch:
            head = f"event: {event.event}\n".encode() if event.event else b""
            out.append(head + b"data: " + state.rewrite(event, rewrite) + b"\n\n")
        return b"".join(out)

    def end(self, stream: ChatStream) -> bytes:
        if self.state.terminal:
            return b""
        message = (
            f"route '{self.ctx.route_name}': the upstream stream ended before its terminal event"
        )
        self.ctx.error_code = "upstream_truncated"
        return self.state.fail(message, "upstream_truncated", "upstream_error")

    def fail(self, exc: GatewayError) -> bytes:
        code = str(exc.code or "server_error")
        self.ctx.error_code = code
        return self.state.fail(exc.message, code, exc.type)

    def crash(self) -> bytes:
        return self.state.fail(
            "The gateway failed while relaying the stream", "internal", "server_error"
        )


def relay_native_stream(
    stream: ChatStream, rewrite: ModelRewriter, ctx: RequestContext, state: NativeStreamState
) -> AsyncIterator[bytes]:
    """A native Responses stream to the client (`relay` with the native encoder)."""
    return relay(stream, NativeEncoder(state, rewrite, ctx), ctx)


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


class ResponsesKind(path.Kind):
    """`POST /v1/responses` (and WebSocket turns): the backend's own endpoint where the route
    is `native_responses`, else translated to Chat Completions and back; stored responses
    and `previous_response_id` around it (gateway/responses_state.py)."""

    def check(self, body: dict[str, Any]) -> str:
        return check_responses_body(body)

    async def begin(
        self, gateway: Gateway, driver: Driver, body: dict[str, Any], ctx: RequestContext,
        session: Any,
    ) -> path.Turn | None:  # fmt: skip
        # store, previous_response_id, compaction items (gateway/responses_state.py)
        return await responses_state.begin(gateway, body, ctx, driver.native_responses, session)

    def verdict(self, driver: Driver, body: dict[str, Any]) -> fidelity.Verdict:
        return fidelity.check_responses(driver, body)

    async def attempt(self, driver: Driver, call: Call) -> Response:
        if driver.native_responses:
            return await self._native(driver, call)
        return await self._translated(driver, call)

    async def _native(self, driver: Driver, call: Call) -> Response:
        body, ctx, model = call.body, call.ctx, call.model
        if call.token:
            reject_native(driver, body)
        effective = effective_for(driver, body, ctx)
        if call.stream:
            stream = await driver.open_responses_stream(body, ctx)
            rewrite = ModelRewriter(driver.route.target_model, model)
            encoder = NativeEncoder(NativeStreamState(body, effective, model), rewrite, ctx)
            return sse_answer(relay(stream, encoder, ctx), ctx)
        answer = await driver.responses(body, ctx)
        answer["model"] = model
        return answer_json(fill_response(answer, body, effective), ctx)

    async def _translated(self, driver: Driver, call: Call) -> Response:
        body, ctx, model = call.body, call.ctx, call.model
        chat_body = responses_to_chat(body, driver.dialect)
        chat: Driver = TokenPath(driver) if call.token else driver  # type: ignore[assignment]
        effective = effective_for(chat, body, ctx)
        if call.stream:
            stream = await chat.open_chat_stream(chat_body, ctx)
            translator = ResponsesStreamTranslator(
                body, model=model, framed=True, effective=effective
            )
            return sse_answer(relay(stream, TranslatedEncoder(translator, ctx), ctx), ctx)
        answer = await chat.chat(chat_body, ctx)
        response = chat_to_response(answer, body, model=model, effective=effective)
        return answer_json(response, ctx, answer.get("usage"), engine_answer=answer)


RESPONSES = ResponsesKind()


async def create_response(request: Request) -> Response:
    gateway = request.app.state.gateway
    body = await read_json_body(request, gateway.config.server.max_body_bytes)
    return await path.serve(gateway, RESPONSES, body, request_context(request), request.receive)


async def serve_response(
    gateway: Gateway, body: dict[str, Any], ctx: RequestContext, receive: Receive, cache: Any
) -> Response:
    """One Responses turn over a WebSocket (`cache`: the connection's memory)."""
    return await path.serve(gateway, RESPONSES, body, ctx, receive, cache)
