"""Loopback-only admin refuses what only a browser sends (issue 18 item 3): a foreign Host
(DNS rebinding), a foreign Origin, and non-JSON POST bodies a page can send without CORS."""

from __future__ import annotations

import pytest

from gateway.auth import Authenticator, is_loopback_host
from gateway.config import ServerConfig
from gateway.context import RequestContext
from gateway.errors import GatewayError


def _scope(headers: dict[str, str], method: str = "POST", client: str = "127.0.0.1") -> dict:
    return {
        "type": "http",
        "method": method,
        "path": "/admin/pause",
        "client": (client, 5000),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }


def _auth(scope: dict, admin_key: str | None = None, bearer: bytes | None = None) -> None:
    server = ServerConfig(admin_key=admin_key) if admin_key else ServerConfig()
    Authenticator(server, set()).authenticate(scope, bearer, RequestContext(request_id="r"))


JSON = {"content-type": "application/json", "content-length": "2"}


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "127.0.0.1:8080", **JSON},
        {"host": "localhost:8080", **JSON},
        {"host": "[::1]:8080", **JSON},
        {"host": "localhost"},  # bodyless POST (curl -X POST .../admin/resume)
        {"host": "localhost:8080", "origin": "http://localhost:8080", **JSON},
    ],
)
def test_scripts_and_same_origin_pass(headers: dict[str, str]) -> None:
    _auth(_scope(headers))


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        # the attack: a page on evil.example resolving to 127.0.0.1
        (
            {"host": "evil.example", "origin": "http://evil.example", "content-type": "text/plain"},
            403,
            "admin_host_refused",
        ),
        ({"host": "evil.example:8080", **JSON}, 403, "admin_host_refused"),
        (
            {"host": "127.0.0.1:8080", "origin": "http://evil.example", **JSON},
            403,
            "admin_cross_site",
        ),
        ({"host": "127.0.0.1:8080", "origin": "null", **JSON}, 403, "admin_cross_site"),
        (
            {"host": "127.0.0.1:8080", "content-type": "text/plain", "content-length": "2"},
            415,
            "unsupported_media_type",
        ),
        (
            {"host": "127.0.0.1:8080", "content-type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        ({"host": "127.0.0.1:8080", "content-length": "17"}, 415, "unsupported_media_type"),
    ],
)
def test_browser_shapes_are_refused(headers: dict[str, str], status: int, code: str) -> None:
    with pytest.raises(GatewayError) as info:
        _auth(_scope(headers))
    assert (info.value.status, info.value.code) == (status, code)


def test_admin_key_mode_still_wants_json() -> None:
    headers = {"host": "gw.internal", "content-type": "text/plain", "content-length": "2"}
    with pytest.raises(GatewayError) as info:
        _auth(_scope(headers, client="10.0.0.5"), "k" * 16, b"Bearer " + b"k" * 16)
    assert info.value.status == 415
    # with the key, any Host: the key, not the network position, is the proof
    _auth(
        _scope({"host": "gw.internal", **JSON}, client="10.0.0.5"), "k" * 16, b"Bearer " + b"k" * 16
    )


def test_loopback_host_names() -> None:
    for host in ("localhost", "LOCALHOST:1", "a.localhost", "127.0.0.2", "[::1]", "::1"):
        assert is_loopback_host(host), host
    for host in ("evil.example", "127.0.0.1.evil.example", "0.0.0.0", "", "[::]:80"):
        assert not is_loopback_host(host), host
