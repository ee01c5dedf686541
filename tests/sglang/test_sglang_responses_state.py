"""Stateful Responses against the real SGLang 0.5.23 CPU server: five turns continued with
`previous_response_id` over HTTP (stored) and over one WebSocket (`store: false`), the RL token
contract intact (tests/stateful_rollout.py, shared with vLLM's suite)."""

from __future__ import annotations

from tests.gateway_process import GatewayProcess
from tests.sglang.test_sglang_rl import TOLERANCE, engine_logprobs
from tests.stateful_rollout import five_turns_both_ways


def test_five_stored_turns_keep_the_token_contract(
    sglang_gateway: GatewayProcess, sglang_root: str
) -> None:
    five_turns_both_ways(sglang_gateway, lambda p, g: engine_logprobs(sglang_root, p, g), TOLERANCE)
