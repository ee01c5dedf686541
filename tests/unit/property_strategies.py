"""Hypothesis strategies for tests/unit/test_properties.py: request bodies (well-typed most of
the time, any JSON value now and then, so deep fields stay reachable), chat answers and stream
chunks as engines send them."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from gateway.translate import DEFAULT_DIALECT, OPENAI_DIALECT, ChatDialect
from gateway.validation import ROLES

ORJSON_INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson parses
SCALARS = (
    st.none()
    | st.booleans()
    | ORJSON_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def maybe(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a well-typed value, sometimes any JSON value."""
    return st.one_of(good, good, JSON)


def body_of(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with any subset of `fields` (values maybe ill-typed) plus unknown keys."""
    known = st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in fields.items()})
    extra = st.dictionaries(st.text(max_size=10), JSON, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, known, extra)


TEXT = st.text(max_size=20)
NAME = st.sampled_from(["get_weather", "lookup", "f"]) | TEXT
MODEL = st.sampled_from(["echo", "policy"]) | TEXT
SCHEMA = st.sampled_from(
    [{"type": "object", "properties": {"city": {"type": "string"}}}, {}, {"type": "object"}]
)

# ---- gateway/validation.py ------------------------------------------------------------------

CHAT_MESSAGE = body_of(
    {
        "role": st.sampled_from(sorted(ROLES)) | TEXT,
        "content": st.none()
        | TEXT
        | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT})),
        "name": TEXT,
        "tool_call_id": TEXT,
    }
)
CHAT_BODY = body_of(
    {
        "model": MODEL,
        "messages": st.lists(CHAT_MESSAGE, max_size=3),
        "stream": st.booleans(),
        "temperature": st.floats(0, 2),
        "max_tokens": st.integers(-2, 10**6),
        "n": st.integers(-1, 4),
        "stop": TEXT | st.lists(TEXT, max_size=2),
        "tools": st.lists(JSON, max_size=2),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(-1, 20),
        "seed": ORJSON_INTS,
    }
)
RESPONSES_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": MODEL,
    "instructions": TEXT,
    "stream": st.booleans(),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "max_output_tokens": st.integers(-2, 10**6),
    "top_logprobs": st.integers(-1, 20),
    "parallel_tool_calls": st.booleans(),
    "store": st.booleans(),
    "background": st.booleans(),
    "metadata": st.dictionaries(TEXT, TEXT, max_size=2),
    "user": TEXT,
    "truncation": st.sampled_from(["auto", "disabled"]),
    "include": st.lists(
        st.sampled_from(["message.output_text.logprobs", "reasoning.encrypted_content"]) | TEXT,
        max_size=2,
    ),
}


# ---- responses_to_chat --------------------------------------------------------------------


def rarely(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A well-typed value, one time in eight any JSON value: deep fields stay reachable."""
    return st.one_of(*([good] * 7), JSON)


def obj(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {k: rarely(v) for k, v in required.items()},
        optional={k: rarely(v) for k, v in optional.items()},
    )


TEXT_PART = st.fixed_dictionaries(
    {"type": st.sampled_from(["input_text", "output_text", "text"]), "text": TEXT}
)
PART = TEXT_PART | obj(
    {"type": st.sampled_from(["input_image", "image_url", "input_file", "refusal", "audio"])},
    {"image_url": TEXT, "file_id": TEXT, "detail": st.just("low"), "refusal": TEXT},
)
CONTENT = TEXT | st.lists(rarely(PART), max_size=3)
TOOL_CALL = obj(
    {
        "id": TEXT,
        "type": st.just("function"),
        "function": obj({"name": NAME, "arguments": TEXT}, {}),
    },
    {},
)
TOKENS = {"prompt_token_ids": st.lists(st.integers(0, 100), max_size=3)}
MESSAGE_TYPE = {"type": st.just("message")}
ITEM = st.one_of(
    obj(
        {"role": st.sampled_from(["user", "system", "developer"]), "content": CONTENT}, MESSAGE_TYPE
    ),
    obj(
        {"role": st.just("assistant")},
        {
            **MESSAGE_TYPE,
            **TOKENS,
            "content": st.none() | CONTENT,
            "tool_calls": st.lists(rarely(TOOL_CALL), max_size=2),
            "reasoning": TEXT,
            "reasoning_content": TEXT,
            "refusal": TEXT,
        },
    ),
    obj({"role": st.just("tool"), "tool_call_id": TEXT}, {"content": TEXT}),
    obj(
        {"type": st.just("function_call"), "call_id": TEXT, "name": NAME, "arguments": TEXT}, TOKENS
    ),
    obj(
        {"type": st.just("function_call_output"), "call_id": TEXT},
        {"output": TEXT | st.lists(rarely(PART), max_size=2)},
    ),
    obj(
        {"type": st.just("reasoning")},
        {
            **TOKENS,
            "content": st.lists(
                rarely(obj({"type": st.just("reasoning_text"), "text": TEXT}, {})), max_size=2
            ),
            "summary": st.lists(
                rarely(obj({"type": st.just("summary_text"), "text": TEXT}, {})), max_size=2
            ),
        },
    ),
    obj({"type": st.sampled_from(["item_reference", "web_search_call"]), "role": TEXT}, {}),
    JSON,
)
FUNCTION_TOOL = obj(
    {"type": st.just("function"), "name": NAME},
    {
        "description": TEXT,
        "parameters": SCHEMA,
        "strict": st.booleans(),
        "defer_loading": st.just(False),
    },
)
TOOL = st.one_of(
    FUNCTION_TOOL,
    FUNCTION_TOOL,
    obj(
        {"type": st.just("function"), "function": obj({"name": NAME}, {"strict": st.booleans()})},
        {},
    ),
    obj({"type": st.sampled_from(["web_search", "file_search"])}, {}),
)
FUNCTION_CHOICE = obj(
    {"type": st.just("function")}, {"name": NAME, "function": obj({"name": NAME}, {})}
)
TOOL_CHOICE = st.one_of(
    st.sampled_from(["auto", "none", "required", "sometimes"]),
    FUNCTION_CHOICE,
    obj(
        {"type": st.just("allowed_tools")},
        {
            "mode": st.sampled_from(["auto", "required", "none"]),
            "tools": st.lists(FUNCTION_CHOICE, max_size=2),
        },
    ),
    obj({"type": st.just("web_search")}, {}),
)
TEXT_FORMAT = obj(
    {"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])},
    {"name": TEXT, "schema": SCHEMA, "strict": st.booleans(), "description": TEXT},
)
# Refused parameters, Chat-only fields and engine extras: now and then, one of them.
RARE = st.one_of(
    *([st.just({})] * 6),
    st.dictionaries(
        st.sampled_from(
            ["previous_response_id", "conversation", "prompt", "messages", "max_tokens", "logprobs"]
        )
        | st.text(max_size=8),
        JSON,
        max_size=1,
    ),
)
RESPONSES_BODY = st.builds(
    lambda known, rare: {**rare, **known},
    obj(
        {"model": MODEL, "input": TEXT | st.lists(ITEM, max_size=4)},
        {
            **{
                k: v
                for k, v in RESPONSES_FIELDS.items()
                if k not in ("model", "background", "truncation")
            },
            "background": st.just(False),
            "truncation": st.just("disabled"),
            "tools": st.lists(TOOL, max_size=3),
            "tool_choice": TOOL_CHOICE,
            "reasoning": obj(
                {}, {"effort": st.sampled_from(["low", "high"]), "summary": st.just("auto")}
            ),
            "text": obj({}, {"format": TEXT_FORMAT, "verbosity": st.sampled_from(["low", "high"])}),
        },
    ),
    RARE,
)
DIALECTS = st.sampled_from(
    [DEFAULT_DIALECT, OPENAI_DIALECT, ChatDialect(reasoning_field="reasoning_content")]
)


# ---- chat_to_response -----------------------------------------------------------------------

FINISH = st.sampled_from(
    [None, "stop", "length", "tool_calls", "content_filter", "abort", "function_call", "eos"]
)
LOGPROB = st.fixed_dictionaries(
    {"token": TEXT, "logprob": st.floats(-100, 0)},
    optional={
        "bytes": st.none() | st.lists(st.integers(0, 255), max_size=4),
        "top_logprobs": st.lists(
            st.fixed_dictionaries(
                {"token": TEXT, "logprob": st.floats(-100, 0)},
                optional={"bytes": st.none() | st.lists(st.integers(0, 255), max_size=4)},
            ),
            max_size=2,
        ),
    },
)
ANSWER_CALL = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": NAME, "arguments": TEXT}),
    },
    optional={"id": TEXT},
)
CHAT_ANSWER = st.fixed_dictionaries(
    {
        "id": st.just("chatcmpl-1"),
        "object": st.just("chat.completion"),
        "created": st.integers(0, 2**31),
        "model": MODEL,
        "choices": st.lists(
            st.fixed_dictionaries(
                {
                    "index": st.just(0),
                    "finish_reason": FINISH,
                    "message": st.fixed_dictionaries(
                        {"role": st.just("assistant")},
                        optional={
                            "content": st.none() | TEXT | st.lists(TEXT_PART, max_size=2),
                            "reasoning": st.none() | TEXT,
                            "reasoning_content": st.none() | TEXT,
                            "refusal": st.none() | TEXT,
                            "tool_calls": st.none() | st.lists(ANSWER_CALL, max_size=3),
                        },
                    ),
                },
                optional={
                    "logprobs": st.none()
                    | st.fixed_dictionaries({"content": st.none() | st.lists(LOGPROB, max_size=3)}),
                    "token_ids": st.lists(st.integers(0, 50_000), max_size=4),
                },
            ),
            max_size=2,
        ),
    },
    optional={
        "usage": st.none()
        | st.fixed_dictionaries(
            {"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**6)},
            optional={
                "total_tokens": st.integers(0, 10**6),
                "prompt_tokens_details": st.none()
                | st.fixed_dictionaries({"cached_tokens": st.integers(0, 100)}),
            },
        ),
        "prompt_token_ids": st.lists(st.integers(0, 50_000), max_size=4),
    },
)
# Valid Responses requests: build_response echoes their settings into the Response.
VALID_REQUEST = st.fixed_dictionaries(
    {"model": MODEL, "input": TEXT},
    optional={
        "instructions": TEXT,
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "max_output_tokens": st.integers(1, 10**5),
        "top_logprobs": st.integers(0, 20),
        "parallel_tool_calls": st.booleans(),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "tools": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.just("function"),
                    "name": NAME,
                    "parameters": SCHEMA,
                    "strict": st.booleans(),
                }
            ),
            max_size=2,
        ),
        "reasoning": st.fixed_dictionaries({"effort": st.sampled_from(["low", "medium", "high"])}),
        "text": st.fixed_dictionaries(
            {
                "format": st.sampled_from(
                    [
                        {"type": "text"},
                        {"type": "json_object"},
                        {"type": "json_schema", "name": "n", "schema": {"type": "object"}},
                    ]
                )
            }
        ),
        "metadata": st.dictionaries(st.text(max_size=8), TEXT, max_size=2),
        "user": TEXT,
        "include": st.just(["message.output_text.logprobs"]),
        "presence_penalty": st.floats(-2, 2),
        "frequency_penalty": st.floats(-2, 2),
        "safety_identifier": TEXT,
        "prompt_cache_key": TEXT,
        "service_tier": st.sampled_from(["auto", "default", "flex"]),
    },
)


# ---- ResponsesStreamTranslator --------------------------------------------------------------

DELTA_CALL = st.fixed_dictionaries(
    {},
    optional={
        "index": st.integers(0, 2),
        "id": TEXT,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({}, optional={"name": NAME, "arguments": TEXT}),
    },
)
CHUNK = st.fixed_dictionaries(
    {
        "object": st.just("chat.completion.chunk"),
        "choices": st.lists(
            st.fixed_dictionaries(
                {
                    "index": st.integers(0, 1),
                    "delta": st.fixed_dictionaries(
                        {},
                        optional={
                            "role": st.just("assistant"),
                            "content": st.none() | TEXT,
                            "reasoning": st.none() | TEXT,
                            "reasoning_content": st.none() | TEXT,
                            "refusal": st.none() | TEXT,
                            "tool_calls": st.lists(DELTA_CALL, max_size=2),
                        },
                    ),
                    "finish_reason": st.none() | FINISH,
                },
                optional={
                    "logprobs": st.none()
                    | st.fixed_dictionaries({"content": st.lists(LOGPROB, max_size=2)}),
                    "token_ids": st.lists(st.integers(0, 100), max_size=2),
                },
            ),
            max_size=2,
        ),
    },
    optional={
        "usage": st.none() | st.fixed_dictionaries({"prompt_tokens": st.integers(0, 9)}),
        "prompt_token_ids": st.lists(st.integers(0, 100), max_size=2),
    },
)
ERROR_CHUNK = st.fixed_dictionaries(
    {"error": TEXT | st.fixed_dictionaries({"message": TEXT}, optional={"code": JSON})}
)
