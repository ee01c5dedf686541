"""Reading the bundle out of engine answers (vLLM and SGLang shapes) and attaching it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.tokens import MissingTokens, attach_bundle, extract_bundle, ids_as_token_strings
from tests.wire.sglang import FIXTURES as SGLANG_FIXTURES

PROMPT = [1, 87, 513, 201, 42, 1708, 339, 1417, 2, 201, 1, 67, 324, 928, 821, 201]


def vllm_answer() -> dict[str, Any]:
    """vLLM 0.32 with logprobs, top_logprobs 0, return_tokens_as_token_ids, return_token_ids."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "tiny-llama",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "rawtype", "reasoning": None},
                "logprobs": {
                    "content": [
                        {
                            "token": "token_id:1831",
                            "logprob": -7.1,
                            "bytes": [114],
                            "top_logprobs": [],
                        },
                        {
                            "token": "token_id:606",
                            "logprob": -7.5,
                            "bytes": [116],
                            "top_logprobs": [],
                        },
                    ]
                },
                "finish_reason": "length",
                "stop_reason": None,
                "token_ids": [1831, 606],
            }
        ],
        "usage": {"prompt_tokens": 16, "completion_tokens": 2, "total_tokens": 18},
        "prompt_logprobs": None,
        "prompt_token_ids": PROMPT,
        "kv_transfer_params": None,
    }


def sglang_answer() -> dict[str, Any]:
    """SGLang 0.5.23's chat answer with return_token_ids (recorded, tests/wire/sglang.py):
    `prompt_token_ids` and `response_token_ids` on the choice, text log-prob tokens."""
    return copy.deepcopy(SGLANG_FIXTURES["sglang-token-ids"]["json"])


def test_vllm_bundle_is_the_engine_values() -> None:
    bundle = extract_bundle(vllm_answer())
    assert bundle == {
        "prompt_token_ids": PROMPT,
        "generation_token_ids": [1831, 606],
        "generation_log_probs": [-7.1, -7.5],
    }


def test_ids_from_token_id_strings_when_token_ids_are_absent() -> None:
    answer = vllm_answer()
    answer["choices"][0].pop("token_ids")
    assert extract_bundle(answer)["generation_token_ids"] == [1831, 606]


def test_sglang_shape() -> None:
    answer = sglang_answer()
    bundle = extract_bundle(answer)
    assert bundle["prompt_token_ids"] == PROMPT
    assert bundle["generation_token_ids"] == [1831, 606]
    assert bundle["generation_log_probs"] == [-7.106235980987549, -7.087948322296143]
    ids_as_token_strings(answer, bundle["generation_token_ids"])
    assert [e["token"] for e in answer["choices"][0]["logprobs"]["content"]] == [
        "token_id:1831",
        "token_id:606",
    ]


@pytest.mark.parametrize(
    "breaks",
    [
        lambda a: a.pop("prompt_token_ids"),
        lambda a: a["choices"][0].update(logprobs=None),
        lambda a: a["choices"][0]["logprobs"]["content"].pop(),
        lambda a: a["choices"][0].update(token_ids=None, logprobs=None),
        lambda a: a.update(choices=[]),
    ],
)
def test_missing_pieces(breaks: Any) -> None:
    answer = vllm_answer()
    breaks(answer)
    with pytest.raises(MissingTokens):
        extract_bundle(answer)


def test_empty_generation() -> None:
    answer = vllm_answer()
    answer["choices"][0].update(token_ids=[], logprobs=None, finish_reason="abort")
    assert extract_bundle(answer)["generation_log_probs"] == []


def test_3b_prime_shape_bundle_on_the_message_logprobs_kept() -> None:
    # NeMo RL's test_vllm_http_server: message carries the three fields and
    # generation_log_probs == [c.logprob for c in logprobs.content]
    answer = vllm_answer()
    attach_bundle(answer, extract_bundle(answer), keep_transport=False, keep_logprobs=True)
    choice = answer["choices"][0]
    message = choice["message"]
    assert message["prompt_token_ids"] == PROMPT
    assert message["generation_token_ids"] == [1831, 606]
    assert message["generation_log_probs"] == [e["logprob"] for e in choice["logprobs"]["content"]]
    assert choice["logprobs"]["content"][0]["token"] == "token_id:1831"
    # the transport copies were not asked for (no return_token_ids): null, as vLLM sends them
    assert answer["prompt_token_ids"] is None and choice["token_ids"] is None


def test_transport_copies_kept_untouched_when_asked() -> None:
    answer = vllm_answer()
    before = copy.deepcopy(answer)
    attach_bundle(answer, extract_bundle(answer), keep_transport=True, keep_logprobs=False)
    assert answer["prompt_token_ids"] == before["prompt_token_ids"]
    assert answer["choices"][0]["token_ids"] == before["choices"][0]["token_ids"]
    assert answer["choices"][0]["logprobs"] is None  # the client did not ask for logprobs


def test_sglang_transport_ids_do_not_leak_unless_asked() -> None:
    answer = sglang_answer()
    attach_bundle(answer, extract_bundle(answer), keep_transport=False, keep_logprobs=True)
    choice = answer["choices"][0]
    assert "response_token_ids" not in choice and "prompt_token_ids" not in choice
    assert choice["message"]["generation_token_ids"] == [1831, 606]
    kept = sglang_answer()
    attach_bundle(kept, extract_bundle(kept), keep_transport=True, keep_logprobs=True)
    assert kept["choices"][0]["response_token_ids"] == [1831, 606]
