"""Responses request -> Chat Completions request: every mapping row and every refusal."""

from __future__ import annotations

import copy
import json

import pytest

from gateway.errors import InvalidRequest, UnsupportedParameter
from gateway.translate import (
    DEFAULT_DIALECT,
    OPENAI_DIALECT,
    ChatDialect,
    chat_to_response,
    responses_to_chat,
)

SGLANG = ChatDialect(reasoning_field="reasoning_content")
NO_REASONING = ChatDialect(reasoning_field=None)
NO_MERGE = ChatDialect(merge_system=False)

FN_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather by city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
FN_TOOL_2 = {"type": "function", "name": "get_time", "parameters": {"type": "object"}}
NESTED = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
NESTED_2 = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
USER = {"role": "user", "content": "hi"}
ARGS = '{"city": "Paris",  "unit":"c"}'  # odd spacing must survive byte for byte


def tr(dialect=DEFAULT_DIALECT, **body):
    body.setdefault("input", "hi")
    return responses_to_chat(body, dialect)


# (id, request body, dialect, expected: key -> value on the chat body; None value = key absent)
MAPPING = [
    (
        "input-string",
        {"input": "hello"},
        DEFAULT_DIALECT,
        {"messages": [{"role": "user", "content": "hello"}]},
    ),
    ("model-copied", {"model": "qwen"}, DEFAULT_DIALECT, {"model": "qwen"}),
    (
        "easy-message",
        {"input": [{"role": "user", "content": "a"}]},
        DEFAULT_DIALECT,
        {"messages": [{"role": "user", "content": "a"}]},
    ),
    (
        "typed-message-parts",
        {
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "https://x/p.jpg", "detail": "high"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAA"},
                    ],
                }
            ]
        },
        DEFAULT_DIALECT,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x/p.jpg", "detail": "high"},
                        },
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                    ],
                }
            ]
        },
    ),
    (
        "instructions-merged",
        {
            "instructions": "Be terse.",
            "input": [
                {"role": "system", "content": "S1"},
                {"role": "developer", "content": [{"type": "input_text", "text": "D1"}]},
                USER,
            ],
        },
        DEFAULT_DIALECT,
        {"messages": [{"role": "system", "content": "Be terse.\n\nS1\n\nD1"}, USER]},
    ),
    (
        "leading-system-merged-no-instructions",
        {
            "input": [
                {"role": "system", "content": "A"},
                {"role": "system", "content": "B"},
                USER,
                {"role": "system", "content": "late"},
            ]
        },
        DEFAULT_DIALECT,
        {
            "messages": [
                {"role": "system", "content": "A\n\nB"},
                USER,
                {"role": "system", "content": "late"},
            ]
        },
    ),
    (
        "instructions-not-merged",
        {"instructions": "I", "input": [{"role": "system", "content": "S"}, USER]},
        NO_MERGE,
        {
            "messages": [
                {"role": "system", "content": "I"},
                {"role": "system", "content": "S"},
                USER,
            ]
        },
    ),
    (
        "developer-kept-openai",
        {"instructions": "I", "input": [{"role": "developer", "content": "D"}, USER]},
        OPENAI_DIALECT,
        {
            "messages": [
                {"role": "developer", "content": "I"},
                {"role": "developer", "content": "D"},
                USER,
            ]
        },
    ),
    (
        "developer-to-system",
        {"input": [USER, {"role": "developer", "content": "D"}]},
        DEFAULT_DIALECT,
        {"messages": [USER, {"role": "system", "content": "D"}]},
    ),
    (
        "assistant-replay-output-text",
        {
            "input": [
                USER,
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": "Hel", "annotations": []},
                        {"type": "output_text", "text": "lo", "annotations": []},
                    ],
                },
            ]
        },
        DEFAULT_DIALECT,
        {"messages": [USER, {"role": "assistant", "content": "Hello"}]},
    ),
    (
        "assistant-refusal",
        {
            "input": [
                USER,
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "refusal", "refusal": "No."}],
                },
            ]
        },
        DEFAULT_DIALECT,
        {"messages": [USER, {"role": "assistant", "content": None, "refusal": "No."}]},
    ),
    (
        "function-calls-merged",
        {
            "input": [
                USER,
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "think"}],
                },
                {"role": "assistant", "content": "Checking."},
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": ARGS,
                },
                {
                    "type": "function_call",
                    "call_id": "call_2",
                    "name": "get_time",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {
                    "type": "function_call_output",
                    "call_id": "call_2",
                    "output": [
                        {"type": "input_text", "text": "12:"},
                        {"type": "input_text", "text": "00"},
                    ],
                },
            ]
        },
        DEFAULT_DIALECT,
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "reasoning": "think",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ARGS},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
            ]
        },
    ),
    (
        "call-without-text-has-null-content",
        {
            "input": [
                USER,
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            ]
        },
        DEFAULT_DIALECT,
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
            ]
        },
    ),
    (
        "reasoning-summary-fallback",
        {
            "input": [
                USER,
                {
                    "type": "reasoning",
                    "id": "rs",
                    "summary": [
                        {"type": "summary_text", "text": "s1"},
                        {"type": "summary_text", "text": "s2"},
                    ],
                },
                {"role": "assistant", "content": "A"},
            ]
        },
        DEFAULT_DIALECT,
        {"messages": [USER, {"role": "assistant", "content": "A", "reasoning": "s1\n\ns2"}]},
    ),
    (
        "reasoning-content-wins-over-summary",
        {
            "input": [
                USER,
                {
                    "type": "reasoning",
                    "id": "rs",
                    "summary": [{"type": "summary_text", "text": "short"}],
                    "content": [{"type": "reasoning_text", "text": "raw"}],
                },
                {"role": "assistant", "content": "A"},
            ]
        },
        SGLANG,
        {"messages": [USER, {"role": "assistant", "content": "A", "reasoning_content": "raw"}]},
    ),
    (
        "reasoning-dropped",
        {
            "input": [
                USER,
                {
                    "type": "reasoning",
                    "id": "rs",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "raw"}],
                    "encrypted_content": "gAAA",
                },
                {"role": "assistant", "content": "A"},
            ]
        },
        NO_REASONING,
        {"messages": [USER, {"role": "assistant", "content": "A"}]},
    ),
    (
        "reasoning-only-group",
        {
            "input": [
                USER,
                {
                    "type": "reasoning",
                    "id": "rs",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "r"}],
                },
            ]
        },
        DEFAULT_DIALECT,
        {"messages": [USER, {"role": "assistant", "content": "", "reasoning": "r"}]},
    ),
    (
        "chat-shaped-items",
        {
            "input": [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c9",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c9", "content": "out"},
            ]
        },
        DEFAULT_DIALECT,
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c9",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c9", "content": "out"},
            ]
        },
    ),
    (
        "token-fields-last-wins",
        {
            "input": [
                USER,
                {
                    "type": "reasoning",
                    "id": "rs",
                    "summary": [],
                    "prompt_token_ids": [0],
                    "generation_token_ids": [0],
                    "generation_log_probs": [0.0],
                },
                {
                    "type": "function_call",
                    "call_id": "c",
                    "name": "f",
                    "arguments": "{}",
                    "prompt_token_ids": [1, 2],
                    "generation_token_ids": [3],
                    "generation_log_probs": [-0.5],
                },
                {"type": "function_call_output", "call_id": "c", "output": "x"},
            ]
        },
        DEFAULT_DIALECT,
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                    "prompt_token_ids": [1, 2],
                    "generation_token_ids": [3],
                    "generation_log_probs": [-0.5],
                },
                {"role": "tool", "tool_call_id": "c", "content": "x"},
            ]
        },
    ),
    (
        "tools-flat-to-nested-strict-dropped",
        {"tools": [FN_TOOL, FN_TOOL_2]},
        DEFAULT_DIALECT,
        {"tools": [NESTED, NESTED_2]},
    ),
    (
        "tools-strict-kept-openai",
        {"tools": [FN_TOOL]},
        OPENAI_DIALECT,
        {"tools": [{"type": "function", "function": {**NESTED["function"], "strict": True}}]},
    ),
    ("tools-chat-shaped-accepted", {"tools": [NESTED]}, DEFAULT_DIALECT, {"tools": [NESTED]}),
    (
        "tool-choice-string",
        {"tools": [FN_TOOL], "tool_choice": "required"},
        DEFAULT_DIALECT,
        {"tool_choice": "required"},
    ),
    (
        "tool-choice-named",
        {"tools": [FN_TOOL], "tool_choice": {"type": "function", "name": "get_weather"}},
        DEFAULT_DIALECT,
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    ),
    (
        "tool-choice-allowed-tools",
        {
            "tools": [FN_TOOL, FN_TOOL_2],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "get_time"}],
            },
        },
        DEFAULT_DIALECT,
        {"tools": [NESTED_2], "tool_choice": "required"},
    ),
    (
        "no-tools-drops-choice-and-parallel",
        {"tool_choice": "auto", "parallel_tool_calls": False},
        DEFAULT_DIALECT,
        {"tool_choice": None, "parallel_tool_calls": None, "tools": None},
    ),
    (
        "empty-tools-drops-choice",
        {"tools": [], "tool_choice": "none"},
        DEFAULT_DIALECT,
        {"tool_choice": None, "tools": None},
    ),
    (
        "parallel-with-tools",
        {"tools": [FN_TOOL], "parallel_tool_calls": False},
        DEFAULT_DIALECT,
        {"parallel_tool_calls": False},
    ),
    (
        "pass-through",
        {
            "temperature": 0.7,
            "top_p": 0.9,
            "user": "u",
            "metadata": {"k": "v"},
            "service_tier": "auto",
            "prompt_cache_key": "pk",
            "safety_identifier": "sid",
        },
        DEFAULT_DIALECT,
        {
            "temperature": 0.7,
            "top_p": 0.9,
            "user": "u",
            "metadata": {"k": "v"},
            "service_tier": "auto",
            "prompt_cache_key": "pk",
            "safety_identifier": "sid",
        },
    ),
    (
        "nulls-dropped",
        {"temperature": None, "top_p": None, "max_output_tokens": None},
        DEFAULT_DIALECT,
        {"temperature": None, "top_p": None, "max_tokens": None},
    ),
    (
        "max-output-tokens",
        {"max_output_tokens": 64},
        DEFAULT_DIALECT,
        {"max_tokens": 64, "max_completion_tokens": None},
    ),
    (
        "max-output-tokens-openai",
        {"max_output_tokens": 64},
        OPENAI_DIALECT,
        {"max_completion_tokens": 64, "max_tokens": None},
    ),
    (
        "reasoning-effort",
        {"reasoning": {"effort": "high", "summary": "auto"}},
        DEFAULT_DIALECT,
        {"reasoning_effort": "high"},
    ),
    (
        "reasoning-null-effort",
        {"reasoning": {"effort": None}},
        DEFAULT_DIALECT,
        {"reasoning_effort": None},
    ),
    (
        "json-schema",
        {
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "ans",
                    "schema": {"type": "object"},
                    "strict": True,
                    "description": "d",
                },
                "verbosity": "low",
            }
        },
        DEFAULT_DIALECT,
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "ans",
                    "schema": {"type": "object"},
                    "strict": True,
                    "description": "d",
                },
            },
            "verbosity": "low",
        },
    ),
    (
        "json-object",
        {"text": {"format": {"type": "json_object"}}},
        DEFAULT_DIALECT,
        {"response_format": {"type": "json_object"}},
    ),
    (
        "text-format-text",
        {"text": {"format": {"type": "text"}}},
        DEFAULT_DIALECT,
        {"response_format": None},
    ),
    (
        "include-logprobs",
        {"include": ["message.output_text.logprobs"]},
        DEFAULT_DIALECT,
        {"logprobs": True, "top_logprobs": 0},
    ),
    (
        "include-logprobs-top",
        {"include": ["message.output_text.logprobs"], "top_logprobs": 3},
        DEFAULT_DIALECT,
        {"logprobs": True, "top_logprobs": 3},
    ),
    (
        "top-logprobs-alone",
        {"top_logprobs": 2},
        DEFAULT_DIALECT,
        {"logprobs": True, "top_logprobs": 2},
    ),
    (
        "top-logprobs-zero-alone-dropped",
        {"top_logprobs": 0},
        DEFAULT_DIALECT,
        {"logprobs": None, "top_logprobs": None},
    ),
    (
        "include-encrypted-accepted",
        {"include": ["reasoning.encrypted_content"]},
        DEFAULT_DIALECT,
        {"logprobs": None},
    ),
    (
        "stream",
        {"stream": True},
        DEFAULT_DIALECT,
        {"stream": True, "stream_options": {"include_usage": True}},
    ),
    (
        "stream-false",
        {"stream": False, "stream_options": {"include_obfuscation": False}},
        DEFAULT_DIALECT,
        {"stream": None, "stream_options": None},
    ),
    (
        "stateless-accepted",
        {
            "store": True,
            "previous_response_id": None,
            "background": False,
            "truncation": "disabled",
            "conversation": None,
            "max_tool_calls": None,
        },
        DEFAULT_DIALECT,
        {"store": None, "previous_response_id": None, "background": None, "truncation": None},
    ),
    (
        "engine-extras-copied",
        {
            "top_k": 20,
            "min_p": 0.1,
            "repetition_penalty": 1.1,
            "seed": 7,
            "stop": ["\n"],
            "chat_template_kwargs": {"enable_thinking": False},
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": False,
            "structured_outputs": {"choice": ["a", "b"]},
        },
        DEFAULT_DIALECT,
        {
            "top_k": 20,
            "min_p": 0.1,
            "repetition_penalty": 1.1,
            "seed": 7,
            "stop": ["\n"],
            "chat_template_kwargs": {"enable_thinking": False},
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": False,
            "structured_outputs": {"choice": ["a", "b"]},
        },
    ),
    (
        "extra-logprobs-with-include",
        {"logprobs": True, "include": ["message.output_text.logprobs"]},
        DEFAULT_DIALECT,
        {"logprobs": True, "top_logprobs": 0},
    ),
    (
        "extra-logprobs-alone-defaults-top",
        {"logprobs": True},
        DEFAULT_DIALECT,
        {"logprobs": True, "top_logprobs": 0},
    ),
]


@pytest.mark.parametrize(
    ("body", "dialect", "expected"), [r[1:] for r in MAPPING], ids=[r[0] for r in MAPPING]
)
def test_mapping(body, dialect, expected):
    chat = tr(dialect, **copy.deepcopy(body))
    for key, value in expected.items():
        if value is None:
            assert key not in chat, key
        else:
            assert chat[key] == value, key


# (id, body, exception type, param, words the message must contain)
REFUSALS = [
    (
        "previous_response_id",
        {"previous_response_id": "resp_1"},
        UnsupportedParameter,
        "previous_response_id",
        ["stateless", "input"],
    ),
    (
        "conversation",
        {"conversation": "conv_1"},
        UnsupportedParameter,
        "conversation",
        ["stateless", "input"],
    ),
    ("background", {"background": True}, UnsupportedParameter, "background", ["stream"]),
    ("prompt", {"prompt": {"id": "pmpt_1"}}, UnsupportedParameter, "prompt", ["instructions"]),
    (
        "max_tool_calls",
        {"max_tool_calls": 3},
        UnsupportedParameter,
        "max_tool_calls",
        ["client-side"],
    ),
    ("truncation-auto", {"truncation": "auto"}, UnsupportedParameter, "truncation", ["disabled"]),
    (
        "context_management",
        {"context_management": [{"type": "compaction"}]},
        UnsupportedParameter,
        "context_management",
        ["client-side"],
    ),
    (
        "moderation",
        {"moderation": {"model": "omni-moderation-latest"}},
        UnsupportedParameter,
        "moderation",
        ["OpenAI"],
    ),
    (
        "built-in-web-search",
        {"tools": [{"type": "web_search"}]},
        UnsupportedParameter,
        "tools",
        ["web_search", "function tool", "OpenAI route"],
    ),
    *[
        (
            f"built-in-{t}",
            {"tools": [FN_TOOL, {"type": t}]},
            UnsupportedParameter,
            "tools",
            [t, "function tool"],
        )
        for t in (
            "web_search_preview",
            "file_search",
            "code_interpreter",
            "computer_use_preview",
            "mcp",
            "image_generation",
            "shell",
            "local_shell",
            "apply_patch",
            "custom",
        )
    ],
    (
        "defer-loading",
        {"tools": [{**FN_TOOL, "defer_loading": True}]},
        UnsupportedParameter,
        "tools",
        ["defer_loading"],
    ),
    ("tool-without-name", {"tools": [{"type": "function"}]}, InvalidRequest, "tools", ["name"]),
    (
        "required-without-tools",
        {"tool_choice": "required"},
        InvalidRequest,
        "tool_choice",
        ["required"],
    ),
    (
        "named-choice-unknown",
        {"tools": [FN_TOOL], "tool_choice": {"type": "function", "name": "nope"}},
        InvalidRequest,
        "tool_choice",
        ["nope"],
    ),
    (
        "hosted-tool-choice",
        {"tools": [FN_TOOL], "tool_choice": {"type": "file_search"}},
        UnsupportedParameter,
        "tool_choice",
        ["file_search"],
    ),
    (
        "allowed-tools-hosted",
        {
            "tools": [FN_TOOL],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "web_search"}],
            },
        },
        UnsupportedParameter,
        "tool_choice",
        ["web_search"],
    ),
    (
        "bad-tool-choice-string",
        {"tools": [FN_TOOL], "tool_choice": "sometimes"},
        InvalidRequest,
        "tool_choice",
        ["sometimes"],
    ),
    (
        "reasoning-other-key",
        {"reasoning": {"effort": "low", "context": "x"}},
        UnsupportedParameter,
        "reasoning.context",
        ["reasoning.context"],
    ),
    (
        "include-other",
        {"include": ["file_search_call.results"]},
        UnsupportedParameter,
        "include",
        ["file_search_call.results"],
    ),
    (
        "text-format-bad",
        {"text": {"format": {"type": "grammar"}}},
        InvalidRequest,
        "text.format.type",
        ["grammar"],
    ),
    (
        "json-schema-no-name",
        {"text": {"format": {"type": "json_schema", "schema": {}}}},
        InvalidRequest,
        "text.format.name",
        ["name"],
    ),
    (
        "item-reference",
        {"input": [USER, {"type": "item_reference", "id": "msg_1"}]},
        UnsupportedParameter,
        "input[1]",
        ["item_reference"],
    ),
    (
        "input-file",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
        UnsupportedParameter,
        "input[0].content[0]",
        ["input_file"],
    ),
    (
        "image-file-id",
        {
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}],
                }
            ]
        },
        UnsupportedParameter,
        "input[0].content[0]",
        ["file_id", "image_url"],
    ),
    (
        "web-search-call-item",
        {"input": [USER, {"type": "web_search_call", "id": "ws_1"}]},
        UnsupportedParameter,
        "input[1]",
        ["web_search_call"],
    ),
    (
        "mcp-call-item",
        {"input": [{"type": "mcp_call", "id": "m"}]},
        UnsupportedParameter,
        "input[0]",
        ["mcp_call"],
    ),
    (
        "computer-call-item",
        {"input": [{"type": "computer_call", "id": "c"}]},
        UnsupportedParameter,
        "input[0]",
        ["computer_call"],
    ),
    (
        "tool-output-image",
        {
            "input": [
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "input_image", "image_url": "https://x"}],
                }
            ]
        },
        UnsupportedParameter,
        "input[0].output",
        ["input_image"],
    ),
    ("missing-input", {"input": None}, InvalidRequest, "input", ["input"]),
    (
        "function-call-no-call-id",
        {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        InvalidRequest,
        "input[0]",
        ["call_id"],
    ),
    (
        "function-call-dict-arguments",
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
        InvalidRequest,
        "input[0].arguments",
        ["string"],
    ),
    ("messages-extra", {"messages": [USER]}, InvalidRequest, "messages", ["input"]),
    (
        "extra-conflict",
        {"max_output_tokens": 5, "max_tokens": 6},
        InvalidRequest,
        "max_tokens",
        ["conflicts"],
    ),
    (
        "bad-role",
        {"input": [{"role": "wizard", "content": "x"}]},
        InvalidRequest,
        "input[0]",
        ["wizard"],
    ),
]


@pytest.mark.parametrize(
    ("body", "exc_type", "param", "words"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_name_their_parameter(body, exc_type, param, words):
    with pytest.raises(exc_type) as info:
        tr(**body)
    exc = info.value
    assert exc.status == 400
    assert exc.param == param
    for word in words:
        assert word in exc.message
    if exc_type is UnsupportedParameter:
        assert exc.code == "unsupported_parameter"
    assert exc.body()["error"]["param"] == param


def test_does_not_mutate_input():
    body = {
        "model": "m",
        "instructions": "I",
        "input": [
            {"role": "system", "content": "S"},
            USER,
            {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "t"}]},
            {
                "type": "function_call",
                "call_id": "c",
                "name": "get_weather",
                "arguments": "{}",
                "prompt_token_ids": [1],
            },
            {"type": "function_call_output", "call_id": "c", "output": "o"},
        ],
        "tools": [
            FN_TOOL,
            FN_TOOL_2,
            NESTED | {"function": {**NESTED["function"], "name": "n", "strict": True}},
        ],
        "tool_choice": {
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": "get_weather"}],
        },
        "text": {"format": {"type": "json_schema", "name": "a", "schema": {}}},
        "include": ["message.output_text.logprobs"],
        "stream": True,
        "top_k": 3,
    }
    before = copy.deepcopy(body)
    responses_to_chat(body, DEFAULT_DIALECT)
    responses_to_chat(body, OPENAI_DIALECT)
    assert body == before


def test_arguments_byte_exact():
    weird = '{ "q" :"caf\\u00e9 ☕",\n "n": 1.50 }'
    chat = tr(
        input=[USER, {"type": "function_call", "call_id": "c", "name": "f", "arguments": weird}]
    )
    assert chat["messages"][1]["tool_calls"][0]["function"]["arguments"] == weird


def test_unicode_roundtrip_in_messages():
    chat = tr(input=[{"role": "user", "content": "日本語 👩‍💻"}])
    assert json.loads(json.dumps(chat))["messages"][0]["content"] == "日本語 👩‍💻"


# ---- round trips: Responses output items sent back as input --------------------------------


def _chat(message, finish="stop"):
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


ROUND_TRIPS = [
    ("text", {"content": "Hello!"}, DEFAULT_DIALECT, {"role": "assistant", "content": "Hello!"}),
    (
        "reasoning-text-vllm",
        {"content": "4", "reasoning": "2+2"},
        DEFAULT_DIALECT,
        {"role": "assistant", "content": "4", "reasoning": "2+2"},
    ),
    (
        "reasoning-content-sglang",
        {"content": "4", "reasoning_content": "2+2"},
        SGLANG,
        {"role": "assistant", "content": "4", "reasoning_content": "2+2"},
    ),
    (
        "tool-calls",
        {
            "content": None,
            "reasoning": "need tools",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ARGS},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        DEFAULT_DIALECT,
        {
            "role": "assistant",
            "content": None,
            "reasoning": "need tools",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ARGS},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
    ),
    (
        "text-and-tool-call-openai",
        {
            "content": "Let me look.",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        OPENAI_DIALECT,
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
    ),
    (
        "token-fields",
        {
            "content": "x",
            "prompt_token_ids": [1, 2],
            "generation_token_ids": [3],
            "generation_log_probs": [-0.25],
        },
        DEFAULT_DIALECT,
        {
            "role": "assistant",
            "content": "x",
            "prompt_token_ids": [1, 2],
            "generation_token_ids": [3],
            "generation_log_probs": [-0.25],
        },
    ),
    (
        "refusal",
        {"content": None, "refusal": "I can't."},
        OPENAI_DIALECT,
        {"role": "assistant", "content": None, "refusal": "I can't."},
    ),
]


@pytest.mark.parametrize(
    ("message", "dialect", "expected"),
    [r[1:] for r in ROUND_TRIPS],
    ids=[r[0] for r in ROUND_TRIPS],
)
def test_output_items_round_trip(message, dialect, expected):
    request = {"model": "m", "input": [USER], "tools": [FN_TOOL, FN_TOOL_2]}
    response = json.loads(json.dumps(chat_to_response(_chat(message), request, model="m")))
    follow_up = [USER, *response["output"]]
    calls = expected.get("tool_calls") or []
    follow_up += [
        {"type": "function_call_output", "call_id": c["id"], "output": "ok"} for c in calls
    ]
    follow_up.append({"role": "user", "content": "next"})
    chat = responses_to_chat({**request, "input": follow_up}, dialect)
    assert chat["messages"][0] == USER
    assert chat["messages"][1] == expected
    tools = chat["messages"][2 : 2 + len(calls)]
    assert tools == [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls]
    assert chat["messages"][-1] == {"role": "user", "content": "next"}
