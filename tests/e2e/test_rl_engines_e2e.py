"""The RL token contract end to end, continued: SGLang's shapes, /v1/responses, POST /tokenize
(NeMo RL's row 9 shape) against the toy token engine."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.rl_fixtures import (
    CAPTURE,
    PING,
    TOOLS,
    USER,
    assistant,
    chat,
    engine,
    error,
    gw,
    ok,
)
from tests.gateway_process import GatewayProcess
from tests.token_engine import IM_END, MAX_MODEL_LEN, TOOL_REPLY, ToyEngine, render

__all__ = ["engine", "gw"]  # module-scoped fixtures used by the tests below


# ---- SGLang shapes ------------------------------------------------------------------------------


def test_sglang_token_in_and_bundle(gw: GatewayProcess, engine: ToyEngine) -> None:
    first = ok(chat(gw, model="sg", messages=USER, tools=TOOLS, tool_choice=PING, **CAPTURE))
    turn = assistant(first)
    assert turn["prompt_token_ids"] == render(USER, TOOLS)
    assert turn["generation_token_ids"] == TOOL_REPLY
    tokens = [e["token"] for e in first["choices"][0]["logprobs"]["content"]]
    assert tokens == [f"token_id:{t}" for t in TOOL_REPLY]  # SGLang sends text; rewritten
    history = [*USER, turn, {"role": "tool", "tool_call_id": "call_toy_1", "content": "pong"}]
    second = ok(chat(gw, model="sg", messages=history, tools=TOOLS, **CAPTURE))
    prefix = turn["prompt_token_ids"] + turn["generation_token_ids"]
    assert second["choices"][0]["message"]["prompt_token_ids"][: len(prefix)] == prefix
    sent = engine.calls("/v1/chat/completions", "sg-toy")[-1]
    assert sent["input_ids"] == second["choices"][0]["message"]["prompt_token_ids"]
    assert sent["return_token_ids"] is True and "return_tokens_as_token_ids" not in sent
    renders = [
        b for b in engine.calls("/v1/chat/completions", "sg-toy") if b.get("max_tokens") == 1
    ]
    assert renders and all(b["return_prompt_token_ids"] for b in renders)


def test_sglang_explicit_prefix_and_stream(gw: GatewayProcess, engine: ToyEngine) -> None:
    template = render(USER)
    prefix = [*template[:3], 7777]
    answer = ok(chat(gw, model="sg", messages=USER, required_prefix_token_ids=prefix, **CAPTURE))
    expected = prefix + template[template.index(IM_END) :]
    assert answer["choices"][0]["message"]["prompt_token_ids"] == expected
    response = chat(gw, model="sg", messages=USER, stream=True, **CAPTURE)
    assert response.status_code == 200 and "[DONE]" in response.text
    sent = engine.calls("/v1/chat/completions", "sg-toy")[-1]
    assert sent["stream"] is True and sent["input_ids"] == template
    assert "return_token_ids" not in sent  # SGLang refuses token ids on streams


# ---- /v1/responses ---------------------------------------------------------------------------------


def respond(gw: GatewayProcess, **body: Any) -> dict[str, Any]:
    return ok(httpx.post(gw.url + "/v1/responses", json=body, timeout=30))


def test_responses_put_the_bundle_on_the_last_item(gw: GatewayProcess) -> None:
    tools = [{"type": "function", "name": "ping", "parameters": {"type": "object"}}]
    inp: list[dict[str, Any]] = [{"role": "user", "content": "count to 5"}]
    body = {
        "model": "toy-train",
        "tools": tools,
        "logprobs": True,
        "return_tokens_as_token_ids": True,
    }
    out1 = respond(gw, input=inp, tool_choice={"type": "function", "name": "ping"}, **body)[
        "output"
    ]
    assert out1[-1]["type"] == "function_call"
    assert out1[-1]["generation_token_ids"] == TOOL_REPLY
    call = out1[-1]
    inp2 = [
        *inp,
        *out1,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "pong"},
    ]
    out2 = respond(gw, input=inp2, **body)["output"]
    prefix = call["prompt_token_ids"] + call["generation_token_ids"]
    assert out2[-1]["prompt_token_ids"][: len(prefix)] == prefix


def test_native_responses_route_refuses_token_requests(gw: GatewayProcess) -> None:
    body = {"model": "oa", "input": "hi", "logprobs": True, "return_tokens_as_token_ids": True}
    response = httpx.post(gw.url + "/v1/responses", json=body, timeout=30)
    assert error(response, 400)["code"] == "token_ids_unsupported"


# ---- POST /tokenize (row 9's shape: same result as the chat prompt) --------------------------------


def tokenize(gw: GatewayProcess, **body: Any) -> dict[str, Any]:
    return ok(httpx.post(gw.url + "/tokenize", json=body, timeout=30))


def test_tokenize_with_a_required_prefix_is_spliced(gw: GatewayProcess) -> None:
    template = render(USER)
    prefix = [*template[:3], 7777, 7778]
    out = tokenize(gw, model="toy", messages=USER, required_prefix_token_ids=prefix)
    expected = prefix + template[template.index(IM_END) :]
    assert out == {
        "count": len(expected),
        "max_model_len": MAX_MODEL_LEN,
        "tokens": expected,
        "token_strs": None,
    }
    answer = ok(chat(gw, model="toy", messages=USER, required_prefix_token_ids=prefix, **CAPTURE))
    assert answer["choices"][0]["message"]["prompt_token_ids"] == expected


def test_tokenize_derives_the_prefix_from_the_messages(gw: GatewayProcess) -> None:
    turn = assistant(ok(chat(gw, model="toy", messages=USER, **CAPTURE)))
    history = [*USER, turn, {"role": "user", "content": "again"}]
    out = tokenize(gw, model="toy", messages=history)
    answer = ok(chat(gw, model="toy", messages=history, **CAPTURE))
    assert out["tokens"] == answer["choices"][0]["message"]["prompt_token_ids"]


def test_tokenize_without_a_prefix_is_the_engine_answer(gw: GatewayProcess) -> None:
    assert tokenize(gw, model="toy", messages=USER)["tokens"] == render(USER)
