"""TGI Messages API shapes (router/src/lib.rs, server.rs at db931fc; maintenance mode)."""

from __future__ import annotations

from tests.wire.common import answer, chunk, error

M = "meta-llama/Llama-3.1-8B-Instruct"


def tgi_chunk(delta, finish=None):
    # TGI: empty id, role on every delta, system_fingerprint
    out = chunk(M, {"role": "assistant", **delta}, finish, cid="")
    out["system_fingerprint"] = "3.3.4-native"
    return out


CALL = {
    "id": "0",
    "type": "function",
    "function": {"description": None, "name": "get_weather", "arguments": '{"city":"Paris"}'},
}

FIXTURES = {
    "tgi-chat": {
        "status": 200,
        "json": answer(M, {"role": "assistant", "content": "Hello!"}, "stop_sequence", cid="",
                       system_fingerprint="3.3.4-native"),
        "chunks": [
            tgi_chunk({"content": "Hel"}),
            tgi_chunk({"content": "lo!"}),
            tgi_chunk({"content": ""}, "eos_token"),
        ],
    },
    "tgi-tool": {
        "status": 200,
        "json": answer(M, {"role": "assistant", "content": None, "tool_calls": [CALL]}, "stop",
                       cid=""),
        "chunks": [
            tgi_chunk({"tool_calls": [{"index": 0, "id": "", "type": "function",
                                       "function": {"name": "get_weather", "arguments": ""}}]}),
            tgi_chunk({"tool_calls": [{"index": 0, "id": "", "type": "function",
                                       "function": {"arguments": '{"city":'}}]}),
            tgi_chunk({"tool_calls": [{"index": 0, "id": "", "type": "function",
                                       "function": {"arguments": '"Paris"}'}}]}),
            tgi_chunk({"content": None}, "stop"),
        ],
    },
    # TGI 2.x returned the arguments as an object
    "tgi-tool-object-args": {
        "status": 200,
        "json": answer(M, {"role": "assistant", "content": None, "tool_calls": [
            {**CALL, "function": {**CALL["function"], "arguments": {"city": "Paris"}}}]}, "eos_token",
            cid=""),
    },
    "tgi-validation": error(422, {"error": "Input validation error: `temperature` must be "
                                  "strictly positive", "error_type": "validation"}),
    "tgi-overflow": error(422, {"error": "Input validation error: `inputs` tokens + "
                                "`max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens "
                                "and 200 `max_new_tokens`", "error_type": "validation"}),
    "tgi-overloaded": error(429, {"error": "Model is overloaded", "error_type": "overloaded"}),
    "tgi-generation": error(424, {"error": "Request failed during generation: Server error: "
                                  "CUDA out of memory", "error_type": "generation"}),
    "tgi-midstream-error": {
        "status": 200,
        "json": None,
        "chunks": [
            tgi_chunk({"content": "Hel"}),
            {"error": {"message": "Input validation error: grammar is not valid",
                       "http_status_code": 422}},
        ],
    },
}  # fmt: skip
