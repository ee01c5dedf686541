"""The gateway's OpenAPI document: FastAPI's, plus the plain Starlette routes it cannot see.

The hot routes are plain Starlette handlers (no per-request pydantic), so FastAPI's generator
finds none of them. This module describes them by hand: the request bodies as the checks in
gateway/validation.py (and the translator) accept them, with `additionalProperties` allowed
(unknown fields pass on to the engine), and every error in OpenAI's envelope. Served at
`GET /openapi.json` (and `/docs`); tests/e2e/test_schemathesis.py holds the service to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from gateway.validation import (
    CHAT_RANGES,
    COMPLETIONS_RANGES,
    RESPONSES_RANGES,
    ROLES,
    Range,
)

Schema = dict[str, Any]
JSON = "application/json"
SSE = "text/event-stream"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    """The parameter, or null: the checks accept null for every optional parameter."""
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": True}
    if required:
        schema["required"] = required
    return schema


NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
STRING: Schema = {"type": "string"}
OBJECT: Schema = {"type": "object"}
LIST: Schema = {"type": "array"}
COUNT: Schema = {"type": "integer", "minimum": 0}
SESSION_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 256}
SSE_EVENT: Schema = {
    "type": "object",
    "properties": {"event": STRING, "data": STRING, "id": STRING},
    "required": ["data"],
    "description": "one server-sent event: JSON chunks in `data`, `[DONE]` last on chat",
}

# Chat Completions parameters the gateway checks (gateway/validation.py, _CHECKS).
CHAT_PARAMS: dict[str, Schema] = {
    "stream": BOOLEAN,
    "stream_options": OBJECT,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "presence_penalty": NUMBER,
    "frequency_penalty": NUMBER,
    "n": {"type": "integer", "minimum": 1},
    "max_tokens": COUNT,
    "max_completion_tokens": COUNT,
    "seed": {"type": "integer"},
    "logprobs": BOOLEAN,
    "top_logprobs": COUNT,
    "stop": {"anyOf": [STRING, {"type": "array", "items": STRING}]},
    "tools": LIST,
    "tool_choice": {"anyOf": [STRING, OBJECT]},
    "parallel_tool_calls": BOOLEAN,
    "response_format": OBJECT,
    "logit_bias": OBJECT,
    "metadata": OBJECT,
    "user": STRING,
}
# Responses parameters the gateway checks (validation._RESPONSES_CHECKS).
RESPONSES_PARAMS: dict[str, Schema] = {
    "instructions": STRING,
    "stream": BOOLEAN,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "max_output_tokens": COUNT,
    "top_logprobs": COUNT,
    "tools": LIST,
    "tool_choice": {"anyOf": [STRING, OBJECT]},
    "parallel_tool_calls": BOOLEAN,
    "metadata": OBJECT,
    "user": STRING,
    "store": BOOLEAN,
    "background": BOOLEAN,
    "text": OBJECT,
    "reasoning": OBJECT,
    "include": LIST,
}


def _ranged(params: dict[str, Schema], ranges: dict[str, Range]) -> dict[str, Schema]:
    """The parameters' schemas with the ranges gateway/validation.py checks."""
    out = dict(params)
    for name, (low, high) in ranges.items():
        bounds = {"minimum": low} if low is not None else {}
        if high is not None:
            bounds["maximum"] = high
        out[name] = {**out.get(name, NUMBER), **bounds}
    return out


MODEL: Schema = {"$ref": "#/components/schemas/ModelName"}  # the routes, listed when served

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        {
            "error": {
                "type": "object",
                "properties": {
                    "message": STRING,
                    "type": STRING,
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "integer", "null"]},
                },
                "required": ["message", "type", "param", "code"],
            }
        },
        ["error"],
    ),
    "ChatMessage": _obj(
        {
            "role": {"enum": sorted(ROLES)},
            "content": {"type": ["string", "array", "null"]},
        },
        ["role"],
    ),
    "ChatCompletionRequest": _obj(
        {
            "model": MODEL,
            "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
            **{n: _nullable(s) for n, s in _ranged(CHAT_PARAMS, CHAT_RANGES).items()},
        },
        ["model", "messages"],
    ),
    "ChatCompletion": _obj(
        {
            "id": STRING,
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": STRING,
            "choices": {"type": "array", "items": OBJECT},
            "usage": {"type": ["object", "null"]},
        },
        ["id", "object", "created", "model", "choices"],
    ),
    "ResponseRequest": _obj(
        {
            "model": MODEL,
            "input": {
                "anyOf": [STRING, {"type": "array", "items": OBJECT}],
                "description": "a string or a list of input items",
            },
            **{n: _nullable(s) for n, s in _ranged(RESPONSES_PARAMS, RESPONSES_RANGES).items()},
        },
        ["model", "input"],
    ),
    "Response": _obj(
        {
            "id": STRING,
            "object": {"const": "response"},
            "created_at": NUMBER,
            "status": STRING,
            "model": STRING,
            "output": {"type": "array", "items": OBJECT},
        },
        ["id", "object", "created_at", "model", "output"],
    ),
    "CompletionRequest": _obj(
        {
            "model": MODEL,
            "prompt": {
                "anyOf": [STRING, {"type": "array", "minItems": 1}],
                "description": "a string, a list of strings, or token ids",
            },
            **{n: _nullable(s) for n, s in _ranged(CHAT_PARAMS, COMPLETIONS_RANGES).items()},
            # the legacy API's logprobs: how many alternatives per token
            "logprobs": _nullable({"type": "integer", "minimum": 0, "maximum": 5}),
        },
        ["model", "prompt"],
    ),
    "Completion": _obj(
        {
            "id": STRING,
            "object": {"const": "text_completion"},
            "model": STRING,
            "choices": {"type": "array", "items": OBJECT},
        },
        ["id", "object", "model", "choices"],
    ),
    "EngineCall": _obj({"model": MODEL}, ["model"]),
    "Model": _obj(
        {
            "id": STRING,
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": STRING,
        },
        ["id", "object", "created", "owned_by"],
    ),
    "ModelList": _obj(
        {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}},
        ["object", "data"],
    ),
    "Health": _obj(
        {"status": {"const": "ok"}, "routes": {"type": "integer"}, "uptime_s": NUMBER},
        ["status", "routes", "uptime_s"],
    ),
    "Readiness": _obj(
        {
            "ready": BOOLEAN,
            "routes": {"type": "object", "additionalProperties": STRING},
        },
        ["ready", "routes"],
    ),
}

# Every failure, in OpenAI's envelope (README "Errors", docs/operations.md).
ERRORS = {
    "400": "invalid request: bad JSON, a field of the wrong type (`param` names it)",
    "401": "missing or invalid gateway API key",
    "403": "the key may not use this model, or admin access refused",
    "404": "unknown model (`model_not_found`) or endpoint",
    "413": "request body over `server.max_body_bytes`",
    "429": "upstream rate limit (Retry-After passed on) or route overloaded",
    "431": "request headers over `server.max_header_bytes`",
    "500": "upstream 500, or the gateway itself failed (`internal`)",
    "502": "upstream unreachable or invalid",
    "503": "no healthy upstream, paused or aborted for a weight update",
    "504": "upstream timeout",
}
AUTH_ERRORS = ("401", "403", "431", "500")  # what any endpoint may answer


def _error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _body(schema: str, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": _ref(schema)}}}


def _answer(description: str, schema: str | None, stream: bool = False) -> Schema:
    content: Schema = {JSON: {"schema": _ref(schema) if schema else OBJECT}}
    if stream:  # for event streams, Open API 3.1 tools read `schema` as one event's
        content[SSE] = {"schema": SSE_EVENT}
    return {"description": description, "content": content}


def _operation(
    summary: str,
    ok: Schema,
    errors: tuple[str, ...],
    body: Schema | None = None,
    tag: str = "inference",
) -> Schema:
    responses = {"200": ok, **{code: _error(ERRORS[code]) for code in errors}}
    operation: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    return operation


ALL_ERRORS = tuple(ERRORS)
# 503: in a fleet (docs/scaling.md), Redis unreachable or a member did not confirm
ADMIN_ERRORS = ("400", "401", "403", "413", "431", "500", "503")
# pause/resume with engine_control: an engine replica refused or was unreachable
ENGINE_CONTROL_ERRORS = (*ADMIN_ERRORS, "502")


def gateway_paths() -> dict[str, Schema]:
    """The paths of gateway/app.py's Starlette routes, admin ones included."""
    generation = "JSON answer, or SSE with `stream: true` (ends with `data: [DONE]`)"
    admin_answer = _answer("state after the call", None)
    return {
        "/v1/chat/completions": {
            "post": _operation(
                "Chat Completions, routed by `model`",
                _answer(generation, "ChatCompletion", stream=True),
                ALL_ERRORS,
                _body("ChatCompletionRequest"),
            )
        },
        "/v1/responses": {
            "post": _operation(
                "Responses API: native pass-through or translated to Chat Completions",
                _answer("a Response, or its events with `stream: true`", "Response", True),
                ALL_ERRORS,
                _body("ResponseRequest"),
            )
        },
        "/v1/completions": {
            "post": _operation(
                "legacy Completions, on routes whose backend serves them",
                _answer(generation, "Completion", stream=True),
                ALL_ERRORS,
                _body("CompletionRequest"),
            )
        },
        "/tokenize": {
            "post": _operation(
                "the engine's /tokenize (vLLM, SGLang routes)",
                _answer("the engine's answer", None),
                ALL_ERRORS,
                _body("EngineCall"),
            )
        },
        "/detokenize": {
            "post": _operation(
                "the engine's /detokenize (vLLM, SGLang routes)",
                _answer("the engine's answer", None),
                ALL_ERRORS,
                _body("EngineCall"),
            )
        },
        "/v1/models": {
            "get": _operation("the routes", _answer("the list", "ModelList"), AUTH_ERRORS, None)
        },
        "/v1/models/{model}": {
            "get": {
                **_operation("one route", _answer("the model", "Model"), ("404", *AUTH_ERRORS)),
                "parameters": [
                    {
                        "name": "model",
                        "in": "path",
                        "required": True,
                        "schema": MODEL,
                    }
                ],
            }
        },
        "/health": {
            "get": _operation("liveness", _answer("alive", "Health"), AUTH_ERRORS, tag="ops")
        },
        "/ready": {
            "get": {
                **_operation("readiness", _answer("ready", "Readiness"), AUTH_ERRORS, tag="ops"),
                "responses": {
                    "200": _answer("every route has a reachable upstream", "Readiness"),
                    "503": _answer("routes whose upstreams are unreachable", "Readiness"),
                    **{code: _error(ERRORS[code]) for code in AUTH_ERRORS},
                },
            }
        },
        "/metrics": {
            "get": {
                **_operation("Prometheus metrics", {}, AUTH_ERRORS, tag="ops"),
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": STRING}},
                    },
                    **{code: _error(ERRORS[code]) for code in AUTH_ERRORS},
                },
            }
        },
        "/finish_session": {
            "post": {
                **_operation(
                    "release a session's sticky replica (the rollout ended)",
                    _answer("released", None),
                    ("400", "413", *AUTH_ERRORS),
                    {
                        "required": False,
                        "content": {JSON: {"schema": _obj({"session_id": SESSION_ID})}},
                    },
                    tag="ops",
                ),
                "parameters": [
                    {"name": "session_id", "in": "query", "required": False, "schema": SESSION_ID}
                ],
            }
        },
        "/admin/reload": {
            "post": _operation("reload the config", admin_answer, ADMIN_ERRORS, tag="admin")
        },
        "/admin/pause": {
            "post": _operation(
                "pause generation for a weight update (mode wait|keep|abort, timeout_s)",
                admin_answer,
                ENGINE_CONTROL_ERRORS,
                _body("AdminPause", required=False),
                tag="admin",
            )
        },
        "/admin/resume": {
            "post": _operation(
                "resume generation", admin_answer, ENGINE_CONTROL_ERRORS, tag="admin"
            )
        },
        "/admin/status": {
            "get": _operation("control-plane state", admin_answer, ADMIN_ERRORS, tag="admin")
        },
        "/admin/policy_version": {
            "get": _operation("the policy version", admin_answer, ADMIN_ERRORS, tag="admin"),
            "post": _operation(
                "set the policy version stamped on answers",
                admin_answer,
                ADMIN_ERRORS,
                _body("AdminPolicyVersion"),
                tag="admin",
            ),
        },
        "/admin/pools": {
            "get": _operation("replica pools", admin_answer, ADMIN_ERRORS, tag="admin")
        },
    }


SCHEMAS["AdminPause"] = _obj(
    {"mode": {"enum": ["wait", "keep", "abort"]}, "timeout_s": {"type": "number", "minimum": 0}}
)
SCHEMAS["AdminPolicyVersion"] = _obj({"version": {"type": ["string", "integer", "null"]}})


SCHEMAS["CompactRequest"] = _obj(
    {
        "model": MODEL,
        "input": _nullable({"anyOf": [STRING, {"type": "array", "items": OBJECT}]}),
        "previous_response_id": _nullable(STRING),
        "instructions": _nullable(STRING),
        "prompt_cache_key": _nullable(STRING),
    },
    ["model"],
)
SCHEMAS["CompactResource"] = _obj(
    {
        "id": STRING,
        "object": {"const": "response.compaction"},
        "created_at": NUMBER,
        "output": {"type": "array", "items": OBJECT},
        "usage": OBJECT,
    },
    ["id", "object", "created_at", "output", "usage"],
)
SCHEMAS["ResponseDeleted"] = _obj(
    {"id": STRING, "object": {"const": "response.deleted"}, "deleted": BOOLEAN},
    ["id", "object", "deleted"],
)
SCHEMAS["InputItemList"] = _obj(
    {
        "object": {"const": "list"},
        "data": {"type": "array", "items": OBJECT},
        "first_id": _nullable(STRING),
        "last_id": _nullable(STRING),
        "has_more": BOOLEAN,
    },
    ["object", "data", "has_more"],
)


def stored_response_paths() -> dict[str, Schema]:
    """Stored responses and compaction (gateway/responses_crud.py, docs/responses.md)."""
    response_id = {"name": "response_id", "in": "path", "required": True, "schema": STRING}
    stored_errors = ("400", "404", *AUTH_ERRORS)
    listing = [
        response_id,
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                    "maximum": 100}},
        {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
        {"name": "after", "in": "query", "schema": STRING},
    ]  # fmt: skip
    return {
        "/v1/responses/compact": {
            "post": _operation(
                "seal a conversation into one `compaction` item only this gateway can open",
                _answer("the compacted output", "CompactResource"),
                ("400", "404", "413", *AUTH_ERRORS),
                _body("CompactRequest"),
            )
        },
        "/v1/responses/{response_id}": {
            "get": {
                **_operation("a stored response", _answer("it", "Response"), stored_errors),
                "parameters": [response_id],
            },
            "delete": {
                **_operation(
                    "delete a stored response", _answer("gone", "ResponseDeleted"), stored_errors
                ),
                "parameters": [response_id],
            },
        },
        "/v1/responses/{response_id}/input_items": {
            "get": {
                **_operation(
                    "the input items a stored response was prompted with",
                    _answer("a page of items", "InputItemList"),
                    stored_errors,
                ),
                "parameters": listing,
            }
        },
    }


def extended_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """A replacement for `app.openapi`: FastAPI's document plus the gateway's own paths, built
    at each call (cheap, rare) so that `model` lists the routes of the current config."""
    generate = app.openapi  # FastAPI's own generator; it caches its part

    def openapi() -> dict[str, Any]:
        base = generate()
        routes = [route.name for route in app.state.gateway.config.models]
        names = {"type": "string", "enum": routes, "description": "a route (GET /v1/models)"}
        components = dict(base.get("components") or {})
        components["schemas"] = {
            **(components.get("schemas") or {}),
            **SCHEMAS,
            "ModelName": names,
        }
        paths = {**gateway_paths(), **stored_response_paths(), **(base.get("paths") or {})}
        return {**base, "paths": paths, "components": components}

    return openapi
