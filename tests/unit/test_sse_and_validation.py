from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.errors import InvalidRequest
from gateway.relay import ModelRewriter
from gateway.sse import iter_sse
from gateway.validation import check_chat_body


async def _feed(parts: list[bytes]) -> list[tuple[str | None, bytes]]:
    async def gen() -> AsyncIterator[bytes]:
        for p in parts:
            yield p

    out = []
    async for batch in iter_sse(gen()):
        out += [(e.event, e.data) for e in batch]
    return out


async def test_sse_events_split_across_reads() -> None:
    events = await _feed([b'data: {"a":', b"1}\n", b'\ndata: {"b":2}\n\ndata: [DO', b"NE]\n\n"])
    assert events == [(None, b'{"a":1}'), (None, b'{"b":2}'), (None, b"[DONE]")]


async def test_sse_crlf_comments_named_and_multiline() -> None:
    events = await _feed(
        [b': ping\r\n\r\nevent: response.created\r\ndata: {"x":1}\r\n\r\n', b"data: a\ndata: b\n\n"]
    )
    assert events == [("response.created", b'{"x":1}'), (None, b"a\nb")]


async def test_sse_tail_without_blank_line_is_kept() -> None:
    assert await _feed([b'data: {"last":true}']) == [(None, b'{"last":true}')]


def test_model_rewriter() -> None:
    rewrite = ModelRewriter("Qwen/Qwen3-8B", "qwen")
    assert rewrite(b'{"model":"Qwen/Qwen3-8B","x":1}') == b'{"model":"qwen","x":1}'
    assert rewrite(b'{"model": "Qwen/Qwen3-8B", "x": 1}') == b'{"model":"qwen","x":1}'
    assert rewrite(b'{"error":{"message":"m"}}') == b'{"error":{"message":"m"}}'
    same = ModelRewriter("a", "a")
    assert same(b'{"model":"a"}') == b'{"model":"a"}'


def test_valid_chat_body_returns_model() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "temperature": None,
        "max_tokens": 5,
        "stop": ["a"],
        "unknown_extra": {"k": 1},
    }
    assert check_chat_body(body) == "m"


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"top_p": True}, "top_p"),
        ({"logprobs": 1}, "logprobs"),
        ({"top_logprobs": -1}, "top_logprobs"),
        ({"tool_choice": 3}, "tool_choice"),
        ({"seed": "1"}, "seed"),
        ({"messages": [1]}, "messages[0]"),
        ({"messages": []}, "messages"),
    ],
)
def test_invalid_chat_body_names_param(patch: dict, param: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **patch}
    with pytest.raises(InvalidRequest) as info:
        check_chat_body(body)
    assert info.value.param == param
