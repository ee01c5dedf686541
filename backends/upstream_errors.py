"""Turn any upstream error answer into OpenAI's error envelope, keeping the status.

Families answer errors in different shapes: OpenAI/vLLM nested `{"error": {...}}`, SGLang and
older vLLM flat `{"object": "error", "message": ...}`, TGI `{"error": "...", "error_type"}`,
Gemini a JSON array `[{"error": {...}}]`, FastAPI servers `{"detail": ...}`, proxies HTML.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from gateway.errors import GatewayError, error_type_for


class _HasContentType(Protocol):
    @property
    def content_type(self) -> str: ...


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
) -> GatewayError:
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
    return GatewayError(
        status,
        message,
        type=etype,
        param=param if isinstance(param, str) else None,
        code=code if isinstance(code, (str, int)) else None,
    )
