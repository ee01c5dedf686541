"""The family drivers through the real server, driven by the openai SDK, against the
scripted upstream replaying recorded-shape wire fixtures (tests/wire/)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess
from tests.upstream import ScriptedUpstream
from tests.wire import FIXTURES

ROUTES = {  # route name -> (backend, upstream model / fixture, extra YAML)
    "v-reason": ("vllm", "vllm-reasoning", ""),
    "v-tool": ("vllm", "vllm-tool", ""),
    "v-ok": ("vllm", "ok", ""),
    "v-drop": ("vllm", "ok", "unsupported_params: drop"),
    "sg-reason": ("sglang", "sglang-reasoning", ""),
    "sg-ok": ("sglang", "ok", ""),
    "tgi-tool": ("tgi", "tgi-tool", ""),
    "tgi-chat": ("tgi", "tgi-chat", ""),
    "gem-tool": ("gemini", "gemini-tool", "api_key: sk-gemini-secret"),
    "gem-drop": ("gemini", "ok", "unsupported_params: drop"),
    "oa-chat": ("openai", "openai-chat", "api_key: sk-oa"),
}
BACKEND_OF = {"vllm": "vllm", "sglang": "sglang", "tgi": "tgi", "openai": "openai",
              "gemini": "gemini"}  # fmt: skip
for _name, _fx in FIXTURES.items():
    if _fx["status"] >= 400:
        ROUTES[f"e-{_name}"] = (BACKEND_OF[_name.split("-")[0]], _name, "")
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gw(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    lines = ["models:", "  - {name: echo, backend: mock}"]
    for name, (backend, model, extra) in ROUTES.items():
        lines += [
            f"  - name: {name}",
            f"    backend: {backend}",
            f"    base_url: {upstream.base_url}",
            f"    upstream_model: {model}",
            "    retries: {attempts: 0}",
        ]
        if extra:
            lines.append(f"    {extra}")
    proc = GatewayProcess("\n".join(lines) + "\n", tmp_path_factory.mktemp("backends"))
    yield proc.wait_ready()
    proc.stop()


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


# ---- answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["v-reason", "sg-reason"])
def test_reasoning_is_always_in_reasoning(client: openai.OpenAI, route: str) -> None:
    answer = client.chat.completions.create(model=route, messages=HI)
    message = answer.choices[0].message
    assert answer.model == route and message.content == "42"
    assert message.model_extra["reasoning"] == "Six times seven."
    chunks = list(client.chat.completions.create(model=route, messages=HI, stream=True))
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning") or "" for c in chunks
    )
    assert reasoning == "Six times seven."
    assert {c.model for c in chunks} == {route}


def test_vllm_extras_survive(gw: GatewayProcess) -> None:
    body = {"model": "v-reason", "messages": HI}
    answer = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10).json()
    assert answer["prompt_token_ids"] == [1, 87, 513]
    assert answer["choices"][0]["token_ids"] == [1831, 606]
    assert answer["system_fingerprint"] == "vllm-0.32.0-4b3392c6"


@pytest.mark.parametrize("route", ["tgi-tool", "gem-tool", "v-tool"])
def test_tool_calls_finish_with_tool_calls(client: openai.OpenAI, route: str) -> None:
    answer = client.chat.completions.create(model=route, messages=HI)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id and call.id != "0" and call.function.arguments
    chunks = list(client.chat.completions.create(model=route, messages=HI, stream=True))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"


def test_gemini_thought_signature_round_trip(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    answer = client.chat.completions.create(model="gem-tool", messages=HI)
    call = answer.choices[0].message.tool_calls[0]
    signature = call.model_extra["extra_content"]
    assert signature["google"]["thought_signature"]
    # the Responses API keeps it on the function_call item and sends it back next turn
    first = client.responses.create(model="gem-tool", input="weather?")
    item = next(o for o in first.output if o.type == "function_call")
    assert item.model_extra["extra_content"] == signature
    with client.responses.stream(model="gem-tool", input="weather?") as events:
        final = events.get_final_response()
    streamed = next(o for o in final.output if o.type == "function_call")
    assert streamed.model_extra["extra_content"] == signature
    client.responses.create(
        model="gem-tool",
        input=[
            {"role": "user", "content": "weather?"},
            item.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": item.call_id, "output": "18C"},
        ],
    )
    sent = upstream.state.last()["body"]["messages"]
    assert sent[1]["tool_calls"][0]["extra_content"] == signature


def test_tgi_answer_is_openai_shaped(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="tgi-chat", messages=HI)
    assert answer.id.startswith("chatcmpl-") and answer.choices[0].finish_reason == "stop"
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="tgi-chat", messages=HI, stream=True)
    )
    assert text == "Hello!"


def test_openai_rate_limit_headers_pass_on(gw: GatewayProcess) -> None:
    resp = httpx.post(
        gw.url + "/v1/chat/completions", json={"model": "oa-chat", "messages": HI}, timeout=10
    )
    assert resp.status_code == 200 and resp.headers["x-ratelimit-remaining-requests"] == "9999"
    assert resp.json()["model"] == "oa-chat"
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json={"model": "oa-chat", "messages": HI, "stream": True},
        timeout=10,
    ) as stream:
        assert stream.headers["x-ratelimit-remaining-requests"] == "9999"
        lines = [line for line in stream.iter_lines() if line.startswith("data: {")]
    # OpenAI answers with a dated model name: every chunk still says the route's name
    assert len(lines) == 3 and all('"model":"oa-chat"' in line for line in lines)


# ---- parameters ---------------------------------------------------------------------------


def test_unsupported_parameter_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="v-ok", messages=HI, extra_body={"separate_reasoning": False}
        )
    assert info.value.body["param"] == "separate_reasoning"
    assert info.value.body["code"] == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gem-tool", messages=HI, extra_body={"top_k": 3})
    assert info.value.body["param"] == "top_k"


@pytest.mark.parametrize(("route", "dropped"), [("v-drop", "separate_reasoning"),
                                                ("gem-drop", "top_k, min_p")])  # fmt: skip
def test_drop_policy_names_what_it_dropped(
    client: openai.OpenAI, upstream: ScriptedUpstream, route: str, dropped: str
) -> None:
    extra = {name: 1 for name in dropped.split(", ")}
    raw = client.chat.completions.with_raw_response.create(
        model=route, messages=HI, extra_body=extra
    )
    assert raw.headers["x-gateway-dropped-params"] == dropped
    assert raw.parse().choices[0].message.content == "upstream says hi"
    assert not set(extra) & set(upstream.state.last()["body"])


def test_guided_json_reaches_vllm_as_structured_outputs(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    client.chat.completions.create(model="v-ok", messages=HI, extra_body={"guided_json": schema})
    sent = upstream.state.last()["body"]
    assert sent["structured_outputs"] == {"json": schema} and "guided_json" not in sent


# ---- errors -------------------------------------------------------------------------------

ERRORS = [
    (name, fx["status"])
    for name, fx in FIXTURES.items()
    if fx["status"] >= 400
]  # fmt: skip
OVERFLOWS = {n for n in FIXTURES if "overflow" in n}


@pytest.mark.parametrize(("fixture", "status"), ERRORS)
@pytest.mark.parametrize("stream", [False, True])
def test_every_error_body(gw: GatewayProcess, fixture: str, status: int, stream: bool) -> None:
    body = {"model": f"e-{fixture}", "messages": HI, "stream": stream}
    resp = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10)
    error = resp.json()["error"]
    # OpenAI's four fields; an engine's integer `code` is kept as `upstream_code` (an int)
    assert set(error) - {"upstream_code"} == {"message", "type", "param", "code"}
    assert isinstance(error.get("upstream_code", 0), int)
    assert error["code"] is None or isinstance(error["code"], str)
    if fixture in OVERFLOWS:
        assert resp.status_code == 400 and "context length" in error["message"]
        assert error["code"] == "context_length_exceeded"
    elif status == 422:
        assert resp.status_code == 400  # TGI's validation errors
    elif status == 424:
        assert resp.status_code == 500  # TGI's generation errors
    else:
        assert resp.status_code == status
    if resp.status_code == 429 and fixture != "openai-quota":
        assert int(resp.headers["retry-after"]) >= 1
    assert "sk-" not in resp.text


def test_context_overflow_through_the_sdk(client: openai.OpenAI) -> None:
    for fixture in sorted(OVERFLOWS):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=f"e-{fixture}", messages=HI)
        assert "context length" in str(info.value)


# ---- engine endpoints ---------------------------------------------------------------------


def test_tokenize_and_detokenize_go_to_the_server_root(
    gw: GatewayProcess, upstream: ScriptedUpstream
) -> None:
    for route in ("v-ok", "sg-ok"):
        resp = httpx.post(gw.url + "/tokenize", json={"model": route, "messages": HI}, timeout=10)
        assert resp.status_code == 200 and resp.json()["tokens"] == [1, 2, 3]
        sent = upstream.state.last()
        assert sent["path"] == "/tokenize" and sent["body"]["model"] == "ok"
        assert sent["body"]["messages"] == HI
    resp = httpx.post(gw.url + "/detokenize", json={"model": "v-ok", "tokens": [5, 6]}, timeout=10)
    assert resp.json() == {"prompt": "ids 5,6"}
    assert upstream.state.last()["path"] == "/detokenize"


@pytest.mark.parametrize(
    ("path", "route"),
    [("/tokenize", "gem-tool"), ("/tokenize", "tgi-chat"), ("/detokenize", "echo"),
     ("/v1/completions", "gem-tool")],
)  # fmt: skip
def test_engine_endpoint_on_a_backend_without_it(gw: GatewayProcess, path: str, route: str) -> None:
    body = {"model": route, "tokens": [1], "prompt": "x", "messages": HI}
    resp = httpx.post(gw.url + path, json=body, timeout=10)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "unsupported_endpoint"


def test_completions_pass_through(client: openai.OpenAI, upstream: ScriptedUpstream) -> None:
    answer = client.completions.create(
        model="v-ok", prompt="Hello", max_tokens=2, extra_body={"guided_regex": "[a-z]+"}
    )
    assert answer.model == "v-ok" and answer.choices[0].text == " world!"
    assert answer.choices[0].model_extra["prompt_token_ids"] == [1, 2]
    sent = upstream.state.last()
    assert sent["path"] == "/v1/completions" and sent["body"]["model"] == "ok"
    assert sent["body"]["structured_outputs"] == {"regex": "[a-z]+"}
    chunks = list(client.completions.create(model="v-ok", prompt="Hello", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == " world!"
    assert {c.model for c in chunks} == {"v-ok"}


def test_mock_completions(client: openai.OpenAI) -> None:
    answer = client.completions.create(model="echo", prompt="once upon a time", max_tokens=2)
    assert answer.choices[0].text == "once upon" and answer.choices[0].finish_reason == "length"
    assert answer.usage.prompt_tokens == 4 and answer.usage.completion_tokens == 2
    chunks = list(
        client.completions.create(
            model="echo", prompt="a b c", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "a b c"
    assert chunks[-1].usage.completion_tokens == 3
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="echo", prompt=[])
