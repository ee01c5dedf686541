"""The RL token contract against the real vLLM 0.32 CPU server (tiny random Llama, ChatML).

NeMo RL's HTTP-server tests (nemo_gym.md §d) adapted to the tiny model: the bundle's shape
(3b'), /tokenize agreement (3c), top_logprobs (3e, 12), merged tokens (9), plus a 5-turn
tool-calling rollout checked for contiguity, log-probs and drift.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.spec.conformance import check_response
from tests.tiny_llama import CAPTURE, EOS, FORCE_EOS, FORCE_PING, HELLO, MODEL, TOOLS, TRAIN


def root(vllm_url: str) -> str:
    return vllm_url.removesuffix("/v1")


def engine_render(vllm_url: str, messages: list[dict], **extra: Any) -> list[int]:
    """What vLLM itself renders for this history (token fields removed)."""
    clean = [
        {k: v for k, v in m.items() if not k.endswith(("token_ids", "log_probs"))} for m in messages
    ]
    body = {"model": MODEL, "messages": clean, **extra}
    return httpx.post(root(vllm_url) + "/tokenize", json=body, timeout=60).json()["tokens"]


def engine_logprobs(vllm_url: str, prompt: list[int], generated: list[int]) -> list[float]:
    """The engine's own log-probs for `generated` after `prompt` (prompt_logprobs on P + G)."""
    body = {
        "model": MODEL,
        "messages": HELLO,  # ignored: the prompt is the ids
        "max_tokens": 1,
        "prompt_logprobs": 0,
        "kv_transfer_params": {"prompt_token_ids": prompt + generated},
    }
    answer = httpx.post(vllm_url + "/chat/completions", json=body, timeout=60).json()
    rows = answer["prompt_logprobs"]
    return [rows[len(prompt) + i][str(t)]["logprob"] for i, t in enumerate(generated)]


def chat(gw: GatewayProcess, **body: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=120)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def sent_back(answer: dict[str, Any]) -> dict[str, Any]:
    """The assistant message as NeMo Gym sends it back (nulls dropped, bundle kept)."""
    return {k: v for k, v in answer["choices"][0]["message"].items() if v is not None}


def test_3b_prime_bundle_equals_the_engine_values(
    vllm_gateway: GatewayProcess, vllm_url: str
) -> None:
    answer = ok(chat(vllm_gateway, model="tiny-train", messages=HELLO, max_tokens=4, **TRAIN))
    choice = answer["choices"][0]
    message = choice["message"]
    assert message["prompt_token_ids"] == engine_render(vllm_url, HELLO)  # 3c: /tokenize agrees
    assert len(message["generation_token_ids"]) == len(message["generation_log_probs"]) == 4
    assert message["generation_log_probs"] == [e["logprob"] for e in choice["logprobs"]["content"]]
    assert [e["token"] for e in choice["logprobs"]["content"]] == [
        f"token_id:{t}" for t in message["generation_token_ids"]
    ]
    assert answer["usage"]["prompt_tokens"] == len(message["prompt_token_ids"])
    # no return_token_ids: vLLM's transport copies stay null
    assert answer["prompt_token_ids"] is None and choice["token_ids"] is None


@pytest.mark.parametrize("top", [{}, {"top_logprobs": 0}])
def test_12_token_id_logprobs_with_omitted_or_zero_top_logprobs(
    vllm_gateway: GatewayProcess, top: dict
) -> None:
    body = {"logprobs": True, "return_tokens_as_token_ids": True, "max_tokens": 2, **top}
    answer = ok(chat(vllm_gateway, model="tiny-train", messages=HELLO, **body))
    assert answer["choices"][0]["logprobs"]["content"][0]["token"].startswith("token_id:")


def test_3e_null_top_logprobs_is_a_400(vllm_gateway: GatewayProcess) -> None:
    body = {"logprobs": True, "return_tokens_as_token_ids": True, "top_logprobs": None}
    response = chat(vllm_gateway, model="tiny-train", messages=HELLO, **body)
    assert response.status_code == 400
    assert "top_logprobs" in response.json()["error"]["message"]


def test_training_route_refuses_other_sampling(vllm_gateway: GatewayProcess) -> None:
    response = chat(vllm_gateway, model="tiny-train", messages=HELLO, temperature=0.6)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "temperature"


def test_five_turn_tool_rollout_is_contiguous(vllm_gateway: GatewayProcess, vllm_url: str) -> None:
    """Tool call, tool result, text, empty reply, text: every prompt extends the last one."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Ping please"}]
    plan = [FORCE_PING, {"max_tokens": 5}, FORCE_PING, FORCE_EOS, {"max_tokens": 5}]
    previous: list[int] = []
    drifted = False
    for step, extra in enumerate(plan):
        answer = ok(
            chat(vllm_gateway, model="tiny-train", messages=messages, tools=TOOLS, **TRAIN, **extra)
        )
        turn = sent_back(answer)
        prompt, generated = turn["prompt_token_ids"], turn["generation_token_ids"]
        # R4: this prompt begins with the previous call's prompt + generation, unchanged
        assert prompt[: len(previous)] == previous, f"turn {step}"
        # the log-probs are the engine's, for exactly these tokens
        assert turn["generation_log_probs"] == [
            e["logprob"] for e in answer["choices"][0]["logprobs"]["content"]
        ]
        if "logit_bias" not in extra:  # unconstrained: recomputing them gives the same values
            recomputed = engine_logprobs(vllm_url, prompt, generated)
            assert turn["generation_log_probs"] == pytest.approx(recomputed, abs=1e-4)
        # drift: the template renders an earlier tool call with newlines the model did not
        # generate; the gateway's prompt keeps the generated ids instead
        if prompt != engine_render(vllm_url, messages, tools=TOOLS):
            drifted = True
        if extra is FORCE_PING:
            assert turn["tool_calls"][0]["function"]["name"] == "ping"  # vLLM's parser still runs
        previous = prompt + generated
        messages.append(turn)
        if turn.get("tool_calls"):
            call_id = turn["tool_calls"][0]["id"]
            messages.append({"role": "tool", "tool_call_id": call_id, "content": "pong"})
        else:
            messages.append({"role": "user", "content": f"and now {step}"})
    assert drifted, "the tool-call turns should re-render differently from their ids"


def test_splice_equals_the_engine_render_without_drift(
    vllm_gateway: GatewayProcess, vllm_url: str
) -> None:
    """Turns whose ids re-render identically (empty replies, tool calls given as the template's
    own ids): the spliced prompt is exactly what vLLM renders for the same history."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Ping please"}]
    for step in range(5):
        answer = ok(
            chat(
                vllm_gateway,
                model="tiny-train",
                messages=messages,
                tools=TOOLS,
                **TRAIN,
                **FORCE_EOS,
            )
        )
        turn = sent_back(answer)
        assert turn["generation_token_ids"] == [EOS]
        assert turn["prompt_token_ids"] == engine_render(vllm_url, messages, tools=TOOLS), step
        if step % 2 == 0:
            # a tool call in the history, with the ids the template gives it (no drift)
            call = {
                "id": f"call_{step}",
                "type": "function",
                "function": {"name": "ping", "arguments": "{}"},
            }
            turn = {"role": "assistant", "content": "", "tool_calls": [call]}
            with_call = engine_render(
                vllm_url, [*messages, turn], tools=TOOLS, add_generation_prompt=False
            )
            prompt = answer["choices"][0]["message"]["prompt_token_ids"]
            generated = with_call[len(prompt) : with_call.index(EOS, len(prompt)) + 1]
            turn.update(
                prompt_token_ids=prompt,
                generation_token_ids=generated,
                generation_log_probs=[0.0] * len(generated),
            )
            messages += [turn, {"role": "tool", "tool_call_id": call["id"], "content": "pong"}]
        else:
            messages += [turn, {"role": "user", "content": f"again {step}"}]


def test_drift_keeps_the_original_ids(vllm_gateway: GatewayProcess, vllm_url: str) -> None:
    """An assistant turn whose text re-tokenizes differently: " there" as two ids."""
    the, re_ = 298, 267  # " the" + "re"; the tokenizer itself gives " there" = 1417
    template = engine_render(
        vllm_url, [*HELLO, {"role": "assistant", "content": " there"}], add_generation_prompt=False
    )
    prompt = engine_render(vllm_url, HELLO)
    assert template[len(prompt) :] == [1417, EOS, 201]
    turn = {
        "role": "assistant",
        "content": " there",
        "prompt_token_ids": prompt,
        "generation_token_ids": [the, re_, EOS],
        "generation_log_probs": [-1.0, -1.0, -1.0],
    }
    history = [*HELLO, turn, {"role": "user", "content": "ok"}]
    answer = ok(chat(vllm_gateway, model="tiny-train", messages=history, max_tokens=2, **TRAIN))
    spliced = answer["choices"][0]["message"]["prompt_token_ids"]
    assert spliced[: len(prompt) + 3] == [*prompt, the, re_, EOS]
    rendered = engine_render(vllm_url, history)
    assert rendered[len(prompt)] == 1417 and len(spliced) == len(rendered) + 1


def test_9_merged_tokens_required_prefix(vllm_gateway: GatewayProcess, vllm_url: str) -> None:
    """NeMo RL's merged-tokens test: an explicit prefix splits " there" into " the" + "re";
    the prompt keeps it, and the first token equals vLLM's own generation on those ids."""
    rendered = engine_render(vllm_url, HELLO)
    there = rendered.index(1417)
    prefix = [*rendered[:there], 298, 267]
    expected = prefix + rendered[there + 1 :]
    body = {"required_prefix_token_ids": prefix, "max_tokens": 1, "temperature": 0.0, **CAPTURE}
    answer = ok(chat(vllm_gateway, model="tiny", messages=HELLO, **body))
    assert answer["choices"][0]["message"]["prompt_token_ids"] == expected
    direct = {
        "model": MODEL,
        "messages": HELLO,
        "max_tokens": 1,
        "temperature": 0.0,
        "return_token_ids": True,
        "kv_transfer_params": {"prompt_token_ids": expected},
    }
    reference = httpx.post(vllm_url + "/chat/completions", json=direct, timeout=60).json()
    assert (
        answer["choices"][0]["message"]["generation_token_ids"]
        == reference["choices"][0]["token_ids"]
    )


def test_clamp_and_context_overflow(vllm_gateway: GatewayProcess) -> None:
    # max_tokens above max_model_len would be a 400 from vLLM; the gateway clamps it
    body = {**FORCE_EOS, "max_tokens": 5000, **CAPTURE}
    answer = ok(chat(vllm_gateway, model="tiny-train", messages=HELLO, **body))
    assert answer["choices"][0]["message"]["generation_token_ids"] == [EOS]
    long = [{"role": "user", "content": " ".join(["word"] * 3000)}]
    response = chat(vllm_gateway, model="tiny-train", messages=long, max_tokens=4, **CAPTURE)
    assert response.status_code == 400
    assert "context length" in response.json()["error"]["message"]


def test_responses_turns_after_a_tool_call(vllm_gateway: GatewayProcess) -> None:
    """/v1/responses: the bundle sits on the last output item and turns stay contiguous.

    The tool call comes from a chat call (the forced-tool recipe needs `strict`, which the
    Responses translation drops for vLLM) and goes back as a function_call input item."""
    user = {"role": "user", "content": "Ping please"}
    chat_answer = ok(
        chat(vllm_gateway, model="tiny-train", messages=[user], tools=TOOLS, **TRAIN, **FORCE_PING)
    )
    message = sent_back(chat_answer)
    call = message["tool_calls"][0]
    bundle = {
        k: message[k] for k in ("prompt_token_ids", "generation_token_ids", "generation_log_probs")
    }
    tools = [{"type": "function", **TOOLS[0]["function"]}]
    body = {"model": "tiny-train", "tools": tools, "max_output_tokens": 4, **TRAIN}
    inp: list[dict[str, Any]] = [
        user,
        {
            "type": "function_call",
            "call_id": call["id"],
            "name": "ping",
            "arguments": "{}",
            **bundle,
        },
        {"type": "function_call_output", "call_id": call["id"], "output": "pong"},
    ]
    previous = bundle["prompt_token_ids"] + bundle["generation_token_ids"]
    for step in range(2):
        answer = ok(
            httpx.post(vllm_gateway.url + "/v1/responses", json={**body, "input": inp}, timeout=120)
        )
        check_response(answer)  # the Open Responses spec and the openai SDK's types
        for item in answer["output"]:  # logprobs reached vLLM, but the client did not ask
            for part in item.get("content") or () if item["type"] == "message" else ():
                assert part.get("logprobs") in ([], None), step
        last = answer["output"][-1]
        assert last["prompt_token_ids"][: len(previous)] == previous, step
        assert len(last["generation_token_ids"]) == len(last["generation_log_probs"])
        previous = last["prompt_token_ids"] + last["generation_token_ids"]
        inp += [*answer["output"], {"role": "user", "content": f"more {step}"}]
