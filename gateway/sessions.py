"""`POST /finish_session`: a rollout ended, release its sticky placement (like vllm-router's).

The session id comes as `?session_id=`, a JSON body `{"session_id": ...}` or the
`x-session-id` header. Every route with a replica pool forgets it, here and (in a fleet) in
the shared store, so the id's next request is placed anew on the least-loaded replica.
Conversations keyed by their opening (no `x-session-id`) need no release: they age out.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.admin import upstreams
from gateway.errors import InvalidRequest
from gateway.request_io import json_response, read_json_body

MAX_SESSION_ID = 256


async def finish_session(request: Request) -> Response:
    body = {}
    if request.headers.get("content-length") not in (None, "0"):
        body = await read_json_body(request, 64 * 1024)
    given: list[object] = []  # every place that names a session id must name a valid one
    if "session_id" in request.query_params:
        given.append(request.query_params["session_id"])
    if "x-session-id" in request.headers:
        given.append(request.headers["x-session-id"])
    if "session_id" in body:
        given.append(body["session_id"])
    if not given or not all(_valid(v) for v in given):
        raise _invalid()
    session_id = str(given[0])  # the query first, then the header, then the body
    gateway = request.app.state.gateway
    key = session_id.encode()
    for _, upstream in upstreams(gateway):
        upstream.pool.forget(key)
    return json_response({"session_id": session_id, "released": True})


def _valid(session_id: object) -> bool:
    return isinstance(session_id, str) and 0 < len(session_id) <= MAX_SESSION_ID


def _invalid() -> InvalidRequest:
    return InvalidRequest(
        'give the session id as ?session_id=, a JSON body {"session_id": ...} or the '
        f"x-session-id header (1 to {MAX_SESSION_ID} characters)",
        param="session_id",
    )
