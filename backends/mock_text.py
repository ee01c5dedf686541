"""The mock's words: how it splits text into tokens, and the checks of `n` and of what an
answer would cost, shared by its Chat (backends/mock.py) and Completions
(backends/mock_completions.py) answers."""

from __future__ import annotations

import re
from typing import Any

from gateway.config import RouteConfig
from gateway.errors import GatewayError, InvalidRequest

WORD = re.compile(r"\s*\S+")
MAX_N = 128  # choices per request, as OpenAI allows: the mock builds each one in memory


def choice_count(body: dict[str, Any]) -> int:
    """`n`, checked: the mock answers 400 rather than build a huge answer."""
    n = body.get("n")
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise InvalidRequest(f"'n' must be an integer from 1 to {MAX_N} on the mock", param="n")
    return n


# What an answer costs beyond its text, per token: the token's own string object while the
# mock builds the answer (once), and per choice a streamed chunk's JSON and SSE framing or a
# logprobs entry (a dict, a list of byte values: ~400 bytes of memory); with logprobs the
# token's text is written twice more and its bytes as numbers (up to 4 characters each).
_TOKEN_OBJECT_BYTES = 58
_STREAM_CHUNK_BYTES = 160
_LOGPROB_ENTRY_BYTES = 400
_LOGPROB_TEXT_FACTOR = 6


def check_answer_cost(
    route: RouteConfig, body: dict[str, Any], choices: int, text_bytes: int, tokens: int
) -> None:
    """400 before building an answer that would cost more than the route's
    `mock.max_answer_bytes`, in bytes sent or memory used to build it: one request must not
    be able to make the mock produce gigabytes (issue 18)."""
    per_choice_token = 0
    if body.get("stream"):
        per_choice_token += _STREAM_CHUNK_BYTES + len(str(body.get("model") or ""))
    logprobs = body.get("logprobs") not in (None, False)
    if logprobs:
        per_choice_token += _LOGPROB_ENTRY_BYTES
    text = text_bytes * (_LOGPROB_TEXT_FACTOR if logprobs else 1)
    size = tokens * _TOKEN_OBJECT_BYTES + choices * (text + tokens * per_choice_token)
    limit = route.mock.max_answer_bytes
    if size > limit:
        raise GatewayError(
            400, f"mock route '{route.name}': this answer would cost about {size} bytes "
            f"({choices} choice(s) of {tokens} tokens, {text_bytes} bytes of text); the route's "
            f"mock.max_answer_bytes is {limit}: lower n or max_tokens, or send a shorter prompt",
            param="n" if choices > 1 else "max_tokens", code="answer_too_large",
        )  # fmt: skip


def split_tokens(text: str) -> list[str]:
    """Word tokens whose concatenation is exactly `text`."""
    pieces = WORD.findall(text)
    rest = text[sum(map(len, pieces)) :]
    if rest:
        if pieces:
            pieces[-1] += rest
        else:
            pieces.append(rest)
    return pieces
