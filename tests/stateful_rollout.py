"""Stateful Responses against a real engine, shared by tests/vllm and tests/sglang: a 5-turn
rollout continued with `previous_response_id` only (HTTP, stored) and over one WebSocket
(`store: false`, the connection's memory), with the RL token contract intact: every prompt
begins with the previous prompt + generation, and the log-probs are the engine's own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

from tests.gateway_process import GatewayProcess
from tests.tiny_llama import EOS, TRAIN

# The engine's own log-probs of `generated` after `prompt`.
EngineLogprobs = Callable[[list[int], list[int]], list[float]]

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
    engine_logprobs: EngineLogprobs,
    tolerance: float,
    answer: dict[str, Any],
    previous: list[int],
    step: int,
    extra: dict,
) -> list[int]:
    last = answer["output"][-1]
    prompt, generated = last["prompt_token_ids"], last["generation_token_ids"]
    assert prompt[: len(previous)] == previous, f"turn {step + 1} is not contiguous"
    assert len(last["generation_log_probs"]) == len(generated) > 0
    if "logit_bias" not in extra:  # unconstrained: the engine recomputes the same values
        recomputed = engine_logprobs(prompt, generated)
        assert last["generation_log_probs"] == pytest.approx(recomputed, abs=tolerance)
    assert answer["usage"]["input_tokens"] == len(prompt)  # the engine used exactly these ids
    return prompt + generated


def http_rollout(gw: GatewayProcess, engine_logprobs: EngineLogprobs, tolerance: float) -> None:
    previous: list[int] = []
    response_id = None
    for step, extra in enumerate(PLAN):
        body = {**BODY, **extra, "input": f"http turn {step}"}
        if response_id:
            body["previous_response_id"] = response_id
        response = httpx.post(gw.url + "/v1/responses", json=body, timeout=120)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["previous_response_id"] == response_id and answer["store"] is True
        previous = check_turn(engine_logprobs, tolerance, answer, previous, step, extra)
        response_id = answer["id"]
    # the stored chain lists every turn's input and output, in order
    items = httpx.get(
        f"{gw.url}/v1/responses/{response_id}/input_items",
        params={"order": "asc", "limit": 100},
    ).json()["data"]
    users = [i["content"][0]["text"] for i in items if i.get("role") == "user"]
    assert users == [f"http turn {step}" for step in range(len(PLAN))]


async def ws_rollout(gw: GatewayProcess, engine_logprobs: EngineLogprobs, tolerance: float) -> None:
    previous: list[int] = []
    response_id = None
    async with websockets.connect(gw.url.replace("http", "ws") + "/v1/responses") as ws:
        for step, extra in enumerate(PLAN):
            body = {"type": "response.create", "store": False, **BODY, **extra,
                    "input": f"socket turn {step}"}  # fmt: skip
            if response_id:
                body["previous_response_id"] = response_id
            await ws.send(json.dumps(body))
            types = []
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 120))
                assert event["type"] != "error", event
                types.append(event["type"])
                if event["type"] in ("response.completed", "response.incomplete"):
                    break
            assert types[:2] == ["response.created", "response.in_progress"]
            answer = event["response"]
            assert answer["previous_response_id"] == response_id and answer["store"] is False
            previous = check_turn(engine_logprobs, tolerance, answer, previous, step, extra)
            response_id = answer["id"]


def five_turns_both_ways(
    gw: GatewayProcess, engine_logprobs: EngineLogprobs, tolerance: float
) -> None:
    http_rollout(gw, engine_logprobs, tolerance)
    asyncio.run(ws_rollout(gw, engine_logprobs, tolerance))
