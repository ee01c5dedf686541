"""Cheap type checks of a Chat Completions body that name the offending parameter.

Whole-body pydantic validation would cost more than the rest of a pass-through; these checks
look only at the fields the gateway or every engine relies on. Unknown fields pass on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.errors import InvalidRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_or_str_list(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v))


# parameter -> (check, what it must be); null is accepted for every optional parameter.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "stream": (lambda v: isinstance(v, bool), "a boolean"),
    "stream_options": (lambda v: isinstance(v, dict), "an object"),
    "temperature": (_is_number, "a number"),
    "top_p": (_is_number, "a number"),
    "presence_penalty": (_is_number, "a number"),
    "frequency_penalty": (_is_number, "a number"),
    "n": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "max_tokens": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "max_completion_tokens": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "seed": (_is_int, "an integer"),
    "logprobs": (lambda v: isinstance(v, bool), "a boolean"),
    "top_logprobs": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "stop": (_is_str_or_str_list, "a string or a list of strings"),
    "tools": (lambda v: isinstance(v, list), "a list"),
    "tool_choice": (lambda v: isinstance(v, (str, dict)), "a string or an object"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "a boolean"),
    "response_format": (lambda v: isinstance(v, dict), "an object"),
    "logit_bias": (lambda v: isinstance(v, dict), "an object"),
    "metadata": (lambda v: isinstance(v, dict), "an object"),
    "user": (lambda v: isinstance(v, str), "a string"),
}


def check_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    return model


# The legacy Completions API: `logprobs` is how many top alternatives to return (0-5).
_COMPLETIONS_CHECKS = {
    **_CHECKS,
    "logprobs": (lambda v: _is_int(v) and 0 <= v <= 5, "an integer from 0 to 5"),
}


def check_params(
    body: dict[str, Any], checks: dict[str, tuple[Callable[[Any], bool], str]] = _CHECKS
) -> None:
    # the body's keys, not the table's: a body names a few of the ~20 checked parameters
    for name, value in body.items():
        check = checks.get(name)
        if check is not None and value is not None and not check[0](value):
            raise InvalidRequest(f"'{name}' must be {check[1]}", param=name)


def check_completions_params(body: dict[str, Any]) -> None:
    check_params(body, _COMPLETIONS_CHECKS)


def check_chat_body(body: dict[str, Any]) -> str:
    """Validate what a chat request must hold; return the model name."""
    model = check_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object", param=f"messages[{index}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:  # a list or object is unhashable
            raise InvalidRequest(
                f"messages[{index}].role must be one of {', '.join(sorted(ROLES))}",
                param=f"messages[{index}].role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidRequest(
                f"messages[{index}].content must be a string, a list of parts or null",
                param=f"messages[{index}].content",
            )
    check_params(body)
    check_ranges(body, CHAT_RANGES)
    return model


# Responses API parameters the gateway reads or every backend relies on.
_RESPONSES_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "input": (lambda v: isinstance(v, (str, list)), "a string or a list of input items"),
    "instructions": (lambda v: isinstance(v, str), "a string"),
    "stream": _CHECKS["stream"],
    "temperature": _CHECKS["temperature"],
    "top_p": _CHECKS["top_p"],
    "max_output_tokens": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "top_logprobs": _CHECKS["top_logprobs"],
    "tools": _CHECKS["tools"],
    "tool_choice": _CHECKS["tool_choice"],
    "parallel_tool_calls": _CHECKS["parallel_tool_calls"],
    "metadata": _CHECKS["metadata"],
    "user": _CHECKS["user"],
    "store": (lambda v: isinstance(v, bool), "a boolean"),
    "background": (lambda v: isinstance(v, bool), "a boolean"),
    "text": (lambda v: isinstance(v, dict), "an object"),
    "reasoning": (lambda v: isinstance(v, dict), "an object"),
    "include": (lambda v: isinstance(v, list), "a list"),
}


def check_responses_body(body: dict[str, Any]) -> str:
    """Validate the Responses fields the gateway relies on; return the model name."""
    model = check_model(body)
    if body.get("input") is None:
        raise InvalidRequest("'input' is required (a string or a list of items)", param="input")
    for name, (ok, what) in _RESPONSES_CHECKS.items():
        value = body.get(name)
        if value is not None and not ok(value):
            raise InvalidRequest(f"'{name}' must be {what}", param=name)
    check_ranges(body, RESPONSES_RANGES)
    return model


# ---- ranges ---------------------------------------------------------------------------------
# The ranges OpenAI's API reference defines for its own parameters, and only those: an engine's
# extras (top_k, min_p, repetition_penalty, ...) keep the engine's own checks. A bound is None
# when the reference sets none. Checked after the types, so the values are numbers here.
Range = tuple[float | None, float | None]
_SAMPLING: dict[str, Range] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}
CHAT_RANGES: dict[str, Range] = {
    **_SAMPLING,
    "n": (1, 128),
    "max_tokens": (1, None),
    "max_completion_tokens": (1, None),
    "top_logprobs": (0, 20),
}
# OpenAI's reference says max_output_tokens >= 16; engines serve smaller budgets and RL
# rollouts use them, so the gateway asks only for >= 1 (docs/operations.md).
RESPONSES_RANGES: dict[str, Range] = {
    **_SAMPLING,
    "max_output_tokens": (1, None),
    "max_tool_calls": (1, None),
    "top_logprobs": (0, 20),
}
# Legacy completions: max_tokens 0 is allowed (with echo it scores a prompt).
COMPLETIONS_RANGES: dict[str, Range] = {
    **_SAMPLING,
    "n": (1, 128),
    "max_tokens": (0, None),
}
LOGIT_BIAS_RANGE: Range = (-100, 100)


def _outside(value: Any, bounds: Range) -> bool:
    low, high = bounds
    return (low is not None and value < low) or (high is not None and value > high)


def _range_text(bounds: Range) -> str:
    low, high = bounds
    if high is None:
        return f">= {low}"
    return f"between {low} and {high}"


def check_ranges(body: dict[str, Any], ranges: dict[str, Range]) -> None:
    """400 naming the first parameter outside the range OpenAI's API defines for it."""
    for name, bounds in ranges.items():
        value = body.get(name)
        if value is None:
            continue
        if not _is_number(value):
            raise InvalidRequest(f"'{name}' must be a number", param=name)
        if _outside(value, bounds):
            raise InvalidRequest(f"'{name}' must be {_range_text(bounds)}; got {value}", param=name)
    bias = body.get("logit_bias")
    if isinstance(bias, dict):
        for token, value in bias.items():
            if not _is_number(value) or _outside(value, LOGIT_BIAS_RANGE):
                raise InvalidRequest(
                    f"'logit_bias' values must be numbers between -100 and 100; "
                    f"token {token!r} has {value!r}",
                    param="logit_bias",
                )
