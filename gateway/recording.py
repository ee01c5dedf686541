"""Request recording: one JSON line per routed request, written off the event loop.

`server.record` (every route) or a route's own `record` names a JSONL file. Each line holds
the request id, route, upstream host, status, latency, time to first token, tokens, retries
and the parameter-fidelity verdict; with `record_bodies` also the request and the answer (they
may hold private data, so they are off by default). Files rotate by size (`record_max_bytes`,
`record_keep`).

Cost model: with recording off nothing here runs (the handlers test one attribute). With it
on, the event loop only builds a small dict and puts it on a queue; a thread serializes,
writes, rotates and flushes. Streams are captured as the bytes sent and rebuilt into an answer
in that thread too.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway import fidelity
from gateway.context import RequestContext

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

log = logging.getLogger("gateway.recording")
_STOP = object()
_BATCH = 512  # lines written per flush at most, so a burst cannot starve the flush


class RecordWriter:
    """Appends JSON lines to one file from its own thread; rotates past `max_bytes`."""

    def __init__(self, path: str, max_bytes: int = 0, keep: int = 3) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.dropped = 0
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - owned by the writer thread until close
        self._size = self._file.tell()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"recorder {path}", daemon=True)
        self._thread.start()

    def put(self, doc: Any) -> None:
        """Queue one record (a dict, serialized in the thread); never blocks."""
        if self._closed:
            self.dropped += 1
            return
        self._queue.put(doc)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is on disk (tests, `compare`, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = False
            for item in batch:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    self._file.flush()
                    item.set()
                else:
                    self._write(item)
            try:
                self._file.flush()
            except OSError:
                log.exception("recording %s: flush failed", self.path)
            if stop:
                self._file.close()
                return

    def _write(self, doc: Any) -> None:
        try:
            line = orjson.dumps(_finish(doc), default=str) + b"\n"
        except Exception:
            log.exception("recording %s: a record could not be serialized", self.path)
            return
        try:
            if self.max_bytes and self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            self._file.write(line)
            self._size += len(line)
        except OSError:
            self.dropped += 1
            log.exception("recording %s: write failed", self.path)

    def _rotate(self) -> None:
        """FILE -> FILE.1 -> … -> FILE.keep (the oldest falls off), like logging's rotation."""
        self._file.close()
        for index in range(self.keep, 0, -1):
            older = f"{self.path}.{index}"
            newer = f"{self.path}.{index - 1}" if index > 1 else self.path
            if index == self.keep and os.path.exists(older):
                os.remove(older)
            if os.path.exists(newer):
                os.replace(newer, older)
        if self.keep == 0:
            os.remove(self.path)
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0


class StreamCapture:
    """The SSE bytes a streamed answer sent; rebuilt into an answer in the writer thread."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def answer(self) -> dict[str, Any]:
        from gateway.compare.answers import assemble_sse

        return assemble_sse(b"".join(self.parts))


def _finish(doc: dict[str, Any]) -> dict[str, Any]:
    """Work left for the writer thread: rebuild captured streams."""
    answer = doc.get("answer")
    if isinstance(answer, StreamCapture):
        doc["answer"] = answer.answer()
    return doc


# Parameters only: what the record keeps of a request when bodies are off.
_CONTENT = frozenset({"messages", "input", "instructions", "prompt", "tools", "metadata", "user"})


def request_summary(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if k not in _CONTENT}


def upstream_host(origin: str) -> str | None:
    """`http://10.0.0.5:8001` -> `10.0.0.5:8001` (no scheme, path or credentials)."""
    if not origin:
        return None
    host = origin.split("://", 1)[-1]
    return host.rsplit("@", 1)[-1].split("/", 1)[0]


class Recorder:
    """Records one route's requests into a shared writer."""

    def __init__(self, writer: RecordWriter, bodies: bool) -> None:
        self.writer = writer
        self.bodies = bodies

    def record(self, ctx: RequestContext, now: float | None = None) -> None:
        """Called once when the request ended (gateway/observe.py's finish hooks)."""
        now = time.perf_counter() if now is None else now
        body = ctx.request_body
        verdict = fidelity.full_verdict(ctx.fidelity, body)
        status = ctx.status or 499
        doc: dict[str, Any] = {
            "ts": round(time.time() - (now - ctx.started), 3),
            "request_id": ctx.request_id,
            "route": ctx.route_name,
            "endpoint": ctx.endpoint,
            "upstream": upstream_host(ctx.upstream),
            "stream": ctx.stream,
            "status": status,
            "error": None,
            "latency_ms": round((now - ctx.started) * 1000, 3),
            "ttft_ms": None
            if ctx.first_token is None
            else round((ctx.first_token - ctx.started) * 1000, 3),
            "tokens_in": ctx.prompt_tokens,
            "tokens_out": ctx.completion_tokens,
            "retries": ctx.retries,
            "fidelity": verdict.as_dict(),
            "request": body if self.bodies else request_summary(body),
        }
        answer = ctx.answer_body
        if status >= 400 or ctx.error_code:
            error = answer.get("error") if isinstance(answer, dict) else None
            doc["error"] = error if isinstance(error, dict) else {"code": ctx.error_code}
        if self.bodies:
            doc["answer"] = answer
        self.writer.put(doc)

    async def tee(self, ctx: RequestContext, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass a streamed answer on unchanged, keeping its bytes for the record."""
        capture = StreamCapture()
        ctx.answer_body = capture
        async for piece in source:
            capture.parts.append(piece)
            yield piece


def on_finish(ctx: RequestContext) -> None:
    """The finish hook: registered only once some route records (zero cost otherwise)."""
    recorder = ctx.recorder
    if recorder is not None:
        recorder.record(ctx)


# One writer per file for the whole process, shared by the configs a reload swaps between.
_writers: dict[str, tuple[RecordWriter, int]] = {}
_writers_lock = threading.Lock()


def acquire_writer(path: str, max_bytes: int, keep: int) -> RecordWriter:
    key = os.path.abspath(path)
    with _writers_lock:
        writer, users = _writers.get(key, (None, 0))
        if writer is None:
            writer = RecordWriter(key, max_bytes, keep)
        writer.max_bytes, writer.keep = max_bytes, keep
        _writers[key] = (writer, users + 1)
        return writer


def release_writer(writer: RecordWriter) -> None:
    with _writers_lock:
        current, users = _writers.get(writer.path, (None, 0))
        if current is not writer:
            return
        if users > 1:
            _writers[writer.path] = (writer, users - 1)
            return
        del _writers[writer.path]
    writer.close()


class Recording:
    """The recorders of one config: which route records where, with or without bodies."""

    def __init__(self, by_route: dict[str, Recorder]) -> None:
        self.by_route = by_route

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Recording | None:
        """None when no route records: the handlers' one check then skips everything.
        Raises ConfigError when a file cannot be opened (start-up and reload refuse it)."""
        from gateway.config import ConfigError

        server = config.server
        by_route: dict[str, Recorder] = {}
        opened: list[RecordWriter] = []
        try:
            for route in config.models:
                path = route.record or server.record
                if not path:
                    continue
                writer = acquire_writer(path, server.record_max_bytes, server.record_keep)
                opened.append(writer)
                bodies = route.record_bodies
                if bodies is None:
                    bodies = server.record_bodies
                by_route[route.name] = Recorder(writer, bodies)
        except OSError as exc:
            for writer in opened:
                release_writer(writer)
            raise ConfigError(f"config error: cannot open recording file ({exc})") from None
        return cls(by_route) if by_route else None

    def attach(self, ctx: RequestContext, body: dict[str, Any]) -> None:
        recorder = self.by_route.get(ctx.route_name)
        if recorder is not None:
            ctx.recorder = recorder
            ctx.request_body = body

    def flush(self) -> None:
        for writer in {id(r.writer): r.writer for r in self.by_route.values()}.values():
            writer.flush()

    def close(self) -> None:
        """Release the files (each closes when no config uses it any more)."""
        for recorder in self.by_route.values():
            release_writer(recorder.writer)
        self.by_route = {}
