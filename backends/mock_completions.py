"""The mock backend's legacy `/v1/completions`: it echoes each prompt (or the route's
`mock.reply`), one token per word, honours `max_tokens` ("length"), `n`, `logprobs` (0 for
every token) and `stream`; token-id prompts echo nothing unless a reply is configured."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from backends.base import ChatStream
from backends.mock_text import check_answer_cost, choice_count, split_tokens
from gateway.config import RouteConfig

YIELD_EVERY = 16  # as backends/mock.py: let the event loop run during a long stream


def _prompts(prompt: Any) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, list) for p in prompt):
        return [""] * len(prompt)  # several token-id prompts
    return [""]  # one token-id prompt


def plan(route: RouteConfig, body: dict[str, Any]) -> dict[str, Any]:
    limit = body.get("max_tokens")
    reply = route.mock.reply
    choices = []
    prompt_tokens = 0
    for prompt in _prompts(body.get("prompt")):
        prompt_tokens += len(split_tokens(prompt))
        pieces = split_tokens(prompt if reply is None else reply)
        finish = "stop"
        if isinstance(limit, int) and len(pieces) > limit:
            pieces, finish = pieces[:limit], "length"
        for _ in range(choice_count(body)):
            choices.append((pieces, finish))
    text_bytes = sum(len("".join(p).encode()) for p, _ in choices)
    check_answer_cost(route, body, 1, text_bytes, sum(len(p) for p, _ in choices))
    digest = hashlib.sha256(orjson.dumps(body.get("prompt"))).hexdigest()[:24]
    completion = sum(len(p) for p, _ in choices)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }
    return {"id": "cmpl-mock-" + digest, "choices": choices, "usage": usage}


def _logprobs(pieces: list[str]) -> dict[str, Any]:
    offsets, at = [], 0
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    return {
        "tokens": pieces,
        "token_logprobs": [0.0] * len(pieces),
        "top_logprobs": None,
        "text_offset": offsets,
    }


def answer(body: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    wants_logprobs = body.get("logprobs") is not None
    return {
        "id": p["id"],
        "object": "text_completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": i,
                "text": "".join(pieces),
                "logprobs": _logprobs(pieces) if wants_logprobs else None,
                "finish_reason": finish,
            }
            for i, (pieces, finish) in enumerate(p["choices"])
        ],
        "usage": p["usage"],
    }


class CompletionStream(ChatStream):
    def __init__(
        self,
        route: RouteConfig,
        delay: Callable[[], Awaitable[None]],
        body: dict[str, Any],
        p: dict[str, Any],
    ) -> None:
        self.route, self.delay, self.body, self.plan = route, delay, body, p
        self.created = int(time.time())

    def _chunk(self, index: int, text: str, finish: str | None) -> bytes:
        return orjson.dumps(
            {
                "id": self.plan["id"],
                "object": "text_completion",
                "created": self.created,
                "model": self.body["model"],
                "choices": [
                    {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    async def _events(self) -> AsyncIterator[list[bytes]]:
        pause = self.route.mock.stream_delay_ms / 1000
        await self.delay()  # the route's mock.latency_ms (MockDriver._delay)
        for index, (pieces, finish) in enumerate(self.plan["choices"]):
            for count, piece in enumerate(pieces, 1):
                if pause:
                    await asyncio.sleep(pause)
                elif count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                yield [self._chunk(index, piece, None)]
            yield [self._chunk(index, "", finish)]
        if (self.body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "id": self.plan["id"],
                "object": "text_completion",
                "created": self.created,
                "model": self.body["model"],
                "choices": [],
                "usage": self.plan["usage"],
            }
            yield [orjson.dumps(usage)]

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._events()

    async def aclose(self) -> None:
        return None
