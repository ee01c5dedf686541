"""/v1/responses through the real server with the openai SDK: translated (mock, vLLM- and
SGLang-shaped upstreams) and native pass-through."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess
from tests.spec.conformance import CheckingTransport
from tests.upstream import ScriptedUpstream

# Gym validates every Response against openai's type with these fields required.
GYM_REQUIRED = (
    "id",
    "created_at",
    "model",
    "object",
    "output",
    "parallel_tool_calls",
    "tool_choice",
    "tools",
)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather by city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": True,
}


@pytest.fixture
def openai_client(gateway: GatewayProcess):
    """The openai SDK, with every Response object and event it receives validated against
    the Open Responses spec and the SDK's own types (tests/spec/conformance.py)."""
    transport = CheckingTransport()
    client = openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key="unused",
        max_retries=0,
        http_client=httpx.Client(transport=transport),
    )
    yield client
    client.close()
    assert not transport.problems, "\n\n".join(transport.problems)


def comparable(response: dict[str, Any]) -> dict[str, Any]:
    """A response without the values minted per call (ids, timestamps)."""
    doc = json.loads(json.dumps(response))
    doc.pop("id"), doc.pop("created_at")
    doc.pop("completed_at", None)
    for item in doc["output"]:
        item.pop("id", None)
        item.pop("parsed_arguments", None)  # the SDK's stream helper adds it for strict tools
        for part in item.get("content") or []:
            part.pop("parsed", None)  # the SDK's stream helper adds it
    return doc


def test_mock_create_and_stream_agree(openai_client: openai.OpenAI) -> None:
    created = openai_client.responses.create(
        model="echo", input="hello responses api", instructions="be brief", temperature=0.5
    )
    assert created.status == "completed" and created.output_text == "hello responses api"
    assert created.model == "echo" and created.instructions == "be brief"
    assert created.usage is not None and created.usage.output_tokens == 3
    with openai_client.responses.stream(
        model="echo", input="hello responses api", instructions="be brief", temperature=0.5
    ) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.output_text.delta" in types and "response.output_text.done" in types
    assert comparable(final.model_dump(exclude_unset=True)) == comparable(
        created.model_dump(exclude_unset=True)
    )
    for name in GYM_REQUIRED:
        assert name in created.model_dump()


def test_length_gives_incomplete(openai_client: openai.OpenAI) -> None:
    r = openai_client.responses.create(model="echo", input="a b c d", max_output_tokens=2)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    with openai_client.responses.stream(
        model="echo", input="a b c d", max_output_tokens=2
    ) as stream:
        types = [e.type for e in stream]
    assert types[-1] == "response.incomplete"


@pytest.mark.parametrize(
    ("route", "field"), [("up-vllm-replay", "reasoning"), ("up-sglang-replay", "reasoning_content")]
)
def test_engine_shapes_translate(openai_client: openai.OpenAI, route: str, field: str) -> None:
    created = openai_client.responses.create(
        model=route, input="weather in Paris?", tools=[WEATHER]
    )
    kinds = [item.type for item in created.output]
    assert kinds == ["reasoning", "message", "function_call", "function_call"]
    reasoning = created.output[0]
    assert reasoning.content[0].text == "The user wants weather; call the tool."
    calls = created.output[2:]
    expected_id = "chatcmpl-tool-9f1c" if route == "up-vllm-replay" else "call_sg_01"
    assert [c.call_id for c in calls] == [expected_id, expected_id + "b"]
    assert calls[0].id.startswith("fc_") and calls[0].arguments == '{"city": "Paris"}'
    assert created.usage is not None and created.usage.input_tokens_details.cached_tokens == 4
    assert created.tools[0].name == "get_weather"
    with openai_client.responses.stream(
        model=route, input="weather in Paris?", tools=[WEATHER]
    ) as stream:
        final = stream.get_final_response()
    assert comparable(final.model_dump(exclude_unset=True)) == comparable(
        created.model_dump(exclude_unset=True)
    )


def test_multi_turn_round_trip_reaches_upstream_as_chat(
    openai_client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    first = openai_client.responses.create(
        model="up-vllm-replay",
        input="weather in Paris?",
        tools=[WEATHER],
        instructions="You are terse.",
    )
    follow_up: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    follow_up += [item.model_dump(exclude_unset=True) for item in first.output]
    follow_up += [
        {"type": "function_call_output", "call_id": "chatcmpl-tool-9f1c", "output": "18C"},
        {"type": "function_call_output", "call_id": "chatcmpl-tool-9f1cb", "output": "20C"},
    ]
    openai_client.responses.create(
        model="up-vllm-replay", input=follow_up, tools=[WEATHER], instructions="You are terse."
    )
    messages = upstream.state.last()["body"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assistant = messages[2]
    assert assistant["content"] == "Let me check."
    assert assistant["reasoning"] == "The user wants weather; call the tool."
    assert [tc["id"] for tc in assistant["tool_calls"]] == [
        "chatcmpl-tool-9f1c",
        "chatcmpl-tool-9f1cb",
    ]
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert messages[3] == {"role": "tool", "tool_call_id": "chatcmpl-tool-9f1c", "content": "18C"}
    tools = upstream.state.last()["body"]["tools"]
    assert tools[0]["function"]["name"] == "get_weather" and "strict" not in tools[0]["function"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"truncation": "auto"}, "truncation"),
        ({"temperature": "warm"}, "temperature"),
        ({"input": 3}, "input"),
    ],
)
def test_refused_parameters_are_named(gateway: GatewayProcess, extra: dict, param: str) -> None:
    body = {"model": "echo", "input": "hi", **extra}
    resp = httpx.post(gateway.url + "/v1/responses", json=body, timeout=10)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == param and param.split(".")[0] in error["message"]
    ok = httpx.post(gateway.url + "/v1/responses", json={"model": "echo", "input": "fine"})
    assert ok.status_code == 200 and ok.json()["store"] is True  # OpenAI's default


def test_store_is_answered_as_sent(openai_client: openai.OpenAI) -> None:
    # stored responses: tests/e2e/test_responses_state_e2e.py
    assert openai_client.responses.create(model="echo", input="keep me", store=True).store
    assert not openai_client.responses.create(model="echo", input="not me", store=False).store


def test_native_pass_through(
    openai_client: openai.OpenAI, upstream: ScriptedUpstream, gateway: GatewayProcess
) -> None:
    r = openai_client.responses.create(model="native", input="hi", extra_body={"top_k": 3})
    assert r.model == "native" and r.output_text == "native answer"
    sent = upstream.state.last()
    assert sent["body"] == {"model": "native-model", "input": "hi", "top_k": 3}
    assert sent["headers"]["authorization"] == "Bearer sk-native-secret"
    raw = httpx.post(gateway.url + "/v1/responses", json={"model": "native", "input": "hi"}).json()
    assert raw["x_upstream_extra"] == {"kept": True}  # unknown fields preserved
    with openai_client.responses.stream(model="native", input="hi") as stream:
        final = stream.get_final_response()
    assert final.model == "native" and final.output_text == "native answer"
    with pytest.raises(openai.RateLimitError):
        openai_client.responses.create(model="native-err", input="hi")


@pytest.mark.parametrize("route", ["up-reset", "up-truncated", "up-midstream-error"])
def test_broken_upstream_stream_ends_with_error_and_failed(
    gateway: GatewayProcess, route: str
) -> None:
    resp = httpx.post(
        gateway.url + "/v1/responses",
        json={"model": route, "input": "hi", "stream": True},
        timeout=30,
    )
    events = [json.loads(line[6:]) for line in resp.text.split("\n") if line.startswith("data: ")]
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    ok = httpx.post(gateway.url + "/v1/responses", json={"model": "echo", "input": "fine"})
    assert ok.status_code == 200


def test_mock_agent_tool_loop(openai_client: openai.OpenAI) -> None:
    """A Gym-style tool loop on the mock: tool call on auto, then text after the result."""
    first = openai_client.responses.create(
        model="echo", input="What is the weather in Paris?", tools=[WEATHER]
    )
    call = first.output[-1]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "example"}
    history = [
        {"role": "user", "content": "What is the weather in Paris?"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    second = openai_client.responses.create(model="echo", input=history, tools=[WEATHER])
    assert second.output_text == "The tool get_weather returned: sunny"
    with openai_client.responses.stream(model="echo", input=history, tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    assert final.output_text == second.output_text


def test_input_file_reaches_the_mock(openai_client: openai.OpenAI) -> None:
    data = "data:text/plain;base64,aGVsbG8="  # "hello"
    r = openai_client.responses.create(
        model="echo",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Read this."},
                    {"type": "input_file", "filename": "a.txt", "file_data": data},
                ],
            }
        ],
    )
    assert (
        r.output_text
        == "Read this. (I saw a file a.txt, text/plain, 5 bytes, sha256 2cf24dba5fb0.)"
    )
