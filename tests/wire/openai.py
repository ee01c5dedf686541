"""OpenAI shapes (openai-python types; rate-limit headers and error codes)."""

from __future__ import annotations

from tests.wire.common import answer, chunk, error

M = "gpt-4o-mini-2024-07-18"

FIXTURES = {
    "openai-chat": {
        "status": 200,
        "json": answer(M, {"role": "assistant", "content": "Hi.", "refusal": None,
                           "annotations": []},
                       system_fingerprint="fp_0ba0d124f1", service_tier="default"),
        "headers": {"x-ratelimit-remaining-requests": "9999", "x-ratelimit-limit-requests": "10000"},
        "chunks": [
            {**chunk(M, {"role": "assistant", "content": "", "refusal": None}),
             "service_tier": "default", "obfuscation": "x1"},
            chunk(M, {"content": "Hi."}),
            chunk(M, {}, "stop"),
        ],
    },
    "openai-429": error(429, {"error": {"message": "Rate limit reached for gpt-4o-mini on "
                              "requests per min (RPM): Limit 3, Used 3, Requested 1.",
                              "type": "requests", "param": None, "code": "rate_limit_exceeded"}},
                        {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0",
                         "x-ratelimit-reset-requests": "20s", "x-ratelimit-reset-tokens": "6m0s"}),
    "openai-quota": error(429, {"error": {"message": "You exceeded your current quota, please "
                                "check your plan and billing details.",
                                "type": "insufficient_quota", "param": None,
                                "code": "insufficient_quota"}}),
    "openai-overflow": error(400, {"error": {"message": "This model's maximum context length is "
                                   "128000 tokens. However, your messages resulted in 130001 "
                                   "tokens. Please reduce the length of the messages.",
                                   "type": "invalid_request_error", "param": "messages",
                                   "code": "context_length_exceeded"}}),
    "openai-tpm": error(429, {"error": {"message": "Request too large for gpt-4o on tokens per "
                              "min (TPM): Limit 30000, Requested 50000. The input or output "
                              "tokens must be reduced in order to run successfully.",
                              "type": "tokens", "param": None, "code": "rate_limit_exceeded"}},
                        {"retry-after": "2"}),
}  # fmt: skip
