"""One request cannot make the mock build gigabytes, and a stream stops producing when the
client leaves (issue 18 item 4)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from backends.mock import MockDriver
from gateway.config import parse_config
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.relay import ModelRewriter, SSEResponse, relay_chat_stream


def driver(extra: str = "") -> MockDriver:
    config = parse_config(f"models:\n - {{name: echo, backend: mock{extra}}}\n", "t")
    return MockDriver(config.models[0])


def ctx() -> RequestContext:
    return RequestContext(request_id="t", route_name="echo")


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": text}], **extra}


MB = 1024 * 1024
BIG = "w " * (4 * MB)  # 8 MB of one-character words: the issue's request


def test_the_issues_request_is_400_on_the_default_limit() -> None:
    # 8 MB of words with n: 128 made a 1 GB answer and 1 GB of RSS
    with pytest.raises(GatewayError) as info:
        asyncio.run(driver().chat(chat(BIG, n=128), ctx()))
    error = info.value
    assert (error.status, error.code, error.param) == (400, "answer_too_large", "n")
    assert "mock.max_answer_bytes" in error.message


SMALL = "w " * (MB // 4)  # 512 KB, 256 K tokens


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(SMALL, n=3), "n"),
        (chat(SMALL + SMALL + SMALL), "max_tokens"),
        (chat(SMALL[: MB // 8], stream=True), "max_tokens"),  # 64 K chunks of ~170 bytes
        (chat(SMALL[: MB // 4], logprobs=True), "max_tokens"),
    ],
    ids=["n", "single", "stream", "logprobs"],
)
def test_answer_past_the_limit_is_400_naming_it(body: dict[str, Any], param: str) -> None:
    mock = driver(f", mock: {{max_answer_bytes: {MB}}}")
    with pytest.raises(GatewayError) as info:
        if body.get("stream"):
            asyncio.run(mock.open_chat_stream(body, ctx()))
        else:
            asyncio.run(mock.chat(body, ctx()))
    error = info.value
    assert (error.status, error.code, error.param) == (400, "answer_too_large", param)
    assert "mock.max_answer_bytes is 1048576" in error.message


def test_max_tokens_brings_a_big_prompt_within_the_limit() -> None:
    mock = driver(f", mock: {{max_answer_bytes: {MB}}}")
    answer = asyncio.run(mock.chat(chat(SMALL, n=128, max_tokens=100), ctx()))
    assert len(answer["choices"]) == 128
    assert answer["choices"][0]["finish_reason"] == "length"


def test_estimate_bounds_the_real_size() -> None:
    # just under the limit by the estimate: the real answer is no larger than the limit
    limit = 64 * 1024
    mock = driver(f", mock: {{max_answer_bytes: {limit}}}")
    text = "ab " * 2000
    for n in range(1, 40):
        try:
            answer = asyncio.run(mock.chat(chat(text, n=n, logprobs=True), ctx()))
        except GatewayError:
            break
        assert len(orjson.dumps(answer)) <= limit + 2048  # + the envelope
    else:
        pytest.fail("the limit never applied")


def test_completions_past_the_limit() -> None:
    mock = driver(f", mock: {{max_answer_bytes: {MB}}}")
    body = {"model": "echo", "prompt": [SMALL] * 2, "n": 2}
    with pytest.raises(GatewayError) as info:
        asyncio.run(mock.completions(body, ctx()))
    assert info.value.code == "answer_too_large"


def test_stream_stops_producing_when_the_client_leaves() -> None:
    """A client that leaves after the first chunk: the mock stops within a few chunks. The
    send here never suspends, as uvicorn's send does once the client has gone."""
    words = 200_000
    mock = driver(", mock: {max_answer_bytes: 1000000000}")
    produced = 0

    async def scenario() -> None:
        nonlocal produced
        stream = await mock.open_chat_stream(chat("w " * words, stream=True), ctx())
        relay = relay_chat_stream(stream, ModelRewriter("echo", "echo"), ctx())

        async def counted() -> Any:
            nonlocal produced
            async for chunk in relay:
                produced += 1
                yield chunk

        left = asyncio.Event()
        sent = 0

        async def receive() -> dict[str, Any]:
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal sent
            sent += 1
            if sent == 2:  # headers, then the first chunk: the client goes
                left.set()

        response = SSEResponse(counted(), {})
        await response({"type": "http"}, receive, send)

    asyncio.run(scenario())
    assert produced < 100, produced  # not the 200,000 chunks of the whole answer
