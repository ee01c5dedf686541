"""Gateway configuration: one YAML file, `${VAR}` interpolation, validated once at start-up.

Load order (later wins): the YAML file, then `GYM_GATEWAY_*` environment variables
(`GYM_GATEWAY_SERVER__PORT=9000`), then explicit overrides (CLI flags).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.engines import LAUNCH_BACKENDS, LaunchOptions
from gateway.fleet_config import ClusterConfig
from gateway.policies import PoolPolicy

CONFIG_ENV = "GYM_GATEWAY_CONFIG"
DEFAULT_CONFIG_NAME = "default_config.yaml"

Backend = Literal["mock", "vllm", "sglang", "tgi", "openai", "gemini", "litellm"]
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
    requests_per_minute: int | None = Field(
        None, ge=1, description="generation requests per minute (fleet-wide with cluster:)"
    )
    tokens_per_minute: int | None = Field(
        None, ge=1, description="prompt + completion tokens per minute (fleet-wide with cluster:)"
    )

    @model_validator(mode="after")
    def _non_empty(self) -> ApiKeyConfig:
        if len(self.key.get_secret_value()) < 8:
            raise ValueError(f"API key '{self.name}': the key must be at least 8 characters")
        return self


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    backlog: int = Field(
        16384, ge=1, description="listen backlog; the kernel caps it at net.core.somaxconn"
    )
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="413 above this")
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="431 above this")
    # Client connections (gateway/connections.py, docs/operations.md)
    header_timeout_s: float = Field(
        10.0, gt=0, description="connection (or next request's first byte) to end of headers"
    )
    body_timeout_s: float = Field(60.0, gt=0, description="longest gap between body reads")
    keep_alive_s: float = Field(75.0, gt=0, description="idle time between requests")
    max_connections: int = Field(
        0, ge=0, description="client connections per worker; 0 = half the descriptor limit"
    )
    linger_s: float = Field(
        30.0, ge=0, description="after an early answer, how long the rest of the body is read"
    )
    linger_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="after an early answer, how much of it is read"
    )
    upstream_max_connections: int = Field(
        0, ge=0, description="connection pool size per worker; 0 means unlimited"
    )
    # What an upstream may send back (docs/operations.md, "Limits on upstream answers")
    upstream_max_answer_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="a longer JSON answer is a 502 upstream_too_large"
    )
    upstream_max_event_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="a longer SSE event ends the stream with an error"
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
    # Request recording (gateway/recording.py); a route's own `record` wins over this one.
    record: str | None = Field(None, description="JSONL file: one line per routed request")
    record_bodies: bool = Field(False, description="also write request and answer bodies")
    record_max_bytes: int = Field(0, ge=0, description="rotate past this size; 0 = never")
    record_keep: int = Field(3, ge=0, description="rotated files kept (FILE.1 … FILE.N)")
    state_dir: str | None = Field(
        None,
        description="where the gateway keeps state across restarts (stored responses, the "
        "compaction key); null = $XDG_STATE_HOME/gym-gateway or ~/.local/state/gym-gateway",
    )

    @functools.cached_property
    def state_path(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "gym-gateway"


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
    fail_every: int = Field(0, ge=0, description="every Nth request fails with 503; 0 = never")
    max_answer_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="400 answer_too_large when one answer (all choices, logprobs, stream "
        "framing, or the memory to build it) would cost more bytes than this",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="simulated parameter table: {top_k: drop, temperature: {clamp: [0, 1]}}",
    )

    @model_validator(mode="after")
    def _check_params(self) -> MockOptions:
        from gateway.fidelity import table_from_config

        try:
            table_from_config(self.params)
        except ValueError as exc:
            raise ValueError(f"params: {exc}") from None
        return self


class Price(_Strict):
    """US dollars per million tokens, for cost estimates in `gym-gateway compare`."""

    input_per_million: float = Field(0.0, ge=0)
    output_per_million: float = Field(0.0, ge=0)


# Backends that can return real token ids and take a prompt as token ids (docs/rl.md).
TOKEN_BACKENDS = ("vllm", "sglang")


class TrainingConfig(_Strict):
    """Sampling a training route pins (NeMo RL's check): requests may repeat, never change it."""

    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    val_temperature: float | None = Field(None, ge=0, description="a second accepted pair")
    val_top_p: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _pair(self) -> TrainingConfig:
        if (self.val_temperature is None) != (self.val_top_p is None):
            raise ValueError("give val_temperature and val_top_p together")
        return self


LITELLM_INSTALL_HINT = "pip install 'gym-gateway[litellm]'"

# Checks of a route against its backend family's driver (`defaults` and `overrides` its
# parameter table refuses). The drivers sit above this module, so they add the check here when
# `backends` is imported (backends/__init__.py) and config never imports them: every program
# that checks or serves a config imports the drivers first (gateway/cli.py, gateway/app.py).
ROUTE_CHECKS: list[Callable[[RouteConfig], None]] = []


class RouteConfig(PoolPolicy):
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
    record: str | None = Field(None, description="JSONL recording for this route")
    record_bodies: bool | None = Field(None, description="null = server.record_bodies")
    price: Price | None = None
    native_responses: bool | None = Field(
        None, description="send /v1/responses upstream as is (default: true for openai only)"
    )
    description: str | None = None
    # docs/backends.md: a parameter the backend cannot honour is a 400 (error) or dropped and
    # named in the x-gateway-dropped-params header (drop)
    unsupported_params: Literal["error", "drop"] = "error"
    launch: LaunchOptions | None = Field(None, description="start this local engine (vllm, ...)")
    # RL token contract (docs/rl.md)
    token_ids: Literal["auto", "always", "passthrough"] = Field(
        "auto", description="auto: when asked; always: on every chat answer; passthrough: off"
    )
    eos_token_id: int | list[int] | None = Field(
        None, description="end-of-turn id(s) for the splice; null = found from the template"
    )
    max_model_len: int | None = Field(None, ge=1, description="null = asked from the engine")
    training: TrainingConfig | None = None

    @model_validator(mode="after")
    def _check_backend_fields(self) -> RouteConfig:
        for name, value in self.headers.items():
            if any(c in name or c in value for c in "\r\n\0") or not name.strip():
                raise ValueError(f"headers: {name!r} has an empty name or a line break")
        if self.backend in NETWORK_BACKENDS:
            if self.base_url and self.base_urls:
                raise ValueError("give base_url (one upstream) or base_urls (a pool), not both")
            urls = list(self.base_urls or [])
            if not urls:
                url = self.base_url or DEFAULT_BASE_URLS.get(self.backend)
                if not url:
                    raise ValueError(f"base_url is required for backend '{self.backend}'")
                urls = [url]
            for url in urls:
                if not re.match(r"^https?://[^/\s]+", url):
                    raise ValueError(f"base_url must be an http(s) URL, got {url!r}")
            urls = [u.rstrip("/") for u in urls]
            if len(set(urls)) != len(urls):
                raise ValueError("base_urls lists the same upstream twice")
            object.__setattr__(self, "base_urls", urls)
            object.__setattr__(self, "base_url", urls[0])
            if self.api_key is None and self.backend in DEFAULT_KEY_ENV:
                key = os.environ.get(DEFAULT_KEY_ENV[self.backend])
                if key:
                    object.__setattr__(self, "api_key", SecretStr(key))
        elif self.backend == "litellm":
            self._check_litellm()
        elif self.base_url is not None or self.base_urls:
            raise ValueError("base_url has no meaning for backend 'mock'")
        if self.backend == "sglang" and "path" not in self.health.model_fields_set:
            # SGLang's /health runs a generation (a cost every poll) and blocks while a refit
            # pause holds generation, which would eject every replica; /ping does neither
            object.__setattr__(self, "health", self.health.model_copy(update={"path": "/ping"}))
        if self.launch is not None and self.backend not in LAUNCH_BACKENDS:
            raise ValueError(
                f"launch: backend '{self.backend}' is not a local engine; "
                f"launch works for {', '.join(LAUNCH_BACKENDS)}"
            )
        if self.native_responses is None:
            object.__setattr__(self, "native_responses", self.backend == "openai")
        elif self.native_responses and self.backend not in NATIVE_RESPONSES_BACKENDS:
            raise ValueError(
                f"native_responses: backend '{self.backend}' has no /v1/responses endpoint; "
                "remove the key (the gateway translates to Chat Completions)"
            )
        # the litellm extra, then the family's parameter table: after the checks above, so a
        # config error names the field before a missing extra
        if self.backend == "litellm" and importlib.util.find_spec("litellm") is None:
            raise ValueError(f"backend 'litellm' needs the optional extra: {LITELLM_INSTALL_HINT}")
        for check in ROUTE_CHECKS:
            check(self)
        self._check_token_fields()
        return self

    def _check_litellm(self) -> None:
        """litellm: base_url is optional (its `api_base`); no replica pools."""
        if self.base_urls:
            raise ValueError("base_urls: backend 'litellm' takes one base_url (or none)")
        if self.base_url is not None:
            if not re.match(r"^https?://[^/\s]+", self.base_url):
                raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
            object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def _check_token_fields(self) -> None:
        if self.tokens_forced and self.backend not in TOKEN_BACKENDS:
            raise ValueError(
                f"training and token_ids: always need a vllm or sglang backend; "
                f"'{self.backend}' cannot return real token ids"
            )
        if self.tokens_forced and self.native_responses:
            raise ValueError(
                "native_responses sends /v1/responses upstream untouched, so training and "
                "token_ids: always cannot apply there; remove native_responses"
            )
        if self.tokens_forced and self.fallbacks:
            raise ValueError(
                "fallbacks would serve a training / token_ids: always request from another "
                "model, whose token ids and log-probs the trainer cannot use; remove them"
            )
        if self.training is not None:
            for key in ("temperature", "top_p", "top_k", "n"):
                if key in self.overrides:
                    raise ValueError(
                        f"overrides.{key} conflicts with training (which pins the sampling)"
                    )

    @functools.cached_property
    def tokens_forced(self) -> bool:
        """Every chat request takes the token path (computed once: the hot path reads it)."""
        return self.training is not None or self.token_ids == "always"

    @property
    def target_model(self) -> str:
        return self.upstream_model or self.name


class ResponsesConfig(_Strict):
    """Stateful Responses (docs/responses.md, "Stored responses, WebSocket mode, compaction")."""

    store: Literal["auto", "sqlite", "redis", "memory", "off"] = Field(
        "auto",
        description="where `store: true` responses go; auto = the cluster's Redis when a "
        "`cluster:` block is set, else sqlite; off = every request stateless",
    )
    store_path: str | None = Field(None, description="SQLite file; null = STATE_DIR/responses.db")
    max_bytes: int = Field(
        1024**3, ge=0, description="oldest responses are deleted past this total; 0 = no limit"
    )
    max_age_s: float = Field(
        30 * 86400, gt=0, description="responses older than this are deleted (OpenAI keeps 30 d)"
    )
    ws_max_age_s: float = Field(3600, gt=0, description="a WebSocket connection's age cap")
    compaction_key: SecretStr | None = Field(
        None, description="secret that seals /v1/responses/compact output; null = a key "
        "generated once and kept in STATE_DIR/compaction.key",
    )  # fmt: skip


class GatewayConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GYM_GATEWAY_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerConfig = Field(default_factory=ServerConfig)
    models: list[RouteConfig] = Field(min_length=1)
    cluster: ClusterConfig | None = Field(
        None, description="shared fleet state on Redis (docs/scaling.md); null = one process"
    )
    responses: ResponsesConfig = Field(default_factory=ResponsesConfig)

    @model_validator(mode="after")
    def _check_keys(self) -> GatewayConfig:
        """The same verdict for `check`, `serve` and a reload: the key file reads, holds keys,
        and every key names only routes that exist."""
        names = {route.name for route in self.models}
        where = "server.api_keys"
        keys = [(f"{where}[{i}]", key) for i, key in enumerate(self.server.api_keys)]
        path = self.server.api_keys_file
        if path:
            try:
                file_keys = load_key_file(path)
                keys += [(f"server.api_keys_file: {path}[{i}]", k) for i, k in enumerate(file_keys)]
            except ConfigError as exc:
                raise ValueError(f"field server.api_keys_file: {exc}") from None
        for place, key in keys:
            unknown = set(key.routes or ()) - names
            if unknown:
                raise ValueError(
                    f"field {place}.routes: API key {key.name!r} names unknown routes: "
                    f"{', '.join(sorted(unknown))}"
                )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> GatewayConfig:
        seen: set[str] = set()
        for index, route in enumerate(self.models):
            if route.name in seen:
                raise ValueError(f"models[{index}]: duplicate route name {route.name!r}")
            seen.add(route.name)
        launched = [r.name for r in self.models if r.launch is not None]
        if launched and self.server.workers > 1:
            raise ValueError(
                f"route {launched[0]!r}: launch needs server.workers: 1 (every worker process "
                "would start its own engine)"
            )
        for index, route in enumerate(self.models):
            for name in route.fallbacks:
                if name == route.name or name not in seen:
                    raise ValueError(
                        f"models[{index}].fallbacks: {name!r} is not another route's name"
                    )
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


def load_key_file(path: str) -> list[ApiKeyConfig]:
    """A YAML list of {name, key, routes} (for keys mounted as a secret file). An empty file
    or list is refused: it would leave the API open to everyone without a word."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the API key file {path} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ConfigError(f"the API key file {path} is not valid YAML ({first})") from None
    if raw is None or raw == []:
        raise ConfigError(f"the API key file {path} holds no keys (the API would be open)")
    if not isinstance(raw, list):
        raise ConfigError(f"the API key file {path} must be a YAML list of {{name, key, routes}}")
    try:
        return [ApiKeyConfig(**interpolate(item, f"{path}[{i}]")) for i, item in enumerate(raw)]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "entry"
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"the API key file {path}: {field}: {msg}") from None
    except TypeError:  # an item that is not a mapping
        raise ConfigError(f"the API key file {path}: each item must be a mapping") from None


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
