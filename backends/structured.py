"""Structured-output requests in every family's own form.

Clients ask for constrained output four ways: OpenAI's `response_format`, vLLM's
`structured_outputs` object, vLLM's removed `guided_*` fields (ignored by vLLM >= 0.12 with
HTTP 200, so never forwarded as they are) and SGLang's top-level `regex` / `ebnf`. Each
family module picks the translation into the one form its engine reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from backends.params import NotSupported, Translate
from gateway.errors import InvalidRequest

# structured_outputs keys that each select a constraint (vLLM allows exactly one)
CONSTRAINTS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")
# structured_outputs keys that only tune a constraint
MODIFIERS = ("disable_any_whitespace", "disable_additional_properties", "whitespace_pattern")
SCHEMA_NAME = "structured_output"

# a (kind, value) constraint written into a body in one family's form
Emit = Callable[[dict[str, Any], str, Any, str], None]


def schema_of(value: Any, param: str) -> dict[str, Any]:
    """A JSON schema given as an object or as JSON text."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                f"`{param}` must be a JSON schema (object or JSON text)", param=param
            ) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"`{param}` must be a JSON schema object", param=param)
    return value


_REGEX_SPECIAL = frozenset(".^$*+?()[]{}|\\/")


def choice_regex(choices: Any, param: str) -> str:
    """A regex matching exactly one of the strings (what vLLM's `choice` constraint means)."""
    if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
        raise InvalidRequest(f"`{param}` must be a non-empty list of strings", param=param)
    escaped = ("".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in c) for c in choices)
    return "(" + "|".join(escaped) + ")"


def set_once(body: dict[str, Any], key: str, value: Any, param: str) -> None:
    if body.get(key) is not None:
        raise InvalidRequest(
            f"`{param}` and `{key}` both ask for structured output; send only one of them",
            param=param,
        )
    body[key] = value


# ---- vLLM: everything becomes `structured_outputs` ------------------------------------------


def to_structured_outputs(param: str, key: str) -> Translate:
    """`guided_json` -> structured_outputs.json (and the like) for vLLM >= 0.12."""

    def translate(body: dict[str, Any], value: Any) -> None:
        current = body.get("structured_outputs")
        merged = dict(current) if isinstance(current, dict) else {}
        if key in CONSTRAINTS and any(merged.get(k) is not None for k in CONSTRAINTS):
            raise InvalidRequest(
                f"`{param}` adds a second structured-output constraint to `structured_outputs`; "
                "send only one",
                param=param,
            )
        merged[key] = value
        body["structured_outputs"] = merged

    return translate


# ---- other families: find the one constraint, then emit it in the family's form -------------


def _constraint(param: str, value: Any) -> tuple[str, Any]:
    """(kind, value) of a guided_* / regex / ebnf / structured_outputs request."""
    if param == "structured_outputs":
        if not isinstance(value, dict):
            raise InvalidRequest("`structured_outputs` must be an object", param=param)
        for key in MODIFIERS:
            if value.get(key):
                raise NotSupported(f"`structured_outputs.{key}` has no equivalent on this backend.")
        kinds = [k for k in CONSTRAINTS if value.get(k) is not None]
        unknown = [k for k in value if k not in CONSTRAINTS and k not in MODIFIERS]
        if unknown:
            raise NotSupported(f"`structured_outputs.{unknown[0]}` is not a known constraint.")
        if len(kinds) != 1:
            raise InvalidRequest(
                "`structured_outputs` must hold exactly one of " + ", ".join(CONSTRAINTS),
                param=param,
            )
        return kinds[0], value[kinds[0]]
    kind = {"regex": "regex", "ebnf": "grammar"}.get(param) or param.removeprefix("guided_")
    return kind, value


def structured_via(param: str, emit: Emit) -> Translate:
    def translate(body: dict[str, Any], value: Any) -> None:
        kind, constraint = _constraint(param, value)
        emit(body, kind, constraint, param)

    return translate


def json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema}}


def emit_openai(body: dict[str, Any], kind: str, value: Any, param: str) -> None:
    """OpenAI and Gemini: JSON constraints only, as `response_format`."""
    if kind == "json":
        set_once(body, "response_format", json_schema_format(schema_of(value, param)), param)
    elif kind == "json_object":
        set_once(body, "response_format", {"type": "json_object"}, param)
    else:
        raise NotSupported(
            f"a `{kind}` constraint has no equivalent here; only JSON schemas "
            "(`response_format`) are supported."
        )


def emit_sglang(body: dict[str, Any], kind: str, value: Any, param: str) -> None:
    """SGLang: `response_format` for JSON, top-level `regex` and `ebnf` for the rest."""
    if kind == "json":
        set_once(body, "response_format", json_schema_format(schema_of(value, param)), param)
    elif kind == "json_object":
        set_once(body, "response_format", {"type": "json_object"}, param)
    elif kind == "regex":
        set_once(body, "regex", value, param)
    elif kind == "choice":
        set_once(body, "regex", choice_regex(value, param), param)
    elif kind == "grammar":
        set_once(body, "ebnf", value, param)
    else:
        raise NotSupported(
            f"SGLang takes a `{kind}` constraint in another shape; use `response_format`."
        )


def emit_tgi(body: dict[str, Any], kind: str, value: Any, param: str) -> None:
    """TGI: its own tagged `response_format` ({"type": "json"|"regex", "value": ...})."""
    if kind == "json":
        set_once(body, "response_format", {"type": "json", "value": schema_of(value, param)}, param)
    elif kind == "json_object":
        set_once(body, "response_format", {"type": "json", "value": {"type": "object"}}, param)
    elif kind == "regex":
        set_once(body, "response_format", {"type": "regex", "value": value}, param)
    elif kind == "choice":
        set_once(
            body, "response_format", {"type": "regex", "value": choice_regex(value, param)}, param
        )
    else:
        raise NotSupported(f"TGI has no `{kind}` constraint; use a JSON schema or a regex.")


def tgi_response_format(body: dict[str, Any], value: Any) -> None:
    """OpenAI's `response_format` -> TGI's tagged grammar (already-TGI shapes pass)."""
    if not isinstance(value, dict):
        raise InvalidRequest("`response_format` must be an object", param="response_format")
    kind = value.get("type")
    if kind == "text":
        return
    if "value" in value and kind in ("json", "json_object", "json_schema", "regex"):
        body["response_format"] = value  # already TGI's shape
    elif kind == "json_schema":
        spec = value.get("json_schema") or {}
        emit_tgi(
            body, "json", spec.get("schema") if isinstance(spec, dict) else None, "response_format"
        )
    elif kind == "json_object":
        emit_tgi(body, "json_object", True, "response_format")
    else:
        raise NotSupported(f"response_format type {kind!r} has no TGI equivalent.")
