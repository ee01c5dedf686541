"""Every bad input and upstream failure: OpenAI-shaped error, right status, and the next
good request still works."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess
from tests.upstream import ScriptedUpstream

GOOD = {"model": "echo", "messages": [{"role": "user", "content": "still alive"}]}


def post(gateway: GatewayProcess, body: Any, **kwargs: Any) -> httpx.Response:
    if isinstance(body, (dict, list)):
        kwargs["json"] = body
    else:
        kwargs["content"] = body
    kwargs.setdefault("timeout", 30)
    return httpx.post(gateway.url + "/v1/chat/completions", **kwargs)


def assert_error(
    resp: httpx.Response, status: int, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    # OpenAI's four fields (+ an engine's integer code as upstream_code)
    assert set(error) - {"upstream_code"} == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert resp.headers["x-request-id"]
    return error


def assert_still_serving(gateway: GatewayProcess) -> None:
    resp = post(gateway, GOOD)
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == "still alive"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, "invalid_json"),
        (b"", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        (
            b'{"model": "echo", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
            None,
            "invalid_json",
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, "model", None),
        ({"model": 42, "messages": []}, "model", None),
        ({"model": "echo"}, "messages", None),
        ({"model": "echo", "messages": "hi"}, "messages", None),
        (
            {"model": "echo", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
            None,
        ),
        (
            {"model": "echo", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            None,
        ),
        ({**GOOD, "temperature": "hot"}, "temperature", None),
        ({**GOOD, "max_tokens": -1}, "max_tokens", None),
        ({**GOOD, "max_tokens": 1.5}, "max_tokens", None),
        ({**GOOD, "stream": "yes"}, "stream", None),
        ({**GOOD, "n": 0}, "n", None),
        ({**GOOD, "stop": [1, 2]}, "stop", None),
        ({**GOOD, "tools": {"a": 1}}, "tools", None),
    ],
)
def test_bad_request_is_400_naming_the_parameter(
    gateway: GatewayProcess, body: Any, param: str | None, code: str | None
) -> None:
    assert_error(post(gateway, body), 400, param=param, code=code)
    assert_still_serving(gateway)


def test_unknown_model_is_404(gateway: GatewayProcess, openai_client: openai.OpenAI) -> None:
    error = assert_error(
        post(gateway, {**GOOD, "model": "gpt-17"}), 404, param="model", code="model_not_found"
    )
    assert "gpt-17" in error["message"]
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="gpt-17", messages=GOOD["messages"])
    assert_still_serving(gateway)


def test_oversize_body_is_413(gateway: GatewayProcess) -> None:
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert_error(post(gateway, big), 413, code="body_too_large")

    def chunks():  # no content-length: the limit holds while reading
        yield b'{"model": "echo", "messages": [{"role": "user", "content": "'
        for _ in range(80):
            yield b"y" * 1000
        yield b'"}]}'

    assert_error(post(gateway, chunks()), 413, code="body_too_large")
    assert_still_serving(gateway)


def test_unknown_endpoint_and_method(gateway: GatewayProcess) -> None:
    assert_error(httpx.get(gateway.url + "/v2/nothing"), 404, code="unknown_endpoint")
    assert_error(httpx.get(gateway.url + "/v1/chat/completions"), 405)
    assert_still_serving(gateway)


def test_unreachable_upstream_is_502_naming_route_not_key(gateway: GatewayProcess) -> None:
    error = assert_error(post(gateway, {**GOOD, "model": "dead"}), 502, code="upstream_unreachable")
    assert "'dead'" in error["message"]
    assert "sk-dead" not in error["message"] and "sk-dead" not in gateway.log()
    stream = post(gateway, {**GOOD, "model": "dead", "stream": True})
    assert_error(stream, 502, code="upstream_unreachable")
    assert_still_serving(gateway)


@pytest.mark.parametrize(
    ("route", "status", "message"),
    [
        ("up-err-openai", 400, "bad temperature"),
        ("up-err-vllm", 400, "maximum context length"),
        ("up-err-flat", 400, "flat shape"),
        ("up-err-tgi", 422, "Input validation error"),
        ("up-err-gemini", 400, 'Unknown name "x"'),
        ("up-err-fastapi", 422, "bad"),
        ("up-err-429", 429, "slow down"),
        ("up-err-notfound", 404, "does not exist"),
        ("up-err-html", 500, "HTTP 500 (text/html body"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_pass_on_status_with_normalized_body(
    gateway: GatewayProcess, route: str, status: int, message: str, stream: bool
) -> None:
    resp = post(gateway, {**GOOD, "model": route, "stream": stream})
    error = assert_error(resp, status)
    assert message in error["message"]
    assert "<html>" not in error["message"]
    if route == "up-err-429":
        assert resp.headers["retry-after"] == "7"
        assert resp.headers["x-ratelimit-remaining-requests"] == "0"
    assert_still_serving(gateway)


def test_upstream_garbage_is_502(gateway: GatewayProcess) -> None:
    assert_error(post(gateway, {**GOOD, "model": "up-garbage"}), 502, code="upstream_invalid")
    assert_still_serving(gateway)


def _sse_payloads(resp: httpx.Response) -> list[str]:
    return [line[6:] for line in resp.text.split("\n") if line.startswith("data: ")]


@pytest.mark.parametrize(
    ("route", "code"),
    [
        ("up-reset", "upstream_error"),
        ("up-truncated", "upstream_truncated"),
        ("up-stall", "upstream_timeout"),
        ("up-midstream-error", None),
    ],
)
def test_broken_stream_ends_with_error_event(
    gateway: GatewayProcess, openai_client: openai.OpenAI, route: str, code: str | None
) -> None:
    resp = post(gateway, {**GOOD, "model": route, "stream": True})
    assert resp.status_code == 200
    payloads = _sse_payloads(resp)
    assert payloads[-1] == "[DONE]"
    error = json.loads(payloads[-2])["error"]
    assert error["message"]
    if code:
        assert error["code"] == code
    with pytest.raises(openai.APIError):
        for _ in openai_client.chat.completions.create(
            model=route, messages=GOOD["messages"], stream=True
        ):
            pass
    assert_still_serving(gateway)


def test_stream_disconnect_cancels_upstream(
    gateway: GatewayProcess, upstream: ScriptedUpstream
) -> None:
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={**GOOD, "model": "up-slow-stream", "stream": True},
    ) as resp:
        lines = resp.iter_lines()
        received = [next(lines) for _ in range(4)]
        assert any("w0" in line for line in received) or received
    # The client went away mid-stream: the upstream request must be dropped at once.
    assert upstream.state.wait_disconnect("slow-stream", timeout=3)
    assert_still_serving(gateway)


def test_stream_to_a_slow_reader_arrives_whole(gateway: GatewayProcess) -> None:
    # ~10 MB while the client does not read for a while: the gateway pauses reading the
    # upstream until the client drains (push mode's hold), then relays every chunk in order
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={**GOOD, "model": "up-big-stream", "stream": True},
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        time.sleep(1.0)
        payloads = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    contents = [json.loads(p)["choices"][0]["delta"].get("content") for p in payloads[:-1]]
    assert [c.split(" ")[0] for c in contents[:-1]] == [f"b{i}" for i in range(600)]
    assert all(len(c) == len(f"b{i} ") + 16384 for i, c in enumerate(contents[:-1]))
    assert_still_serving(gateway)


def test_json_disconnect_cancels_upstream(
    gateway: GatewayProcess, upstream: ScriptedUpstream
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        post(gateway, {**GOOD, "model": "up-slow-json"}, timeout=0.5)
    assert upstream.state.wait_disconnect("slow-json", timeout=3)
    assert_still_serving(gateway)
