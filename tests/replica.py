"""A tiny engine replica for pool tests, run as its own process so a test can kill it.

    python -m tests.replica PORT NAME [DELAY_MS]

Answers chat completions (JSON and streams) with its NAME as the text, reports its in-flight
load in `x-replica-in-flight`, serves /health, and for vLLM-like admin calls (/pause,
/resume) records the call (GET /calls lists them). GET /count: chat requests received so far,
and per `x-session-id` the number of turns (the fleet tests count what reaches an engine).
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

NAME = "replica"
DELAY = 0.0
IN_FLIGHT = 0
CALLS: list[str] = []
COUNT = 0
SESSIONS: dict[str, int] = {}


def chunk(delta: dict, finish: str | None = None) -> bytes:
    doc = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": NAME,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


async def chat(request: web.Request) -> web.StreamResponse:
    global IN_FLIGHT, COUNT
    body = await request.json()
    COUNT += 1
    session = request.headers.get("x-session-id")
    if session:
        SESSIONS[session] = SESSIONS.get(session, 0) + 1
    IN_FLIGHT += 1
    try:
        if DELAY:
            await asyncio.sleep(DELAY)
        if body.get("stream"):
            response = web.StreamResponse(
                headers={"content-type": "text/event-stream", "x-replica": NAME}
            )
            await response.prepare(request)
            await response.write(chunk({"role": "assistant", "content": NAME}))
            await response.write(chunk({}, "stop") + b"data: [DONE]\n\n")
            return response
        return web.json_response(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": NAME},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                "replica_in_flight": IN_FLIGHT,
            }
        )
    finally:
        IN_FLIGHT -= 1


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def admin(request: web.Request) -> web.Response:
    CALLS.append(request.path_qs)
    return web.json_response({"status": "ok"})


async def calls(request: web.Request) -> web.Response:
    return web.json_response(CALLS)


async def count(request: web.Request) -> web.Response:
    return web.json_response({"count": COUNT, "in_flight": IN_FLIGHT, "sessions": SESSIONS})


def main() -> None:
    global NAME, DELAY
    port, NAME = int(sys.argv[1]), sys.argv[2]
    DELAY = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    app.router.add_post("/pause", admin)
    app.router.add_post("/resume", admin)
    app.router.add_get("/calls", calls)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
