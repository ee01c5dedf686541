"""NeMo Gym's own training client (`vllm_model`, as NeMo RL uses it) against the gateway.

Runs under the Python 3.13 venv that holds nemo-gym (tests/vllm/nemo_gym_venv.sh), not the
project's venv: `python nemo_gym_client.py GATEWAY_URL/v1 ROUTE`. Prints one JSON object
with what the test checks. Recipe: nemo_gym.md §e.3. `python nemo_gym_client.py
GATEWAY_URL/v1 ROUTE --openai-model` drives Gym's `openai_model` server instead, which
speaks the Responses API to the gateway (`openai_model_turns`).
"""

from __future__ import annotations

import json
import sys
from unittest.mock import MagicMock

import nemo_gym.server_utils
from fastapi.testclient import TestClient
from nemo_gym.openai_utils import NeMoGymChatCompletion
from nemo_gym.server_utils import ServerClient
from responses_api_models.vllm_model.app import VLLMModel, VLLMModelConfig

BUNDLE = ("prompt_token_ids", "generation_token_ids", "generation_log_probs")


def main(base_url: str, route: str) -> dict:
    # as Gym's own unit tests do: no global config file
    nemo_gym.server_utils.get_global_config_dict = MagicMock(return_value={})
    config = VLLMModelConfig(
        host="127.0.0.1",
        port=0,
        entrypoint="",
        name="policy_model",
        base_url=base_url,
        api_key="dummy",
        model=route,
        return_token_id_information=True,  # == vllm_model_for_training.yaml
        uses_reasoning_parser=True,
        # the tiny random model closes a forced call only with `{` and `}` favoured
        extra_body={"logit_bias": {"93": 30, "95": 30}},
    )
    server = VLLMModel(
        config=config, server_client=MagicMock(spec=ServerClient, global_config_dict={})
    )
    tools = [
        {
            "type": "function",
            "name": "ping",
            "description": "p",
            "strict": True,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        }
    ]
    sampling = {"temperature": 1.0, "top_p": 1.0}
    inp: list = [{"role": "user", "content": "Ping please"}]
    # one client for both turns: Gym's global aiohttp session is bound to its event loop
    with TestClient(server.setup_webserver()) as client:
        first = {"input": inp, "tools": tools, "tool_choice": {"type": "function", "name": "ping"}}
        out1 = client.post(
            "/v1/responses", json={**first, "max_output_tokens": 120, **sampling}
        ).json()["output"]
        calls = [o for o in out1 if o["type"] == "function_call"]
        follow = (
            {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "pong"}
            if calls
            else {"role": "user", "content": "again"}
        )
        inp2 = [*inp, *out1, follow]
        out2 = client.post(
            "/v1/responses",
            json={"input": inp2, "tools": tools, "max_output_tokens": 4, **sampling},
        ).json()["output"]
    p1 = out1[-1]["prompt_token_ids"] + out1[-1]["generation_token_ids"]
    return {
        "turn1_types": [o["type"] for o in out1],
        "turn2_types": [o["type"] for o in out2],
        "bundles_complete": all(all(k in o[-1] for k in BUNDLE) for o in (out1, out2)),
        "lengths_match": all(
            len(o[-1]["generation_token_ids"]) == len(o[-1]["generation_log_probs"])
            for o in (out1, out2)
        ),
        "contiguous": out2[-1]["prompt_token_ids"][: len(p1)] == p1,
    }


def openai_model_turns(base_url: str, route: str, turns: int = 3) -> dict:
    """Gym's `openai_model` server over /v1/responses with token capture as extra body: each
    turn sends the earlier outputs back as input. With text logprobs on those messages Gym
    0.7 failed to serialize them on the turn after (issue 17)."""
    from responses_api_models.openai_model.app import SimpleModelServer, SimpleModelServerConfig

    nemo_gym.server_utils.get_global_config_dict = MagicMock(return_value={})
    config = SimpleModelServerConfig(
        host="127.0.0.1",
        port=0,
        entrypoint="",
        name="policy_model",
        openai_base_url=base_url,
        openai_api_key="dummy",
        openai_model=route,
        extra_body={"logprobs": True, "top_logprobs": 0, "return_tokens_as_token_ids": True},
    )
    server = SimpleModelServer(
        config=config, server_client=MagicMock(spec=ServerClient, global_config_dict={})
    )
    inp: list = [{"role": "user", "content": "Hello"}]
    outputs = []
    with TestClient(server.setup_webserver()) as client:
        for turn in range(turns):
            answer = client.post("/v1/responses", json={"input": inp, "max_output_tokens": 4})
            if answer.status_code != 200:
                return {"failed_turn": turn + 1, "status": answer.status_code, "body": answer.text}
            out = answer.json()["output"]
            outputs.append(out)
            inp = [*inp, *out, {"role": "user", "content": f"more {turn}"}]
    text_logprobs = [
        part.get("logprobs")
        for out in outputs
        for item in out
        if item["type"] == "message"
        for part in item["content"]
    ]
    return {
        "turns": len(outputs),
        "bundles_complete": all(all(k in o[-1] for k in BUNDLE) for o in outputs),
        "text_logprobs_empty": all(not lps for lps in text_logprobs),
    }


def validate_chat(raw: dict) -> bool:
    """Gym's schema for a chat answer with the training fields."""
    NeMoGymChatCompletion.model_validate(raw)
    return True


if __name__ == "__main__":
    if sys.argv[3:] == ["--openai-model"]:
        print(json.dumps(openai_model_turns(sys.argv[1], sys.argv[2])))
        sys.exit(0)
    result = main(sys.argv[1], sys.argv[2])
    if len(sys.argv) > 3:  # a raw gateway chat answer to validate with Gym's pydantic type
        result["schema_ok"] = validate_chat(json.loads(sys.argv[3]))
    print(json.dumps(result))
