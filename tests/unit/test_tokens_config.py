"""Route options of the RL token contract: token_ids, eos_token_id, max_model_len, training."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_config


def route(extra: str, backend: str = "vllm") -> str:
    url = "" if backend == "mock" else "    base_url: http://127.0.0.1:9/v1\n"
    other = "  - name: other\n    backend: vllm\n    base_url: http://127.0.0.1:9/v1\n"
    return f"models:\n  - name: r\n    backend: {backend}\n{url}{extra}{other}"


def test_defaults() -> None:
    r = parse_config(route(""), "x").models[0]
    assert (r.token_ids, r.eos_token_id, r.max_model_len, r.training) == ("auto", None, None, None)
    assert r.tokens_forced is False


def test_training_and_always_force_the_token_path() -> None:
    cfg = parse_config(route("    training: {temperature: 0.9}\n    eos_token_id: [2, 7]\n"), "x")
    r = cfg.models[0]
    assert r.tokens_forced and r.training is not None
    assert (r.training.temperature, r.training.top_p, r.eos_token_id) == (0.9, 1.0, [2, 7])
    assert parse_config(route("    token_ids: always\n", "sglang"), "x").models[0].tokens_forced


@pytest.mark.parametrize(
    ("extra", "backend", "message"),
    [
        ("    token_ids: always\n", "openai", "need a vllm or sglang backend"),
        ("    training: {}\n", "tgi", "need a vllm or sglang backend"),
        ("    training: {}\n    fallbacks: [other]\n", "vllm", "fallbacks"),
        ("    training: {}\n    overrides: {temperature: 0.5}\n", "vllm", "overrides.temperature"),
        ("    token_ids: always\n    native_responses: true\n", "vllm", "native_responses"),
        ("    training: {val_temperature: 0.0}\n", "vllm", "together"),
        ("    token_ids: sometimes\n", "vllm", "token_ids"),
        ("    max_model_len: 0\n", "vllm", "max_model_len"),
    ],
)
def test_config_errors(extra: str, backend: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(route(extra, backend), "x")
