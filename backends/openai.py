"""OpenAI's API. `/v1/responses` goes natively (the route default); Chat Completions is a
pass-through except `max_tokens` (deprecated, rejected by o-series models), sent as
`max_completion_tokens`, and the open-engine extras OpenAI would answer 400 to, refused
here by name. Rate-limit headers (`x-ratelimit-*`, `Retry-After`) are passed on.
"""

from __future__ import annotations

from typing import Any

from backends import extras
from backends.openai_compat import OpenAICompatDriver
from backends.params import Param, ParamTable, honour_all, refuse_all, refused, rename, translated
from backends.structured import emit_openai, structured_via
from gateway.translate import OPENAI_DIALECT

# Assistant-message fields only open engines read (replayed reasoning, RL token ids).
ENGINE_MESSAGE_FIELDS = (
    "reasoning",
    "reasoning_content",
    "prompt_token_ids",
    "generation_token_ids",
    "generation_log_probs",
    "routed_experts",
)


def clean_assistant_messages(body: dict[str, Any]) -> None:
    """Leave out what hosted APIs reject on assistant messages: an empty `tool_calls` list
    and the open-engine fields above (a copy is made; the client's body is not changed)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    copied = False
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        extra = [k for k in ENGINE_MESSAGE_FIELDS if k in message]
        empty_calls = message.get("tool_calls") == []
        if extra or empty_calls:
            if not copied:
                messages = body["messages"] = list(messages)
                copied = True
            cleaned = {k: v for k, v in message.items() if k not in extra}
            if empty_calls:
                del cleaned["tool_calls"]
            messages[index] = cleaned


def structured_json_only() -> list[Param]:
    return [
        translated(
            name,
            "a JSON schema is sent as `response_format` (json_schema); other constraints "
            "(regex, choice, grammar) are refused",
            structured_via(name, emit_openai),
            to="response_format",
        )
        for name in ("guided_json", "structured_outputs")
    ]


TABLE = ParamTable(
    family="openai",
    params=(
        *honour_all(n for n in extras.OPENAI_CORE if n != "max_tokens"),
        *honour_all((*extras.OPENAI_ONLY, *extras.BOOKKEEPING, "store")),
        translated(
            "max_tokens",
            "sent as `max_completion_tokens` (OpenAI deprecated `max_tokens`; o-series models "
            "reject it)",
            rename("max_tokens", "max_completion_tokens"),
            to="max_completion_tokens",
        ),
        *structured_json_only(),
        *refuse_all(
            (n for n in extras.ENGINE_EXTRAS if n != "structured_outputs"),
            "an open-engine extra; OpenAI has no such parameter.",
        ),
        *refuse_all(
            (n for n in extras.GUIDED if n != "guided_json"),
            "OpenAI constrains output with JSON schemas only (`response_format`).",
        ),
        refused(extras.GUIDED_BACKEND, "an open-engine extra; OpenAI has no such parameter."),
    ),
    unknown="pass",
    unknown_note="OpenAI validates its own parameters (unknown ones get its 400).",
)


class OpenAIDriver(OpenAICompatDriver):
    params = TABLE
    dialect = OPENAI_DIALECT

    def adapt_request(self, body: dict[str, Any]) -> dict[str, Any]:
        clean_assistant_messages(body)
        return body
