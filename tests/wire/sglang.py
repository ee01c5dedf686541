"""SGLang shapes, recorded from a real SGLang 0.5.23 server (PyPI wheel, CPU, the tiny random
Llama of tests/vllm/make_tiny_model.py, `--tool-call-parser hermes`; tests/sglang/) on
2026-12-07. Requests: tests/sglang/README.md. Only where the tiny model cannot produce
something is a value inserted, and the entry says so.
"""

from __future__ import annotations

from tests.wire.common import error

M = "tiny-llama"
USAGE = {"prompt_tokens": 16, "total_tokens": 19, "completion_tokens": 3,
         "prompt_tokens_details": None, "reasoning_tokens": 0,
         "completion_tokens_details": None}  # fmt: skip


def _metadata(n: int) -> dict:
    return {"weight_version": "default",
            "weight_versions": [{"version": "default", "start": 0, "end": n}]}  # fmt: skip


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "6d3b0adccfbf403aabeedd268405006e", "object": "chat.completion.chunk",
            "created": 1796607346, "model": M,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish,
                         "matched_stop": None}]}  # fmt: skip


FIXTURES = {
    # The envelope (bare hex id, matched_stop, usage.reasoning_tokens, metadata, the chunk
    # sequence) is the real server's; the tiny model has no reasoning, so the reasoning and
    # content texts ("Six times seven.", "42") are inserted into reasoning_content/content.
    "sglang-reasoning": {
        "status": 200,
        "json": {
            "id": "67e6f42031264df4b6e79b88f835489f", "object": "chat.completion",
            "created": 1796607346, "model": M,
            "choices": [{"index": 0,
                         "message": {"role": "assistant", "content": "42",
                                     "reasoning_content": "Six times seven."},
                         "logprobs": None, "finish_reason": "stop", "matched_stop": 2}],
            "usage": USAGE, "metadata": _metadata(3),
        },
        "chunks": [
            _chunk({"reasoning_content": None, "role": "assistant", "content": ""}),
            _chunk({"reasoning_content": "Six times", "content": None}),
            _chunk({"reasoning_content": " seven.", "content": None}),
            _chunk({"reasoning_content": None, "content": "42"}),
            _chunk({"reasoning_content": None}, "stop"),
        ],
    },
    # vLLM's forcing recipe (strict empty-object tool, logit_bias {"93": 30, "95": 30}, named
    # tool_choice, max_tokens 40, temperature 0): SGLang parses the call but does not stop
    # after it, hence finish_reason "length".
    "sglang-tool": {
        "status": 200,
        "json": {
            "id": "7fdf76fd1e2c47d498fb2eaf4246900f", "object": "chat.completion",
            "created": 1796607347, "model": M,
            "choices": [{"index": 0,
                         "message": {"role": "assistant", "content": "",
                                     "reasoning_content": None,
                                     "tool_calls": [{"id": "call_d3b9d6e7388d44f4a4057104",
                                                     "index": 0, "type": "function",
                                                     "function": {"name": "ping",
                                                                  "arguments": "{}"}}]},
                         "logprobs": None, "finish_reason": "length", "matched_stop": None}],
            "usage": {**USAGE, "prompt_tokens": 244, "total_tokens": 284,
                      "completion_tokens": 40},
            "metadata": _metadata(40),
        },
    },
    # "Hello there" as input_ids, max_tokens 2, temperature 0, logprobs + top_logprobs 0,
    # return_token_ids + return_prompt_token_ids: the ids sit on the choice, the generated
    # ones as `response_token_ids`; log-prob tokens are text.
    "sglang-token-ids": {
        "status": 200,
        "json": {
            "id": "6d35e99ea5df456ea4a72c4747dcc428", "object": "chat.completion",
            "created": 1796607348, "model": M,
            "choices": [{"index": 0,
                         "message": {"role": "assistant", "content": "rawtype",
                                     "reasoning_content": None},
                         "logprobs": {"content": [
                             {"token": "raw", "bytes": [114, 97, 119],
                              "logprob": -7.106235980987549, "top_logprobs": []},
                             {"token": "type", "bytes": [116, 121, 112, 101],
                              "logprob": -7.087948322296143, "top_logprobs": []}]},
                         "finish_reason": "length", "matched_stop": None,
                         "prompt_token_ids": [1, 87, 513, 201, 42, 1708, 339, 1417, 2, 201,
                                              1, 67, 324, 928, 821, 201],
                         "response_token_ids": [1831, 606]}],
            "usage": {**USAGE, "total_tokens": 18, "completion_tokens": 2},
            "metadata": _metadata(2),
        },
    },
    # stream + return_token_ids
    "sglang-error": error(400, {"object": "error", "message":
        "return_token_ids is not supported with streaming on /v1/chat/completions. Please set "
        "stream=false when using return_token_ids=true.", "type": "BadRequest", "param": None,
        "code": 400}),
    # "Hello there" with max_tokens 5000
    "sglang-overflow": error(400, {"object": "error", "message":
        "Requested token count exceeds the model's maximum context length of 2048 tokens. You "
        "requested a total of 5016 tokens: 16 tokens from the input messages and 5000 tokens "
        "for the completion. Please reduce the number of tokens in the input messages or the "
        "completion to fit within the limit.", "type": "BadRequestError", "param": None,
        "code": 400}),
    # 3000 words of input
    "sglang-overflow-input": error(400, {"object": "error", "message":
        "The input (6011 tokens) is longer than the model's context length (2048 tokens).",
        "type": "BadRequestError", "param": None, "code": 400}),
}  # fmt: skip
