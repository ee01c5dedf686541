"""Per-request state that travels from the HTTP surface to a driver and back.

The observability middleware (gateway/observe.py) creates one for every HTTP request and
finishes it when the answer ends; handlers and drivers only annotate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RequestContext:
    request_id: str
    route_name: str = ""
    endpoint: str = ""
    # time.perf_counter() at arrival, at the first upstream token (streams), at the end
    started: float = 0.0
    first_token: float | None = None
    # filled by handlers/drivers for logs, metrics and recordings
    upstream: str = ""  # scheme://host:port that served the request (never credentials)
    upstream_name: str = ""  # its public name (`replica-0`): the /metrics label
    stream: bool = False
    status: int = 0
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    retries: int = 0
    fallbacks: list[str] = field(default_factory=list)  # fallback routes tried, in order
    # the client's x-session-id (sticky replica choice), the trainer's policy version
    session_id: str | None = None
    policy_version: str | None = None
    # every weight version one generation spanned (gateway/weight_version.py), else None
    policy_versions: list[str] | None = None
    # the authenticated gateway key's name and the routes it may use (None = all)
    key_name: str | None = None
    allowed_routes: frozenset[str] | None = None
    # headers the gateway adds to its answer (passed-on Retry-After, rate-limit headers, ...)
    response_headers: dict[str, str] = field(default_factory=dict)
    # headers from the client that drivers may forward (x-session-id, traceparent, ...)
    client_headers: dict[str, str] = field(default_factory=dict)
    # the route's Recorder when it records (gateway/recording.py), else None; the request
    # body is referenced for it, the answer only when it records bodies
    recorder: Any = None
    request_body: Any = None
    answer_body: Any = None
    # the parameter-fidelity Verdict (gateway/fidelity.py) the handler computed
    fidelity: Any = None

    def note_usage(self, usage: Any) -> None:
        """Take token counts from a Chat (`prompt_tokens`) or Responses (`input_tokens`) usage."""
        if not isinstance(usage, dict):
            return
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        if isinstance(prompt, int):
            self.prompt_tokens = prompt
        if isinstance(completion, int):
            self.completion_tokens = completion
