"""Chat Completions response -> Responses Response object."""

from __future__ import annotations

import copy
import json

import pytest

from gateway.translate import chat_to_response, new_id
from tests.spec.conformance import check_response

REQUEST = {"model": "route", "input": "hi"}
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def chat(message=None, finish="stop", *, usage=USAGE, logprobs=None, **top):
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "", **(message or {})},
        "finish_reason": finish,
    }
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    body = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "backend-model",
        "choices": [choice],
        "usage": usage,
    }
    body.update(top)
    return body


def convert(c, request=REQUEST, **kw):
    return chat_to_response(c, request, model="route", **kw)


def kinds(resp):
    return [item["type"] for item in resp["output"]]


CALL_A = {
    "id": "call_A",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}
CALL_B = {"id": "call_B", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}

# (id, message, finish_reason, output item types, status, incomplete_details)
OUTPUT_ROWS = [
    ("text", {"content": "Hello"}, "stop", ["message"], "completed", None),
    (
        "reasoning-field",
        {"content": "4", "reasoning": "2+2"},
        "stop",
        ["reasoning", "message"],
        "completed",
        None,
    ),
    (
        "reasoning-content-field",
        {"content": "4", "reasoning_content": "2+2"},
        "stop",
        ["reasoning", "message"],
        "completed",
        None,
    ),
    (
        "empty-reasoning-ignored",
        {"content": "4", "reasoning": "", "reasoning_content": None},
        "stop",
        ["message"],
        "completed",
        None,
    ),
    (
        "tool-calls",
        {"content": None, "tool_calls": [CALL_A, CALL_B]},
        "tool_calls",
        ["function_call", "function_call"],
        "completed",
        None,
    ),
    (
        "text-reasoning-tools",
        {"content": "Looking", "reasoning": "r", "tool_calls": [CALL_A]},
        "tool_calls",
        ["reasoning", "message", "function_call"],
        "completed",
        None,
    ),
    ("empty-content", {"content": ""}, "stop", ["message"], "completed", None),
    ("null-content", {"content": None}, "stop", ["message"], "completed", None),
    (
        "reasoning-only",
        {"content": None, "reasoning": "hmm"},
        "length",
        ["reasoning"],
        "incomplete",
        {"reason": "max_output_tokens"},
    ),
    (
        "length",
        {"content": "trunc"},
        "length",
        ["message"],
        "incomplete",
        {"reason": "max_output_tokens"},
    ),
    (
        "content-filter",
        {"content": "x"},
        "content_filter",
        ["message"],
        "incomplete",
        {"reason": "content_filter"},
    ),
    ("abort", {"content": "x"}, "abort", ["message"], "failed", None),
    ("eos-token", {"content": "x"}, "eos_token", ["message"], "completed", None),
    ("stop-sequence", {"content": "x"}, "stop_sequence", ["message"], "completed", None),
    ("no-finish", {"content": "x"}, None, ["message"], "completed", None),
    ("refusal", {"content": None, "refusal": "No."}, "stop", ["message"], "completed", None),
]


@pytest.mark.parametrize(
    ("message", "finish", "types", "status", "incomplete"),
    [r[1:] for r in OUTPUT_ROWS],
    ids=[r[0] for r in OUTPUT_ROWS],
)
def test_output_rows(message, finish, types, status, incomplete):
    resp = convert(chat(message, finish))
    check_response(json.loads(json.dumps(resp)))
    assert kinds(resp) == types
    assert resp["status"] == status
    assert resp["incomplete_details"] == incomplete
    last_status = "completed" if status == "completed" else "incomplete"
    assert resp["output"][-1]["status"] == last_status
    for item in resp["output"][:-1]:
        assert item["status"] == "completed"
    if status == "failed":
        assert resp["error"]["code"] == "server_error"
        assert "abort" in resp["error"]["message"]
    else:
        assert resp["error"] is None


def test_item_shapes():
    resp = convert(
        chat({"content": "Hi", "reasoning": "think", "tool_calls": [CALL_A]}, "tool_calls")
    )
    rs, msg, fc = resp["output"]
    assert rs["id"].startswith("rs_")
    assert rs["summary"] == []
    assert rs["content"] == [{"type": "reasoning_text", "text": "think"}]
    assert msg["id"].startswith("msg_")
    assert msg["role"] == "assistant"
    assert msg["content"] == [
        {"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}
    ]
    assert fc["id"].startswith("fc_")
    assert fc["call_id"] == "call_A"
    assert fc["name"] == "get_weather"
    assert fc["arguments"] == '{"city":"Paris"}'
    assert fc["status"] == "completed"
    assert "encrypted_content" not in rs


def test_empty_message_has_empty_text():
    resp = convert(chat({"content": None}))
    assert resp["output"][0]["content"] == [
        {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ]


def test_refusal_part():
    resp = convert(chat({"content": "partial", "refusal": "No."}))
    assert resp["output"][0]["content"][1] == {"type": "refusal", "refusal": "No."}
    resp = convert(chat({"content": None, "refusal": "No."}))
    assert resp["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]


def test_logprobs_copied():
    lps = [
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
        },
        {"token": "!", "logprob": -0.2, "bytes": None, "top_logprobs": None},
    ]
    asked = {**REQUEST, "include": ["message.output_text.logprobs"]}
    resp = convert(chat({"content": "Hi!"}, logprobs=lps), asked)
    got = resp["output"][0]["content"][0]["logprobs"]
    assert got[0] == lps[0]
    assert got[1] == {"token": "!", "logprob": -0.2, "bytes": [33], "top_logprobs": []}


USAGE_ROWS = [
    (
        "plain",
        USAGE,
        {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15,
        },
    ),
    (
        "details",
        {
            **USAGE,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
        {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 2},
            "total_tokens": 15,
        },
    ),
    (
        "null-details",
        {
            **USAGE,
            "prompt_tokens_details": None,
            "completion_tokens_details": {"reasoning_tokens": None},
        },
        {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15,
        },
    ),
    (
        "no-total",
        {"prompt_tokens": 2, "completion_tokens": 3},
        {
            "input_tokens": 2,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 3,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 5,
        },
    ),
    ("missing", None, None),
]


@pytest.mark.parametrize(
    ("usage", "expected"), [r[1:] for r in USAGE_ROWS], ids=[r[0] for r in USAGE_ROWS]
)
def test_usage(usage, expected):
    assert convert(chat({"content": "x"}, usage=usage))["usage"] == expected


def test_echo_defaults():
    resp = convert(chat({"content": "x"}))
    expected = {
        "object": "response",
        "created_at": 1700000000,
        "model": "route",
        "error": None,
        "instructions": None,
        "max_output_tokens": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "top_p": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "truncation": "disabled",
        "user": None,
        "background": False,
        "service_tier": "default",
        "safety_identifier": None,
        "prompt_cache_key": None,
    }
    for key, value in expected.items():
        assert resp[key] == value, key
    assert resp["id"].startswith("resp_") and len(resp["id"]) == 5 + 32
    assert "output_text" not in resp


def test_echo_request_fields():
    tool = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}
    request = {
        "model": "route",
        "input": "hi",
        "instructions": "I",
        "max_output_tokens": 9,
        "metadata": {"k": "v"},
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low", "summary": "auto"},
        "store": True,
        "temperature": 0.5,
        "top_p": 0.8,
        "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "tool_choice": "required",
        "tools": [tool],
        "top_logprobs": 2,
        "user": "u",
        "service_tier": "flex",
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "safety_identifier": "s",
        "prompt_cache_key": "k",
    }
    before = copy.deepcopy(request)
    resp = convert(chat({"content": "{}"}), request, response_id="resp_given", created_at=42)
    assert request == before
    assert resp["id"] == "resp_given"
    assert resp["created_at"] == 42
    for key in (
        "instructions",
        "max_output_tokens",
        "metadata",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "text",
        "tool_choice",
        "top_logprobs",
        "user",
        "presence_penalty",
        "frequency_penalty",
        "safety_identifier",
        "prompt_cache_key",
    ):
        assert resp[key] == request[key], key
    assert resp["tools"] == [{**tool, "description": None}]  # every FunctionTool field
    assert resp["service_tier"] == "default"  # the tier used: the upstream named none
    assert resp["reasoning"] == {"effort": "low", "summary": "auto"}
    assert resp["store"] is False
    assert resp["completed_at"] >= resp["created_at"]


TOKENS = {
    "prompt_token_ids": [1, 2, 3],
    "generation_token_ids": [4, 5],
    "generation_log_probs": [-0.1, -0.2],
}

# (id, message, extra top-level chat fields, choice extras, expected last type, bundle)
TOKEN_ROWS = [
    ("on-message", {"content": "hi", **TOKENS}, {}, {}, "message", TOKENS),
    (
        "on-last-call",
        {"content": "x", "reasoning": "r", "tool_calls": [CALL_A, CALL_B], **TOKENS},
        {},
        {},
        "function_call",
        TOKENS,
    ),
    (
        "on-reasoning-only",
        {"content": None, "reasoning": "r", **TOKENS},
        {},
        {},
        "reasoning",
        TOKENS,
    ),
    (
        "return-token-ids",
        {"content": "hi"},
        {"prompt_token_ids": [1, 2, 3]},
        {"token_ids": [4, 5]},
        "message",
        {"prompt_token_ids": [1, 2, 3], "generation_token_ids": [4, 5]},
    ),
]


@pytest.mark.parametrize(
    ("message", "top", "choice_extra", "last_type", "bundle"),
    [r[1:] for r in TOKEN_ROWS],
    ids=[r[0] for r in TOKEN_ROWS],
)
def test_token_fields_on_last_item(message, top, choice_extra, last_type, bundle):
    c = chat(message, **top)
    c["choices"][0].update(choice_extra)
    resp = convert(c)
    last = resp["output"][-1]
    assert last["type"] == last_type
    for key, value in bundle.items():
        assert last[key] == value
    for item in resp["output"][:-1]:
        assert not set(TOKENS) & set(item)


def test_return_token_ids_with_logprobs_gives_generation_log_probs():
    lps = [
        {"token": "token_id:4", "logprob": -0.1, "bytes": [], "top_logprobs": []},
        {"token": "token_id:5", "logprob": -0.2, "bytes": [], "top_logprobs": []},
    ]
    c = chat({"content": "hi"}, logprobs=lps, prompt_token_ids=[1])
    c["choices"][0]["token_ids"] = [4, 5]
    last = convert(c)["output"][-1]
    assert last["generation_log_probs"] == [-0.1, -0.2]


def test_no_token_fields_when_absent():
    last = convert(chat({"content": "hi"}))["output"][-1]
    assert not {"prompt_token_ids", "generation_token_ids", "generation_log_probs"} & set(last)


def test_other_choices_dropped_and_missing_call_id_minted():
    c = chat(
        {
            "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}],
        }
    )
    c["choices"].append(
        {"index": 1, "message": {"role": "assistant", "content": "other"}, "finish_reason": "stop"}
    )
    resp = convert(c)
    assert kinds(resp) == ["function_call"]
    assert resp["output"][0]["call_id"].startswith("call_")


def test_no_choices_gives_empty_message():
    resp = convert({"id": "x", "choices": [], "created": 5})
    assert kinds(resp) == ["message"]
    assert resp["created_at"] == 5
    assert resp["usage"] is None


def test_input_not_mutated():
    c = chat(
        {"content": "hi", "reasoning": "r", "tool_calls": [CALL_A], **TOKENS},
        "length",
        logprobs=[{"token": "h", "logprob": -1.0}],
    )
    before = copy.deepcopy(c)
    convert(c)
    assert c == before


def test_new_id():
    a, b = new_id("msg"), new_id("msg")
    assert a != b and a.startswith("msg_") and len(a) == 36


def test_gym_schema_fields_present():
    resp = json.loads(json.dumps(convert(chat({"content": "x", "tool_calls": [CALL_A]}))))
    for key in (
        "id",
        "created_at",
        "model",
        "object",
        "output",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
    ):
        assert key in resp


SDK_CASES = [r[1:3] for r in OUTPUT_ROWS] + [
    ({"content": "x", "reasoning": "r", "tool_calls": [CALL_A], **TOKENS}, "length"),
]


@pytest.mark.parametrize(("message", "finish"), SDK_CASES)
def test_openai_sdk_validates(message, finish):
    responses = pytest.importorskip("openai.types.responses")
    lps = [{"token": "x", "logprob": -0.5, "bytes": [120], "top_logprobs": []}]
    request = {
        "model": "route",
        "input": "hi",
        "instructions": "I",
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "parameters": {"type": "object"},
                "strict": False,
            }
        ],
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}},
        "reasoning": {"effort": "low", "summary": "auto"},
    }
    resp = json.loads(json.dumps(convert(chat(message, finish, logprobs=lps), request)))
    check_response(resp)  # the Open Responses spec and the openai SDK's types
    model = responses.Response.model_validate(resp)
    assert model.id == resp["id"]
    assert [o.type for o in model.output] == kinds(resp)


def test_logprobs_only_when_asked_token_bundle_keeps_them():
    """As OpenAI does: `output_text.logprobs` need the include or top_logprobs > 0; logprobs
    that reached the backend otherwise (RL token path) stay in `generation_log_probs`."""
    lps = [{"token": "token_id:4", "logprob": -0.1, "bytes": [], "top_logprobs": []}]
    c = chat({"content": "hi"}, logprobs=lps, prompt_token_ids=[1], choices_token_ids=None)
    c["choices"][0]["token_ids"] = [4]
    plain = convert(c)
    assert plain["output"][-1]["content"][0]["logprobs"] == []
    assert plain["output"][-1]["generation_log_probs"] == [-0.1]
    for asked in ({"include": ["message.output_text.logprobs"]}, {"top_logprobs": 2}):
        resp = convert(c, {**REQUEST, **asked})
        assert [e["logprob"] for e in resp["output"][-1]["content"][0]["logprobs"]] == [-0.1]
    assert convert(c, {**REQUEST, "top_logprobs": 0})["output"][-1]["content"][0]["logprobs"] == []
