"""Turn any upstream error answer into OpenAI's error envelope, keeping the status.

Families answer errors in different shapes: OpenAI/vLLM nested `{"error": {...}}`, SGLang and
older vLLM flat `{"object": "error", "message": ...}`, TGI `{"error": "...", "error_type"}`,
Gemini a JSON array `[{"error": {...}}]`, FastAPI servers `{"detail": ...}`, proxies HTML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from gateway.errors import GatewayError, error_type_for

# Context-length overflow in every family's wording (vLLM, SGLang, OpenAI, TGI, Gemini).
# NeMo Gym turns a 400 whose message contains "context length" into a truncated turn.
_OVERFLOW = re.compile(
    r"context length|context window|maximum context|context_length_exceeded"
    r"|max_model_len|maximum model length|input token count"
    r"|`inputs` tokens \+ `max_new_tokens` must be|`inputs` must have less than"
    r"|prompt is too long|input is too long",
    re.IGNORECASE,
)
_OVERFLOW_STATUSES = (400, 413, 422)
# OpenAI's reset durations: "1s", "6m0s", "12ms", "1h2m3.5s"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class _HasContentType(Protocol):
    @property
    def content_type(self) -> str: ...


class UpstreamError(GatewayError):
    """An error the upstream answered; `doc` is its parsed body, for family hooks.

    `upstream_code`: the engine's own integer `code` (SGLang and vLLM echo the HTTP status
    there, Gemini its status number), kept as `error.upstream_code` because OpenAI's `code`
    is a string or null.
    """

    def __init__(
        self, *args: Any, doc: Any = None, upstream_code: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.doc = doc
        self.upstream_code = upstream_code

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.upstream_code is not None:
            body["error"]["upstream_code"] = self.upstream_code
        return body


def _first_error(doc: Any) -> tuple[str | None, Any, Any, Any]:
    """(message, type, param, code) from any known error shape."""
    if isinstance(doc, list) and doc:
        doc = doc[0]
    if not isinstance(doc, dict):
        return None, None, None, None
    err = doc.get("error")
    if isinstance(err, dict):
        message = err.get("message")
        etype = err.get("type") or err.get("status")
        return message, etype, err.get("param"), err.get("code")
    if isinstance(err, str):
        return err, doc.get("error_type") or doc.get("type"), None, doc.get("code")
    if "message" in doc:
        return doc.get("message"), doc.get("type"), doc.get("param"), doc.get("code")
    if "detail" in doc:
        detail = doc["detail"]
        text = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
        return text, None, None, None
    return None, None, None, None


def normalize_upstream_error(
    where: str, status: int, raw: bytes, response: _HasContentType | None = None
) -> UpstreamError:
    """A GatewayError with the upstream's status and its message, in OpenAI's shape."""
    try:
        doc = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        doc = None
    message, etype, param, code = _first_error(doc)
    if not message:
        kind = response.content_type if response is not None else "unknown"
        message = f"{where} answered HTTP {status} ({kind} body, {len(raw)} bytes)"
    if not isinstance(message, str):
        message = orjson.dumps(message).decode()
    if not isinstance(etype, str) or not etype:
        etype = error_type_for(status)
    if status < 400 or status > 599:
        status = 502
    exc = UpstreamError(
        status,
        message,
        type=etype,
        param=param if isinstance(param, str) else None,
        code=code if isinstance(code, str) else None,
        doc=doc,
        upstream_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
    )
    mark_context_overflow(exc)
    if exc.status == 429:
        headers = getattr(response, "headers", None) or {}
        derive_retry_after(exc, headers, doc)
    return exc


def mark_context_overflow(exc: GatewayError) -> None:
    """A context-length overflow, in any wording, becomes a 400 saying "context length"."""
    if exc.status not in _OVERFLOW_STATUSES or not _OVERFLOW.search(exc.message):
        return
    exc.status = 400
    if "context length" not in exc.message.lower():
        exc.message = f"The input exceeds the model's context length: {exc.message}"
    if exc.code is None or isinstance(exc.code, int):  # engines echo the HTTP status as code
        exc.code = "context_length_exceeded"


def derive_retry_after(exc: GatewayError, headers: Mapping[str, str], doc: Any) -> None:
    """Give a 429 a Retry-After (seconds) when the upstream sent none, so SDKs back off.

    From, in order: Google's RetryInfo `retryDelay`, OpenAI's `x-ratelimit-reset-*`, else 1.
    A quota error (`insufficient_quota`) is not worth retrying: `x-should-retry: false`.
    """
    if exc.code == "insufficient_quota" or exc.type == "insufficient_quota":
        exc.headers.setdefault("x-should-retry", "false")
        return
    if any(k.lower() in ("retry-after", "retry-after-ms") for k in headers):
        return
    seconds = _retry_info_seconds(doc)
    if seconds is None:
        resets = [
            _duration_seconds(v)
            for k, v in headers.items()
            if k.lower().startswith("x-ratelimit-reset")
        ]
        resets = [r for r in resets if r is not None]
        seconds = max(resets) if resets else None
    exc.headers.setdefault("retry-after", str(max(1, math.ceil(seconds or 1))))


def _retry_info_seconds(doc: Any) -> float | None:
    if isinstance(doc, list) and doc:
        doc = doc[0]
    err = doc.get("error") if isinstance(doc, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    for detail in details if isinstance(details, list) else ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str):
            return _duration_seconds(delay)
    return None


def _duration_seconds(text: str) -> float | None:
    parts = _DURATION.findall(text.strip())
    if not parts:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
