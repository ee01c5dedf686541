"""The vLLM driver against the real vLLM 0.32 CPU server: engine endpoints, structured
outputs from the removed guided_* fields, a forced tool call, and a disconnect that frees
the engine's request."""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
import openai

from tests.gateway_process import GatewayProcess
from tests.tiny_llama import HELLO


def root(vllm_url: str) -> str:
    return vllm_url.removesuffix("/v1")


def metric(vllm_url: str, name: str, label: str = "") -> float:
    text = httpx.get(root(vllm_url) + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_tokenize_and_detokenize_through_the_gateway(
    vllm_gateway: GatewayProcess, vllm_url: str
) -> None:
    via = httpx.post(
        vllm_gateway.url + "/tokenize", json={"model": "tiny", "messages": HELLO}, timeout=60
    ).json()
    direct = httpx.post(
        root(vllm_url) + "/tokenize", json={"model": "tiny-llama", "messages": HELLO}, timeout=60
    ).json()
    assert via == direct and via["count"] == 16
    text = httpx.post(
        vllm_gateway.url + "/detokenize",
        json={"model": "tiny", "tokens": via["tokens"]},
        timeout=60,
    ).json()
    assert (
        text
        == httpx.post(
            root(vllm_url) + "/detokenize",
            json={"model": "tiny-llama", "tokens": via["tokens"]},
            timeout=60,
        ).json()
    )
    assert "Hello there" in text["prompt"]


def test_completions_pass_through(vllm_client: openai.OpenAI, vllm_url: str) -> None:
    answer = vllm_client.completions.create(
        model="tiny", prompt="def main():", max_tokens=6, temperature=0
    )
    direct = httpx.post(
        vllm_url + "/completions",
        json={"model": "tiny-llama", "prompt": "def main():", "max_tokens": 6, "temperature": 0},
        timeout=60,
    ).json()
    assert answer.model == "tiny" and answer.choices[0].text == direct["choices"][0]["text"]
    assert answer.usage.completion_tokens == 6
    chunks = list(
        vllm_client.completions.create(
            model="tiny", prompt="def main():", max_tokens=6, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks) == answer.choices[0].text


def test_guided_json_is_honoured_as_structured_outputs(vllm_client: openai.OpenAI) -> None:
    # (an object schema lets the random model emit whitespace until max_tokens: a bare enum
    # is what finishes on it; the constraint is the same machinery)
    schema = {"type": "string", "enum": ["yes", "no"]}
    answer = vllm_client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=20, temperature=0,
        extra_body={"guided_json": schema},
    )  # fmt: skip
    assert answer.choices[0].finish_reason == "stop"
    assert json.loads(answer.choices[0].message.content) in schema["enum"]


def test_guided_choice_constrains_where_vllm_alone_would_not(
    vllm_client: openai.OpenAI, vllm_url: str
) -> None:
    body = {"messages": HELLO, "max_tokens": 8, "temperature": 0, "guided_choice": ["yes", "no"]}
    via = httpx.post(
        str(vllm_client.base_url) + "chat/completions", json={**body, "model": "tiny"}, timeout=60
    )
    assert via.json()["choices"][0]["message"]["content"] in ("yes", "no")
    # sent as it is, vLLM 0.32 ignores guided_choice with HTTP 200: free text comes back
    direct = httpx.post(
        vllm_url + "/chat/completions", json={**body, "model": "tiny-llama"}, timeout=60
    )
    assert direct.status_code == 200
    assert direct.json()["choices"][0]["message"]["content"] not in ("yes", "no")


def test_forced_tool_call(vllm_client: openai.OpenAI) -> None:
    # the recipe that finishes on the random model (tests/vllm/README.md)
    tool = {
        "type": "function",
        "function": {
            "name": "ping",
            "strict": True,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    }
    common = {
        "model": "tiny",
        "messages": HELLO,
        "tools": [tool],
        "temperature": 0,
        "max_tokens": 60,
        "logit_bias": {"93": 30, "95": 30},
    }
    answer = vllm_client.chat.completions.create(
        **common, tool_choice={"type": "function", "function": {"name": "ping"}}
    )
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "ping" and json.loads(call.function.arguments) == {}
    answer = vllm_client.chat.completions.create(
        **common, tool_choice="required", parallel_tool_calls=False
    )
    assert answer.choices[0].finish_reason == "tool_calls"
    chunks = list(
        vllm_client.chat.completions.create(
            **common, tool_choice="required", parallel_tool_calls=False, stream=True
        )
    )
    args = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
    )
    assert args == "{}" and chunks[-1].choices[0].finish_reason == "tool_calls"


def _disconnect_after_one_second(gateway: GatewayProcess, vllm_url: str) -> str | None:
    """One try: None if the engine stopped soon after the client left, else why not."""
    full = 32 * 2000
    generated = metric(vllm_url, "vllm:generation_tokens_total")
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 2000, "ignore_eos": True, "n": 32}
    data = json.dumps(body).encode()
    # A raw socket, closed after 1 s: an httpx ReadTimeout inside pytest.raises kept the
    # connection open (the traceback held it) until garbage collection, so the gateway saw
    # no disconnect at all in some runs.
    with socket.create_connection(("127.0.0.1", gateway.port)) as client:
        client.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(data), data)
        )
        time.sleep(1.0)
    started = time.monotonic()  # the client is gone
    while metric(vllm_url, "vllm:num_requests_running") > 0:
        if time.monotonic() - started > 4:
            return "the engine kept generating after a disconnect"
        time.sleep(0.05)
    time.sleep(0.3)
    tokens = metric(vllm_url, "vllm:generation_tokens_total") - generated
    return None if tokens < 0.75 * full else f"{tokens:.0f} of {full} tokens generated"


def test_client_disconnect_frees_the_engine(vllm_gateway: GatewayProcess, vllm_url: str) -> None:
    # 32 x 2000 tokens keep this engine busy twice as long as the 16 x 2000 (4-8 s) this
    # test asked before: on a fast machine a disconnect seen 2 s late already crossed the
    # 75 % bound then (failed once in CI, 2026-12-07: 88 % and 79 %). The client gives up
    # after 1 s: the gateway must cancel the upstream request and vLLM abort it. A JSON
    # request: on 2 cores a stream's relay competes with the engine for the CPU, so a
    # streaming client may see its first chunk only when generation is done. The bounds leave room for a loaded,
    # shared machine (the gateway may notice the disconnect seconds late there).
    # Two tries: vLLM's CPU build spins its threads on both cores of the test machines and
    # starves the gateway's event loop, which then sees the client's close seconds late
    # (traced: 1.7-5 s in some tries, once only after the engine had finished). The test
    # still fails if the disconnect is never honoured.
    first = _disconnect_after_one_second(vllm_gateway, vllm_url)
    if first is None:
        return
    second = _disconnect_after_one_second(vllm_gateway, vllm_url)
    assert second is None, f"{first}; then again: {second}"


def test_dropped_params_header_on_a_real_answer(vllm_gateway: GatewayProcess) -> None:
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 2, "separate_reasoning": False}
    resp = httpx.post(vllm_gateway.url + "/v1/chat/completions", json=body, timeout=60)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "separate_reasoning"
    assert re.search("SGLang-only", resp.json()["error"]["message"])
