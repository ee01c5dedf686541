"""Stateful Responses around the stateless translation: `store`, `previous_response_id` and
`compaction` items, for HTTP and WebSocket turns alike.

`begin()` turns a request into the stateless request the rest of the path already serves:
compaction items are opened, and a continuation's stored (or connection-cached) input and
output items are put before the new input, exactly the items a client would send back, so
the RL token bundles on them are spliced as if the client had sent them (docs/rl.md).
`Turn.finish()` then stores the answer before its last byte reaches the client, so a
client that continues at once always finds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from gateway.context import RequestContext
from gateway.errors import GatewayError, InvalidRequest
from gateway.relay import SSEResponse
from gateway.responses_store import StoredResponse
from gateway.translate import new_id

if TYPE_CHECKING:
    from gateway.state import GatewayState as Gateway

log = logging.getLogger("gateway.responses_state")

_TERMINAL = (b"event: response.completed\n", b"event: response.incomplete\n",
             b"event: response.failed\n")  # fmt: skip
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco",
              "reasoning": "rs", "compaction": "cmp"}  # fmt: skip


def namespace(ctx: RequestContext) -> str:
    """Whose responses these are: the API key's name ("" when the gateway has no keys)."""
    return ctx.key_name or ""


def not_found(response_id: Any, why: str = "") -> GatewayError:
    return GatewayError(
        400,
        f"Previous response with id {response_id!r} not found{why}. Send the whole "
        "conversation in `input` (without `previous_response_id`) to start a new chain.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def with_id(item: Any) -> Any:
    """The item with an `id` (stored input items are listed with ids, as OpenAI does)."""
    if not isinstance(item, dict) or item.get("id"):
        return item
    kind = item.get("type") or "message"
    return {"id": new_id(_ID_PREFIX.get(kind, "item")), **item}


def as_items(value: Any) -> list[Any]:
    """`input` as a list of items: a string is one user message."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


@dataclass(slots=True)
class CachedResponse:
    id: str
    context: list[dict[str, Any]]  # the input it was prompted with
    output: list[dict[str, Any]]
    stored: bool  # also in the store (a chain can continue from there)


@dataclass(slots=True)
class ConnectionCache:
    """A WebSocket connection's memory: its most recent response (what a continuation on the
    same socket reads without a store round trip; the only copy when `store: false`)."""

    latest: CachedResponse | None = None

    def get(self, response_id: str) -> CachedResponse | None:
        latest = self.latest
        return latest if latest is not None and latest.id == response_id else None

    def evict(self, response_id: str | None) -> None:
        if self.latest is not None and self.latest.id == response_id:
            self.latest = None


@dataclass(slots=True)
class Turn:
    """One request's state: what to send on, and what to store when it is answered."""

    body: dict[str, Any]
    namespace: str = ""
    stateful: bool = False  # the gateway holds state for this route (not a native one)
    store: bool = False
    previous_id: str | None = None
    stored_parent: str | None = None  # the stored record this one continues
    context: list[dict[str, Any]] = field(default_factory=list)  # items before this input
    new_items: list[Any] = field(default_factory=list)
    gateway: Any = None
    cache: ConnectionCache | None = None
    policy_version: str | None = None  # the trainer's weights version the turn ran under

    # ---- after the answer --------------------------------------------------------------------

    def patch(self, response: dict[str, Any]) -> None:
        response["store"] = self.store
        response["previous_response_id"] = self.previous_id

    async def record(self, response: dict[str, Any]) -> None:
        """Store and cache a finished response (before the client has all of it)."""
        if response.get("status") == "failed":
            if self.cache is not None:
                self.cache.evict(self.previous_id)
            return
        inputs = [with_id(item) for item in self.new_items]
        if self.policy_version is not None:  # as a JSON answer has it (gateway/relay.py)
            response.setdefault("policy_version", self.policy_version)
        if self.store and self.gateway.responses_store is not None:
            own = inputs if self.stored_parent else [*self.context, *inputs]
            record = StoredResponse(
                response["id"], self.namespace, self.stored_parent, time.time(), own, response
            )
            try:
                await self.gateway.responses_store.put(record)
            except Exception as exc:  # the answer still goes out; a continuation will miss it
                log.error("response %s was not stored: %s", response["id"], exc)
        if self.cache is not None:
            output = response.get("output") or []
            self.cache.latest = CachedResponse(
                response["id"], [*self.context, *inputs], output, self.store
            )

    async def finish(self, response: Response) -> Response:
        if not self.stateful or response.status_code != 200:
            return response
        if isinstance(response, SSEResponse):
            response.body_iterator = self._relay(response.body_iterator)
            return response
        answer = orjson.loads(response.body)
        self.patch(answer)
        await self.record(answer)
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        return Response(orjson.dumps(answer), 200, headers)

    async def _relay(self, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The SSE frames with `store` and `previous_response_id` made true on every
        response object, and the terminal response recorded before it is sent."""
        stored = b'"store":true' if self.store else b'"store":false'
        other = b'"store":false' if self.store else b'"store":true'
        previous = b'"previous_response_id":' + orjson.dumps(self.previous_id)
        try:
            async for chunk in frames:
                if b'"response":{' in chunk:
                    chunk = chunk.replace(other, stored)
                    if self.previous_id is not None:
                        chunk = chunk.replace(b'"previous_response_id":null', previous)
                    for frame in chunk.split(b"\n\n"):
                        if frame.startswith(_TERMINAL):
                            data = frame[frame.index(b"\ndata: ") + 7 :]
                            await self.record(orjson.loads(data)["response"])
                yield chunk
        finally:
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                await aclose()


# ---- before the answer -------------------------------------------------------------------------


def open_compactions(gateway: Gateway, items: list[Any], ns: str) -> list[Any]:
    """`input` with each gateway-made `compaction` item replaced by the items it seals."""
    if not any(isinstance(i, dict) and i.get("type") == "compaction" for i in items):
        return items
    out: list[Any] = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "compaction":
            out += gateway.sealer.open(item.get("encrypted_content"), ns, f"input[{index}]")
        else:
            out.append(item)
    return out


async def history(
    gateway: Gateway, ns: str, previous_id: Any, cache: ConnectionCache | None
) -> tuple[list[dict[str, Any]], str | None]:
    """(the items before a continuation's new input, the stored record it continues)."""
    if not isinstance(previous_id, str) or not previous_id:
        raise InvalidRequest("`previous_response_id` must be a non-empty string",
                             param="previous_response_id")  # fmt: skip
    cached = cache.get(previous_id) if cache is not None else None
    if cached is not None:
        return [*cached.context, *cached.output], previous_id if cached.stored else None
    store = gateway.responses_store
    chain = await store.chain(ns, previous_id) if store is not None else None
    if chain is None:
        raise not_found(previous_id)
    if not chain.complete:
        raise not_found(previous_id, " in full: an earlier response of its chain was "
                        "deleted or expired")  # fmt: skip
    return chain.context(), previous_id


def check_call_outputs(context: list[Any], new_items: list[Any]) -> None:
    """A continuation's function_call_output must answer a call of the conversation."""
    calls = {
        item.get("call_id")
        for item in (*context, *new_items)
        if isinstance(item, dict) and item.get("type") == "function_call"
    }
    for index, item in enumerate(new_items):
        output = isinstance(item, dict) and item.get("type") == "function_call_output"
        if output and item.get("call_id") not in calls:
            raise GatewayError(
                400,
                f"No tool call found for function call output with call_id "
                f"{item.get('call_id')!r} (input[{index}]).",
                param=f"input[{index}]",
                code="tool_call_not_found",
            )


async def begin(
    gateway: Gateway,
    body: dict[str, Any],
    ctx: RequestContext,
    native: bool,
    cache: ConnectionCache | None = None,
) -> Turn:
    ns = namespace(ctx)
    inp = body.get("input")
    if isinstance(inp, list):
        opened = open_compactions(gateway, inp, ns)
        if opened is not inp:
            body = {**body, "input": opened}
    if native:  # the backend keeps its own state (store, previous_response_id pass on)
        return Turn(body)
    previous_id = body.get("previous_response_id")
    new_items = as_items(body.get("input"))
    context: list[dict[str, Any]] = []
    stored_parent = None
    if previous_id is not None:
        context, stored_parent = await history(gateway, ns, previous_id, cache)
        check_call_outputs(context, new_items)
        body = {k: v for k, v in body.items() if k != "previous_response_id"}
        body["input"] = [*context, *new_items]
    store = body.get("store") is not False and gateway.responses_store is not None
    return Turn(body, ns, True, store, previous_id, stored_parent, context, new_items,
                gateway, cache, ctx.policy_version)  # fmt: skip
