"""The token path prepares a chat body once (backends/token_in.plan_request): the driver's
own `prepare_chat` passes a PreparedChat on as is, so the route's defaults and overrides are
applied once and cannot undo what the token path did after them (the max_tokens clamp)."""

from __future__ import annotations

from backends import make_driver
from backends.base import PreparedChat
from backends.http import UpstreamHTTP
from gateway.config import parse_config
from gateway.context import RequestContext

MSG = [{"role": "user", "content": "hi"}]


def test_a_prepared_body_is_not_prepared_again() -> None:
    text = (
        "models:\n - name: r\n   backend: vllm\n   base_url: http://127.0.0.1:9/v1\n"
        "   upstream_model: up\n   overrides: {max_tokens: 100}\n   defaults: {top_p: 0.9}\n"
    )
    driver = make_driver(parse_config(text, "t").models[0], UpstreamHTTP())
    once = driver.prepare_chat({"model": "r", "messages": MSG})
    assert once["max_tokens"] == 100 and once["top_p"] == 0.9 and once["model"] == "up"
    prepared = PreparedChat(once)
    prepared["max_tokens"] = 7  # the token path's clamp to the context left
    del prepared["top_p"]  # and a field the engine's token path refuses
    assert driver.prepare_chat(prepared) is prepared
    sent = driver.request_body(prepared, RequestContext(request_id="t"))
    assert sent["max_tokens"] == 7 and "top_p" not in sent
    # a plain body still gets both
    assert driver.prepare_chat(dict(prepared))["max_tokens"] == 100
