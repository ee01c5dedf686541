"""The family parameter tables on the request path: what each engine receives, what is
refused (a 400 naming the parameter) and what `unsupported_params: drop` drops."""

from __future__ import annotations

from typing import Any

import pytest

from backends import make_driver
from backends.http import UpstreamHTTP
from backends.params import (
    DROPPED_HEADER,
    NotSupported,
    ParamTable,
    honoured,
    refused,
    translated,
)
from gateway.config import parse_config
from gateway.context import RequestContext
from gateway.errors import InvalidRequest, UnsupportedParameter

MSG = [{"role": "user", "content": "hi"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def driver(backend: str, extra: str = ""):
    text = (
        f"models:\n - name: r\n   backend: {backend}\n   base_url: http://127.0.0.1:9/v1\n" + extra
    )
    return make_driver(parse_config(text, "t").models[0], UpstreamHTTP())


def sent(backend: str, body: dict[str, Any], extra: str = "") -> tuple[dict, RequestContext]:
    ctx = RequestContext(request_id="t")
    out = driver(backend, extra).request_body({"model": "r", "messages": MSG, **body}, ctx)
    return out, ctx


def refused_param(backend: str, body: dict[str, Any]) -> str | None:
    with pytest.raises(UnsupportedParameter) as info:
        sent(backend, body)
    assert "unsupported_params: drop" in info.value.message
    assert info.value.status == 400 and info.value.code == "unsupported_parameter"
    return info.value.param


# ---- the table machinery -----------------------------------------------------------------


def test_table_policies_and_null_values() -> None:
    def only_one(body: dict, value: Any) -> None:
        if value != 1:
            raise NotSupported("only 1.")
        body["x"] = value

    table = ParamTable(
        "fam",
        (honoured("a"), refused("b", "no b."), translated("c", "c to x", only_one, to="x")),
        unknown="refuse",
        unknown_note="whitelist.",
    )
    body = {"a": 1, "b": None, "c": 1, "d": None}
    assert table.apply(body, drop=False, route="r") == []
    assert body == {"a": 1, "x": 1}  # nulls are removed silently, never refused
    with pytest.raises(UnsupportedParameter, match="`b` is not supported on route 'r'"):
        table.apply({"b": 2}, drop=False, route="r")
    with pytest.raises(UnsupportedParameter, match="whitelist"):
        table.apply({"zzz": 2}, drop=False, route="r")
    with pytest.raises(UnsupportedParameter, match="only 1"):
        table.apply({"c": 2}, drop=False, route="r")
    body = {"a": 1, "b": 2, "c": 2, "zzz": 3}
    assert sorted(table.apply(body, drop=True, route="r")) == ["b", "c", "zzz"]
    assert body == {"a": 1}
    with pytest.raises(ValueError, match="declared twice"):
        ParamTable("fam", (honoured("a"), honoured("a")))


def test_fidelity_view_reads_the_same_table() -> None:
    view = driver("gemini").param_table
    assert view.get("top_k").action == "refuse"
    assert view.get("not_a_gemini_field").action == "refuse"  # whitelist
    assert view.get("temperature").action == "honour"
    assert view.get("reasoning_effort").action == "honour"  # same field, levels mapped
    assert view.get("google").action == "translate"
    dropping = driver("gemini", "   unsupported_params: drop\n").param_table
    assert dropping.get("top_k").action == "drop"
    assert driver("vllm").param_table.get("not_a_vllm_field") is None  # passes as sent


# ---- vLLM ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "structured"),
    [
        ({"guided_json": SCHEMA}, {"json": SCHEMA}),
        ({"guided_regex": "[a-z]+"}, {"regex": "[a-z]+"}),
        ({"guided_choice": ["yes", "no"]}, {"choice": ["yes", "no"]}),
        ({"guided_grammar": "root ::= 'a'"}, {"grammar": "root ::= 'a'"}),
        ({"regex": "[0-9]+"}, {"regex": "[0-9]+"}),  # SGLang's form
        ({"ebnf": "root ::= 'a'"}, {"grammar": "root ::= 'a'"}),
        (
            {"guided_json": SCHEMA, "guided_whitespace_pattern": " "},
            {"json": SCHEMA, "whitespace_pattern": " "},
        ),
    ],
)
def test_vllm_guided_becomes_structured_outputs(body: dict, structured: dict) -> None:
    out, _ = sent("vllm", body)
    assert out["structured_outputs"] == structured
    assert not any(k.startswith("guided_") for k in out)


def test_vllm_honours_extras_and_unknown_fields() -> None:
    extras = {
        "top_k": 20,
        "min_p": 0.1,
        "repetition_penalty": 1.1,
        "chat_template_kwargs": {"enable_thinking": False},
        "return_token_ids": True,
        "return_tokens_as_token_ids": True,
        "structured_outputs": {"choice": ["a"]},
        "kv_transfer_params": {"prompt_token_ids": [1]},
        "metadata": {"k": "v"},
        "some_future_field": 1,
    }
    out, ctx = sent("vllm", extras)
    assert {k: out[k] for k in extras} == extras
    assert DROPPED_HEADER not in ctx.response_headers


def test_vllm_translations_and_refusals() -> None:
    out, _ = sent("vllm", {"rid": "abc", "no_stop_trim": True})
    assert out["request_id"] == "abc" and out["include_stop_str_in_output"] is True
    assert refused_param("vllm", {"guided_decoding_backend": "xgrammar"}) == (
        "guided_decoding_backend"
    )
    assert refused_param("vllm", {"separate_reasoning": False}) == "separate_reasoning"
    assert refused_param("vllm", {"input_ids": [1, 2]}) == "input_ids"
    assert refused_param("vllm", {"web_search_options": {}}) == "web_search_options"
    with pytest.raises(InvalidRequest, match="second structured-output constraint"):
        sent("vllm", {"guided_json": SCHEMA, "structured_outputs": {"regex": "a"}})


def test_drop_policy_names_dropped_params_in_header() -> None:
    out, ctx = sent(
        "vllm",
        {"separate_reasoning": False, "guided_decoding_backend": "x", "top_k": 3},
        "   unsupported_params: drop\n",
    )
    assert "separate_reasoning" not in out and out["top_k"] == 3
    assert ctx.response_headers[DROPPED_HEADER] == "separate_reasoning, guided_decoding_backend"


# ---- SGLang -------------------------------------------------------------------------------


def test_sglang_structured_outputs_in_its_own_form() -> None:
    out, _ = sent("sglang", {"guided_json": SCHEMA})
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "structured_output", "schema": SCHEMA},
    }
    out, _ = sent("sglang", {"guided_choice": ["a.b", "c|d"]})
    assert out["regex"] == r"(a\.b|c\|d)"
    out, _ = sent("sglang", {"structured_outputs": {"grammar": "root ::= 'x'"}})
    assert out["ebnf"] == "root ::= 'x'"
    out, _ = sent("sglang", {"guided_json": '{"type": "object"}'})  # JSON text is accepted
    assert out["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert (
        refused_param(
            "sglang", {"structured_outputs": {"json": SCHEMA, "disable_any_whitespace": True}}
        )
        == "structured_outputs"
    )
    with pytest.raises(InvalidRequest, match="both ask for structured output"):
        sent("sglang", {"guided_json": SCHEMA, "response_format": {"type": "json_object"}})


def test_sglang_translations_and_refusals() -> None:
    out, _ = sent(
        "sglang",
        {"request_id": "r1", "include_stop_str_in_output": True, "top_k": 5, "ebnf": "g"},
    )
    assert out["rid"] == "r1" and out["no_stop_trim"] is True
    assert out["top_k"] == 5 and out["ebnf"] == "g"
    assert refused_param("sglang", {"return_tokens_as_token_ids": True}) == (
        "return_tokens_as_token_ids"
    )
    assert refused_param("sglang", {"prompt_logprobs": 1}) == "prompt_logprobs"
    assert refused_param("sglang", {"kv_transfer_params": {}}) == "kv_transfer_params"


# ---- TGI ----------------------------------------------------------------------------------


def test_tgi_request_shape() -> None:
    out, _ = sent(
        "tgi",
        {
            "stop": "###",
            "max_completion_tokens": 5,
            "n": 1,
            "parallel_tool_calls": False,
            "user": "u1",
            "metadata": {"a": "b"},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": SCHEMA},
            },
            "seed": 3,
        },
    )
    assert out == {
        "model": "tgi",
        "messages": MSG,
        "stop": ["###"],
        "max_tokens": 5,
        "response_format": {"type": "json", "value": SCHEMA},
        "seed": 3,
    }
    out, _ = sent("tgi", {}, "   upstream_model: my-lora\n")
    assert out["model"] == "my-lora"  # a LoRA adapter id
    out, _ = sent("tgi", {"response_format": {"type": "json_object"}})
    assert out["response_format"] == {"type": "json", "value": {"type": "object"}}
    out, _ = sent("tgi", {"response_format": {"type": "text"}})
    assert "response_format" not in out
    out, _ = sent("tgi", {"guided_choice": ["a", "b"]})
    assert out["response_format"] == {"type": "regex", "value": "(a|b)"}
    tgi_shape = {"type": "regex", "value": "[0-9]+"}
    out, _ = sent("tgi", {"response_format": tgi_shape})
    assert out["response_format"] == tgi_shape


@pytest.mark.parametrize(
    "body",
    [
        {"n": 2},
        {"top_k": 5},
        {"presence_penalty": 0.5},
        {"logit_bias": {"1": 2}},
        {"reasoning_effort": "low"},
        {"chat_template_kwargs": {}},
        {"return_token_ids": True},
        {"guided_grammar": "root ::= 'a'"},
        {"brand_new_field": 1},
    ],
)
def test_tgi_refuses(body: dict) -> None:
    assert refused_param("tgi", body) == next(iter(body))


# ---- OpenAI -------------------------------------------------------------------------------


def test_openai_max_tokens_and_extras() -> None:
    out, _ = sent("openai", {"max_tokens": 7, "service_tier": "flex", "future_param": 1})
    assert out["max_completion_tokens"] == 7 and "max_tokens" not in out
    assert out["service_tier"] == "flex" and out["future_param"] == 1  # OpenAI validates
    with pytest.raises(InvalidRequest, match="mean the same"):
        sent("openai", {"max_tokens": 7, "max_completion_tokens": 8})
    out, _ = sent("openai", {"guided_json": SCHEMA})
    assert out["response_format"]["type"] == "json_schema"
    for name in ("top_k", "min_p", "repetition_penalty", "return_token_ids", "guided_regex"):
        assert refused_param("openai", {name: 1}) == name


def test_openai_cleans_assistant_history_without_touching_the_client_body() -> None:
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "x",
            "tool_calls": [],
            "reasoning": "r",
            "prompt_token_ids": [1],
            "generation_token_ids": [2],
            "generation_log_probs": [-0.1],
        },
        {"role": "user", "content": "again"},
    ]
    client = {"model": "r", "messages": history}
    out = driver("openai").request_body(client, RequestContext(request_id="t"))
    assert out["messages"][1] == {"role": "assistant", "content": "x"}
    assert "tool_calls" in history[1] and "reasoning" in history[1]


# ---- Gemini -------------------------------------------------------------------------------


def test_gemini_whitelist_and_translations() -> None:
    out, _ = sent(
        "gemini",
        {
            "reasoning_effort": "xhigh",
            "google": {"cached_content": "c1"},
            "extra_body": {"google": {"thinking_config": {"include_thoughts": True}}},
            "user": "u",
            "metadata": {},
            "store": False,
            "n": 2,
        },
    )
    assert out["reasoning_effort"] == "high"
    assert out["extra_body"] == {
        "google": {"thinking_config": {"include_thoughts": True}, "cached_content": "c1"}
    }
    assert not {"user", "metadata", "store", "google"} & set(out)
    assert out["n"] == 2
    for body in (
        {"top_k": 5},
        {"logit_bias": {}},
        {"brand_new_field": 1},
        {"store": True},
        {"extra_body": {"other": 1}},
        {"return_tokens_as_token_ids": True},
    ):
        assert refused_param("gemini", body) == next(iter(body))
    with pytest.raises(InvalidRequest, match="both set Gemini's thinking"):
        sent(
            "gemini",
            {
                "reasoning_effort": "low",
                "extra_body": {"google": {"thinking_config": {"thinking_budget": 800}}},
            },
        )


def test_gemini_keeps_thought_signatures_in_history() -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "sig"}},
    }
    out, _ = sent(
        "gemini",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ]
        },
    )
    assert out["messages"][1]["tool_calls"][0]["extra_content"] == call["extra_content"]


def test_route_defaults_and_overrides_are_checked_at_start_up() -> None:
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match=r"overrides\.top_k: `top_k` is not supported"):
        driver("gemini", "   overrides: {top_k: 5}\n")
    with pytest.raises(ConfigError, match=r"defaults\.presence_penalty"):
        driver("tgi", "   defaults: {presence_penalty: 1}\n")
    driver("gemini", "   overrides: {top_k: 5}\n   unsupported_params: drop\n")
    with pytest.raises(ConfigError, match="unsupported_params"):
        driver("vllm", "   unsupported_params: ignore\n")
