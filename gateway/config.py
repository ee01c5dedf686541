"""Gateway configuration: one YAML file, `${VAR}` interpolation, validated once at start-up.

Load order (later wins): the YAML file, then `GYM_GATEWAY_*` environment variables
(`GYM_GATEWAY_SERVER__PORT=9000`), then explicit overrides (CLI flags).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_ENV = "GYM_GATEWAY_CONFIG"
DEFAULT_CONFIG_NAME = "default_config.yaml"

Backend = Literal["mock", "vllm", "sglang", "tgi", "openai", "gemini"]
NETWORK_BACKENDS = ("vllm", "sglang", "tgi", "openai", "gemini")
# Hosted providers have a well-known endpoint and key variable; self-hosted engines do not.
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
}
# Backends with a /v1/responses endpoint of their own (vLLM's is best for gpt-oss models).
NATIVE_RESPONSES_BACKENDS = ("openai", "vllm", "sglang")
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


class ConfigError(Exception):
    """A configuration that cannot be served; the message names file, route and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiKeyConfig(_Strict):
    """A gateway API key clients send as `Authorization: Bearer <key>`."""

    name: str = Field(min_length=1, description="shown in logs and metrics instead of the key")
    key: SecretStr
    routes: list[str] | None = Field(None, description="routes this key may use; null = all")

    @model_validator(mode="after")
    def _non_empty(self) -> ApiKeyConfig:
        if len(self.key.get_secret_value()) < 8:
            raise ValueError(f"API key '{self.name}': the key must be at least 8 characters")
        return self


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="413 above this")
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="431 above this")
    upstream_max_connections: int = Field(
        0, ge=0, description="connection pool size per worker; 0 means unlimited"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    request_log: bool = Field(True, description="one structured log line per request")
    access_log: bool = Field(False, description="uvicorn's own access log (plain text)")
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="on SIGTERM, how long in-flight requests and streams may finish"
    )
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    api_keys_file: str | None = Field(None, description="YAML list of {name, key, routes}")
    admin_key: SecretStr | None = Field(None, description="bearer key for /admin/* endpoints")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins")


class Timeouts(_Strict):
    """Seconds; null means no limit. Long generations are normal, so total defaults to none."""

    connect: float | None = Field(10.0, gt=0)
    first_byte: float | None = Field(None, gt=0)
    idle: float | None = Field(None, gt=0, description="longest gap between stream chunks")
    total: float | None = Field(None, gt=0)


class MockOptions(_Strict):
    """Behaviour of the built-in mock backend (tests, demos, Gym environments without a GPU)."""

    latency_ms: float = Field(0.0, ge=0, description="delay before the answer starts")
    stream_delay_ms: float = Field(0.0, ge=0, description="delay between streamed words")
    reply: str | None = Field(None, description="fixed reply instead of echoing the user")


class RouteConfig(_Strict):
    name: str = Field(min_length=1, description="the model name clients send")
    backend: Backend
    base_url: str | None = None
    upstream_model: str | None = None
    api_key: SecretStr | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    mock: MockOptions = Field(default_factory=MockOptions)
    native_responses: bool | None = Field(
        None, description="send /v1/responses upstream as is (default: true for openai only)"
    )
    description: str | None = None

    @model_validator(mode="after")
    def _check_backend_fields(self) -> RouteConfig:
        if self.backend in NETWORK_BACKENDS:
            url = self.base_url or DEFAULT_BASE_URLS.get(self.backend)
            if not url:
                raise ValueError(f"base_url is required for backend '{self.backend}'")
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"base_url must be an http(s) URL, got {url!r}")
            object.__setattr__(self, "base_url", url.rstrip("/"))
            if self.api_key is None and self.backend in DEFAULT_KEY_ENV:
                key = os.environ.get(DEFAULT_KEY_ENV[self.backend])
                if key:
                    object.__setattr__(self, "api_key", SecretStr(key))
        elif self.base_url is not None:
            raise ValueError("base_url has no meaning for backend 'mock'")
        if self.native_responses is None:
            object.__setattr__(self, "native_responses", self.backend == "openai")
        elif self.native_responses and self.backend not in NATIVE_RESPONSES_BACKENDS:
            raise ValueError(
                f"native_responses: backend '{self.backend}' has no /v1/responses endpoint; "
                "remove the key (the gateway translates to Chat Completions)"
            )
        return self

    @property
    def target_model(self) -> str:
        return self.upstream_model or self.name


class GatewayConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GYM_GATEWAY_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerConfig = Field(default_factory=ServerConfig)
    models: list[RouteConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> GatewayConfig:
        seen: set[str] = set()
        for index, route in enumerate(self.models):
            if route.name in seen:
                raise ValueError(f"models[{index}]: duplicate route name {route.name!r}")
            seen.add(route.name)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML tree arrives through init kwargs; environment variables override it.
        return (env_settings, init_settings)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate(value: Any, where: str = "") -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: interpolate(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set")

    return _VAR.sub(substitute, value)


def _describe_location(raw: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """Turn ('models', 1, 'base_url') into "route 'qwen' (models[1]), field base_url"."""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        routes = raw.get("models") or []
        name = None
        if loc[1] < len(routes) and isinstance(routes[loc[1]], dict):
            name = routes[loc[1]].get("name")
        rest = ".".join(str(p) for p in loc[2:])
        label = f"route {name!r} (models[{loc[1]}])" if name else f"models[{loc[1]}]"
        return f"{label}, field {rest}" if rest else label
    return "field " + ".".join(str(p) for p in loc) if loc else "top level"


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config error in {source}: invalid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config error in {source}: the top level must be a mapping")
    return raw


def parse_config(text: str, source: str, **overrides: Any) -> GatewayConfig:
    """Validate YAML text into a GatewayConfig, or raise ConfigError with one clear message."""
    raw = _read_yaml(text, source)
    try:
        tree = interpolate(raw)
    except ConfigError as exc:
        raise ConfigError(f"config error in {source}: {_name_route(raw, str(exc))}") from None
    if overrides:
        server = dict(tree.get("server") or {})
        server.update({k: v for k, v in overrides.items() if v is not None})
        tree["server"] = server
    try:
        return GatewayConfig(**tree)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:
                problems.append(_name_route(raw, msg))
            else:
                problems.append(f"{_describe_location(raw, tuple(err['loc']))}: {msg}")
        raise ConfigError(f"config error in {source}: " + "; ".join(problems)) from None


def _name_route(raw: dict[str, Any], message: str) -> str:
    match = re.match(r"models\[(\d+)\]\.?(.*?): (.*)", message)
    if not match:
        return message
    index, field, rest = int(match.group(1)), match.group(2), match.group(3)
    fields = tuple(field.split(".")) if field else ()
    return f"{_describe_location(raw, ('models', index, *fields))}: {rest}"


def default_config_text() -> str:
    return resources.files("gateway").joinpath(DEFAULT_CONFIG_NAME).read_text(encoding="utf-8")


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> GatewayConfig:
    """Load from `path`, else $GYM_GATEWAY_CONFIG, else the packaged default (mock `echo`)."""
    path = path or os.environ.get(CONFIG_ENV) or None
    if path is None:
        return parse_config(default_config_text(), "<packaged default config>", **overrides)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"config error in {file}: cannot read the file ({exc.strerror})"
        ) from None
    return parse_config(text, str(file), **overrides)
