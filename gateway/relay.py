"""Relaying upstream work to the client: disconnect-aware waits, the one stream relay loop
(with the Chat encoder; the Responses encoders are in responses_api.py), JSON answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, Protocol, TypeVar

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backends.base import ChatStream
from gateway.connections import CYCLE_KEY, when_client_gone
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.request_io import json_response
from gateway.sse import DONE_FRAME, frame_data, frame_json
from gateway.weight_version import stamp_engine_version

log = logging.getLogger("gateway.relay")
T = TypeVar("T")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


# nginx-style "client closed request": logged and counted, never seen by the client.
CLIENT_CLOSED = 499


class ClientGone(Exception):
    """The client disconnected before the answer was ready; the upstream call was cancelled."""


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class _DisconnectWatch:
    """Cancels the current task when the client disconnects, until `stop()`.

    The work runs inline in the request's own task. On gateway/connections.py's protocol the
    connection's loss calls back directly (no task); elsewhere one watcher task waits on
    `receive()`. (A task for the work plus `asyncio.wait`, as at first, cost two tasks, a
    waiter future and four done-callbacks per request, ~10 % of a worker's CPU.)
    """

    __slots__ = ("_forget", "_task", "_watcher", "cancelled", "running")

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self.running = True
        self.cancelled = False
        self._watcher: asyncio.Future[None] | None = None
        self._forget = when_client_gone(receive, self._client_gone)
        if self._forget is None:
            self._watcher = asyncio.ensure_future(_wait_disconnect(receive))
            self._watcher.add_done_callback(self._on_watcher_done)

    def _on_watcher_done(self, watcher: asyncio.Future[None]) -> None:
        if not watcher.cancelled():
            self._client_gone()

    def _client_gone(self) -> None:
        if self.running:
            self.cancelled = True
            self._task.cancel()

    def stop(self) -> bool:
        """Stop watching; True if the client left and this watch cancelled the task. The
        cancellation request is then taken back, so the task can finish cleanly."""
        if self.running:  # once: the task's cancel count must go back by one, no more
            self.running = False
            if self._forget is not None:
                self._forget()
            elif self._watcher is not None:
                self._watcher.cancel()
            # both hold this watch's bound method: a reference cycle, left to the GC if kept
            self._forget = self._watcher = None
            if self.cancelled:
                self._task.uncancel()
        return self.cancelled


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it the moment the client goes away (frees an engine slot);
    `receive` is the request's ASGI receive (it reports the disconnect)."""
    watch = _DisconnectWatch(receive)
    try:
        return await work
    except asyncio.CancelledError:
        if watch.stop():
            raise ClientGone() from None
        raise
    finally:
        watch.stop()


def client_cycle(scope: Scope) -> Any:
    """The request's uvicorn response cycle, when gateway/connections.py's protocol serves
    it (push mode writes body chunks to its transport; None: send() only)."""
    ref = scope.get(CYCLE_KEY)
    return None if ref is None else ref()


class SSEResponse(Response):
    """A text/event-stream answer from an async iterator of bytes, ended early (closing the
    upstream) when the client disconnects.

    Why not Starlette's StreamingResponse: under uvicorn (ASGI spec 2.3) it runs each stream
    in an anyio task group with a second task listening for the disconnect; the group's
    set-up and tear-down cost more CPU than relaying a 50-chunk stream. Here the stream is
    sent from the request's own task and one plain watcher task cancels it on disconnect.
    """

    media_type = "text/event-stream"

    def __init__(self, body: AsyncIterator[bytes], headers: Mapping[str, str]) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = _DisconnectWatch(receive)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            body = self.body_iterator
            if isinstance(body, Relay) and body.can_push():
                cycle = client_cycle(scope)
                if cycle is not None and cycle.response_started and not cycle.disconnected:
                    await body.push(cycle, send)
                    return
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.stop():
                raise
            # The client left: nothing more can be sent; the upstream is closed below.
        finally:
            watch.stop()
            # Close the relay (and so the upstream connection) now, wherever it stopped.
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


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
        out = payload.replace(self.old, self.new, 1)
        if out is not payload or b'"model"' not in payload:  # bytes.replace: self if no match
            return out
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
        choices = doc.get("choices")
        for choice in choices if isinstance(choices, list) else ():
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


class Encoder(Protocol):
    """What one API kind's stream looks like to the client; `relay` does the rest."""

    label: str  # names the stream in log lines

    def start(self) -> bytes: ...  # sent before the first upstream batch (b"": nothing)

    def feed(self, batch: list[Any]) -> bytes: ...  # one upstream batch out (b"": nothing)

    def end(self, stream: ChatStream) -> bytes: ...  # the upstream ended: the terminal frames

    def fail(self, exc: GatewayError) -> bytes: ...  # the stream broke: the kind's error end

    def crash(self) -> bytes: ...  # the gateway itself failed while relaying


async def _relay_pull(
    stream: ChatStream, encoder: Encoder, ctx: RequestContext
) -> AsyncIterator[bytes]:
    """The one relay loop: upstream batches out through the kind's encoder as they arrive.

    Every stream ends the kind's way, never with a hang: a broken, truncated or garbled
    upstream stream and a failure inside the gateway end with the kind's error frames.
    """
    route_name = ctx.route_name
    try:
        head = encoder.start()
        if head:
            yield head
        async for batch in stream:
            if ctx.first_token is None:
                ctx.first_token = time.perf_counter()
            out = encoder.feed(batch)
            if out:
                yield out
        tail = encoder.end(stream)
        if tail:
            yield tail
    except GatewayError as exc:
        log.warning("%s on route %s broke: %s", encoder.label, route_name, exc.message)
        yield encoder.fail(exc)
    except Exception:
        log.exception("%s on route %s failed inside the gateway", encoder.label, route_name)
        ctx.error_code = "internal"
        yield encoder.crash()
    finally:
        await stream.aclose()


class Relay:
    """A stream's frames for SSEResponse: iterated (`_relay_pull`, any stream), or pushed
    (`push`) when the stream can push and the client's connection is ours to write to."""

    __slots__ = ("_frames", "ctx", "encoder", "stream")

    def __init__(self, stream: ChatStream, encoder: Encoder, ctx: RequestContext) -> None:
        self.stream = stream
        self.encoder = encoder
        self.ctx = ctx
        self._frames: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._frames is None:
            self._frames = _relay_pull(self.stream, self.encoder, self.ctx)
        return self._frames

    async def __anext__(self) -> bytes:  # `async for` takes __aiter__'s generator directly
        return await self.__aiter__().__anext__()

    async def aclose(self) -> None:
        if self._frames is not None:
            await self._frames.aclose()  # type: ignore[attr-defined]
        else:
            await self.stream.aclose()

    def can_push(self) -> bool:
        return bool(getattr(self.stream, "pushable", False)) and self._frames is None

    async def push(self, cycle: Any, send: Send) -> None:
        """Push mode (issue 22): each upstream read is framed through the encoder and
        written to the client's transport from the upstream connection's data callback
        (`_ClientPush`). No async generators or task wake-up per chunk: the request's task
        wakes only at the end, on an error, or to wait for a full client to drain (reading
        the upstream pauses meanwhile). End and error frames as `_relay_pull`'s."""
        stream, encoder, ctx = self.stream, self.encoder, self.ctx
        client = _ClientPush(cycle, stream, encoder, ctx)
        deliver = client.deliver
        deliver_one = None if client.feed_one is None else client.deliver_one
        flow = cycle.flow

        async def drain() -> None:
            if flow.write_paused and not cycle.disconnected:
                await flow.drain()

        try:
            try:
                head = encoder.start()
                if head:
                    await send({"type": "http.response.body", "body": head, "more_body": True})
                await stream.push(deliver, drain, deliver_one)  # type: ignore[attr-defined]
                tail = encoder.end(stream)
            except GatewayError as exc:
                log.warning("%s on route %s broke: %s", encoder.label, ctx.route_name, exc.message)
                tail = encoder.fail(exc)
            except Exception:
                log.exception(
                    "%s on route %s failed inside the gateway", encoder.label, ctx.route_name
                )
                ctx.error_code = "internal"
                tail = encoder.crash()
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        except BaseException:  # the client left: the upstream is dropped at once
            await stream.aclose()
            raise
        # else SSEResponse closes the stream once it stopped watching for a disconnect (with
        # the answer complete, uvicorn reports one): closing may wait for the body's end


class _ClientPush:
    """Push mode's delivery of one upstream read: its payloads through the encoder, out in
    one write, straight from the upstream's data callback (the event loop reads a socket
    once per turn: there is nothing to gather across reads; the first frames go out with
    the held response head, in one write). A full client transport pauses the upstream
    (`stream.hold()`) until Relay.push's drain."""

    __slots__ = ("chunked", "ctx", "cycle", "feed", "feed_one", "first", "flow", "stream")

    def __init__(self, cycle: Any, stream: Any, encoder: Encoder, ctx: RequestContext) -> None:
        self.cycle = cycle
        self.stream = stream
        self.flow = cycle.flow
        self.chunked = bool(cycle.chunked_encoding)
        self.feed = encoder.feed
        # an encoder that frames one payload without a batch list (Chat) gets the upstream's
        # usual chunks that way (UpstreamSSE.push)
        self.feed_one = getattr(encoder, "feed_one", None)
        self.ctx = ctx
        self.first = True  # the first read: the time to first token is noted

    def deliver(self, batch: list[Any]) -> None:
        if self.first:
            self.first = False
            if self.ctx.first_token is None:
                self.ctx.first_token = time.perf_counter()
        self._write(self.feed(batch))

    def deliver_one(self, payload: bytes) -> None:
        if self.first:
            self.first = False
            if self.ctx.first_token is None:
                self.ctx.first_token = time.perf_counter()
        self._write(self.feed_one(payload))  # type: ignore[misc]

    def _write(self, out: bytes) -> None:
        cycle = self.cycle
        if not out or cycle.disconnected:
            return
        cycle.transport.write(b"%x\r\n%b\r\n" % (len(out), out) if self.chunked else out)
        if self.flow.write_paused:
            self.stream.hold()


def relay(stream: ChatStream, encoder: Encoder, ctx: RequestContext) -> Relay:
    """The stream's frames to the client as they arrive, ended the kind's way (`encoder`)."""
    return Relay(stream, encoder, ctx)


class ChatEncoder:
    """Chat Completions (and legacy Completions) chunks: passed on with `model` rewritten;
    always ends with `data: [DONE]`, after an OpenAI-shaped error chunk when the stream broke
    (the openai SDK raises on a chunk with an `error` key)."""

    __slots__ = ("ctx", "last", "last_one", "rewrite")
    label = "stream"

    def __init__(self, rewrite: ModelRewriter, ctx: RequestContext) -> None:
        self.rewrite = rewrite
        self.ctx = ctx
        self.last: list[bytes] = []  # the last batch: usage and finish reason are there
        self.last_one: bytes | None = None  # ... or the last chunk fed alone

    def start(self) -> bytes:
        return b""

    def feed(self, batch: list[bytes]) -> bytes:
        self.last = batch
        self.last_one = None
        rewrite = self.rewrite
        if len(batch) == 1:
            return b"data: " + rewrite(batch[0]) + b"\n\n"
        return b"".join(frame_data(rewrite(p)) for p in batch)

    def feed_one(self, payload: bytes) -> bytes:
        """feed([payload]) without the list (push mode's usual chunk)."""
        self.last_one = payload
        return b"data: " + self.rewrite(payload) + b"\n\n"

    def end(self, stream: ChatStream) -> bytes:
        ctx = self.ctx
        last = self.last if self.last_one is None else [self.last_one]
        _note_stream_usage(last, ctx)
        if not getattr(stream, "saw_done", True) and not _has_finish_reason(last):
            error = GatewayError(
                502,
                f"route '{ctx.route_name}': the upstream stream ended before the answer was "
                "complete",
                code="upstream_truncated",
            )
            ctx.error_code = "upstream_truncated"
            return frame_json(error.body()) + DONE_FRAME
        return DONE_FRAME

    def fail(self, exc: GatewayError) -> bytes:
        self.ctx.error_code = str(exc.code or exc.status)
        return frame_json(exc.body()) + DONE_FRAME

    def crash(self) -> bytes:
        internal = GatewayError(
            500, "The gateway failed while relaying the stream", code="internal"
        )
        return frame_json(internal.body()) + DONE_FRAME


def relay_chat_stream(stream: ChatStream, rewrite: ModelRewriter, ctx: RequestContext) -> Relay:
    """Chat chunks to the client as they arrive (`relay` with the Chat encoder)."""
    return relay(stream, ChatEncoder(rewrite, ctx), ctx)


def sse_answer(frames: AsyncIterator[bytes], ctx: RequestContext) -> SSEResponse:
    """The streamed answer: the frames (teed into the recording when the route records
    bodies) with the request's headers."""
    if ctx.recorder is not None and ctx.recorder.bodies:
        frames = ctx.recorder.tee(ctx, frames)
    return SSEResponse(frames, {**SSE_HEADERS, **ctx.response_headers})


def answer_json(
    answer: dict[str, Any],
    ctx: RequestContext,
    usage: Any = None,
    engine_answer: dict[str, Any] | None = None,
) -> Response:
    """The end of every JSON answer: the policy version (the engine's when `engine_answer`,
    default `answer`, reports one; else the trainer's), the recording, usage for logs and
    metrics (`usage` when it came from another body than the answer's)."""
    stamp_engine_version(answer if engine_answer is None else engine_answer, ctx)
    if ctx.policy_version is not None:  # the weights version (docs/scaling.md)
        answer["policy_version"] = ctx.policy_version
    if ctx.policy_versions is not None:  # one generation spanned a refit
        answer["policy_versions"] = ctx.policy_versions
    if ctx.recorder is not None:
        ctx.answer_body = answer
    ctx.note_usage(usage if usage is not None else answer.get("usage"))
    return json_response(answer, headers=ctx.response_headers or None)
