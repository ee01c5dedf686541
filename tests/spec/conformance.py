"""Validate Response objects and streaming events against the Open Responses document
(spec 2026-04-24, structural copy in this folder) and the openai SDK's typed models."""

from __future__ import annotations

import copy
import json
import typing
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError

SPEC_FILE = Path(__file__).with_name("open_responses_2026_04_24.json")

# Where the published document cannot be right, with the correction applied before validating.
SPEC_CORRECTIONS = {
    # `schema` is typed `{"type": "null"}`, so no Response echoing a real json_schema text
    # format could validate (the TypeSpec source types it as an open JSON object).
    ("JsonSchemaResponseFormat", "schema"): {"type": "object"},
}

# Event types the spec defines and the openai SDK (3.x) does not know: OpenAI names raw
# reasoning events `response.reasoning_text.delta/.done`; Open Responses names them
# `response.reasoning.delta/.done`. The gateway follows the spec (docs/responses.md); the SDK
# builds them loosely and its stream helper does not read them.
SDK_UNKNOWN_EVENTS = frozenset({"response.reasoning.delta", "response.reasoning.done"})


@cache
def _document() -> dict[str, Any]:
    doc = json.loads(SPEC_FILE.read_text())
    schemas = copy.deepcopy(doc["components"]["schemas"])
    for (name, prop), schema in SPEC_CORRECTIONS.items():
        schemas[name]["properties"][prop] = schema
    return {"components": {"schemas": schemas}}


@cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    root = {**_document(), "$ref": f"#/components/schemas/{schema_name}"}
    return jsonschema.Draft202012Validator(root)


@cache
def event_schemas() -> dict[str, str]:
    """Streaming event `type` -> the spec schema that defines it."""
    out = {}
    for name, schema in _document()["components"]["schemas"].items():
        if name.endswith("StreamingEvent"):
            out[schema["properties"]["type"]["enum"][0]] = name
    return out


def spec_errors(schema_name: str, obj: Any) -> list[str]:
    errors = _validator(schema_name).iter_errors(obj)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors]


@cache
def _adapter(kind: type) -> TypeAdapter:
    return TypeAdapter(kind)


@cache
def sdk_event_classes() -> dict[str, type]:
    """Event `type` -> the SDK model for it (the union's discriminator is SDK metadata that
    pydantic does not read, so each event is validated against its own model)."""
    union = typing.get_args(ResponseStreamEvent)[0]  # Annotated[Union[...], PropertyInfo]
    out = {}
    for cls in typing.get_args(union):
        for literal in typing.get_args(cls.model_fields["type"].annotation):
            out[literal] = cls
    return out


def sdk_errors(kind: Any, obj: Any) -> list[str]:
    try:
        _adapter(kind).validate_python(obj)
    except ValidationError as exc:
        return [f"{'/'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:20]]
    return []


def check_response(obj: Any) -> None:
    """Raise AssertionError unless `obj` is a valid Response object for both references."""
    problems = [f"spec: {e}" for e in spec_errors("ResponseResource", obj)]
    problems += [f"openai SDK: {e}" for e in sdk_errors(Response, obj)]
    assert not problems, "Response object invalid:\n" + "\n".join(problems)


def check_event(event: Any) -> None:
    """Raise AssertionError unless `event` is a valid streaming event for both references."""
    kind = event.get("type") if isinstance(event, dict) else None
    schema = event_schemas().get(kind)
    if schema is None:
        raise AssertionError(f"event type {kind!r} is not in the Open Responses spec: {event}")
    problems = [f"spec {schema}: {e}" for e in spec_errors(schema, event)]
    if kind not in SDK_UNKNOWN_EVENTS:
        sdk_class = sdk_event_classes().get(kind)
        if sdk_class is None:
            problems.append(f"openai SDK: no model for event type {kind!r}")
        else:
            problems += [
                f"openai SDK {sdk_class.__name__}: {e}" for e in sdk_errors(sdk_class, event)
            ]
    assert not problems, f"{kind} event invalid:\n" + "\n".join(problems) + f"\n{event}"


def check_events(events: list[Any]) -> None:
    """Every event valid, `sequence_number` counting 0, 1, 2, …, one terminal event last."""
    for event in events:
        check_event(event)
    numbers = [e["sequence_number"] for e in events]
    assert numbers == list(range(len(events))), numbers
    terminal = {"response.completed", "response.incomplete", "response.failed"}
    assert events and events[-1]["type"] in terminal, [e["type"] for e in events]
    assert sum(e["type"] in terminal for e in events) == 1


def parse_sse(body: bytes | str) -> list[dict[str, Any]]:
    """The JSON events of a Responses SSE body (checks `event:` names the payload's type)."""
    text = body.decode() if isinstance(body, bytes) else body
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        payload = "\n".join(data)
        if payload == "[DONE]":
            continue
        event = json.loads(payload)
        assert name is None or name == event.get("type"), (name, event)
        events.append(event)
    return events


class CheckingTransport:
    """An httpx transport that validates every `/responses` answer passing through it: a JSON
    200 as a Response object, an SSE 200 event by event (`check_events`). Failures are
    collected in `problems` (a test asserts it is empty), so a streaming client is not
    interrupted mid-stream."""

    def __init__(self) -> None:
        import httpx

        self._inner = httpx.HTTPTransport()
        self.problems: list[str] = []
        self.checked = 0

    def handle_request(self, request: Any) -> Any:
        import httpx

        response = self._inner.handle_request(request)
        if not request.url.path.endswith("/responses") or response.status_code != 200:
            return response
        body = response.read()
        self.checked += 1
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                check_events(parse_sse(body))
            else:
                check_response(json.loads(body))
        except AssertionError as exc:
            self.problems.append(f"{request.url}: {exc}")
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )

    def close(self) -> None:
        self._inner.close()
