from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main as cli_main
from gateway.config import ConfigError, default_config_text, interpolate, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "routes.yaml")
    return str(info.value)


def test_packaged_default_equals_example() -> None:
    assert default_config_text() == (ROOT / "config.example.yaml").read_text()
    config = load_config(ROOT / "config.example.yaml")
    echo = config.models[0]
    assert (echo.name, echo.backend) == ("echo", "mock")
    assert config.server.port == 8080
    # Only routes that answer with nothing else running: no engine, no key.
    assert {route.backend for route in config.models} == {"mock"}


def test_example_vllm_route_is_valid_once_uncommented() -> None:
    """The commented vLLM route in the example is what a user uncomments: it must load."""
    lines = (ROOT / "config.example.yaml").read_text().splitlines()
    start = lines.index("  # - name: qwen3-8b")
    uncommented = [
        line.replace("  # ", "  ", 1) if i >= start and line.startswith("  # ") else line
        for i, line in enumerate(lines)
    ]
    config = parse_config("\n".join(uncommented), "config.example.yaml")
    route = config.models[-1]
    assert (route.name, route.backend, route.upstream_model) == (
        "qwen3-8b",
        "vllm",
        "Qwen/Qwen3-8B",
    )


def test_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_HOST", "h.example")
    monkeypatch.delenv("GW_MISSING", raising=False)
    tree = {"a": "http://${GW_HOST}:${GW_PORT:-8001}/v1", "b": ["${GW_MISSING:-}", 3]}
    assert interpolate(tree) == {"a": "http://h.example:8001/v1", "b": ["", 3]}
    with pytest.raises(ConfigError, match="GW_MISSING is not set"):
        interpolate({"x": "${GW_MISSING}"})


def test_route_fields_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-secret")
    config = parse_config(
        """
models:
  - name: q
    backend: vllm
    base_url: http://127.0.0.1:8001/v1/
    upstream_model: Qwen/Qwen3-8B
    api_key: ${MY_KEY}
    defaults: {temperature: 0.6}
    overrides: {top_k: -1}
    timeouts: {connect: 2, idle: 30}
  - name: o
    backend: openai
""",
        "f.yaml",
    )
    q, o = config.models
    assert q.base_url == "http://127.0.0.1:8001/v1"
    assert q.target_model == "Qwen/Qwen3-8B"
    assert q.api_key is not None and q.api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(q)
    assert q.timeouts.idle == 30 and q.timeouts.total is None
    assert o.base_url == "https://api.openai.com/v1" and o.target_model == "o"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "models:\n - {name: a, backend: mock}\n - {name: a, backend: mock}\n",
            "route 'a' (models[1]): duplicate route name 'a'",
        ),
        (
            "models:\n - {name: a, backend: llama}\n",
            "route 'a' (models[0]), field backend: Input should be",
        ),
        (
            "models:\n - {name: a, backend: vllm}\n",
            "route 'a' (models[0]): base_url is required for backend 'vllm'",
        ),
        (
            "models:\n - {name: a, backend: sglang, base_url: 'ftp://x'}\n",
            "base_url must be an http(s) URL",
        ),
        (
            "models:\n - {name: a, backend: mock, api_key: '${GW_UNSET_VAR_X}'}\n",
            "route 'a' (models[0]), field api_key: environment variable GW_UNSET_VAR_X is not set",
        ),
        (
            "models:\n - {name: a, backend: mock, colour: red}\n",
            "route 'a' (models[0]), field colour: Extra inputs are not permitted",
        ),
        (
            "models:\n - {name: a, backend: mock, base_url: 'http://x'}\n",
            "base_url has no meaning for backend 'mock'",
        ),
        ("models: []\n", "field models: List should have at least 1 item"),
        ("server: {port: abc}\nmodels:\n - {name: a, backend: mock}\n", "field server.port"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("models: [\n", "invalid YAML"),
    ],
)
def test_bad_config_gives_one_clear_message(text: str, expected: str) -> None:
    message = error_of(text)
    assert message.startswith("config error in routes.yaml: ")
    assert expected in message


def test_env_overrides_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GYM_GATEWAY_SERVER__PORT", "9123")
    assert parse_config("models:\n - {name: a, backend: mock}\n", "f").server.port == 9123


def test_config_from_env_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n - {name: only, backend: mock}\n")
    monkeypatch.setenv("GYM_GATEWAY_CONFIG", str(path))
    assert [r.name for r in load_config().models] == ["only"]


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("models:\n - {name: a, backend: mock}\n")
    assert cli_main(["check", "--config", str(good)]) == 0
    assert "config OK: 1 routes: a (mock)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n - {name: a, backend: vllm}\n")
    assert cli_main(["check", "--config", str(bad)]) == 2
    assert f"config error in {bad}: route 'a'" in capsys.readouterr().err
    assert cli_main(["check", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
