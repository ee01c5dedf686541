"""SGLang shapes (python/sglang/srt/entrypoints/openai/protocol.py; issue #33504)."""

from __future__ import annotations

from tests.wire.common import answer, chunk, error

M = "Qwen/Qwen3-8B"

FIXTURES = {
    "sglang-reasoning": {
        "status": 200,
        "json": answer(
            M,
            {"role": "assistant", "content": "42", "reasoning_content": "Six times seven.",
             "tool_calls": None},
            choice={"matched_stop": 151645},
        ),
        "chunks": [
            chunk(M, {"role": "assistant", "content": "", "reasoning_content": None,
                      "tool_calls": None}),
            chunk(M, {"role": None, "content": None, "reasoning_content": "Six times",
                      "tool_calls": None}),
            chunk(M, {"role": None, "content": None, "reasoning_content": " seven.",
                      "tool_calls": None}),
            chunk(M, {"role": None, "content": "42", "reasoning_content": None,
                      "tool_calls": None}),
            chunk(M, {"role": None, "content": None, "reasoning_content": None,
                      "tool_calls": None}, "stop"),
        ],
    },
    "sglang-tool": {
        "status": 200,
        "json": answer(M, {"role": "assistant", "content": None, "reasoning_content": None,
                           "tool_calls": [{"id": "call_sg_01", "index": 0, "type": "function",
                                           "function": {"name": "get_weather",
                                                        "arguments": '{"city": "Paris"}'}}]},
                       "tool_calls"),
    },
    "sglang-error": error(400, {"object": "error", "message": "top_logprobs must be <= 20",
                                "type": "BadRequestError", "param": None, "code": 400}),
    "sglang-overflow": error(400, {"object": "error", "message":
        "Requested token count exceeds the model's maximum context length of 4096 tokens. You "
        "requested a total of 5000 tokens: 4900 tokens from the input messages and 100 tokens "
        "for the completion.", "type": "BadRequestError", "param": None, "code": 400}),
    "sglang-overflow-input": error(400, {"object": "error", "message":
        "The input (5000 tokens) is longer than the model's context length (4096 tokens).",
        "type": "BadRequestError", "param": None, "code": 400}),
}  # fmt: skip
