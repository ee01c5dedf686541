"""The 8 HTTP cases of the Open Responses acceptance suite (spec 2026-04-24), as project tests.

The suite (github.com/openresponses/openresponses, `src/lib/compliance-tests.ts`, run by
`bin/compliance-test.ts`) sends each request to `POST /v1/responses` and passes a case when
the answer is HTTP 200, the Response object (the JSON body, or the Response of the terminal
streaming event) validates against the spec's ResponseResource schema, every streamed event
validates against one of the spec's streaming event schemas, and the case's own checks hold
(output not empty, status completed, a function_call item, ...). The cases are re-stated here
from that description, against the gateway's embedded default configuration and its model
`echo` (the built-in mock), as the suite is run: `--base-url http://HOST:PORT/v1 --model echo`.
The 9 other cases (WebSocket mode, `/v1/responses/compact`) are issue 21's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.translate import build_response
from tests.gateway_process import GatewayProcess
from tests.spec.conformance import check_event, check_response, parse_sse

MODEL = "echo"
# A 32x32 PNG (a red heart on white) sent inline, as the suite's image case sends it.
HEART_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAABmklEQVR42tyWAaTyUBzFew/e"
    "G4AHz+MBSAHKBiJRGFKwIgQQJKLUIioBIhCAiCAAEizAQIAECaASqFFJq84nudjnaqvuPnxzgP9xfrq5938csPn7PwHTKSoViC"
    "IEAYEAMhmoKsU2mUCWEQqB5xEMIp/HaGQG2G6RSuH9HQ7H34rFrtPbdz4jl6PbwmEsl3QA1mt4vcRKk8dz9eg6IpF7tt9fzGY0"
    "gCgafFRFo5Blc5vLhf3eCOj1yNhM5GRMVK0aATxPZoz09YXjkQDmczJgquGQAPp9WwCNBgG027YACgUC6HRsAZRKBDAY2AJoNv/"
    "ZnwzA6WScznG3p4UAymXGAEkyXrTFAh8fLAGqagQAyGaZpYsi7bHTNPz8MEj//LxuFPo+UBS8vb0KaLXubrRa7aX0RMLCykwmn0z"
    "3+XA4WACcTpCkh9MFAZpmuVXo+mO/w+/HZvNgbblcUCxaSo/Hyck80Yu6XXDcvfVZr79cvMZjuN2U9O9vKAqjZrfbIZ0mV4TUi9X"
    "qz6jddNy//7+e3n8Fhf/Llo2kxi8AQyGRoDkmAhAAAAAASUVORK5CYII="
)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a location",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. Paris"}
        },
        "required": ["location"],
    },
}


def user(content: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": content}


@pytest.fixture(scope="module")
def default_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The gateway as `gym-gateway serve` starts with no config: the embedded default."""
    proc = GatewayProcess(None, Path(tmp_path_factory.mktemp("default"))).wait_ready()
    yield proc
    proc.stop()


def create(gateway: GatewayProcess, body: dict[str, Any]) -> dict[str, Any]:
    """One non-streamed case: HTTP 200 and a Response valid for the spec (and the SDK)."""
    answer = httpx.post(gateway.url + "/v1/responses", json={**body, "stream": False}, timeout=30)
    assert answer.status_code == 200, answer.text
    response = answer.json()
    check_response(response)
    return response


def stream(gateway: GatewayProcess, body: dict[str, Any]) -> tuple[list[dict], dict]:
    """One streamed case: HTTP 200, every event valid, and the terminal event's Response."""
    answer = httpx.post(gateway.url + "/v1/responses", json={**body, "stream": True}, timeout=30)
    assert answer.status_code == 200, answer.text
    events = parse_sse(answer.content)
    assert events, "no streaming events received"
    for event in events:
        check_event(event)
    terminal = [e for e in events if e["type"] in ("response.completed", "response.failed",
                                                     "response.incomplete")]  # fmt: skip
    assert terminal, [e["type"] for e in events]
    check_response(terminal[-1]["response"])
    return events, terminal[-1]["response"]


def completed_with_output(response: dict[str, Any]) -> None:
    assert response["output"], "Response has no output items"
    assert response["status"] == "completed", response["status"]


def test_basic_response(default_gateway: GatewayProcess) -> None:
    body = {"model": MODEL, "input": [user("Say hello in exactly 3 words.")]}
    completed_with_output(create(default_gateway, body))


def test_assistant_phase(default_gateway: GatewayProcess) -> None:
    body = {
        "model": MODEL,
        "input": [
            {"type": "message", "role": "assistant", "phase": "commentary",
             "content": "I should answer with the saved number."},
            {"type": "message", "role": "assistant", "phase": "final_answer",
             "content": "The number is four."},
            user("Repeat only the number."),
        ],
    }  # fmt: skip
    completed_with_output(create(default_gateway, body))


def test_response_output_phase_schema() -> None:
    """The suite's local case (no HTTP): a Response whose assistant messages carry `phase`
    validates. Here the Response comes from the gateway's own builder."""
    output = [
        {"id": f"msg_{phase}", "type": "message", "status": "completed", "role": "assistant",
         "phase": phase, "content": [{"type": "output_text", "text": text, "annotations": []}]}
        for phase, text in (("commentary", "I am checking."), ("final_answer", "Four."))
    ]  # fmt: skip
    usage = {
        "input_tokens": 1,
        "output_tokens": 2,
        "total_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    response = build_response(
        {"model": MODEL, "input": "x"},
        model=MODEL,
        response_id="resp_phase_schema",
        created_at=1764967971,
        status="completed",
        output=output,
        usage=usage,
    )
    check_response(response)
    completed_with_output(response)
    phases = {item.get("phase") for item in response["output"] if item["role"] == "assistant"}
    assert phases == {"commentary", "final_answer"}


def test_streaming_response(default_gateway: GatewayProcess) -> None:
    events, final = stream(default_gateway, {"model": MODEL, "input": [user("Count from 1 to 5.")]})
    completed_with_output(final)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_system_prompt(default_gateway: GatewayProcess) -> None:
    body = {
        "model": MODEL,
        "input": [
            {"type": "message", "role": "system",
             "content": "You are a pirate. Always respond in pirate speak."},
            user("Say hello."),
        ],
    }  # fmt: skip
    completed_with_output(create(default_gateway, body))


def test_tool_calling(default_gateway: GatewayProcess) -> None:
    body = {
        "model": MODEL,
        "input": [user("What's the weather like in San Francisco?")],
        "tools": [WEATHER_TOOL],
    }
    response = create(default_gateway, body)
    assert response["output"]
    calls = [item for item in response["output"] if item["type"] == "function_call"]
    assert calls and calls[0]["name"] == "get_weather"
    assert response["tools"][0]["strict"] is None  # echoed with every FunctionTool field
    # and streamed: the function_call events the suite's streaming tool case looks for
    events, final = stream(default_gateway, body)
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    for kind in ("response.output_item.added", "response.output_item.done"):
        assert any(e["type"] == kind and e["item"]["type"] == "function_call" for e in events)
    assert [i["type"] for i in final["output"]] == ["function_call"]


def test_image_input(default_gateway: GatewayProcess) -> None:
    body = {
        "model": MODEL,
        "input": [
            user(
                [
                    {"type": "input_text",
                     "text": "What do you see in this image? Answer in one sentence."},
                    {"type": "input_image", "image_url": HEART_PNG},
                ]
            )
        ],
    }  # fmt: skip
    response = create(default_gateway, body)
    completed_with_output(response)
    text = response["output"][0]["content"][0]["text"]
    assert "(I saw an image (image/png, " in text  # the mock says what it saw


def test_multi_turn(default_gateway: GatewayProcess) -> None:
    body = {
        "model": MODEL,
        "input": [
            user("My name is Alice."),
            {"type": "message", "role": "assistant",
             "content": "Hello Alice! Nice to meet you. How can I help you today?"},
            user("What is my name?"),
        ],
    }  # fmt: skip
    completed_with_output(create(default_gateway, body))
