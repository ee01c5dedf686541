"""Hugging Face TGI's Messages API. Best effort: TGI is in maintenance mode upstream (since
December 2025, minor fixes only); prefer vLLM or SGLang for new work.

Quirks: `model` must be "tgi" (any other name selects a LoRA adapter, silently falling back
to the base model when unknown); `stop` must be a list; `response_format` has TGI's own
tagged shape; at most one tool call per turn, reported with the generation's own
finish_reason ("stop", "eos_token", "stop_sequence") instead of "tool_calls"; completion and
tool-call ids may be empty; unknown fields are silently ignored (so the table is a whitelist).
"""

from __future__ import annotations

from typing import Any

import orjson

from backends import extras
from backends.answers import (
    ChunkTransform,
    FinishFixer,
    choices_of,
    fix_tool_finish,
    new_call_id,
)
from backends.openai_compat import OpenAICompatDriver
from backends.params import (
    NotSupported,
    ParamTable,
    honour_all,
    refuse_all,
    refused,
    remove,
    rename,
    translated,
)
from backends.structured import emit_tgi, structured_via, tgi_response_format
from backends.upstream_errors import UpstreamError
from gateway.errors import GatewayError
from gateway.translate import ChatDialect

RENAMES = {"stop_sequence": "stop", "eos_token": "stop"}
# TGI error_type -> (status, OpenAI type)
_ERRORS = {
    "validation": (400, "invalid_request_error"),
    "template_error": (400, "invalid_request_error"),
    "tool_error": (400, "invalid_request_error"),
    "overloaded": (429, "rate_limit_error"),
    "generation": (500, "server_error"),
    "incomplete_generation": (500, "server_error"),
}


def _stop_list(body: dict[str, Any], value: Any) -> None:
    body["stop"] = [value] if isinstance(value, str) else value


def _single_choice(body: dict[str, Any], value: Any) -> None:
    if value != 1:
        raise NotSupported("TGI always answers with one choice (it ignores `n`).")


TABLE = ParamTable(
    family="tgi",
    params=(
        translated("model", 'sent as "tgi" (or the route\'s `upstream_model`, a LoRA adapter id)'),
        *honour_all(
            (
                "messages",
                "temperature",
                "top_p",
                "seed",
                "frequency_penalty",
                "max_tokens",
                "logprobs",
                "stream",
                "stream_options",
                "tools",
                "tool_choice",
                "tool_prompt",
            )
        ),
        *honour_all(("top_logprobs",), "at most TGI's --max-top-n-tokens (default 5)"),
        translated(
            "stop",
            "a string is sent as a one-element list (TGI takes lists only)",
            _stop_list,
            to="stop",
        ),
        translated(
            "max_completion_tokens",
            "sent as `max_tokens`",
            rename("max_completion_tokens", "max_tokens"),
            to="max_tokens",
        ),
        translated(
            "response_format",
            "sent in TGI's shape: a JSON schema as {type: json, value: schema}, json_object as "
            "{type: json, value: {type: object}}; text is the default and is left out",
            tgi_response_format,
            to="response_format",
        ),
        *(
            translated(
                name,
                "sent as TGI's `response_format` (JSON schema or regex; choices as a regex)",
                structured_via(name, emit_tgi),
                to="response_format",
            )
            for name in (
                "guided_json",
                "guided_regex",
                "guided_choice",
                "structured_outputs",
                "regex",
            )
        ),
        *refuse_all(
            ("guided_grammar", "guided_whitespace_pattern", "ebnf"),
            "TGI constrains output with a JSON schema or a regex only.",
        ),
        translated(
            "parallel_tool_calls",
            "left out: TGI makes at most one tool call per turn, which satisfies both values",
            remove,
        ),
        translated(
            "n", "n: 1 is left out (TGI's only behaviour); n > 1 is refused", _single_choice
        ),
        *(
            translated(name, "left out: no effect on the answer", remove)
            for name in extras.BOOKKEEPING
        ),
        refused(
            "presence_penalty",
            "TGI reinterprets it as repetition_penalty = presence_penalty + 2, a different "
            "penalty.",
        ),
        refused("logit_bias", "TGI ignores it."),
        refused("reasoning_effort", "TGI has no reasoning controls."),
        *refuse_all(
            ("top_k", "min_p", "repetition_penalty"),
            "TGI offers it only on its native /generate API, not on Chat Completions.",
        ),
        *refuse_all(
            ("chat_template_kwargs", "return_token_ids", "return_tokens_as_token_ids"),
            "TGI's Chat Completions has no such option.",
        ),
    ),
    unknown="refuse",
    unknown_note="TGI ignores fields it does not know, so the gateway refuses them.",
)


def _fix_tool_calls(calls: Any, ids: dict[int, str] | None = None) -> None:
    """Empty or numeric tool-call ids (TGI sends "" or "0") become unique `call_…` ids;
    object arguments (older TGI) become the JSON string OpenAI's shape requires."""
    for position, call in enumerate(calls if isinstance(calls, list) else ()):
        if not isinstance(call, dict):
            continue
        call_id = call.get("id")
        if "id" in call and (not call_id or (isinstance(call_id, str) and call_id.isdigit())):
            if ids is None:
                call["id"] = new_call_id()
            else:
                index = call.get("index", position)
                call["id"] = ids.setdefault(index, new_call_id())
        fn = call.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), dict):
            fn["arguments"] = orjson.dumps(fn["arguments"]).decode()


def _error_chunk(payload: bytes) -> bytes:
    """TGI's mid-stream error ({"error": {"message", "http_status_code"}}) in OpenAI's shape."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict) and "type" not in err:
        status = err.get("http_status_code")
        err = {"message": err.get("message") or "TGI failed mid-stream", "type": "server_error",
               "param": None, "code": status}  # fmt: skip
    elif isinstance(err, str):
        err = {"message": err, "type": doc.get("error_type") or "server_error", "param": None,
               "code": None}  # fmt: skip
    else:
        return payload
    return orjson.dumps({"error": err})


class _TGIChunks:
    """Per-stream chunk fixes: ids, finish_reason, error chunks."""

    def __init__(self) -> None:
        self.completion_id = b'"id":"chatcmpl-' + new_call_id()[5:].encode() + b'"'
        self.call_ids: dict[int, str] = {}
        self.finish = FinishFixer(RENAMES, on_chunk=self._on_chunk)

    def _on_chunk(self, doc: dict[str, Any], fixer: FinishFixer) -> None:
        for choice in choices_of(doc):
            delta = choice.get("delta")
            if isinstance(delta, dict):
                _fix_tool_calls(delta.get("tool_calls"), self.call_ids)

    def __call__(self, payload: bytes) -> bytes:
        if payload.startswith(b'{"error"'):
            return _error_chunk(payload)
        if payload.startswith(b'{"id":""'):
            payload = payload.replace(b'"id":""', self.completion_id, 1)
        return self.finish(payload)


class TGIDriver(OpenAICompatDriver):
    params = TABLE
    dialect = ChatDialect(reasoning_field=None)

    def _model(self) -> str:
        return self.route.upstream_model or "tgi"

    def adapt_request(self, body: dict[str, Any]) -> dict[str, Any]:
        body["model"] = self._model()
        return body

    def adapt_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        if not answer.get("id"):
            answer["id"] = "chatcmpl-" + new_call_id()[5:]
        for choice in choices_of(answer):
            message = choice.get("message")
            if isinstance(message, dict):
                _fix_tool_calls(message.get("tool_calls"))
        return fix_tool_finish(answer, RENAMES)

    def chunk_transform(self) -> ChunkTransform | None:
        return _TGIChunks()

    def adapt_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        body["model"] = self._model()
        if isinstance(body.get("stop"), str):
            body["stop"] = [body["stop"]]
        return body

    def refine_error(self, exc: UpstreamError) -> GatewayError:
        doc = exc.doc
        kind = doc.get("error_type") if isinstance(doc, dict) else None
        if isinstance(kind, str) and exc.code != "context_length_exceeded":
            status, etype = _ERRORS.get(kind, (exc.status, exc.type))
            exc.status, exc.type, exc.code = status, etype, kind
        return exc
