"""A fake OpenAI-compatible upstream that is never the bottleneck.

A raw asyncio protocol (uvloop when present) with keep-alive and canned answers, so one core
serves tens of thousands of requests per second. It answers any POST whose path ends in
`/chat/completions`; a body containing `"stream":true` gets an SSE stream of `--chunks`
chunks, `--delay-ms` apart (for slow-stream tests), ending with `data: [DONE]`.
GET /health answers 200; GET /v1/models lists `--model` and GET /version answers as vLLM
would (the peer routers probe them to recognise a worker and its model). Request bodies may
be chunked (SMG sends them so). Everything else is 404.

    python bench/fake_upstream.py --port 9001 [--chunks 50] [--delay-ms 0] [--model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from http_read import take_request

CHAT_BODY = json.dumps(
    {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the fake upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    },
    separators=(",", ":"),
).encode()


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def build_stream(chunks: int) -> list[bytes]:
    parts = [_chunk({"role": "assistant", "content": ""})]
    parts += [_chunk({"content": f"tok{i} "}) for i in range(chunks)]
    parts.append(_chunk({}, "stop"))
    usage = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks},
    }
    parts.append(b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return parts


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _json_answer(doc: object) -> bytes:
    body = json.dumps(doc, separators=(",", ":")).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, stream_parts: list[bytes], delay: float, model: str = "fake") -> None:
        self.stream_parts = stream_parts
        self.models = _json_answer(
            {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "vllm"}]}
        )
        self.delay = delay
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        # the whole fast stream, built once
        self.fast_stream = (
            STREAM_HEAD + b"".join(_http_chunk(p) for p in stream_parts) + b"0\r\n\r\n"
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (request := take_request(self.buf)) is not None:
            request_line, body, end = request
            self.buf = self.buf[end:]
            self.respond(request_line, body)

    def respond(self, request_line: list[bytes], body: bytes) -> None:
        assert self.transport is not None
        method, path = request_line[0], request_line[1]
        if method == b"GET" and path.startswith(b"/health"):
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        elif method == b"GET" and path.endswith(b"/models"):
            self.transport.write(self.models)
        elif method == b"GET" and path == b"/version":
            self.transport.write(_json_answer({"version": "0.11.0"}))
        elif path.endswith(b"/chat/completions"):
            if b'"stream":true' in body.replace(b" ", b""):
                if self.delay:
                    self.transport.write(STREAM_HEAD)
                    self.slow_part(self.transport, 0)
                else:
                    self.transport.write(self.fast_stream)
            else:
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(CHAT_BODY), CHAT_BODY)
                )
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")

    def slow_part(self, transport: asyncio.Transport, index: int) -> None:
        """One chunk, then a timer for the next: a timer per chunk costs less than a task
        per stream, so 10,000 slow streams stay cheap for the core this shares."""
        if transport.is_closing():
            return
        if index == len(self.stream_parts):
            transport.write(b"0\r\n\r\n")
            return
        transport.write(_http_chunk(self.stream_parts[index]))
        asyncio.get_running_loop().call_later(self.delay, self.slow_part, transport, index + 1)


async def serve(host: str, port: int, chunks: int, delay_ms: float, model: str) -> None:
    parts = build_stream(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(parts, delay_ms / 1000.0, model), host, port, backlog=4096
    )
    print(f"fake upstream on http://{host}:{port}/v1 ({time.strftime('%X')})", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--model", default="fake", help="the model GET /v1/models lists")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port, args.chunks, args.delay_ms, args.model))


if __name__ == "__main__":
    main()
