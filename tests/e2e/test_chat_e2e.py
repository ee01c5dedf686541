"""The real server on a free port, called with the openai SDK and raw HTTP."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess
from tests.upstream import ScriptedUpstream

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather by city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1},
            },
            "required": ["city"],
        },
    },
}


def test_mock_chat_json(openai_client: openai.OpenAI) -> None:
    answer = openai_client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello gym gateway"}]
    )
    assert answer.model == "echo"
    assert answer.choices[0].message.content == "hello gym gateway"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 3)


def test_mock_chat_stream(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert deltas == ["one", " two", " three", " four"]  # word by word
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert {c.model for c in chunks} == {"echo"}


def test_mock_max_tokens_gives_length(openai_client: openai.OpenAI) -> None:
    answer = openai_client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "a b c d e"}], max_tokens=2
    )
    assert answer.choices[0].message.content == "a b"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 2


def test_mock_forced_tool_call(openai_client: openai.OpenAI) -> None:
    answer = openai_client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.id.startswith("call_")
    import json

    assert json.loads(call.function.arguments) == {"city": "example", "unit": "celsius", "days": 1}


def test_mock_forced_tool_call_streamed(openai_client: openai.OpenAI) -> None:
    with openai_client.chat.completions.stream(
        model="echo",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert final.choices[0].finish_reason == "tool_calls"


def test_upstream_chat_json_passes_everything(
    openai_client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model="up-ok",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"top_k": 5, "return_token_ids": True},
        extra_headers={"x-request-id": "trace-123"},
    )
    answer = raw.parse()
    assert answer.model == "up-ok"  # the route name, not the upstream's
    assert answer.choices[0].message.content == "upstream says hi"
    assert raw.headers["x-request-id"] == "trace-123"
    data = raw.http_response.json()
    # unknown fields survive untouched
    assert data["prompt_token_ids"] == [1, 2, 3]
    assert data["choices"][0]["token_ids"] == [7, 8, 9]
    assert "kv_transfer_params" in data and data["choices"][0]["stop_reason"] is None
    sent = upstream.state.last()
    assert sent["body"]["model"] == "ok"
    assert sent["body"]["top_k"] == 5 and sent["body"]["return_token_ids"] is True
    assert sent["headers"]["authorization"] == "Bearer sk-test-upstream-key"
    assert sent["headers"]["x-route-header"] == "route-value"
    assert sent["headers"]["x-request-id"] == "trace-123"


def test_upstream_chat_stream(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="up-ok",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "upstream says hi ü🎉"
    )
    assert {c.model for c in chunks} == {"up-ok"}
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 10


def test_request_id_generated_when_absent(gateway: GatewayProcess) -> None:
    r1 = httpx.get(gateway.url + "/v1/models")
    r2 = httpx.get(gateway.url + "/v1/models")
    assert r1.headers["x-request-id"].startswith("req_")
    assert r1.headers["x-request-id"] != r2.headers["x-request-id"]


def test_models_list_hides_secrets(openai_client: openai.OpenAI, gateway: GatewayProcess) -> None:
    names = [m.id for m in openai_client.models.list()]
    assert names[:3] == ["echo", "dead", "up-ok"]
    raw = httpx.get(gateway.url + "/v1/models").text
    assert "sk-" not in raw and "127.0.0.1" not in raw
    assert openai_client.models.retrieve("echo").id == "echo"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("nope")


def test_health(gateway: GatewayProcess) -> None:
    body = httpx.get(gateway.url + "/health").json()
    assert body["status"] == "ok" and body["routes"] >= 2
