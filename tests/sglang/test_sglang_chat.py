"""Through the gateway to a real SGLang 0.5.23 server (CPU, tiny random model): answers
equal SGLang's own at temperature 0, and its differences from vLLM are handled."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess
from tests.spec.conformance import check_events, check_response, parse_sse
from tests.tiny_llama import HELLO, MODEL


def direct(sglang_url: str, path: str, body: dict) -> dict:
    return httpx.post(sglang_url + path, json=body, timeout=60).json()


def test_chat_json_and_stream_equal_direct(sglang_client: openai.OpenAI, sglang_url: str) -> None:
    body = {"messages": HELLO, "max_tokens": 8, "temperature": 0}
    answer = sglang_client.chat.completions.create(model="tiny", **body)
    expected = direct(sglang_url, "/chat/completions", {"model": MODEL, **body})
    assert answer.model == "tiny"
    assert answer.choices[0].message.content == expected["choices"][0]["message"]["content"]
    assert answer.choices[0].finish_reason == expected["choices"][0]["finish_reason"] == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 8
    chunks = list(
        sglang_client.chat.completions.create(
            model="tiny", stream=True, stream_options={"include_usage": True}, **body
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content
    assert {c.model for c in chunks} == {"tiny"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_logprobs_and_ids_pass_through_exactly(
    sglang_gateway: GatewayProcess, sglang_url: str
) -> None:
    """`return_token_ids` without the token contract: SGLang's own fields, as it sent them."""
    body = {
        "messages": HELLO,
        "max_tokens": 4,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 2,
        "return_token_ids": True,
    }
    via = httpx.post(
        sglang_gateway.url + "/v1/chat/completions", json={**body, "model": "tiny"}, timeout=60
    ).json()
    ref = direct(sglang_url, "/chat/completions", {**body, "model": MODEL})
    for key in ("prompt_token_ids", "response_token_ids", "logprobs"):
        assert via["choices"][0][key] == ref["choices"][0][key], key
    assert via["metadata"] == ref["metadata"]


def test_completions_integer_logprobs(sglang_client: openai.OpenAI, sglang_url: str) -> None:
    body = {"prompt": "Hello there", "max_tokens": 3, "temperature": 0, "logprobs": 2}
    answer = sglang_client.completions.create(model="tiny", **body)
    expected = direct(sglang_url, "/completions", {"model": MODEL, **body})
    assert answer.choices[0].text == expected["choices"][0]["text"]
    assert answer.choices[0].logprobs is not None
    assert (
        answer.choices[0].logprobs.token_logprobs
        == (expected["choices"][0]["logprobs"]["token_logprobs"])
    )
    assert all(len(top) == 2 for top in answer.choices[0].logprobs.top_logprobs or [])
    with pytest.raises(openai.BadRequestError) as info:
        sglang_client.completions.create(model="tiny", prompt="x", max_tokens=1, logprobs=6)
    assert info.value.body["param"] == "logprobs"  # type: ignore[index]


def test_unknown_upstream_model_is_404(sglang_client: openai.OpenAI) -> None:
    """SGLang itself answers any `model` with what it loaded; the gateway checks /v1/models."""
    with pytest.raises(openai.NotFoundError) as info:
        sglang_client.chat.completions.create(model="tiny-missing", messages=HELLO, max_tokens=2)
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "does not exist" in str(info.value)


def test_context_overflow_is_openai_shaped(sglang_client: openai.OpenAI) -> None:
    long_text = " ".join(["word"] * 3000)
    with pytest.raises(openai.BadRequestError) as info:
        sglang_client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": long_text}], max_tokens=2
        )
    error = info.value.body
    assert isinstance(error, dict) and "context length" in error["message"]
    assert error["code"] == "context_length_exceeded" and error["upstream_code"] == 400


def test_responses_by_translation_match_chat(sglang_client: openai.OpenAI) -> None:
    chat = sglang_client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=8, temperature=0
    )
    created = sglang_client.responses.create(
        model="tiny", input="Hello there", max_output_tokens=8, temperature=0
    )
    assert created.output_text == chat.choices[0].message.content
    assert created.status == "incomplete"
    assert created.usage is not None and created.usage.output_tokens == 8
    # the same objects, raw, against the Open Responses spec and the SDK's types
    body = {"model": "tiny", "input": "Hello there", "max_output_tokens": 8, "temperature": 0}
    url = str(sglang_client.base_url).rstrip("/") + "/responses"
    check_response(httpx.post(url, json=body, timeout=120).json())
    check_events(parse_sse(httpx.post(url, json={**body, "stream": True}, timeout=120).content))
