"""The RL token contract with stored turns: a rollout continued with `previous_response_id`
(over HTTP and WebSocket) prompts the engine with exactly the ids of the same rollout sent
back in full by the client, on vLLM- and SGLang-shaped routes (the toy token engine)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.rl_fixtures import engine, gw, ok
from tests.gateway_process import GatewayProcess
from tests.token_engine import REPLY, TOOL_REPLY, ToyEngine

__all__ = ["engine", "gw"]  # module-scoped fixtures used by the tests below

TOOLS = [{"type": "function", "name": "ping", "parameters": {"type": "object"}}]
BODY = {"tools": TOOLS, "logprobs": True, "return_tokens_as_token_ids": True}
FORCED = {"type": "function", "name": "ping"}
TURNS = 5


def next_input(step: int, output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = output[-1]
    if last["type"] == "function_call":
        return [{"type": "function_call_output", "call_id": last["call_id"], "output": "pong"}]
    return [{"role": "user", "content": f"step {step}"}]


def choice(step: int) -> dict[str, Any]:
    return {"tool_choice": FORCED} if step % 2 == 0 else {}


def rollout_full(gw: GatewayProcess, model: str) -> list[dict[str, Any]]:
    """The client resends everything (as NeMo Gym does today)."""
    inp: list[dict[str, Any]] = [{"role": "user", "content": "count to 5"}]
    outputs = []
    for step in range(TURNS):
        body = {"model": model, "input": inp, **BODY, **choice(step)}
        output = ok(httpx.post(gw.url + "/v1/responses", json=body, timeout=30))["output"]
        outputs.append(output)
        inp = [*inp, *output, *next_input(step, output)]
    return outputs


def rollout_stored(gw: GatewayProcess, model: str) -> list[dict[str, Any]]:
    """Only new input each turn, over HTTP, with previous_response_id."""
    inp: list[dict[str, Any]] = [{"role": "user", "content": "count to 5"}]
    previous = None
    outputs = []
    for step in range(TURNS):
        body = {"model": model, "input": inp, **BODY, **choice(step)}
        if previous:
            body["previous_response_id"] = previous
        answer = ok(httpx.post(gw.url + "/v1/responses", json=body, timeout=30))
        assert answer["previous_response_id"] == previous
        outputs.append(answer["output"])
        previous, inp = answer["id"], next_input(step, answer["output"])
    return outputs


async def rollout_ws(gw: GatewayProcess, model: str, store: bool) -> list[dict[str, Any]]:
    inp: list[dict[str, Any]] = [{"role": "user", "content": "count to 5"}]
    previous = None
    outputs = []
    async with websockets.connect(gw.url.replace("http", "ws") + "/v1/responses") as ws:
        for step in range(TURNS):
            body = {"type": "response.create", "model": model, "input": inp, "store": store}
            body |= {**BODY, **choice(step)}
            if previous:
                body["previous_response_id"] = previous
            await ws.send(json.dumps(body))
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert event["type"] != "error", event
                if event["type"] == "response.completed":
                    break
            answer = event["response"]
            outputs.append(answer["output"])
            previous, inp = answer["id"], next_input(step, answer["output"])
    return outputs


def check_contiguous(outputs: list[list[dict[str, Any]]]) -> None:
    previous: list[int] = []
    for step, output in enumerate(outputs):
        bundle = output[-1]
        assert bundle["prompt_token_ids"][: len(previous)] == previous, f"turn {step + 1}"
        assert bundle["generation_token_ids"] == (TOOL_REPLY if step % 2 == 0 else REPLY)
        assert len(bundle["generation_log_probs"]) == len(bundle["generation_token_ids"])
        previous = bundle["prompt_token_ids"] + bundle["generation_token_ids"]


def prompts(outputs: list[list[dict[str, Any]]]) -> list[list[int]]:
    return [output[-1]["prompt_token_ids"] for output in outputs]


@pytest.mark.parametrize("model", ["toy-train", "sg"])
def test_stored_turns_splice_as_client_sent_ones(
    gw: GatewayProcess, engine: ToyEngine, model: str
) -> None:
    full = rollout_full(gw, model)
    check_contiguous(full)
    stored = rollout_stored(gw, model)
    check_contiguous(stored)
    assert prompts(stored) == prompts(full)
    for store in (False, True):
        over_ws = asyncio.run(rollout_ws(gw, model, store))
        check_contiguous(over_ws)
        assert prompts(over_ws) == prompts(full)
    if model == "toy-train":  # the engine was prompted with those very ids
        sent = engine.calls("/v1/chat/completions", "toy")[-TURNS:]
        assert [b["kv_transfer_params"]["prompt_token_ids"] for b in sent] == prompts(full)
