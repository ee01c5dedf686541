"""Each family driver against recorded-shape wire fixtures (tests/wire/) replayed by the
loopback upstream: answers, streams and every error body."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from backends import make_driver
from backends.answers import FinishFixer, reasoning_chunk
from backends.http import UpstreamHTTP
from backends.upstream_errors import normalize_upstream_error
from gateway.config import parse_config
from gateway.context import RequestContext
from gateway.errors import GatewayError
from tests.upstream import ScriptedUpstream

MSG = [{"role": "user", "content": "hi"}]


def driver(upstream: ScriptedUpstream, backend: str, fixture: str):
    text = (
        f"models:\n - name: r\n   backend: {backend}\n   base_url: {upstream.base_url}\n"
        f"   upstream_model: {fixture}\n   api_key: sk-k\n   retries: {{attempts: 0}}\n"
    )
    return make_driver(parse_config(text, "t").models[0], UpstreamHTTP())


async def chat(upstream: ScriptedUpstream, backend: str, fixture: str) -> dict[str, Any]:
    d = driver(upstream, backend, fixture)
    try:
        return await d.chat({"model": "r", "messages": MSG}, RequestContext(request_id="t"))
    finally:
        await d.http.aclose()


async def stream(upstream: ScriptedUpstream, backend: str, fixture: str) -> list[dict]:
    d = driver(upstream, backend, fixture)
    ctx = RequestContext(request_id="t")
    chunks = []
    try:
        s = await d.open_chat_stream({"model": "r", "messages": MSG, "stream": True}, ctx)
        async for batch in s:
            chunks += [orjson.loads(p) for p in batch]
    finally:
        await d.http.aclose()
    return chunks


def deltas(chunks: list[dict], key: str) -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c.get("choices"))


def finish(chunks: list[dict]) -> list[str]:
    return [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")][-1:]


# ---- reasoning: always `reasoning`, the engine's own field kept ---------------------------


async def test_vllm_answer_passes_through_with_its_extras(upstream: ScriptedUpstream) -> None:
    answer = await chat(upstream, "vllm", "vllm-reasoning")
    message = answer["choices"][0]["message"]
    assert message["reasoning"] == "Six times seven." and message["content"] == "42"
    assert answer["prompt_token_ids"] == [1, 87, 513] and answer["kv_transfer_params"] is None
    assert answer["choices"][0]["token_ids"] == [1831, 606]
    assert "stop_reason" in answer["choices"][0] and "prompt_logprobs" in answer
    chunks = await stream(upstream, "vllm", "vllm-reasoning")
    assert deltas(chunks, "reasoning") == "Six times seven." and deltas(chunks, "content") == "42"
    assert chunks[0]["prompt_token_ids"] == [1, 87, 513]


@pytest.mark.parametrize(("backend", "fixture"), [("vllm", "vllm-old-reasoning"),
                                                  ("sglang", "sglang-reasoning")])  # fmt: skip
async def test_reasoning_content_is_also_reasoning(
    upstream: ScriptedUpstream, backend: str, fixture: str
) -> None:
    message = (await chat(upstream, backend, fixture))["choices"][0]["message"]
    assert message["reasoning"] == message["reasoning_content"] == "Six times seven."
    chunks = await stream(upstream, backend, fixture)
    assert deltas(chunks, "reasoning") == deltas(chunks, "reasoning_content") == "Six times seven."
    assert deltas(chunks, "content") == "42"


def test_chunks_without_reasoning_text_are_not_parsed() -> None:
    plain = b'{"choices":[{"delta":{"content":"x","reasoning_content":null}}]}'
    assert reasoning_chunk(plain) is plain
    spaced = b'{"choices": [{"delta": {"reasoning_content": "t"}}]}'
    assert orjson.loads(reasoning_chunk(spaced))["choices"][0]["delta"]["reasoning"] == "t"
    fixer = FinishFixer()
    assert fixer(plain) is plain


# ---- tool calls ---------------------------------------------------------------------------


async def test_vllm_and_sglang_tool_calls_untouched(upstream: ScriptedUpstream) -> None:
    answer = await chat(upstream, "vllm", "vllm-tool")
    assert answer["choices"][0]["message"]["tool_calls"][0]["id"] == "chatcmpl-tool-8f2a"
    chunks = await stream(upstream, "vllm", "vllm-tool")
    args = "".join(
        tc["function"].get("arguments") or ""
        for c in chunks
        for tc in c["choices"][0]["delta"].get("tool_calls") or []
    )
    assert args == "{}" and finish(chunks) == ["tool_calls"]
    answer = await chat(upstream, "sglang", "sglang-tool")
    assert answer["choices"][0]["message"]["tool_calls"][0]["id"] == "call_d3b9d6e7388d44f4a4057104"
    assert answer["choices"][0]["finish_reason"] == "length"  # SGLang's own, kept


async def test_tgi_answer_fixes(upstream: ScriptedUpstream) -> None:
    answer = await chat(upstream, "tgi", "tgi-tool")
    call = answer["choices"][0]["message"]["tool_calls"][0]
    assert answer["id"].startswith("chatcmpl-") and call["id"].startswith("call_")
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert call["function"]["arguments"] == '{"city":"Paris"}'
    answer = await chat(upstream, "tgi", "tgi-tool-object-args")
    call = answer["choices"][0]["message"]["tool_calls"][0]
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    answer = await chat(upstream, "tgi", "tgi-chat")
    assert answer["choices"][0]["finish_reason"] == "stop"  # was stop_sequence
    assert answer["system_fingerprint"] == "3.3.4-native"  # the rest untouched
    sent = upstream.state.last()["body"]
    assert sent["model"] == "tgi-chat"  # upstream_model set: a LoRA adapter id


async def test_tgi_stream_fixes(upstream: ScriptedUpstream) -> None:
    chunks = await stream(upstream, "tgi", "tgi-tool")
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    call_ids = {tc["id"] for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []}
    assert len(call_ids) == 1 and call_ids.pop().startswith("call_")  # one id per call
    assert finish(chunks) == ["tool_calls"]
    chunks = await stream(upstream, "tgi", "tgi-chat")
    assert finish(chunks) == ["stop"] and deltas(chunks, "content") == "Hello!"
    chunks = await stream(upstream, "tgi", "tgi-midstream-error")
    assert chunks[-1] == {
        "error": {
            "message": "Input validation error: grammar is not valid",
            "type": "server_error",
            "param": None,
            "code": 422,
        }
    }


async def test_gemini_tool_call_finish_and_thought_signature(upstream: ScriptedUpstream) -> None:
    answer = await chat(upstream, "gemini", "gemini-tool")
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    signature = choice["message"]["tool_calls"][0]["extra_content"]["google"]["thought_signature"]
    assert signature == "CiQB0e2Kb3Z1c2lnbmF0dXJlLWJ5dGVz"
    chunks = await stream(upstream, "gemini", "gemini-tool")
    assert finish(chunks) == ["tool_calls"]
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["extra_content"]["google"]


# ---- errors: OpenAI's shape, the right status, "context length", Retry-After --------------

ERROR_CASES = [
    # backend, fixture, status, message part, type, code, retry-after
    ("vllm", "vllm-overflow", 400, "maximum context length", "BadRequestError",
     "context_length_exceeded", None),
    ("vllm", "vllm-responses-overflow", 400, "context length", "invalid_request_error",
     "context_length_exceeded", None),
    # engines' integer codes: OpenAI's `code` is a string or null; kept as `upstream_code`
    ("vllm", "vllm-notfound", 404, "does not exist", "NotFoundError", None, None),
    ("vllm", "vllm-flat", 400, "older flat shape", "invalid_request_error", None, None),
    ("sglang", "sglang-error", 400, "not supported with streaming", "BadRequest", None, None),
    ("sglang", "sglang-overflow", 400, "maximum context length", "BadRequestError",
     "context_length_exceeded", None),
    ("sglang", "sglang-overflow-input", 400, "context length", "BadRequestError",
     "context_length_exceeded", None),
    ("tgi", "tgi-validation", 400, "must be strictly positive", "invalid_request_error",
     "validation", None),
    ("tgi", "tgi-overflow", 400, "context length", None, "context_length_exceeded", None),
    ("tgi", "tgi-overloaded", 429, "overloaded", "rate_limit_error", "overloaded", "1"),
    ("tgi", "tgi-generation", 500, "CUDA out of memory", "server_error", "generation", None),
    ("openai", "openai-429", 429, "Rate limit reached", "requests", "rate_limit_exceeded",
     "360"),
    ("openai", "openai-quota", 429, "exceeded your current quota", "insufficient_quota",
     "insufficient_quota", None),
    ("openai", "openai-overflow", 400, "maximum context length", "invalid_request_error",
     "context_length_exceeded", None),
    ("openai", "openai-tpm", 429, "tokens per min", "tokens", "rate_limit_exceeded", "2"),
    ("gemini", "gemini-unknown", 400, 'Unknown name "top_k"', "invalid_request_error",
     "invalid_argument", None),
    ("gemini", "gemini-429", 429, "Resource has been exhausted", "rate_limit_error",
     "resource_exhausted", "17"),
    ("gemini", "gemini-overflow", 400, "context length", "invalid_request_error",
     "context_length_exceeded", None),
    ("gemini", "gemini-denied", 403, "unregistered callers", "permission_error",
     "permission_denied", None),
    ("gemini", "gemini-unavailable", 503, "overloaded", "service_unavailable_error",
     "unavailable", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("backend", "fixture", "status", "part", "etype", "code", "retry_after"), ERROR_CASES
)
async def test_error_bodies(
    upstream: ScriptedUpstream,
    backend: str,
    fixture: str,
    status: int,
    part: str,
    etype: str | None,
    code: Any,
    retry_after: str | None,
) -> None:
    for opener in ("chat", "stream"):
        d = driver(upstream, backend, fixture)
        ctx = RequestContext(request_id="t")
        body = {"model": "r", "messages": MSG}
        with pytest.raises(GatewayError) as info:
            if opener == "chat":
                await d.chat(body, ctx)
            else:
                await d.open_chat_stream({**body, "stream": True}, ctx)
        await d.http.aclose()
        exc = info.value
        assert exc.status == status and part in exc.message, exc.message
        if status == 400 and code == "context_length_exceeded":
            assert "context length" in exc.message
        if etype is not None:
            assert exc.type == etype
        assert exc.code == code
        if code is None and backend in ("vllm", "sglang"):
            assert exc.body()["error"]["upstream_code"] == status
        headers = {**ctx.response_headers, **exc.headers}
        assert headers.get("retry-after") == retry_after
        if fixture == "openai-quota":
            assert headers["x-should-retry"] == "false"
        if fixture == "openai-tpm":  # a TPM limit is a rate limit, not an overflow
            assert exc.status == 429


def test_overflow_wording_without_context_length_gets_it() -> None:
    raw = orjson.dumps({"error": "Input validation error: `inputs` must have less than 4096 "
                        "tokens. Given: 5000", "error_type": "validation"})  # fmt: skip
    exc = normalize_upstream_error("route 'x'", 422, raw)
    assert exc.status == 400 and exc.code == "context_length_exceeded"
    assert exc.message.startswith("The input exceeds the model's context length:")
