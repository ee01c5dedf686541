"""SGLang specifics without a server: pause-mode mapping, health default, error codes,
integer `logprobs` on /v1/completions, and the engine's weight version on answers.

Shapes are those a real SGLang 0.5.23 CPU server answered (tests/sglang/README.md); the vLLM
>= 0.33 `weight_versions` spans follow its protocol (`WeightVersionSpan`: version, start,
end; half-open output-token ranges), since PyPI's vLLM CPU build is still 0.32.
"""

from __future__ import annotations

from typing import Any

import pytest

from backends.http import UpstreamHTTP
from backends.open_engine import EngineCall
from backends.sglang import SGLangDriver
from backends.upstream_errors import normalize_upstream_error
from backends.vllm import VLLMDriver
from gateway.config import RouteConfig
from gateway.context import RequestContext
from gateway.errors import InvalidRequest
from gateway.validation import check_completions_params
from gateway.weight_version import engine_versions, stamp_engine_version


def route(backend: str, **extra: Any) -> RouteConfig:
    return RouteConfig(name="r", backend=backend, base_url="http://127.0.0.1:9/v1", **extra)


def test_sglang_pause_modes_map_onto_pause_generation() -> None:
    driver = SGLangDriver(route("sglang"), UpstreamHTTP())
    assert driver.pause_call("abort") == EngineCall("/pause_generation", {"mode": "abort"})
    assert driver.pause_call("keep") == EngineCall("/pause_generation", {"mode": "retract"})
    assert driver.pause_call("wait") == EngineCall(
        "/pause_generation", {"mode": "retract"}, after_drain=True
    )
    assert driver.resume_call() == EngineCall("/continue_generation", {})


def test_vllm_pause_modes_are_its_own() -> None:
    driver = VLLMDriver(route("vllm"), UpstreamHTTP())
    assert [driver.pause_call(m).path for m in ("wait", "keep", "abort")] == [
        "/pause?mode=wait",
        "/pause?mode=keep",
        "/pause?mode=abort",
    ]
    assert driver.resume_call() == EngineCall("/resume")


def test_sglang_health_defaults_to_ping_unless_set() -> None:
    assert route("sglang").health.path == "/ping"
    assert route("sglang", health={"interval_s": 2}).health.path == "/ping"
    assert route("sglang", health={"path": "/health"}).health.path == "/health"
    assert route("sglang", health={"path": None}).health.path is None
    assert route("vllm").health.path == "/health"


def test_sglang_flat_error_code_becomes_openai_shaped() -> None:
    # what SGLang 0.5.23 answered for a prompt over the context length
    raw = (
        b'{"object":"error","message":"The input (2100 tokens) is longer than the model\'s '
        b'context length (2048 tokens).","type":"BadRequestError","param":null,"code":400}'
    )
    body = normalize_upstream_error("sglang", 400, raw).body()["error"]
    assert body["code"] == "context_length_exceeded" and body["upstream_code"] == 400
    raw = b'{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}'
    body = normalize_upstream_error("sglang", 400, raw).body()["error"]
    assert body["code"] is None and body["upstream_code"] == 400
    assert body["message"] == "bad" and body["type"] == "BadRequestError"


@pytest.mark.parametrize("value", [0, 1, 5, None])
def test_completions_take_integer_logprobs(value: Any) -> None:
    check_completions_params({"prompt": "x", "logprobs": value})


@pytest.mark.parametrize("value", [True, 6, -1, 1.5, "2"])
def test_completions_refuse_other_logprobs(value: Any) -> None:
    with pytest.raises(InvalidRequest) as err:
        check_completions_params({"prompt": "x", "logprobs": value})
    assert err.value.param == "logprobs"


# -- the engine's weight version ---------------------------------------------------------------
SGLANG_METADATA = {  # SGLang 0.5.23 chat answer, before any refit call
    "weight_version": "default",
    "weight_versions": [{"version": "default", "start": 0, "end": 3}],
}


def answer_with(**fields: Any) -> dict[str, Any]:
    return {"object": "chat.completion", "choices": [{"index": 0, "message": {}}], **fields}


def test_sglang_metadata_gives_the_version() -> None:
    assert engine_versions(answer_with(metadata=SGLANG_METADATA)) == ["default"]
    # recorded: a 1500-token generation paused (retract) after 26 tokens, weights updated
    # to version "v2" (update_weights_from_disk), continued
    spanned = {
        "weight_version": "v2",
        "weight_versions": [
            {"version": "default", "start": 0, "end": 26},
            {"version": "v2", "start": 26, "end": 1500},
        ],
    }
    assert engine_versions(answer_with(metadata=spanned)) == ["default", "v2"]
    # msgspec's array-like span form
    assert engine_versions(answer_with(metadata={"weight_versions": [["7", 0, 2]]})) == ["7"]


def test_vllm_033_choice_spans_give_the_version() -> None:
    answer = answer_with()
    answer["choices"][0]["weight_versions"] = [
        {"version": "3", "start": 0, "end": 4},
        {"version": "4", "start": 4, "end": 6},
    ]
    assert engine_versions(answer) == ["3", "4"]
    assert engine_versions(answer_with()) == []


def test_stamp_prefers_the_engine_and_says_when_a_generation_spanned_two() -> None:
    ctx = RequestContext(request_id="r", endpoint="/v1/chat/completions")
    ctx.policy_version = "gateway-7"
    stamp_engine_version(answer_with(), ctx)  # the engine says nothing: the gateway's stays
    assert ctx.policy_version == "gateway-7" and ctx.policy_versions is None
    stamp_engine_version(answer_with(metadata=SGLANG_METADATA), ctx)
    assert ctx.policy_version == "default" and ctx.policy_versions is None
    spans = [{"version": "1", "start": 0, "end": 2}, {"version": "2", "start": 2, "end": 3}]
    stamp_engine_version(answer_with(metadata={"weight_versions": spans}), ctx)
    assert ctx.policy_version == "2" and ctx.policy_versions == ["1", "2"]
