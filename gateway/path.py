"""The one path every generation request takes (Chat, Responses, Completions), decided once.

    check the body (kind) → route → token gate → fidelity verdict and header → recording
    → fallbacks, each attempt: the kind's driver call → JSON answer, or SSE through relay.py
    → error headers and recording on failure; cancelled the moment the client goes away

What differs between the API kinds is a `Kind` (endpoints.CHAT, responses_api.RESPONSES,
engine_endpoints.COMPLETIONS): its body check, its verdict, its driver call and its stream
encoder. Everything else is here, once. Handlers read the body and call `serve`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from backends.token_in import uses_token_path
from gateway import fidelity
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.fallback import with_fallbacks
from gateway.relay import CLIENT_CLOSED, ClientGone, until_disconnect
from gateway.request_io import json_response

if TYPE_CHECKING:
    from backends.base import Driver
    from gateway.state import GatewayState as Gateway


class Call:
    """One request as the kinds see it: what the path decided before the first attempt."""

    __slots__ = ("body", "ctx", "model", "stream", "token")

    def __init__(
        self, body: dict[str, Any], model: str, ctx: RequestContext, stream: bool, token: bool
    ) -> None:
        self.body = body
        self.model = model  # the route name the client asked for (written into answers)
        self.ctx = ctx
        self.stream = stream
        self.token = token  # the RL token contract applies (docs/rl.md)


class Turn(Protocol):
    """A kind's hold on one request around the path (stored Responses: responses_state)."""

    body: dict[str, Any]  # the request the path serves (a continuation's full input)

    async def finish(self, response: Response) -> Response: ...  # after a successful answer


class Kind:
    """What one API kind holds that the others do not. Kinds are stateless singletons."""

    def check(self, body: dict[str, Any]) -> str:
        """Check the body (400 in OpenAI's shape) and return the model it names."""
        raise NotImplementedError

    async def begin(
        self, gateway: Gateway, driver: Driver, body: dict[str, Any], ctx: RequestContext,
        session: Any,
    ) -> Turn | None:  # fmt: skip
        """Work before the verdict (stored Responses); a Turn whose `body` replaces the body."""
        return None

    def verdict(self, driver: Driver, body: dict[str, Any]) -> fidelity.Verdict:
        raise NotImplementedError

    async def attempt(self, driver: Driver, call: Call) -> Response:
        """One route's answer: a JSON response, or an SSEResponse relaying the stream. On the
        token path (`call.token`) a Chat-shaped call goes through backends.token_in.TokenPath."""
        raise NotImplementedError


def request_context(request: Request) -> RequestContext:
    """The context the observability middleware opened for this request."""
    return request.scope["state"]["ctx"]


async def serve(
    gateway: Gateway,
    kind: Kind,
    body: dict[str, Any],
    ctx: RequestContext,
    receive: Receive,
    session: Any = None,
) -> Response:
    """Answer one generation request of `kind` (`receive` reports the client's disconnect;
    `session` is a WebSocket connection's cache for stored Responses)."""
    model = kind.check(body)
    driver = gateway.router.driver_for(model, ctx)
    turn = await kind.begin(gateway, driver, body, ctx, session)
    if turn is not None:
        body = turn.body
    # the token gate, once: a token-contract request never moves to another model's route
    # (token ids from another model would corrupt the trainer's data)
    token = uses_token_path(driver.route, body)
    ctx.stream = stream = bool(body.get("stream"))
    ctx.fidelity = verdict = kind.verdict(driver, body)
    ctx.response_headers[fidelity.HEADER] = fidelity.header_value(verdict)
    if gateway.recording is not None:
        gateway.recording.attach(ctx, body)
    call = Call(body, model, ctx, stream, token)

    async def attempt(route_driver: Driver) -> Response:
        if route_driver is not driver:  # a fallback route: its own token flags
            call.token = uses_token_path(route_driver.route, body)
        return await kind.attempt(route_driver, call)

    try:
        work = with_fallbacks(gateway.router, driver, ctx, attempt, not token)
        response = await until_disconnect(receive, work)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    except GatewayError as exc:
        exc.headers = {**ctx.response_headers, **exc.headers}
        if ctx.recorder is not None:
            ctx.answer_body = exc.body()
        raise
    return response if turn is None else await turn.finish(response)


async def serve_plain(
    ctx: RequestContext, receive: Receive, work: Awaitable[dict[str, Any]]
) -> Response:
    """An engine call that is not a generation (`/tokenize`, `/detokenize`): cancellation and
    error headers as on `serve`; no verdict, recording or fallbacks."""
    try:
        answer = await until_disconnect(receive, work)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    except GatewayError as exc:
        exc.headers = {**ctx.response_headers, **exc.headers}
        raise
    return json_response(answer, headers=ctx.response_headers or None)
