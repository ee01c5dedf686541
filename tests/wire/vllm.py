"""vLLM 0.32 shapes (tests/vllm/README.md, vllm/entrypoints/openai/chat_completion/protocol.py)."""

from __future__ import annotations

from tests.wire.common import answer, chunk, error

M = "tiny-llama"
EXTRAS = {"prompt_logprobs": None, "prompt_token_ids": [1, 87, 513], "kv_transfer_params": None}
CHOICE = {"stop_reason": None, "token_ids": [1831, 606]}

FIXTURES = {
    "vllm-reasoning": {
        "status": 200,
        "json": answer(
            M,
            {"role": "assistant", "content": "42", "reasoning": "Six times seven.",
             "tool_calls": []},
            system_fingerprint="vllm-0.32.0-4b3392c6", choice=CHOICE, **EXTRAS,
        ),
        "chunks": [
            {**chunk(M, {"role": "assistant", "content": ""}), "prompt_token_ids": [1, 87, 513]},
            chunk(M, {"reasoning": "Six times"}),
            chunk(M, {"reasoning": " seven."}),
            chunk(M, {"content": "42"}),
            chunk(M, {}, "stop"),
        ],
    },
    # vLLM before 0.11 answered with reasoning_content only
    "vllm-old-reasoning": {
        "status": 200,
        "json": answer(M, {"role": "assistant", "content": "42",
                           "reasoning_content": "Six times seven."}),
        "chunks": [
            chunk(M, {"role": "assistant", "content": ""}),
            chunk(M, {"reasoning_content": "Six times seven."}),
            chunk(M, {"content": "42"}),
            chunk(M, {}, "stop"),
        ],
    },
    # the forced-tool recipe on the random model (tests/vllm/README.md)
    "vllm-tool": {
        "status": 200,
        "json": answer(
            M,
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "chatcmpl-tool-8f2a", "type": "function",
                 "function": {"name": "ping", "arguments": "{}"}}]},
            "tool_calls",
        ),
        "chunks": [
            chunk(M, {"role": "assistant", "content": ""}),
            chunk(M, {"tool_calls": [{"id": "chatcmpl-tool-8f2a", "type": "function", "index": 0,
                                      "function": {"name": "ping"}}]}),
            chunk(M, {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
            chunk(M, {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
            chunk(M, {}, "tool_calls"),
        ],
    },
    "vllm-overflow": error(400, {"error": {
        "message": "This model's maximum context length is 2048 tokens. However, your prompt "
        "contains at least 2049 input tokens, which exceeds this limit even without any output "
        "tokens. Please reduce the length of the input prompt. (parameter=input_tokens, "
        "value=2049)", "type": "BadRequestError", "param": "input_tokens", "code": 400}}),
    "vllm-responses-overflow": error(400, {"error": {
        "message": "The engine prompt length 3000 exceeds the max_model_len 2048. Please reduce "
        "prompt.", "type": "invalid_request_error", "param": None, "code": 400}}),
    "vllm-notfound": error(404, {"error": {
        "message": "The model `other` does not exist. Valid aliases: tiny-llama.",
        "type": "NotFoundError", "param": "model", "code": 404}}),
    "vllm-flat": error(400, {"object": "error", "message": "older flat shape",
                             "type": "invalid_request_error", "param": None, "code": 400}),
    "vllm-midstream-error": {
        "status": 200,
        "json": answer(M, {"role": "assistant", "content": "x"}),
        "chunks": [
            chunk(M, {"role": "assistant", "content": ""}),
            {"error": {"message": "engine died", "type": "InternalServerError", "param": None,
                       "code": 500}},
        ],
    },
}  # fmt: skip
