"""Secrets never leave: every key the gateway knows is cut out of what it relays or logs.

The secrets are the routes' upstream API keys (and so the Authorization header sent
upstream), credential-like route headers, the gateway's API keys and the admin key. They
are remembered when a config is built (gateway/app.py) and never forgotten, so a request
still running on a reloaded-away route is covered too. `redact` is the one function; it
runs where errors are made (gateway/errors.py: every error body and SSE error event), on
upstream error events relayed as bytes (backends/http.py), and on every log record
(`RedactingFilter`, installed by gateway/observe.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

MASK = "[redacted]"
# Shorter values ("EMPTY", "none": placeholders vLLM users put as keys) are not secrets, and
# cutting them out of every message would garble it.
MIN_SECRET_LEN = 8
# Route headers whose value is a credential (Azure's api-key, x-goog-api-key, cookies, ...)
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)

_secrets: list[str] = []  # longest first, so a key that contains another is cut whole
_secret_bytes: list[tuple[bytes, bytes]] = []


def remember(values: Iterable[str | None]) -> None:
    """Add secrets (a header value counts as the whole value and as its last word: the
    key in "Bearer <key>")."""
    found = set(_secrets)
    for value in values:
        if not value:
            continue
        for candidate in (value, value.rsplit(" ", 1)[-1]):
            if len(candidate) >= MIN_SECRET_LEN:
                found.add(candidate)
    if len(found) == len(_secrets):
        return
    _secrets[:] = sorted(found, key=len, reverse=True)
    pairs: list[tuple[bytes, bytes]] = []
    for secret in _secrets:
        raw = secret.encode()
        pairs.append((raw, MASK.encode()))
        escaped = orjson.dumps(secret)[1:-1]  # as it appears inside a JSON string
        if escaped != raw:
            pairs.append((escaped, MASK.encode()))
    _secret_bytes[:] = pairs


def remember_config(config: GatewayConfig) -> None:
    """Every secret a config holds (keys from server.api_keys_file: gateway/auth.py)."""
    values: list[str | None] = []
    server = config.server
    if server.admin_key is not None:
        values.append(server.admin_key.get_secret_value())
    values += [key.key.get_secret_value() for key in server.api_keys]
    for route in config.models:
        if route.api_key is not None:
            values.append(route.api_key.get_secret_value())
        values += [v for k, v in route.headers.items() if _SECRET_HEADER.search(k)]
    remember(values)


def redact(text: str) -> str:
    """`text` with every known secret replaced by [redacted] (the same object if none)."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_bytes(raw: bytes) -> bytes:
    """The same for relayed bytes (JSON-escaped spellings included)."""
    for secret, mask in _secret_bytes:
        if secret in raw:
            raw = raw.replace(secret, mask)
    return raw


def forget_all() -> None:
    """For tests."""
    _secrets.clear()
    _secret_bytes.clear()


class RedactingFilter(logging.Filter):
    """On a handler: the message (arguments filled in) and any traceback, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it, as without the filter
            return True
        clean = redact(message)
        if clean is not message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
