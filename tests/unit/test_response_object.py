"""gateway/translate/response_object.py: the values every Response carries."""

from __future__ import annotations

from gateway.translate import build_response, effective_params, error_event, fill_response
from tests.spec.conformance import check_event, check_response


def test_effective_params_precedence() -> None:
    request = {"temperature": 0.3, "top_p": 0.5, "presence_penalty": 3.0, "top_logprobs": 4}
    got = effective_params(
        request,
        defaults={"temperature": 0.6, "frequency_penalty": 0.2},
        overrides={"top_p": 0.9},
        clamped={"presence_penalty": [3.0, 2.0]},
    )
    assert got == {
        "temperature": 0.3,  # the client's value beats the route default
        "top_p": 0.9,  # a route override beats the client
        "presence_penalty": 2.0,  # as the route's table clamped it
        "frequency_penalty": 0.2,  # the route default, the client sent none
        "top_logprobs": 4,
    }
    assert effective_params({}, defaults={"temperature": 0.6})["temperature"] == 0.6
    assert effective_params({"temperature": 0.3}, dropped=["temperature"])["temperature"] == 1.0
    assert effective_params({}) == {
        "temperature": 1.0,
        "top_p": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_logprobs": 0,
    }
    assert effective_params({"temperature": True, "top_logprobs": True})["temperature"] == 1.0


def test_tools_and_text_are_complete() -> None:
    request = {
        "tools": [
            {"type": "function", "name": "a"},
            {"type": "function", "function": {"name": "b", "strict": True}},
        ],
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
    }
    resp = build_response(
        request, model="m", response_id="r", created_at=1, status="in_progress",
        output=[], usage=None,
    )  # fmt: skip
    assert resp["tools"] == [
        {"type": "function", "name": "a", "description": None, "parameters": None,
         "strict": None},
        {"type": "function", "name": "b", "description": None, "parameters": None,
         "strict": True},
    ]  # fmt: skip
    assert resp["text"]["format"]["strict"] is False
    assert resp["text"]["format"]["description"] is None
    assert resp["completed_at"] is None and resp["service_tier"] == "default"
    check_response(resp)


def test_fill_response_keeps_upstream_values_and_fills_gaps() -> None:
    upstream = {
        "id": "resp_x",
        "object": "response",
        "created_at": 5,
        "status": "completed",
        "model": "m",
        "output": [],
        "temperature": 0.7,
        "top_p": None,
        "service_tier": "priority",
        "tools": [{"type": "function", "name": "f", "parameters": {}, "strict": True}],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        "x_extra": 1,
    }
    filled = fill_response(upstream, {"top_p": 0.4, "prompt_cache_key": "k"})
    assert filled["temperature"] == 0.7 and filled["top_p"] == 0.4
    assert filled["service_tier"] == "priority" and filled["prompt_cache_key"] == "k"
    assert filled["x_extra"] == 1 and isinstance(filled["completed_at"], int)
    assert filled["usage"]["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    check_response(filled)


def test_error_event_has_both_shapes() -> None:
    event = error_event(3, "boom", "upstream_reset", "upstream_error")
    assert event["error"] == {
        "type": "upstream_error", "code": "upstream_reset", "message": "boom", "param": None,
    }  # fmt: skip
    assert (event["code"], event["message"], event["param"]) == ("upstream_reset", "boom", None)
    check_event(event)
