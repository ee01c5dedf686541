"""Property-based tests (hypothesis) on the request checks and the Responses translator.

* gateway/validation.py: any JSON object either validates or raises InvalidRequest naming a
  param, never another exception.
* responses_to_chat: any generated Responses body either translates or raises a GatewayError
  4xx, never another exception; what it returns is JSON-serializable.
* chat_to_response: any generated chat answer gives a Response valid under the Open
  Responses spec (2026-04-24) and the openai SDK's types.
* ResponsesStreamTranslator: any generated chunk sequence ends with exactly one terminal
  event, last, sequence numbers count up by one from 0, and every event (the hand-framed
  bytes of the relay's fast path included) is valid under the spec and the SDK's types.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response

from gateway.errors import GatewayError, InvalidRequest
from gateway.sse import frame_named
from gateway.translate import (
    ChatDialect,
    ResponsesStreamTranslator,
    chat_to_response,
    responses_to_chat,
)
from gateway.validation import ROLES, check_chat_body, check_responses_body
from tests.spec.conformance import check_events, check_response, parse_sse
from tests.unit.property_strategies import (
    CHAT_ANSWER,
    CHAT_BODY,
    CHUNK,
    DIALECTS,
    ERROR_CHUNK,
    JSON,
    RESPONSES_BODY,
    RESPONSES_FIELDS,
    TEXT,
    VALID_REQUEST,
    body_of,
)

TERMINAL = {"response.completed", "response.incomplete", "response.failed"}

# Moderate example counts for CI; GYM_GATEWAY_PROPERTY_EXAMPLES=5000 for a longer hunt.
PROPERTY = settings(
    max_examples=int(os.environ.get("GYM_GATEWAY_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(CHAT_BODY | st.dictionaries(st.text(max_size=10), JSON, max_size=6))
def test_chat_checks_validate_or_name_the_param(body: dict[str, Any]) -> None:
    try:
        model = check_chat_body(body)
    except InvalidRequest as exc:
        assert exc.status == 400 and exc.param, exc.message
    else:
        assert model == body["model"] and isinstance(model, str) and model
        assert all(isinstance(m, dict) and m.get("role") in ROLES for m in body["messages"])


@PROPERTY
@given(
    body_of({**RESPONSES_FIELDS, "input": TEXT | st.lists(JSON, max_size=3)})
    | st.dictionaries(st.text(max_size=10), JSON, max_size=6)
)
def test_responses_checks_validate_or_name_the_param(body: dict[str, Any]) -> None:
    try:
        model = check_responses_body(body)
    except InvalidRequest as exc:
        assert exc.status == 400 and exc.param, exc.message
    else:
        assert model == body["model"] and isinstance(model, str) and model
        assert isinstance(body["input"], (str, list))


@PROPERTY
@given(RESPONSES_BODY, DIALECTS)
def test_responses_to_chat_translates_or_raises_a_4xx(
    body: dict[str, Any], dialect: ChatDialect
) -> None:
    before = orjson.dumps(body)
    try:
        chat = responses_to_chat(body, dialect)
    except GatewayError as exc:
        assert 400 <= exc.status < 500, exc.message
        assert exc.body()["error"]["message"]
    else:
        assert isinstance(chat["messages"], list)
        assert all(isinstance(m, dict) and "role" in m for m in chat["messages"])
        orjson.dumps(chat)
    assert orjson.dumps(body) == before  # the input is never mutated


@PROPERTY
@given(CHAT_ANSWER, VALID_REQUEST)
def test_chat_to_response_is_a_valid_response(answer: dict[str, Any], request: dict) -> None:
    doc = chat_to_response(answer, request, model="policy")
    check_response(orjson.loads(orjson.dumps(doc)))
    parsed = Response.model_validate(doc)
    assert parsed.model == "policy" and parsed.output
    assert doc["status"] in ("completed", "incomplete", "failed")


@PROPERTY
@given(
    VALID_REQUEST,
    st.lists(CHUNK | ERROR_CHUNK, max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_stream_translator_has_one_terminal_event(
    request: dict, chunks: list[dict[str, Any]], broken: bool, framed: bool
) -> None:
    translator = ResponsesStreamTranslator(request, model="policy", framed=framed)
    events = translator.start()
    for chunk in chunks:
        events += translator.feed(chunk)
    if broken:  # what the relay does when the upstream connection fails
        events += translator.fail("the upstream broke off", "upstream_error")
    else:
        events += translator.finish()
    events += translator.finish() + translator.fail("late", "late")  # no-ops once ended
    events += translator.feed({"choices": [{"index": 0, "delta": {"content": "late"}}]})
    # the bytes a client receives, framed as the relay frames them
    wire = b"".join(e if type(e) is bytes else frame_named(e["type"], e) for e in events)
    received = parse_sse(wire)
    check_events(received)  # spec + SDK types, numbering, one terminal event last
    dicts = [e for e in events if type(e) is not bytes]
    terminal = [e for e in dicts if e["type"] in TERMINAL]
    assert len(terminal) == 1 and events[-1] is terminal[0], [e["type"] for e in dicts]
