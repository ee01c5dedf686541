"""Through the gateway to a real vLLM server (CPU build, tiny random model)."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess
from tests.spec.conformance import check_events, check_response, parse_sse
from tests.tiny_llama import HELLO


def direct(vllm_url: str, body: dict) -> dict:
    return httpx.post(vllm_url + "/chat/completions", json=body, timeout=60).json()


def test_chat_json_equals_direct(vllm_client: openai.OpenAI, vllm_url: str) -> None:
    answer = vllm_client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=8, temperature=0
    )
    expected = direct(
        vllm_url, {"model": "tiny-llama", "messages": HELLO, "max_tokens": 8, "temperature": 0}
    )
    assert answer.model == "tiny"
    assert answer.choices[0].message.content == expected["choices"][0]["message"]["content"]
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 8
    assert answer.system_fingerprint and answer.system_fingerprint.startswith("vllm-0.32")


def test_chat_stream_equals_json(vllm_client: openai.OpenAI) -> None:
    json_answer = vllm_client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=8, temperature=0
    )
    chunks = list(
        vllm_client.chat.completions.create(
            model="tiny",
            messages=HELLO,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == json_answer.choices[0].message.content
    assert {c.model for c in chunks} == {"tiny"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_token_ids_and_logprobs_pass_through_exactly(
    vllm_gateway: GatewayProcess, vllm_url: str
) -> None:
    body = {
        "messages": HELLO,
        "max_tokens": 4,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 0,
        "return_tokens_as_token_ids": True,
        "return_token_ids": True,
    }
    via = httpx.post(
        vllm_gateway.url + "/v1/chat/completions", json={**body, "model": "tiny"}, timeout=60
    ).json()
    ref = direct(vllm_url, {**body, "model": "tiny-llama"})
    assert via["prompt_token_ids"] == ref["prompt_token_ids"]
    assert via["choices"][0]["token_ids"] == ref["choices"][0]["token_ids"]
    assert via["choices"][0]["logprobs"] == ref["choices"][0]["logprobs"]
    assert via["choices"][0]["logprobs"]["content"][0]["token"].startswith("token_id:")


def test_unknown_upstream_model_is_404(vllm_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        vllm_client.chat.completions.create(model="tiny-missing", messages=HELLO, max_tokens=2)
    assert "does not exist" in str(info.value)


def test_context_overflow_is_400_with_context_length(vllm_client: openai.OpenAI) -> None:
    long_text = " ".join(["word"] * 3000)
    with pytest.raises(openai.BadRequestError) as info:
        vllm_client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": long_text}], max_tokens=2
        )
    assert "context length" in str(info.value)


def test_responses_by_translation_match_chat(vllm_client: openai.OpenAI) -> None:
    chat = vllm_client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=8, temperature=0
    )
    created = vllm_client.responses.create(
        model="tiny", input="Hello there", max_output_tokens=8, temperature=0
    )
    assert created.output_text == chat.choices[0].message.content
    assert created.status == "incomplete"
    assert created.incomplete_details is not None
    assert created.incomplete_details.reason == "max_output_tokens"
    assert created.usage is not None and created.usage.output_tokens == 8
    with vllm_client.responses.stream(
        model="tiny", input="Hello there", max_output_tokens=8, temperature=0
    ) as stream:
        events = list(stream)
    # OpenAI's own terminal event for a truncated answer is response.incomplete (the SDK's
    # get_final_response() only accepts response.completed), so read it from the event.
    assert events[0].type == "response.created" and events[-1].type == "response.incomplete"
    final = events[-1].response
    assert final.output_text == created.output_text
    assert final.usage is not None and final.usage.output_tokens == 8
    # the same objects, raw, against the Open Responses spec and the SDK's types
    body = {"model": "tiny", "input": "Hello there", "max_output_tokens": 8, "temperature": 0}
    url = str(vllm_client.base_url).rstrip("/") + "/responses"
    check_response(httpx.post(url, json=body, timeout=120).json())
    check_events(parse_sse(httpx.post(url, json={**body, "stream": True}, timeout=120).content))
