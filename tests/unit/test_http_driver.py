"""The shared HTTP driver against a real loopback upstream (respx cannot intercept aiohttp,
and a real socket is the stronger test: see backends/http.py)."""

from __future__ import annotations

import json

import orjson
import pytest

from backends.http import StreamBroken, UpstreamHTTP
from backends.openai_compat import OpenAICompatDriver
from backends.upstream_errors import normalize_upstream_error
from gateway.config import parse_config
from gateway.context import RequestContext
from gateway.errors import GatewayError
from tests.upstream import ScriptedUpstream

MESSAGES = [{"role": "user", "content": "hi"}]


def make_driver(upstream_url: str, model: str, extra: str = "") -> OpenAICompatDriver:
    text = (
        "models:\n - name: r\n   backend: vllm\n"
        f"   base_url: {upstream_url}\n   upstream_model: {model}\n"
        "   api_key: sk-unit-secret\n   headers: {x-extra: 'yes'}\n"
        "   defaults: {temperature: 0.25, top_p: 0.5}\n   overrides: {seed: 7}\n" + extra
    )
    return OpenAICompatDriver(parse_config(text, "t").models[0], UpstreamHTTP())


async def test_request_shape_key_headers_defaults(upstream: ScriptedUpstream) -> None:
    driver = make_driver(upstream.base_url, "ok")
    ctx = RequestContext(request_id="req-1")
    answer = await driver.chat({"model": "r", "messages": MESSAGES, "top_p": 0.9, "seed": 1}, ctx)
    await driver.http.aclose()
    assert answer["prompt_token_ids"] == [1, 2, 3]  # unknown fields kept
    sent = upstream.state.last()
    assert sent["body"] == {
        "model": "ok",
        "messages": MESSAGES,
        "temperature": 0.25,
        "top_p": 0.9,
        "seed": 7,
    }
    headers = sent["headers"]
    assert headers["authorization"] == "Bearer sk-unit-secret"
    assert headers["x-extra"] == "yes"
    assert headers["x-request-id"] == "req-1"
    assert headers["content-type"] == "application/json"


async def test_no_authorization_without_key(upstream: ScriptedUpstream) -> None:
    text = f"models:\n - {{name: r, backend: sglang, base_url: '{upstream.base_url}', upstream_model: ok}}\n"
    driver = OpenAICompatDriver(parse_config(text, "t").models[0], UpstreamHTTP())
    await driver.chat({"model": "r", "messages": MESSAGES}, RequestContext(request_id="x"))
    await driver.http.aclose()
    assert "authorization" not in upstream.state.last()["headers"]


@pytest.mark.parametrize(
    ("model", "status", "message", "etype", "param", "code"),
    [
        (
            "err-openai",
            400,
            "bad temperature",
            "invalid_request_error",
            "temperature",
            "invalid_value",
        ),
        (
            "err-vllm",
            400,
            "maximum context length",
            "BadRequestError",
            None,
            "context_length_exceeded",
        ),
        # integer codes become null (OpenAI's shape); the value stays in `upstream_code`
        ("err-flat", 400, "flat shape", "BadRequestError", None, None),
        ("err-tgi", 422, "Input validation error", "validation", None, None),
        ("err-gemini", 400, 'Unknown name "x"', "INVALID_ARGUMENT", None, None),
        ("err-429", 429, "slow down", "rate_limit_error", None, "rate_limit_exceeded"),
        ("err-html", 500, "answered HTTP 500 (text/html body", "server_error", None, None),
    ],
)
async def test_error_mapping(
    upstream: ScriptedUpstream,
    model: str,
    status: int,
    message: str,
    etype: str,
    param: str | None,
    code: object,
) -> None:
    driver = make_driver(upstream.base_url, model)
    ctx = RequestContext(request_id="e")
    with pytest.raises(GatewayError) as info:
        await driver.chat({"model": "r", "messages": MESSAGES}, ctx)
    with pytest.raises(GatewayError) as info_stream:
        await driver.open_chat_stream({"model": "r", "messages": MESSAGES, "stream": True}, ctx)
    await driver.http.aclose()
    for exc in (info.value, info_stream.value):
        assert exc.status == status
        assert message in exc.message
        assert (exc.type, exc.param, exc.code) == (etype, param, code)
        assert "sk-unit-secret" not in exc.message
    if model == "err-429":
        assert ctx.response_headers["retry-after"] == "7"


async def test_unreachable_and_garbage() -> None:
    driver = make_driver("http://127.0.0.1:9/v1", "ok")
    with pytest.raises(GatewayError) as info:
        await driver.chat({"model": "r", "messages": MESSAGES}, RequestContext(request_id="u"))
    await driver.http.aclose()
    assert info.value.status == 502 and info.value.code == "upstream_unreachable"
    assert "route 'r'" in info.value.message and "sk-unit" not in info.value.message


async def test_invalid_json_answer(upstream: ScriptedUpstream) -> None:
    driver = make_driver(upstream.base_url, "garbage")
    with pytest.raises(GatewayError) as info:
        await driver.chat({"model": "r", "messages": MESSAGES}, RequestContext(request_id="g"))
    await driver.http.aclose()
    assert (info.value.status, info.value.code) == (502, "upstream_invalid")


async def test_stream_pass_through_is_byte_exact(upstream: ScriptedUpstream) -> None:
    driver = make_driver(upstream.base_url, "ok")
    stream = await driver.open_chat_stream(
        {"model": "r", "messages": MESSAGES, "stream": True}, RequestContext(request_id="s")
    )
    payloads = [p async for batch in stream for p in batch]
    await driver.http.aclose()
    assert all(p.startswith(b'{"id":"chatcmpl-up"') for p in payloads)  # untouched bytes
    text = "".join(json.loads(p)["choices"][0]["delta"].get("content", "") for p in payloads)
    assert text == "upstream says hi ü🎉"
    assert stream.saw_done  # type: ignore[attr-defined]


async def test_stream_reset_raises_stream_broken(upstream: ScriptedUpstream) -> None:
    driver = make_driver(upstream.base_url, "reset")
    stream = await driver.open_chat_stream(
        {"model": "r", "messages": MESSAGES, "stream": True}, RequestContext(request_id="s")
    )
    with pytest.raises(StreamBroken) as info:
        async for _ in stream:
            pass
    await driver.http.aclose()
    assert info.value.code == "upstream_error"


async def test_idle_timeout_mid_stream(upstream: ScriptedUpstream) -> None:
    driver = make_driver(upstream.base_url, "stall", "   timeouts: {idle: 0.3}\n")
    stream = await driver.open_chat_stream(
        {"model": "r", "messages": MESSAGES, "stream": True}, RequestContext(request_id="s")
    )
    with pytest.raises(StreamBroken) as info:
        async for _ in stream:
            pass
    await driver.http.aclose()
    assert (info.value.status, info.value.code) == (504, "upstream_timeout")


async def test_first_byte_timeout(upstream: ScriptedUpstream) -> None:
    driver = make_driver(upstream.base_url, "slow-json", "   timeouts: {first_byte: 0.2}\n")
    with pytest.raises(GatewayError) as info:
        await driver.chat({"model": "r", "messages": MESSAGES}, RequestContext(request_id="t"))
    await driver.http.aclose()
    assert (info.value.status, info.value.code) == (504, "upstream_timeout")


async def test_closing_a_stream_early_cancels_upstream(upstream: ScriptedUpstream) -> None:
    driver = make_driver(upstream.base_url, "slow-stream")
    stream = await driver.open_chat_stream(
        {"model": "r", "messages": MESSAGES, "stream": True}, RequestContext(request_id="c")
    )
    async for batch in stream:
        assert orjson.loads(batch[0])["object"] == "chat.completion.chunk"
        break
    await stream.aclose()
    assert await upstream.state.await_disconnect("slow-stream", timeout=3)
    await driver.http.aclose()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "answered HTTP 503 (unknown body, 0 bytes)"),
        (b"null", "answered HTTP 503"),
        (b'{"error": {"message": {"nested": 1}}}', '{"nested":1}'),
        (b'{"message": "plain"}', "plain"),
    ],
)
def test_normalize_odd_bodies(raw: bytes, message: str) -> None:
    exc = normalize_upstream_error("route 'r'", 503, raw)
    assert exc.status == 503 and message in exc.message
    assert exc.type == "service_unavailable_error"
