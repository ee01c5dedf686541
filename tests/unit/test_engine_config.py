"""Config of the new route keys: `launch`, `unsupported_params`, `backend: litellm`."""

from __future__ import annotations

import pytest

from backends.launcher import default_health_url
from gateway.config import ConfigError, parse_config

VLLM = "models:\n - name: v\n   backend: vllm\n   base_url: http://127.0.0.1:8001/v1\n"


def test_launch_as_a_string_or_an_object() -> None:
    route = parse_config(VLLM + "   launch: 'vllm serve m --port 8001'\n", "t").models[0]
    assert route.launch is not None and route.launch.argv == [
        "vllm",
        "serve",
        "m",
        "--port",
        "8001",
    ]
    assert route.launch.startup_timeout == 900 and route.launch.restart
    assert default_health_url(route) == "http://127.0.0.1:8001/health"
    text = VLLM + "   launch: {command: 'x --a \"b c\"', startup_timeout: 5, env: {K: v}}\n"
    route = parse_config(text, "t").models[0]
    assert route.launch.argv == ["x", "--a", "b c"] and route.launch.env == {"K": "v"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n - {name: m, backend: mock, launch: 'x'}\n", "not a local engine"),
        ("models:\n - {name: o, backend: openai, api_key: k, launch: 'x'}\n", "not a local engine"),
        (VLLM + "   launch: ''\n", "at least 1 character"),
        (VLLM + "   launch: 'x \"unclosed'\n", "cannot be split"),
        (VLLM + "   launch: {command: x, bogus: 1}\n", "bogus"),
        ("server: {workers: 2}\n" + VLLM + "   launch: x\n", "launch needs server.workers: 1"),
        ("models:\n - {name: l, backend: litellm, base_urls: ['http://a', 'http://b']}\n",
         "takes one base_url"),
        ("models:\n - {name: l, backend: litellm, base_url: 'ftp://x'}\n", "http(s) URL"),
        ("models:\n - {name: l, backend: litellm, native_responses: true}\n", "native_responses"),
    ],
)  # fmt: skip
def test_bad_engine_config(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="config error in t") as info:
        parse_config(text, "t")
    assert message in str(info.value)


def test_litellm_base_url_is_optional() -> None:
    pytest.importorskip("litellm")
    route = parse_config("models:\n - {name: l, backend: litellm, upstream_model: a/b}\n", "t")
    assert route.models[0].base_url is None
