"""Builders shared by the family fixtures."""

from __future__ import annotations

from typing import Any

CREATED = 1_790_000_000


def answer(
    model: str,
    message: dict[str, Any],
    finish: str | None = "stop",
    cid: str = "chatcmpl-wire",
    **extra: Any,
) -> dict[str, Any]:
    choice_extra = extra.pop("choice", {})
    return {
        "id": cid,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish,
             **choice_extra}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        **extra,
    }  # fmt: skip


def chunk(
    model: str, delta: dict[str, Any], finish: str | None = None, cid: str = "chatcmpl-wire"
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def error(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"status": status, "json": body, "headers": headers or {}}
