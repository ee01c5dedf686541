"""One exit for every failure: OpenAI-shaped error bodies and SSE error events."""

from __future__ import annotations

from typing import Any

from gateway.redact import redact

# OpenAI's `type` values by HTTP status, used when the failure names none.
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


def error_type_for(status: int) -> str:
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    return "invalid_request_error" if status < 500 else "server_error"


class GatewayError(Exception):
    """A failure with an HTTP status, rendered in OpenAI's error envelope. Its text (often an
    upstream's own words) is redacted as it is set: no known secret reaches a client or a
    log through an error (gateway/redact.py)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.status = status
        self._message = message
        self.type = redact(type) if type else error_type_for(status)
        self.param = redact(param) if param else param
        self.code = redact(code) if isinstance(code, str) else code
        self.headers = headers or {}

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = redact(value)
        self.args = (self._message,)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(GatewayError):
    """400 naming the offending parameter."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(400, message, param=param, code=code)


class UnsupportedParameter(InvalidRequest):
    """400 for a parameter the target cannot honour; the message says what to do instead."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message, param=param, code="unsupported_parameter")
