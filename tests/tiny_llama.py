"""What both real-engine suites (tests/vllm, tests/sglang) know of the model they serve: the
tiny random Llama of tests/vllm/make_tiny_model.py, and the request pieces that steer it."""

from __future__ import annotations

MODEL = "tiny-llama"  # the served model name both server scripts give it
EOS = 2
CAPTURE = {"logprobs": True, "top_logprobs": 0, "return_tokens_as_token_ids": True}
TRAIN = {"temperature": 1.0, "top_p": 1.0, **CAPTURE}
HELLO = [{"role": "user", "content": "Hello there"}]
# The forced-tool recipe of tests/vllm/README.md: a strict tool with no arguments, `{` and `}`
# favoured, so the random model closes the call.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "ping",
            "description": "p",
            "strict": True,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    }
]
# vLLM stops after the call; SGLang does not (finish_reason "length"). The grammar lets the
# model pad the JSON with whitespace at times, hence the room.
FORCE_PING = {
    "tool_choice": {"type": "function", "function": {"name": "ping"}},
    "logit_bias": {"93": 30, "95": 30},
    "max_tokens": 120,
}
FORCE_EOS = {"logit_bias": {str(EOS): 100}, "max_tokens": 4}  # an empty reply: [EOS]
