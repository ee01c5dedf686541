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
    for name, (ok, what) in checks.items():
        if name in body:
            value = body[name]
            if value is not None and not ok(value):
                raise InvalidRequest(f"'{name}' must be {what}", param=name)


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
    return model
