"""Stateful Responses against the real SGLang 0.5.23 CPU server (the twin of
tests/vllm/test_responses_state_vllm.py): a 5-turn rollout continued with
`previous_response_id` only (HTTP, stored) and over one WebSocket (`store: false`, the
connection's memory), with the RL token contract intact: every prompt begins with the
previous prompt + generation, and the log-probs are the engine's own."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from tests.gateway_process import GatewayProcess
from tests.sglang.test_sglang_rl import EOS, TOLERANCE, TRAIN, engine_logprobs, ok

# text turns, one of them an empty reply ([EOS] only): the splice's hardest case
PLAN: list[dict[str, Any]] = [
    {"max_output_tokens": 5},
    {"logit_bias": {str(EOS): 100}, "max_output_tokens": 4},
    {"max_output_tokens": 5},
    {"max_output_tokens": 3},
    {"max_output_tokens": 5},
]
BODY = {"model": "tiny-train", **TRAIN}


def check_turn(
    root: str, answer: dict[str, Any], previous: list[int], step: int, extra: dict
) -> list[int]:
    last = answer["output"][-1]
    prompt, generated = last["prompt_token_ids"], last["generation_token_ids"]
    assert prompt[: len(previous)] == previous, f"turn {step + 1} is not contiguous"
    assert len(last["generation_log_probs"]) == len(generated) > 0
    if "logit_bias" not in extra:  # unconstrained: the engine recomputes the same values
        recomputed = engine_logprobs(root, prompt, generated)
        assert last["generation_log_probs"] == pytest.approx(recomputed, abs=TOLERANCE)
    assert answer["usage"]["input_tokens"] == len(prompt)  # SGLang used exactly these ids
    return prompt + generated


async def ws_rollout(gw: GatewayProcess, root: str) -> None:
    previous: list[int] = []
    response_id = None
    async with websockets.connect(gw.url.replace("http", "ws") + "/v1/responses") as ws:
        for step, extra in enumerate(PLAN):
            body = {"type": "response.create", "store": False, **BODY, **extra,
                    "input": f"socket turn {step}"}  # fmt: skip
            if response_id:
                body["previous_response_id"] = response_id
            await ws.send(json.dumps(body))
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 120))
                assert event["type"] != "error", event
                if event["type"] in ("response.completed", "response.incomplete"):
                    break
            answer = event["response"]
            assert answer["previous_response_id"] == response_id and answer["store"] is False
            previous = check_turn(root, answer, previous, step, extra)
            response_id = answer["id"]


def test_five_stored_turns_keep_the_token_contract(
    sglang_gateway: GatewayProcess, sglang_root: str
) -> None:
    previous: list[int] = []
    response_id = None
    for step, extra in enumerate(PLAN):
        body = {**BODY, **extra, "input": f"http turn {step}"}
        if response_id:
            body["previous_response_id"] = response_id
        answer = ok(httpx.post(sglang_gateway.url + "/v1/responses", json=body, timeout=120))
        assert answer["previous_response_id"] == response_id and answer["store"] is True
        previous = check_turn(sglang_root, answer, previous, step, extra)
        response_id = answer["id"]
    asyncio.run(ws_rollout(sglang_gateway, sglang_root))
