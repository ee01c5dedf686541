"""The RL token contract against the real SGLang 0.5.23 CPU server (tiny random Llama).

SGLang takes the prompt as `input_ids` on /v1/chat/completions and answers the ids as
`choices[].prompt_token_ids` / `response_token_ids`. The engine's own references here: its
rendering (a one-token chat call with `return_prompt_token_ids`) and its log-probs
(`/generate` with `input_ids` and `return_logprob`).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.tiny_llama import EOS, FORCE_EOS, FORCE_PING, HELLO, MODEL, TOOLS, TRAIN


def engine_render(sglang_url: str, messages: list[dict], **extra: Any) -> list[int]:
    """What SGLang itself renders for this history (always with the generation prompt)."""
    clean = [
        {k: v for k, v in m.items() if not k.endswith(("token_ids", "log_probs"))} for m in messages
    ]
    body = {
        "model": MODEL,
        "messages": clean,
        "max_tokens": 1,
        "return_prompt_token_ids": True,
        **extra,
    }
    answer = httpx.post(sglang_url + "/chat/completions", json=body, timeout=60).json()
    return answer["choices"][0]["prompt_token_ids"]


# SGLang serves the float32 model in float16 (`--dtype auto`), so a prefill over P + G and
# the decode steps that sampled G differ in the 4th decimal (measured up to 1.3e-4).
TOLERANCE = 1e-3


def engine_logprobs(sglang_root: str, prompt: list[int], generated: list[int]) -> list[float]:
    """SGLang's own log-probs of `generated` after `prompt` (/generate over P + G)."""
    body = {
        "input_ids": prompt + generated,
        "sampling_params": {"max_new_tokens": 1, "temperature": 0},
        "return_logprob": True,
        "logprob_start_len": 0,
    }
    meta = httpx.post(sglang_root + "/generate", json=body, timeout=60).json()["meta_info"]
    rows = meta["input_token_logprobs"]  # [logprob, token_id, text] per input position
    return [rows[len(prompt) + i][0] for i in range(len(generated))]


def chat(gw: GatewayProcess, **body: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=120)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def sent_back(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer["choices"][0]["message"].items() if v is not None}


def test_bundle_equals_the_engine_values(
    sglang_gateway: GatewayProcess, sglang_url: str, sglang_root: str
) -> None:
    answer = ok(chat(sglang_gateway, model="tiny-train", messages=HELLO, max_tokens=4, **TRAIN))
    choice = answer["choices"][0]
    message = choice["message"]
    assert message["prompt_token_ids"] == engine_render(sglang_url, HELLO)
    generated = message["generation_token_ids"]
    assert len(generated) == len(message["generation_log_probs"]) == 4
    assert message["generation_log_probs"] == [e["logprob"] for e in choice["logprobs"]["content"]]
    # SGLang's tokens are text; the gateway writes the contract's "token_id:<n>"
    assert [e["token"] for e in choice["logprobs"]["content"]] == [
        f"token_id:{t}" for t in generated
    ]
    recomputed = engine_logprobs(sglang_root, message["prompt_token_ids"], generated)
    assert message["generation_log_probs"] == pytest.approx(recomputed, abs=TOLERANCE)
    assert answer["usage"]["prompt_tokens"] == len(message["prompt_token_ids"])
    # not asked for: SGLang's transport fields do not leak
    assert "response_token_ids" not in choice and "prompt_token_ids" not in choice


def test_prefix_without_capture_leaks_no_ids(
    sglang_gateway: GatewayProcess, sglang_url: str
) -> None:
    prompt = engine_render(sglang_url, HELLO)
    body = {"required_prefix_token_ids": prompt, "max_tokens": 2, "temperature": 0}
    answer = ok(chat(sglang_gateway, model="tiny", messages=HELLO, **body))
    choice = answer["choices"][0]
    assert "response_token_ids" not in choice and "prompt_token_ids" not in choice
    assert choice["message"]["content"]


def test_five_turn_tool_rollout_is_contiguous(
    sglang_gateway: GatewayProcess, sglang_url: str, sglang_root: str
) -> None:
    """Tool call, tool result, text, empty reply, text: every prompt extends the last one."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Ping please"}]
    plan = [FORCE_PING, {"max_tokens": 5}, FORCE_PING, FORCE_EOS, {"max_tokens": 5}]
    previous: list[int] = []
    drifted = False
    for step, extra in enumerate(plan):
        answer = ok(
            chat(
                sglang_gateway, model="tiny-train", messages=messages, tools=TOOLS, **TRAIN, **extra
            )
        )
        turn = sent_back(answer)
        prompt, generated = turn["prompt_token_ids"], turn["generation_token_ids"]
        assert prompt[: len(previous)] == previous, f"turn {step}"
        assert turn["generation_log_probs"] == [
            e["logprob"] for e in answer["choices"][0]["logprobs"]["content"]
        ]
        if "logit_bias" not in extra:
            recomputed = engine_logprobs(sglang_root, prompt, generated)
            assert turn["generation_log_probs"] == pytest.approx(recomputed, abs=TOLERANCE)
        if prompt != engine_render(sglang_url, messages, tools=TOOLS):
            drifted = True
        if extra is FORCE_PING:
            assert turn["tool_calls"][0]["function"]["name"] == "ping"  # SGLang's parser ran
        previous = prompt + generated
        messages.append(turn)
        if turn.get("tool_calls"):
            call_id = turn["tool_calls"][0]["id"]
            messages.append({"role": "tool", "tool_call_id": call_id, "content": "pong"})
        else:
            messages.append({"role": "user", "content": f"and now {step}"})
    assert drifted, "the tool-call turns should re-render differently from their ids"


def test_splice_equals_the_engine_render_without_drift(
    sglang_gateway: GatewayProcess, sglang_url: str
) -> None:
    """Empty replies re-render identically: the spliced prompt is SGLang's own rendering."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Ping please"}]
    for step in range(3):
        answer = ok(
            chat(
                sglang_gateway,
                model="tiny-train",
                messages=messages,
                tools=TOOLS,
                **TRAIN,
                **FORCE_EOS,
            )
        )
        turn = sent_back(answer)
        assert turn["generation_token_ids"] == [EOS]
        assert turn["prompt_token_ids"] == engine_render(sglang_url, messages, tools=TOOLS), step
        messages += [turn, {"role": "user", "content": f"again {step}"}]


def test_drift_keeps_the_original_ids(sglang_gateway: GatewayProcess, sglang_url: str) -> None:
    """An assistant turn whose text re-tokenizes differently: " there" as two ids."""
    the, re_ = 298, 267  # " the" + "re"; the tokenizer itself gives " there" = 1417
    prompt = engine_render(sglang_url, HELLO)
    turn = {
        "role": "assistant",
        "content": " there",
        "prompt_token_ids": prompt,
        "generation_token_ids": [the, re_, EOS],
        "generation_log_probs": [-1.0, -1.0, -1.0],
    }
    history = [*HELLO, turn, {"role": "user", "content": "ok"}]
    answer = ok(chat(sglang_gateway, model="tiny-train", messages=history, max_tokens=2, **TRAIN))
    spliced = answer["choices"][0]["message"]["prompt_token_ids"]
    assert spliced[: len(prompt) + 3] == [*prompt, the, re_, EOS]
    rendered = engine_render(sglang_url, history)
    assert rendered[len(prompt)] == 1417 and len(spliced) == len(rendered) + 1


def test_training_route_checks(sglang_gateway: GatewayProcess) -> None:
    response = chat(sglang_gateway, model="tiny-train", messages=HELLO, temperature=0.6)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "temperature"
    body = {"logprobs": True, "return_tokens_as_token_ids": True, "top_logprobs": None}
    response = chat(sglang_gateway, model="tiny-train", messages=HELLO, **body)
    assert response.status_code == 400
    assert "top_logprobs" in response.json()["error"]["message"]


def test_responses_bundle_turns_stay_contiguous(sglang_gateway: GatewayProcess) -> None:
    body = {"model": "tiny-train", "max_output_tokens": 4, **TRAIN}
    inp: list[dict[str, Any]] = [{"role": "user", "content": "Hello there"}]
    previous: list[int] = []
    for step in range(2):
        answer = ok(
            httpx.post(
                sglang_gateway.url + "/v1/responses", json={**body, "input": inp}, timeout=120
            )
        )
        last = answer["output"][-1]
        assert last["prompt_token_ids"][: len(previous)] == previous, step
        assert len(last["generation_token_ids"]) == len(last["generation_log_probs"]) == 4
        previous = last["prompt_token_ids"] + last["generation_token_ids"]
        inp += [*answer["output"], {"role": "user", "content": f"more {step}"}]
