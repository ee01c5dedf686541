from __future__ import annotations

import json

import orjson
import pytest

from backends.mock import MockDriver, example_from_schema, split_tokens
from gateway.config import parse_config
from gateway.context import RequestContext
from gateway.errors import InvalidRequest


def driver(extra: str = "") -> MockDriver:
    config = parse_config(f"models:\n - {{name: echo, backend: mock{extra}}}\n", "t")
    return MockDriver(config.models[0])


CTX = RequestContext(request_id="t")


@pytest.mark.parametrize("text", ["", "a", "  lead", "trail  ", "a  b\nc", "日本 語 🎉"])
def test_split_tokens_concatenates_exactly(text: str) -> None:
    assert "".join(split_tokens(text)) == text


def test_schema_examples() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "e": {"enum": ["x", "y"]},
            "i": {"type": "integer"},
            "n": {"type": ["number", "null"]},
            "b": {"type": "boolean"},
            "a": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
            "o": {"type": "object", "properties": {"k": {"const": 3}}},
            "u": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }
    assert example_from_schema(schema) == {
        "s": "example",
        "e": "x",
        "i": 1,
        "n": 1.0,
        "b": True,
        "a": [1, 1],
        "o": {"k": 3},
        "u": "example",
    }


async def test_echo_is_deterministic_and_counts_usage() -> None:
    d = driver()
    body = {
        "model": "echo",
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "hi there"},
        ],
        "n": 2,
    }
    a, b = await d.chat(body, CTX), await d.chat(body, CTX)
    assert a["id"] == b["id"] and a["choices"] == b["choices"]
    assert [c["message"]["content"] for c in a["choices"]] == ["hi there", "hi there"]
    assert a["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


async def test_fixed_reply_and_logprobs() -> None:
    d = driver(", mock: {reply: 'fixed answer'}")
    answer = await d.chat(
        {"model": "echo", "messages": [{"role": "user", "content": "x"}], "logprobs": True}, CTX
    )
    assert answer["choices"][0]["message"]["content"] == "fixed answer"
    tokens = answer["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in tokens] == ["fixed", " answer"]
    assert all(t["logprob"] == 0.0 for t in tokens)


async def test_stream_matches_json_answer() -> None:
    d = driver()
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "the quick brown fox"}],
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    payloads = [
        orjson.loads(p) async for batch in await d.open_chat_stream(body, CTX) for p in batch
    ]
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in payloads if p["choices"])
    assert text == "the quick brown"
    assert payloads[-2]["choices"][0]["finish_reason"] == "length"
    assert payloads[-1]["usage"]["completion_tokens"] == 3


async def test_tool_choice_errors() -> None:
    d = driver()
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "x"}],
        "tool_choice": {"type": "function", "function": {"name": "missing"}},
        "tools": [],
    }
    with pytest.raises(InvalidRequest) as info:
        await d.chat(body, CTX)
    assert info.value.param == "tool_choice"
    with pytest.raises(InvalidRequest):
        await d.chat({**body, "tool_choice": "required"}, CTX)


async def test_streamed_tool_call_arguments_concatenate() -> None:
    d = driver()
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
            },
        },
    }
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [tool],
        "tool_choice": "required",
        "stream": True,
    }
    payloads = [
        orjson.loads(p) async for batch in await d.open_chat_stream(body, CTX) for p in batch
    ]
    calls = [tc for p in payloads for tc in p["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "f" and calls[0]["id"].startswith("call_")
    args = "".join(tc["function"].get("arguments", "") for tc in calls)
    assert json.loads(args) == {"q": "example", "n": 1}
    assert payloads[-1]["choices"][0]["finish_reason"] == "tool_calls"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


async def test_agent_calls_a_tool_on_auto_when_the_user_spoke_last() -> None:
    d = driver()
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "what is the time?"}],
        "tools": [WEATHER, TIME],
    }
    for choice in (None, "auto"):
        answer = await d.chat({**body, "tool_choice": choice} if choice else body, CTX)
        call = answer["choices"][0]["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_time"  # the tool the message names
        assert answer["choices"][0]["finish_reason"] == "tool_calls"
    plain = await d.chat({**body, "messages": [{"role": "user", "content": "hello"}]}, CTX)
    assert plain["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    none = await d.chat({**body, "tool_choice": "none"}, CTX)
    assert none["choices"][0]["message"]["content"] == "what is the time?"


async def test_agent_answers_in_text_after_tool_results() -> None:
    d = driver()
    first = await d.chat(
        {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER]},
        CTX,
    )
    call = first["choices"][0]["message"]["tool_calls"][0]
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"},
    ]
    answer = await d.chat({"model": "echo", "messages": messages, "tools": [WEATHER]}, CTX)
    message = answer["choices"][0]["message"]
    assert message["content"] == "The tool get_weather returned: sunny, 21 C"
    assert "tool_calls" not in message and answer["choices"][0]["finish_reason"] == "stop"


PNG = "data:image/png;base64,iVBORw0KGgo="  # 8 bytes: the PNG signature


async def test_images_and_files_are_described() -> None:
    d = driver()
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PNG}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {
            "type": "file",
            "file": {"filename": "a.txt", "file_data": "data:text/plain;base64,aGVsbG8="},
        },
    ]
    body = {"model": "echo", "messages": [{"role": "user", "content": content}]}
    answer = await d.chat(body, CTX)
    text = answer["choices"][0]["message"]["content"]
    assert text == (
        "What is this? (I saw an image (image/png, 8 bytes, sha256 4c4b6a3be131); "
        "an image (at https://example.com/cat.jpg); "
        "a file a.txt, text/plain, 5 bytes, sha256 2cf24dba5fb0.)"
    )
    assert (await d.chat(body, CTX))["choices"][0]["message"]["content"] == text
