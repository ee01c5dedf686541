"""Google Gemini through its OpenAI compatibility endpoint (default base URL in the config,
key from $GEMINI_API_KEY).

Quirks: any unknown field is a 400 ("Unknown name ... Cannot find field"), so the table is a
whitelist; Gemini's own options travel as a literal `extra_body: {"google": {...}}` key in
the JSON body; `reasoning_effort` takes fewer levels than OpenAI's; tool calls may finish
with "stop"; Gemini 3 tool calls carry `extra_content.google.thought_signature`, which must
come back on the next turn (kept untouched in messages, and on Responses function_call
items); errors come as a JSON array of Google RPC errors.
"""

from __future__ import annotations

from typing import Any

from backends import extras
from backends.answers import ChunkTransform, FinishFixer, fix_tool_finish
from backends.openai import clean_assistant_messages, structured_json_only
from backends.openai_compat import OpenAICompatDriver
from backends.params import (
    NotSupported,
    ParamTable,
    honour_all,
    honoured,
    refuse_all,
    refused,
    remove,
    translated,
)
from backends.upstream_errors import UpstreamError
from gateway.errors import GatewayError, InvalidRequest
from gateway.translate import ChatDialect

# OpenAI effort levels Gemini does not take, mapped to the nearest level it does.
EFFORT_MAP = {"xhigh": "high", "max": "high"}
# Google RPC status -> OpenAI error type
_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "NOT_FOUND": "not_found_error",
    "PERMISSION_DENIED": "permission_error",
    "UNAUTHENTICATED": "authentication_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "UNAVAILABLE": "service_unavailable_error",
    "DEADLINE_EXCEEDED": "timeout_error",
    "INTERNAL": "server_error",
}


def _effort(body: dict[str, Any], value: Any) -> None:
    body["reasoning_effort"] = EFFORT_MAP.get(value, value)


def _merge_google(body: dict[str, Any], google: Any, param: str) -> None:
    if not isinstance(google, dict):
        raise InvalidRequest(f"`{param}` must be an object", param=param)
    outer = dict(body.get("extra_body") or {})
    current = outer.get("google")
    if isinstance(current, dict) and set(current) & set(google):
        raise InvalidRequest(
            f"`{param}` repeats keys already in `extra_body.google`; send them once", param=param
        )
    outer["google"] = {**(current or {}), **google}
    body["extra_body"] = outer


def _extra_body(body: dict[str, Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidRequest("`extra_body` must be an object", param="extra_body")
    unknown = [k for k in value if k != "google"]
    if unknown:
        raise NotSupported(
            f"Gemini's `extra_body` takes only the `google` key, not `{unknown[0]}`."
        )
    if value.get("google") is not None:
        _merge_google(body, value["google"], "extra_body.google")


def _google(body: dict[str, Any], value: Any) -> None:
    _merge_google(body, value, "google")


def _store(body: dict[str, Any], value: Any) -> None:
    if value:
        raise NotSupported("Gemini stores no answers.")


TABLE = ParamTable(
    family="gemini",
    params=(
        *honour_all(
            (
                "model",
                "messages",
                "temperature",
                "top_p",
                "stop",
                "seed",
                "max_tokens",
                "max_completion_tokens",
                "stream",
                "stream_options",
                "tools",
                "tool_choice",
                "service_tier",
            )
        ),
        honoured("n", "Gemini's candidate count"),
        honoured("response_format", "Gemini accepts a subset of JSON Schema (no `$schema`)"),
        honoured("parallel_tool_calls", "accepted; Gemini may return several calls anyway"),
        *honour_all(("logprobs", "top_logprobs"), "limited support on Gemini's side"),
        *honour_all(
            ("presence_penalty", "frequency_penalty"), "passed on; no documented guarantee"
        ),
        translated(
            "reasoning_effort",
            "xhigh and max are sent as high (Gemini's top level); none, minimal, low, medium "
            "and high as they are (which ones a model accepts varies)",
            _effort,
            to="reasoning_effort",
        ),
        translated(
            "extra_body",
            "sent as the literal `extra_body` key; only `google` (thinking_config, "
            "cached_content, ...) is allowed inside",
            _extra_body,
            to="extra_body",
        ),
        translated(
            "google",
            "moved into `extra_body.google` (what the OpenAI SDK's extra_body={'google': ...} "
            "sends at the top level)",
            _google,
            to="extra_body",
        ),
        *structured_json_only(),
        translated("store", "store: false is left out; store: true is refused", _store),
        *(
            translated(name, "left out: no effect on the answer", remove)
            for name in extras.BOOKKEEPING
            if name != "service_tier"
        ),
        refused("logit_bias", "Gemini has no logit bias."),
        *refuse_all(
            (
                "top_k",
                "min_p",
                "repetition_penalty",
                "chat_template_kwargs",
                "return_token_ids",
                "return_tokens_as_token_ids",
            ),
            "an open-engine extra; Gemini's compatibility layer rejects it.",
        ),
    ),
    unknown="refuse",
    unknown_note="Gemini answers 400 to any field it does not know.",
)


class GeminiDriver(OpenAICompatDriver):
    params = TABLE
    dialect = ChatDialect(reasoning_field=None, max_tokens_field="max_completion_tokens")
    serves_completions = False

    def adapt_request(self, body: dict[str, Any]) -> dict[str, Any]:
        google = (body.get("extra_body") or {}).get("google") or {}
        thinking = google.get("thinking_config") if isinstance(google, dict) else None
        sets_thinking = isinstance(thinking, dict) and (
            thinking.get("thinking_budget") is not None or bool(thinking.get("thinking_level"))
        )
        if body.get("reasoning_effort") is not None and sets_thinking:
            raise InvalidRequest(
                "`reasoning_effort` and `extra_body.google.thinking_config` (budget or level) "
                "both set Gemini's thinking; send only one",
                param="reasoning_effort",
            )
        clean_assistant_messages(body)
        return body

    def adapt_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        return fix_tool_finish(answer)

    def chunk_transform(self) -> ChunkTransform | None:
        return FinishFixer()

    def refine_error(self, exc: UpstreamError) -> GatewayError:
        doc = exc.doc[0] if isinstance(exc.doc, list) and exc.doc else exc.doc
        err = doc.get("error") if isinstance(doc, dict) else None
        status = err.get("status") if isinstance(err, dict) else None
        if isinstance(status, str):
            exc.type = _TYPES.get(status, exc.type)
            if exc.code != "context_length_exceeded":
                exc.code = status.lower()
        return exc
