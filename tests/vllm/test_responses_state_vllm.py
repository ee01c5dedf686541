"""Stateful Responses against the real vLLM 0.32 CPU server: five turns continued with
`previous_response_id` over HTTP (stored) and over one WebSocket (`store: false`), the RL token
contract intact (tests/stateful_rollout.py, shared with SGLang's suite)."""

from __future__ import annotations

from tests.gateway_process import GatewayProcess
from tests.stateful_rollout import five_turns_both_ways
from tests.vllm.test_rl_tokens import engine_logprobs


def test_five_stored_turns_keep_the_token_contract(
    vllm_gateway: GatewayProcess, vllm_url: str
) -> None:
    five_turns_both_ways(vllm_gateway, lambda p, g: engine_logprobs(vllm_url, p, g), 1e-4)
