"""The native Responses pass-through relay (gateway/responses_api.py): Responses completed to
the spec, upstream errors in the spec's shape, and a broken stream ending with error +
response.failed, all with sequence numbers."""

from __future__ import annotations

import orjson

from backends.base import ChatStream
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.relay import ModelRewriter
from gateway.responses_api import NativeStreamState, relay_native_stream
from gateway.sse import SSEEvent
from gateway.translate import effective_params
from tests.spec.conformance import check_event, check_events, parse_sse

REQUEST = {"model": "route", "input": "hi", "temperature": 0.2}
# A Response as an older upstream sends it: several fields the spec requires are missing.
SPARSE = {
    "id": "resp_up",
    "object": "response",
    "created_at": 1700000000,
    "status": "in_progress",
    "model": "upstream-model",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "status": "in_progress",
    "role": "assistant",
    "content": [],
}


def event(kind: str, seq: int, **fields) -> SSEEvent:
    return SSEEvent(orjson.dumps({"type": kind, "sequence_number": seq, **fields}), kind)


def opening() -> list[SSEEvent]:
    return [
        event("response.created", 0, response=SPARSE),
        event("response.output_item.added", 1, output_index=0, item=MESSAGE),
        event(
            "response.content_part.added",
            2,
            item_id="msg_1",
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": []},
        ),
        event(
            "response.output_text.delta",
            3,
            item_id="msg_1",
            output_index=0,
            content_index=0,
            delta="Hi",
            logprobs=[],
        ),
    ]


class Scripted(ChatStream):
    def __init__(self, batches: list[list[SSEEvent]], error: GatewayError | None = None):
        self.batches, self.error, self.closed = batches, error, False

    async def _run(self):
        for batch in self.batches:
            yield batch
        if self.error is not None:
            raise self.error

    def __aiter__(self):
        return self._run()

    async def aclose(self) -> None:
        self.closed = True


async def relay(stream: Scripted) -> list[dict]:
    state = NativeStreamState(REQUEST, effective_params(REQUEST), "route")
    rewrite = ModelRewriter("upstream-model", "route")
    ctx = RequestContext(request_id="t", route_name="route")
    body = b"".join([chunk async for chunk in relay_native_stream(stream, rewrite, ctx, state)])
    assert stream.closed
    return parse_sse(body)


async def test_broken_native_stream_ends_with_spec_error_and_failed() -> None:
    broken = GatewayError(502, "upstream reset", code="upstream_reset")
    events = await relay(Scripted([opening()], broken))
    check_events(events)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    error = events[-2]
    assert error["sequence_number"] == 4
    assert error["error"] == {
        "type": "upstream_error",
        "code": "upstream_reset",
        "message": "upstream reset",
        "param": None,
    }
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["model"] == "route"
    assert failed["error"] == {"code": "server_error", "message": "upstream reset"}
    created = events[0]["response"]
    assert created["temperature"] == 0.2 and created["top_p"] == 1.0
    assert created["tools"][0]["strict"] is None and created["service_tier"] == "default"


async def test_truncated_native_stream_is_failed() -> None:
    events = await relay(Scripted([opening()]))
    check_events(events)
    assert events[-2]["error"]["code"] == "upstream_truncated"


async def test_upstream_flat_error_event_is_nested() -> None:
    flat = SSEEvent(
        orjson.dumps(
            {
                "type": "error",
                "sequence_number": 4,
                "code": "rate_limit_exceeded",
                "message": "slow",
            }
        ),
        "error",
    )
    completed = {**SPARSE, "status": "completed", "output": []}
    done = event("response.completed", 5, response=completed)
    events = await relay(Scripted([[*opening(), flat, done]]))
    error = events[4]
    check_event(error)
    assert error["error"]["code"] == "rate_limit_exceeded" and error["message"] == "slow"
    assert isinstance(events[-1]["response"]["completed_at"], int)  # filled: it completed
    check_event(events[-1])


async def test_events_without_event_lines_are_handled_alike() -> None:
    """Some servers send only `data:` lines: the Response events are found by their bytes."""
    unnamed = [SSEEvent(e.data) for e in opening()]
    events = await relay(Scripted([unnamed], GatewayError(502, "reset", code="upstream_reset")))
    check_events(events)
    assert events[0]["response"]["presence_penalty"] == 0.0  # completed to the spec
    assert events[-2]["sequence_number"] == 4


class Crashing(Scripted):
    """A stream whose relay hits a bug inside the gateway (not an upstream error)."""

    async def _run(self):
        for batch in self.batches:
            yield batch
        raise RuntimeError("a bug inside the gateway")


async def test_a_failure_inside_the_gateway_ends_the_spec_way() -> None:
    # the one relay loop's crash arm (gateway/relay.relay) holds for native streams too
    events = await relay(Crashing([opening()]))
    check_events(events)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert "failed while relaying" in events[-2]["error"]["message"]
