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
