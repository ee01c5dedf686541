"""Per-request state that travels from the HTTP surface to a driver and back."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestContext:
    request_id: str
    route_name: str = ""
    # headers the gateway adds to its answer (passed-on Retry-After, rate-limit headers, ...)
    response_headers: dict[str, str] = field(default_factory=dict)
    # headers from the client that drivers may forward (x-session-id, traceparent, ...)
    client_headers: dict[str, str] = field(default_factory=dict)
