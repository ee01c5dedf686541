"""Gemini OpenAI-compatibility shapes (ai.google.dev/gemini-api/docs/openai, thought
signatures, Google RPC error arrays)."""

from __future__ import annotations

from tests.wire.common import answer, chunk, error

M = "gemini-3-flash-preview"
SIGNATURE = {"google": {"thought_signature": "CiQB0e2Kb3Z1c2lnbmF0dXJlLWJ5dGVz"}}
CALL = {
    "id": "function-call-1",
    "type": "function",
    "extra_content": SIGNATURE,
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


def rpc(code: int, status: str, message: str, details: list | None = None) -> list:
    err = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return [{"error": err}]


FIXTURES = {
    "gemini-tool": {
        "status": 200,
        "json": answer(M, {"role": "assistant", "content": None, "tool_calls": [CALL]}, "stop"),
        "chunks": [
            chunk(M, {"role": "assistant", "tool_calls": [{**CALL, "index": 0}]}),
            chunk(M, {}, "stop"),
        ],
    },
    "gemini-unknown": error(400, rpc(400, "INVALID_ARGUMENT", 'Invalid JSON payload received. '
                                     'Unknown name "top_k": Cannot find field.')),
    "gemini-429": error(429, rpc(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted "
                                 "(e.g. check quota).", [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}])),
    "gemini-overflow": error(400, rpc(400, "INVALID_ARGUMENT", "The input token count (1200000) "
                                      "exceeds the maximum number of tokens allowed (1048576).")),
    "gemini-denied": error(403, rpc(403, "PERMISSION_DENIED", "Method doesn't allow unregistered "
                                    "callers (callers without established identity).")),
    "gemini-unavailable": error(503, rpc(503, "UNAVAILABLE", "The model is overloaded. Please "
                                         "try again later.")),
}  # fmt: skip
