"""Gateway API keys (bearer), per-key route permissions, and the admin key.

Keys are stored as SHA-256 digests, so a lookup compares digests, not secrets, and a key
never sits in a structure that might be logged. With no keys configured the API is open,
as an engine on loopback would be.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from starlette.types import Scope

from gateway.config import ConfigError, ServerConfig, load_key_file
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.redact import remember

# Paths anyone may call: liveness, readiness, metrics (which hold no secrets), API docs.
PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics", "/docs", "/redoc", "/openapi.json"})
DOCS_ASSETS_PREFIX = "/docs/assets/"  # the pages' own JavaScript and CSS (gateway/docs_ui.py)
ADMIN_PREFIX = "/admin/"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    name: str
    routes: frozenset[str] | None


def _digest(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(raw).digest()


def _is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


# Host names a browser on this machine uses for the gateway when it is reached over loopback.
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _host_name(host: str) -> str:
    """`127.0.0.1:8080` -> `127.0.0.1`, `[::1]:8080` -> `::1`, `localhost` -> `localhost`."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_host(host: str) -> bool:
    name = _host_name(host).lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value.decode("latin-1")
    return None


def refuse_cross_site(scope: Scope) -> None:
    """Loopback-only admin (no admin_key): a web page open in a browser on this machine can
    reach loopback too. Refuse what only a browser sends: a Host that is not a loopback name
    (DNS rebinding: the page's own name resolving to 127.0.0.1), or an Origin that is not
    the gateway's own. curl, httpx and the SDKs send neither."""
    host = _header(scope, b"host") or ""
    if not is_loopback_host(host):
        raise GatewayError(
            403, f"Admin endpoints without server.admin_key answer only to a loopback Host "
            f"(localhost, 127.0.0.1, [::1]); got Host {host!r}", code="admin_host_refused",
        )  # fmt: skip
    origin = _header(scope, b"origin")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        raise GatewayError(
            403, f"Admin endpoints refuse cross-site requests (Origin {origin!r}); "
            "call them from a script, or set server.admin_key", code="admin_cross_site",
        )  # fmt: skip


def check_admin_content_type(scope: Scope) -> None:
    """An admin POST with a body must say it is JSON: a page can send text/plain, form and
    multipart bodies cross-site without a CORS preflight, but not application/json."""
    if scope["method"] != "POST":
        return
    content_type = _header(scope, b"content-type")
    length = _header(scope, b"content-length")
    has_body = (length not in (None, "0")) or _header(scope, b"transfer-encoding") is not None
    if content_type is None and not has_body:
        return
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise GatewayError(
            415, f"Admin POSTs take 'content-type: application/json' (got {content_type!r})",
            code="unsupported_media_type",
        )  # fmt: skip


class Authenticator:
    def __init__(self, server: ServerConfig, route_names: set[str]) -> None:
        keys = list(server.api_keys)
        if server.api_keys_file:
            keys += load_key_file(server.api_keys_file)
        remember(key.key.get_secret_value() for key in keys)  # never in an error or log
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
        if path in PUBLIC_PATHS or path.startswith(DOCS_ASSETS_PREFIX):
            return
        token = self._bearer(authorization)
        if path.startswith(ADMIN_PREFIX):
            if self.admin_digest is None:
                if not _is_loopback(scope):
                    raise GatewayError(
                        403, "Admin endpoints accept only loopback clients unless "
                        "server.admin_key is set", code="admin_disabled",
                    )  # fmt: skip
                refuse_cross_site(scope)
            elif token is None or _digest(token) != self.admin_digest:
                raise GatewayError(
                    401, "Admin endpoints need 'Authorization: Bearer <admin key>'",
                    type="authentication_error", code="invalid_admin_key",
                )  # fmt: skip
            else:
                ctx.key_name = "admin"
            check_admin_content_type(scope)
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
