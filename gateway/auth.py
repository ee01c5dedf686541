"""Gateway API keys (bearer), per-key route permissions, and the admin key.

Keys are stored as SHA-256 digests, so a lookup compares digests, not secrets, and a key
never sits in a structure that might be logged. With no keys configured the API is open,
as an engine on loopback would be.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from starlette.types import Scope

from gateway.config import ApiKeyConfig, ConfigError, ServerConfig, interpolate
from gateway.context import RequestContext
from gateway.errors import GatewayError

# Paths anyone may call: liveness, readiness, metrics (which hold no secrets), API docs.
PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics", "/docs", "/openapi.json"})
ADMIN_PREFIX = "/admin/"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    name: str
    routes: frozenset[str] | None


def _digest(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(raw).digest()


def load_key_file(path: str) -> list[ApiKeyConfig]:
    """A YAML list of {name, key, routes} (for keys mounted as a secret file)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config error in {path}: cannot read the API key file ({exc})") from None
    if not isinstance(raw, list):
        raise ConfigError(f"config error in {path}: the API key file must be a YAML list")
    try:
        return [ApiKeyConfig(**interpolate(item, f"{path}[{i}]")) for i, item in enumerate(raw)]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config error in {path}: {exc}") from None


def _is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class Authenticator:
    def __init__(self, server: ServerConfig, route_names: set[str]) -> None:
        keys = list(server.api_keys)
        if server.api_keys_file:
            keys += load_key_file(server.api_keys_file)
        self.keys: dict[bytes, KeyInfo] = {}
        # key name -> (requests, tokens) per minute, for keys that have limits
        self.key_limits: dict[str, tuple[int | None, int | None]] = {}
        for key in keys:
            if key.requests_per_minute or key.tokens_per_minute:
                self.key_limits[key.name] = (key.requests_per_minute, key.tokens_per_minute)
            unknown = set(key.routes or ()) - route_names
            if unknown:
                raise ConfigError(
                    f"config error: API key '{key.name}' names unknown routes: "
                    f"{', '.join(sorted(unknown))}"
                )
            routes = frozenset(key.routes) if key.routes is not None else None
            self.keys[_digest(key.key.get_secret_value())] = KeyInfo(key.name, routes)
        admin = server.admin_key.get_secret_value() if server.admin_key else ""
        self.admin_digest = _digest(admin) if admin else None

    @staticmethod
    def _bearer(authorization: bytes | None) -> bytes | None:
        if not authorization or authorization[:7].lower() != b"bearer ":
            return None
        token = authorization[7:].strip()
        return token or None

    def authenticate(self, scope: Scope, authorization: bytes | None, ctx: RequestContext) -> None:
        """Raise 401/403 in OpenAI's shape, or annotate ctx with the key's name and routes."""
        path: str = scope["path"]
        if path in PUBLIC_PATHS:
            return
        token = self._bearer(authorization)
        if path.startswith(ADMIN_PREFIX):
            if self.admin_digest is None:
                if _is_loopback(scope):
                    return
                raise GatewayError(
                    403, "Admin endpoints accept only loopback clients unless server.admin_key "
                    "is set", code="admin_disabled",
                )  # fmt: skip
            if token is None or _digest(token) != self.admin_digest:
                raise GatewayError(
                    401, "Admin endpoints need 'Authorization: Bearer <admin key>'",
                    type="authentication_error", code="invalid_admin_key",
                )  # fmt: skip
            ctx.key_name = "admin"
            return
        if not self.keys:
            return
        if token is None:
            raise GatewayError(
                401, "Missing API key: send 'Authorization: Bearer <key>'",
                type="authentication_error", code="missing_api_key",
            )  # fmt: skip
        info = self.keys.get(_digest(token))
        if info is None:
            raise GatewayError(
                401, "Invalid API key", type="authentication_error", code="invalid_api_key"
            )
        ctx.key_name = info.name
        ctx.allowed_routes = info.routes


def check_route_allowed(ctx: RequestContext, route: str) -> None:
    if ctx.allowed_routes is not None and route not in ctx.allowed_routes:
        raise GatewayError(
            403, f"API key '{ctx.key_name}' may not use model '{route}'",
            type="permission_error", param="model", code="model_not_allowed",
        )  # fmt: skip
