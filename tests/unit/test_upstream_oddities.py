"""Upstream answers the gateway cannot pass on are 502 upstream_invalid, never a 500."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.request_io import json_response
from gateway.translate import chat_to_response


def answer(content: object) -> dict:
    return {
        "id": "x",
        "created": 1,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


def test_non_text_parts_are_skipped_and_non_text_content_refused() -> None:
    parts = [{"type": "text", "text": 5}, {"type": "text", "text": "ok"}, "junk"]
    out = chat_to_response(answer(parts), {"input": "x"}, model="m")
    assert out["output"][0]["content"][0]["text"] == "ok"
    with pytest.raises(GatewayError) as info:
        chat_to_response(answer(42), {"input": "x"}, model="m")
    assert (info.value.status, info.value.code) == (502, "upstream_invalid")


def test_an_answer_too_deep_to_encode_is_502() -> None:
    doc: dict = {}
    node = doc
    for _ in range(300):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(GatewayError) as info:
        json_response(doc)
    assert (info.value.status, info.value.code) == (502, "upstream_invalid")
