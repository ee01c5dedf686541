"""`backend: litellm`: optional, imported only when a route uses it, a clear config error
when the extra is missing, and (when litellm is installed) a working route."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from gateway.config import ConfigError, parse_config
from gateway.context import RequestContext
from gateway.errors import GatewayError
from tests.upstream import ScriptedUpstream

MSG = [{"role": "user", "content": "hi"}]
# litellm's own import warns about its pydantic types
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def route_yaml(model: str, base_url: str = "") -> str:
    extra = f"   base_url: {base_url}\n   api_key: sk-litellm-test\n" if base_url else ""
    return f"models:\n - name: ll\n   backend: litellm\n   upstream_model: {model}\n" + extra


def test_missing_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # import litellm -> ImportError
    with pytest.raises(ConfigError) as info:
        parse_config(route_yaml("anthropic/claude"), "routes.yaml")
    assert "route 'll'" in str(info.value)
    assert "pip install 'gym-gateway[litellm]'" in str(info.value)


def test_the_core_never_imports_litellm() -> None:
    code = (
        "import sys; from gateway.app import create_app; from gateway.config import "
        "parse_config; create_app(parse_config(open('gateway/default_config.yaml').read(), "
        "'d')); import backends.vllm, backends.gemini, backends.tgi; "
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def litellm_available() -> None:
    pytest.importorskip("litellm")


def make(upstream: ScriptedUpstream, model: str):
    from backends import make_driver
    from backends.http import UpstreamHTTP

    route = parse_config(route_yaml(f"openai/{model}", upstream.base_url), "t").models[0]
    return make_driver(route, UpstreamHTTP())


async def test_litellm_route_chat_and_stream(
    litellm_available: None, upstream: ScriptedUpstream
) -> None:
    driver = make(upstream, "ok")
    answer = await driver.chat({"model": "ll", "messages": MSG}, RequestContext(request_id="l"))
    assert answer["choices"][0]["message"]["content"] == "upstream says hi"
    sent = upstream.state.last()
    assert sent["body"]["model"] == "ok"
    assert sent["headers"]["authorization"] == "Bearer sk-litellm-test"
    stream = await driver.open_chat_stream(
        {"model": "ll", "messages": MSG, "stream": True}, RequestContext(request_id="l")
    )
    text = ""
    async for batch in stream:
        for payload in batch:
            chunk = orjson.loads(payload)
            if chunk.get("choices"):
                text += chunk["choices"][0]["delta"].get("content") or ""
    assert text == "upstream says hi ü🎉"
    assert stream.saw_done


@pytest.mark.parametrize(
    ("model", "status", "part"),
    [("err-429", 429, "slow down"), ("vllm-overflow", 400, "context length"),
     ("err-notfound", 404, "does not exist")],
)  # fmt: skip
async def test_litellm_errors_keep_the_provider_status(
    litellm_available: None, upstream: ScriptedUpstream, model: str, status: int, part: str
) -> None:
    driver = make(upstream, model)
    with pytest.raises(GatewayError) as info:
        await driver.chat({"model": "ll", "messages": MSG}, RequestContext(request_id="l"))
    assert info.value.status == status and part in info.value.message
    assert "sk-litellm-test" not in info.value.message
