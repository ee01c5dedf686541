"""Relaying upstream work to the client: disconnect-aware waits and the chat SSE pass-through."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import orjson
from starlette.requests import Request

from backends.base import ChatStream
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.sse import DONE_FRAME, frame_data, frame_json

log = logging.getLogger("gateway.relay")
T = TypeVar("T")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class ClientGone(Exception):
    """The client disconnected before the answer was ready; the upstream call was cancelled."""


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it the moment the client goes away (frees an engine slot)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    raise ClientGone()


class ModelRewriter:
    """Writes the route name into each chunk's `model`, without parsing when bytes allow."""

    def __init__(self, upstream_model: str, route_name: str) -> None:
        self.route_name = route_name
        self.identity = upstream_model == route_name
        self.old = b'"model":' + orjson.dumps(upstream_model)
        self.new = b'"model":' + orjson.dumps(route_name)

    def __call__(self, payload: bytes) -> bytes:
        if self.identity:
            return payload
        if self.old in payload:
            return payload.replace(self.old, self.new, 1)
        if b'"model"' not in payload:
            return payload
        try:  # spaced or escaped JSON from some servers: parse and rewrite
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return payload
        if isinstance(doc, dict) and "model" in doc:
            if isinstance(doc["model"], str):  # e.g. OpenAI's dated name: bytes next time
                self.old = b'"model":' + orjson.dumps(doc["model"])
            doc["model"] = self.route_name
            return orjson.dumps(doc)
        return payload


def _has_finish_reason(payloads: list[bytes]) -> bool:
    for payload in reversed(payloads):
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        if "error" in doc or doc.get("usage") is not None:
            return True
        for choice in doc.get("choices") or []:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                return True
    return False


def _note_stream_usage(batch: list[bytes], ctx: RequestContext) -> None:
    # Only the usage chunk carries an object there; a byte search keeps other chunks unparsed.
    for payload in batch:
        if b'"usage":{' in payload or b'"usage": {' in payload:
            try:
                doc = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                ctx.note_usage(doc.get("usage"))


async def relay_chat_stream(
    stream: ChatStream, rewrite: ModelRewriter, ctx: RequestContext
) -> AsyncIterator[bytes]:
    """Chat chunks to the client as they arrive; always ends with `data: [DONE]`.

    A broken or truncated upstream stream ends with an OpenAI-shaped error chunk first (the
    openai SDK raises on a chunk with an `error` key), never with a hang.
    """
    route_name = ctx.route_name
    last: list[bytes] = []
    try:
        async for batch in stream:
            if ctx.first_token is None:
                ctx.first_token = time.perf_counter()
            last = batch
            if len(batch) == 1:
                yield frame_data(rewrite(batch[0]))
            else:
                yield b"".join(frame_data(rewrite(p)) for p in batch)
        _note_stream_usage(last, ctx)
        if not getattr(stream, "saw_done", True) and not _has_finish_reason(last):
            error = GatewayError(
                502,
                f"route '{route_name}': the upstream stream ended before the answer was complete",
                code="upstream_truncated",
            )
            ctx.error_code = "upstream_truncated"
            yield frame_json(error.body())
        yield DONE_FRAME
    except GatewayError as exc:
        log.warning("stream on route %s broke: %s", route_name, exc.message)
        ctx.error_code = str(exc.code or exc.status)
        yield frame_json(exc.body()) + DONE_FRAME
    except Exception:
        log.exception("stream on route %s failed inside the gateway", route_name)
        ctx.error_code = "internal"
        internal = GatewayError(
            500, "The gateway failed while relaying the stream", code="internal"
        )
        yield frame_json(internal.body()) + DONE_FRAME
    finally:
        await stream.aclose()
