"""The Response object and the `error` event, as Open Responses (spec 2026-04-24) defines them.

One place builds every Response the gateway sends (translated, native pass-through gaps,
streamed snapshots): every field the spec requires is present, with the value that was in
effect, so clients that validate against the spec or the openai SDK types never meet a gap.
docs/responses.md ("Fields every Response carries") states the rules.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

#: What the Responses API uses when a sampling parameter is not sent (OpenAI's documented
#: defaults); reported when neither the client nor the route set a value.
SAMPLING_DEFAULTS: dict[str, float] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}
#: The tier reported when the upstream names none: open engines have no tiers.
DEFAULT_SERVICE_TIER = "default"

_LIFECYCLE = ("response.created", "response.in_progress", "response.queued")
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
RESPONSE_EVENTS = frozenset({*_LIFECYCLE, *TERMINAL_EVENTS})


def _number(value: Any) -> bool:
    return type(value) is float or type(value) is int  # not bool; runs on every response


def effective_params(
    request: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    clamped: Mapping[str, list[Any]] | None = None,
    dropped: Iterable[str] = (),
) -> dict[str, Any]:
    """The sampling values a response was generated with, as the gateway knows them: a route
    override, else the client's value (as clamped by the route), else the route default, else
    `SAMPLING_DEFAULTS`. A parameter the route dropped reports the default. `top_logprobs`
    is the client's value, else 0."""
    out: dict[str, Any] = {}
    top = request.get("top_logprobs")
    if not (defaults or overrides or clamped or dropped):  # the common case, kept cheap
        for key, fallback in SAMPLING_DEFAULTS.items():
            value = request.get(key)
            out[key] = value if _number(value) else fallback
        out["top_logprobs"] = top if type(top) is int else 0
        return out
    dropped = set(dropped)
    for key, fallback in SAMPLING_DEFAULTS.items():
        if overrides and _number(overrides.get(key)):
            value = overrides[key]
        elif clamped and key in clamped:
            value = clamped[key][1]
        elif key in dropped:
            value = fallback
        elif _number(request.get(key)):
            value = request[key]
        elif defaults and _number(defaults.get(key)):
            value = defaults[key]
        else:
            value = fallback
        out[key] = value if _number(value) else fallback
    out["top_logprobs"] = top if type(top) is int else 0
    return out


def echo_tools(tools: Any) -> list[dict[str, Any]]:
    """The request's tools as the Response lists them: function tools flat, with `description`,
    `parameters` and `strict` always present (null when not sent)."""
    if not isinstance(tools, list):
        return []
    out = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") != "function":
            out.append(tool)
            continue
        nested = tool.get("function")
        fn = nested if isinstance(nested, dict) and "name" not in tool else tool
        echo = {k: v for k, v in tool.items() if k != "function"}
        echo.update(
            type="function",
            name=fn.get("name"),
            description=fn.get("description"),
            parameters=fn.get("parameters"),
            strict=fn.get("strict"),
        )
        out.append(echo)
    return out


def echo_text(text: Any) -> dict[str, Any]:
    """`text` with its format in full: `json_schema` formats carry `description` and `strict`."""
    text = text if isinstance(text, dict) else {}
    fmt = text.get("format") or {"type": "text"}
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        fmt = {**fmt, "description": fmt.get("description"), "strict": bool(fmt.get("strict"))}
    out: dict[str, Any] = {"format": fmt}
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    return out


def build_response(
    request: Mapping[str, Any] | None,
    *,
    model: str,
    response_id: str,
    created_at: int,
    status: str,
    output: list,
    usage: dict | None,
    incomplete_details: dict | None = None,
    error: dict | None = None,
    completed_at: int | None = None,
    effective: Mapping[str, Any] | None = None,
    service_tier: str | None = None,
    store: bool = False,
    previous_response_id: str | None = None,
) -> dict[str, Any]:
    """A full Response object. The request config is echoed from the original request;
    `effective` (see `effective_params`) gives the sampling values in effect; `completed_at`
    defaults to now for a completed response, null otherwise."""
    req = request or {}
    if effective is None:
        effective = effective_params(req)
    if completed_at is None and status == "completed":
        completed_at = int(time.time())
    reasoning = req.get("reasoning") or {}
    tool_choice = req.get("tool_choice")
    parallel = req.get("parallel_tool_calls")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": completed_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True if parallel is None else parallel,
        "previous_response_id": previous_response_id,
        "reasoning": {
            "effort": reasoning.get("effort"),
            "summary": reasoning.get("summary") or reasoning.get("generate_summary"),
        },
        "store": store,
        "temperature": effective["temperature"],
        "top_p": effective["top_p"],
        "presence_penalty": effective["presence_penalty"],
        "frequency_penalty": effective["frequency_penalty"],
        "top_logprobs": effective["top_logprobs"],
        "text": echo_text(req.get("text")),
        "tool_choice": "auto" if tool_choice is None else tool_choice,
        "tools": echo_tools(req.get("tools")),
        "truncation": "disabled",
        "usage": usage,
        "user": req.get("user"),
        "metadata": req.get("metadata") or {},
        "background": False,
        "service_tier": service_tier if isinstance(service_tier, str) else DEFAULT_SERVICE_TIER,
        "safety_identifier": req.get("safety_identifier"),
        "prompt_cache_key": req.get("prompt_cache_key"),
    }


def fill_response(
    response: dict[str, Any],
    request: Mapping[str, Any] | None,
    effective: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response from an upstream that speaks Responses itself, with the gaps filled: each
    field the spec requires that is missing (or null where the spec wants a value) gets what
    `build_response` would say; the upstream's own values are kept. Mutates and returns it."""
    base = build_response(
        request,
        model=response.get("model") or "",
        response_id=response.get("id") or "",
        created_at=response.get("created_at") or 0,
        status=response.get("status") or "completed",
        output=response.get("output") or [],
        usage=response.get("usage"),
        effective=effective,
        service_tier=response.get("service_tier"),
    )
    if response.get("status") != "completed":
        base["completed_at"] = None
    for key, value in base.items():
        if key not in response or (response[key] is None and value is not None):
            response[key] = value
    response["tools"] = echo_tools(response.get("tools"))
    usage = response.get("usage")
    if isinstance(usage, dict):  # the details both references require, as convert_usage does
        inp = usage.setdefault("input_tokens_details", {})
        out = usage.setdefault("output_tokens_details", {})
        if isinstance(inp, dict):
            inp.setdefault("cached_tokens", 0)
            inp.setdefault("cache_write_tokens", 0)
        if isinstance(out, dict):
            out.setdefault("reasoning_tokens", 0)
    return response


#: `response.error.code` values OpenAI defines (its SDK types the field as this enum); other
#: failure codes are reported as `server_error` there and exactly in the `error` event.
RESPONSE_ERROR_CODES = frozenset(
    {
        "server_error", "rate_limit_exceeded", "invalid_prompt", "data_residency_mismatch",
        "bio_policy", "misalignment_policy_violation", "vector_store_timeout", "invalid_image",
        "invalid_image_format", "invalid_base64_image", "invalid_image_url", "image_too_large",
        "image_too_small", "image_parse_error", "image_content_policy_violation",
        "invalid_image_mode", "image_file_too_large", "unsupported_image_media_type",
        "empty_image_file", "failed_to_download_image", "image_file_not_found",
    }
)  # fmt: skip


def response_error(code: str | None, message: str) -> dict[str, str]:
    """`response.error` of a failed Response: `{code, message}`, the code one OpenAI defines."""
    return {"code": code if code in RESPONSE_ERROR_CODES else "server_error", "message": message}


def error_event(
    sequence_number: int,
    message: str,
    code: str | None = "server_error",
    type_: str = "server_error",
    param: str | None = None,
) -> dict[str, Any]:
    """The streamed `error` event: the spec's nested `error` payload, and the same fields flat
    at the top for the openai SDK's `ResponseErrorEvent` (which reads them there)."""
    return {
        "type": "error",
        "sequence_number": sequence_number,
        "error": {"type": type_, "code": code, "message": message, "param": param},
        "code": code,
        "message": message,
        "param": param,
    }
