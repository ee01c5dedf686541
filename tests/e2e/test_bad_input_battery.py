"""A bad-input battery against both generation endpoints of a real gateway process.

Every malformed, mistyped, huge, deep, mis-encoded or oversize request gets a 4xx in
OpenAI's error shape (never a 500, never a crash), and the next good request is served.
Inputs the gateway passes on by design (unknown fields, big but valid numbers, escaped NUL
characters) are answered normally, and unknown fields reach the engine unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.request_io import MAX_DEPTH
from tests.gateway_process import GatewayProcess
from tests.upstream import ScriptedUpstream

LIMIT = 1024 * 1024  # server.max_body_bytes of this gateway
PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}
HELLO = [{"role": "user", "content": "hello battery"}]


def good(endpoint: str, model: str = "echo", **extra: Any) -> dict[str, Any]:
    if endpoint == "chat":
        return {"model": model, "messages": HELLO, **extra}
    return {"model": model, "input": "hello battery", **extra}


def nested(levels: int, leaf: bytes = b"1") -> bytes:
    return b"[" * levels + leaf + b"]" * levels


def nested_objects(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def with_field(endpoint: str, raw_value: bytes) -> bytes:
    """A good body whose extra field `x` holds `raw_value` as written."""
    return good_raw(endpoint)[:-1] + b',"x":' + raw_value + b"}"


def good_raw(endpoint: str) -> bytes:
    return orjson.dumps(good(endpoint))


@pytest.fixture(scope="module")
def battery(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = f"""
server:
  max_body_bytes: {LIMIT}
  log_level: warning
models:
  - {{name: echo, backend: mock}}
  - name: up
    backend: vllm
    base_url: {upstream.base_url}
    upstream_model: ok
    retries: {{attempts: 0}}
"""
    proc = GatewayProcess(config, tmp_path_factory.mktemp("battery")).wait_ready()
    yield proc
    proc.stop()


def send(gw: GatewayProcess, endpoint: str, body: Any, **kwargs: Any) -> httpx.Response:
    if isinstance(body, (dict, list)):
        kwargs["json"] = body
    else:
        kwargs["content"] = body
    return httpx.post(gw.url + PATHS[endpoint], timeout=30, **kwargs)


def assert_openai_error(resp: httpx.Response, status: int | None = None) -> dict[str, Any]:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:500])
    if status is not None:
        assert resp.status_code == status, resp.text[:500]
    error = resp.json()["error"]
    # OpenAI's four fields (+ an engine's integer code as upstream_code)
    assert set(error) - {"upstream_code"} == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert resp.headers["x-request-id"]
    return error


def assert_serves(gw: GatewayProcess, endpoint: str) -> None:
    resp = send(gw, endpoint, good(endpoint))
    assert resp.status_code == 200, resp.text
    assert "hello battery" in resp.text


# (id, raw body or a function of the endpoint giving it, code expected or None)
RAW_CASES: list[tuple[str, Any, str | None]] = [
    ("malformed", b"{not json", "invalid_json"),
    ("truncated", lambda e: good_raw(e)[:-3], "invalid_json"),
    ("empty", b"", "invalid_json"),
    ("whitespace", b"  \n\t ", "invalid_json"),
    ("array", b"[1, 2]", "invalid_json"),
    ("array-of-good-body", lambda e: b"[" + good_raw(e) + b"]", "invalid_json"),
    ("string", b'"hello"', "invalid_json"),
    ("number", b"42", "invalid_json"),
    ("null", b"null", "invalid_json"),
    ("trailing-garbage", lambda e: good_raw(e) + b" {}", "invalid_json"),
    (
        "invalid-utf8-in-string",
        lambda e: good_raw(e).replace(b"battery", b"\xff\xfe"),
        "invalid_json",
    ),
    ("invalid-utf8-outside", lambda e: good_raw(e)[:-1] + b",\xc3}", "invalid_json"),
    ("lone-surrogate", lambda e: with_field(e, b'"\\ud800"'), "invalid_json"),
    ("utf16-body", lambda e: good_raw(e).decode().encode("utf-16"), "invalid_json"),
    ("raw-nul-byte", lambda e: good_raw(e)[:-1] + b"\x00}", "invalid_json"),
    (
        "nul-inside-string-unescaped",
        lambda e: good_raw(e).replace(b"battery", b"bat\x00"),
        "invalid_json",
    ),
    ("nan", lambda e: with_field(e, b"NaN"), "invalid_json"),
    ("infinity", lambda e: with_field(e, b"Infinity"), "invalid_json"),
    ("1e400", lambda e: with_field(e, b"1e400"), "invalid_json"),
    ("-1e400-temperature", lambda e: good_raw(e)[:-1] + b',"temperature":-1e400}', "invalid_json"),
    ("nested-100000-arrays", nested(100_000), "invalid_json"),
    ("nested-100000-objects", nested_objects(100_000), "invalid_json"),
    ("nested-100000-in-field", lambda e: with_field(e, nested(100_000)), "invalid_json"),
    ("nested-1000-in-field", lambda e: with_field(e, nested(1000)), "invalid_json"),
    (f"nested-{MAX_DEPTH}-in-field", lambda e: with_field(e, nested(MAX_DEPTH)), "invalid_json"),
    ("form-urlencoded", b"model=echo&messages=hi", "invalid_json"),
]
FIELD_CASES: dict[str, list[tuple[dict[str, Any], str]]] = {
    "chat": [
        ({"model": 42}, "model"),
        ({"model": ""}, "model"),
        ({"model": ["echo"]}, "model"),
        ({"messages": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [None]}, "messages[0]"),
        ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": {"a": 1}, "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"max_tokens": 2**70}, "max_tokens"),  # parsed as a float: not an integer
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": 1e308}, "temperature"),  # OpenAI's ranges (issue 18)
        ({"temperature": -1}, "temperature"),
        ({"top_p": 5}, "top_p"),
        ({"logit_bias": {"1": 101}}, "logit_bias"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"seed": 2**64}, "seed"),
        ({"n": 0}, "n"),
        ({"n": 2**40}, "n"),  # the mock refuses more than 128 choices
        ({"stream": "yes"}, "stream"),
        ({"stop": [1, 2]}, "stop"),
        ({"tools": {"a": 1}}, "tools"),
        ({"tool_choice": 5}, "tool_choice"),
        (
            {
                "tool_choice": {"type": "function", "function": 5},
                "tools": [{"type": "function", "function": 5}],
            },
            "tool_choice",
        ),
        ({"logit_bias": [1]}, "logit_bias"),
        ({"response_format": "json"}, "response_format"),
    ],
    "responses": [
        ({"model": 42}, "model"),
        ({"model": None}, "model"),
        ({"input": None}, "input"),
        ({"input": 5}, "input"),
        ({"input": [5]}, "input[0]"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
            "input[0].content[0].text",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": ["input_text"]}]}]},
            "input[0].content[0]",
        ),
        (
            {"input": [{"role": "assistant", "content": "x", "tool_calls": 5}]},
            "input[0].tool_calls",
        ),
        ({"input": [{"role": "assistant", "content": "x", "refusal": ["no"]}]}, "input[0].refusal"),
        ({"input": [{"type": "reasoning", "content": 5}]}, "input[0].content"),
        (
            {"input": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": 5}]}]},
            "input[0].summary[0].text",
        ),
        (
            {
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [{"type": "input_text", "text": 5}],
                    }
                ]
            },
            "input[0].output[0].text",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
            "input[0].arguments",
        ),
        ({"instructions": 5}, "instructions"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_output_tokens": 2**70}, "max_output_tokens"),
        ({"max_output_tokens": -1}, "max_output_tokens"),
        ({"temperature": -1e308}, "temperature"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"stream": "yes"}, "stream"),
        ({"tools": {"a": 1}}, "tools"),
        (
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "function", "name": ["f"]},
            },
            "tool_choice",
        ),
        (
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "allowed_tools", "tools": 5},
            },
            "tool_choice",
        ),
        ({"text": {"format": {"type": ["x"]}}}, "text.format.type"),
        ({"include": [["x"]]}, "include"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"messages": HELLO}, "messages"),
    ],
}
# Valid JSON the gateway passes on by design: answered normally, never a 5xx.
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("minus-zero", {"temperature": -0.0, "top_p": -0}),
    ("max-int64-seed", {"seed": 2**63 - 1}),
    ("max-uint64-in-unknown-field", {"x_big": 2**64 - 1}),
    ("escaped-nul-in-unknown-field", {"x_nul": "a\u0000b"}),
    ("unknown-fields", {"x_engine_option": {"k": [1, 2]}, "top_k": 5}),
    (f"nested-{MAX_DEPTH}-deep", {}),  # built in the test: the deepest body accepted
]


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize(("name", "raw", "code"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_malformed_body_is_400(
    battery: GatewayProcess, endpoint: str, name: str, raw: Any, code: str | None
) -> None:
    body = raw(endpoint) if callable(raw) else raw
    error = assert_openai_error(send(battery, endpoint, body), 400)
    if code is not None:
        assert error["code"] == code, error
    assert_serves(battery, endpoint)


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_wrong_field_is_400_naming_it(battery: GatewayProcess, endpoint: str) -> None:
    for fields, param in FIELD_CASES[endpoint]:
        error = assert_openai_error(send(battery, endpoint, {**good(endpoint), **fields}), 400)
        assert error["param"] == param, (fields, error)
        assert_serves(battery, endpoint)


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_wrong_content_type(battery: GatewayProcess, endpoint: str) -> None:
    # The content type is not checked: a JSON body is read as JSON (curl -d sends a form type)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "image/png"):
        resp = send(battery, endpoint, good_raw(endpoint), headers={"content-type": content_type})
        assert resp.status_code == 200, resp.text
    multipart = httpx.post(battery.url + PATHS[endpoint], files={"f": b"x"}, timeout=30)
    assert_openai_error(multipart, 400)
    assert_serves(battery, endpoint)


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_oversize_body_is_413(battery: GatewayProcess, endpoint: str) -> None:
    text = "x" * (LIMIT + 1)
    if endpoint == "chat":
        big = {"model": "echo", "messages": [{"role": "user", "content": text}]}
    else:
        big = {"model": "echo", "input": text}
    assert assert_openai_error(send(battery, endpoint, big), 413)["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no content-length: the limit holds while reading
        yield b'{"model": "echo", "x": "'
        for _ in range(LIMIT // 65536 + 2):
            yield b"y" * 65536
        yield b'"}'

    assert assert_openai_error(send(battery, endpoint, chunks()), 413)["code"] == "body_too_large"
    assert_serves(battery, endpoint)


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize("model", ["echo", "up"])
@pytest.mark.parametrize(("name", "fields"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_valid_but_odd_input_is_served(
    battery: GatewayProcess, endpoint: str, model: str, name: str, fields: dict[str, Any]
) -> None:
    if name.startswith("nested-"):
        value: Any = 1
        for _ in range(MAX_DEPTH - 1):  # the body itself is the first level
            value = [value]
        fields = {"x_deep": value}
    resp = send(battery, endpoint, good(endpoint, model, **fields))
    assert resp.status_code == 200, resp.text[:500]
    assert_serves(battery, endpoint)


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_unknown_fields_reach_the_engine(
    battery: GatewayProcess, upstream: ScriptedUpstream, endpoint: str
) -> None:
    marker = uuid.uuid4().hex
    extra = {"x_marker": marker, "x_nested": {"a": [1, None, "\u0000"]}, "x_big": 2**64 - 1}
    resp = send(battery, endpoint, good(endpoint, "up", **extra))
    assert resp.status_code == 200, resp.text
    with upstream.state.lock:
        sent = [r["body"] for r in upstream.state.requests if r["body"].get("x_marker") == marker]
    assert len(sent) == 1
    assert {k: sent[0][k] for k in extra} == extra


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_odd_model_names_are_404(battery: GatewayProcess, endpoint: str) -> None:
    for model in ("echo\u0000", "x" * 50_000, "../../etc/passwd", "🎉", " echo"):
        error = assert_openai_error(send(battery, endpoint, good(endpoint, model)), 404)
        assert error["code"] == "model_not_found" and error["param"] == "model"
    assert_serves(battery, endpoint)
