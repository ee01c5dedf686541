"""A request leaves no reference cycles behind: everything the gateway, uvicorn and Starlette
built for it is freed by reference counting the moment it ends.

Why it matters (issue 22): a cycle per connection is garbage only the cyclic GC frees, so it
piles up in the older GC generation; every few thousand streams a collection then had to
walk ~400,000 objects and held the event loop for 0.5-0.9 s, and every stream starting then
waited that long for its first byte. The gateway runs in this process (uvicorn with
gateway/connections.py's protocol), its upstream in a thread (tests/raw_upstream.py), and
the garbage of the other parties (the test's client, the upstream's asyncio streams) is
left out by module.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import Counter

import httpx
import uvicorn
import websockets

from gateway.app import create_app
from gateway.config import parse_config
from gateway.connections import GatewayHttpProtocol
from tests.raw_upstream import Answer, RawUpstream
from tests.upstream import chunk, completion, free_port

OURS = ("gateway", "backends", "uvicorn", "starlette", "fastapi")


def _sse(model: str) -> Answer:
    pieces = [
        chunk(model, {"role": "assistant", "content": "hel"}),
        chunk(model, {"content": "lo"}, "stop"),
        b"data: [DONE]\n\n",
    ]
    return Answer(pieces=pieces)


def _script(headers: dict[str, str], request: dict) -> Answer:
    if request.get("stream"):
        return _sse("engine")
    body = json.dumps(completion("engine")).encode()
    return Answer(content_type="application/json", pieces=[body], length=True)


def _slow_script(headers: dict[str, str], request: dict) -> Answer:
    return Answer(pieces=[chunk("slow", {"content": "x"})] * 50)


def _overloaded_script(headers: dict[str, str], request: dict) -> Answer:
    """503 every time: the route retries, then falls back to another."""
    body = json.dumps({"error": {"message": "overloaded", "type": "server_error"}}).encode()
    return Answer(status=503, content_type="application/json", pieces=[body], length=True)


def _broken_script(headers: dict[str, str], request: dict) -> Answer:
    """A stream that breaks: one good chunk, then an event that is not JSON."""
    return Answer(pieces=[chunk("broken", {"content": "x"}), b"data: {not json\n\n"])


CONFIG = """
models:
  - name: engine
    backend: vllm
    base_url: {url}
    upstream_model: engine
  - name: slow
    backend: vllm
    base_url: {url}
    upstream_model: slow
  - name: broken
    backend: vllm
    base_url: {url}
    upstream_model: broken
  - name: echo
    backend: mock
  - name: overloaded
    backend: vllm
    base_url: {url}
    upstream_model: overloaded
    retries: {{attempts: 1, backoff_s: 0.001}}
    fallbacks: [engine]
  - name: unretried
    backend: vllm
    base_url: {url}
    upstream_model: overloaded
    retries: {{attempts: 0}}
"""


def _our_garbage(requests: int, make_requests) -> Counter[str]:  # type: ignore[no-untyped-def]
    scripts = {
        "engine": _script, "slow": _slow_script, "broken": _broken_script,
        "overloaded": _overloaded_script,
    }  # fmt: skip
    upstream = RawUpstream(scripts).start()

    async def scenario() -> Counter[str]:
        port = free_port()
        app = create_app(parse_config(CONFIG.format(url=upstream.base_url), "test"))
        config = uvicorn.Config(app, port=port, http=GatewayHttpProtocol, log_level="error")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        try:
            await make_requests(base, 2)  # warm-up: imports, caches, pools
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                await make_requests(base, requests)
                await asyncio.sleep(0.3)  # closed connections are processed
                gc.collect()
                found = Counter(
                    f"{type(o).__module__}.{type(o).__qualname__}"
                    for o in gc.garbage
                    if type(o).__module__.split(".")[0] in OURS
                )
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
            return found
        finally:
            server.should_exit = True
            await serving

    try:
        return asyncio.run(scenario())
    finally:
        time.sleep(0.2)  # the upstream's thread reads the EOFs of the gateway's connections
        upstream.stop()


async def _each_on_its_own_connection(base: str, bodies: list[dict], path: str) -> None:
    async def one(body: dict) -> None:
        async with httpx.AsyncClient() as client:  # a new connection, closed after
            response = await client.post(base + path, json=body)
            assert response.status_code == 200, response.text

    await asyncio.gather(*(one(body) for body in bodies))


def test_chat_json_and_streams_leave_no_cycles() -> None:
    async def requests(base: str, n: int) -> None:
        bodies = [
            {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
            for model in ("engine", "echo")
            for stream in (False, True)
        ]
        await _each_on_its_own_connection(base, bodies * n, "/v1/chat/completions")

    assert _our_garbage(5, requests) == Counter()


def test_responses_leave_no_cycles() -> None:
    async def requests(base: str, n: int) -> None:
        bodies = [
            {"model": model, "stream": stream, "input": "hi", "store": store}
            for model in ("engine", "echo")
            for stream in (False, True)
            for store in (False, True)
        ]
        await _each_on_its_own_connection(base, bodies * n, "/v1/responses")

    assert _our_garbage(3, requests) == Counter()


def test_a_client_leaving_mid_stream_leaves_no_cycles() -> None:
    async def requests(base: str, n: int) -> None:
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

        async def leave_early() -> None:
            url = base + "/v1/chat/completions"
            async with httpx.AsyncClient() as client, client.stream("POST", url, json=body) as r:
                async for _ in r.aiter_bytes():
                    break  # one read, then the connection closes

        await asyncio.gather(*(leave_early() for _ in range(n)))

    assert _our_garbage(5, requests) == Counter()


def test_a_stream_the_upstream_breaks_leaves_no_cycles() -> None:
    """The error raised inside the relay must not hold its own frame (traceback cycle)."""

    async def requests(base: str, n: int) -> None:
        body = {"model": "broken", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        await _each_on_its_own_connection(base, [body] * n, "/v1/chat/completions")

    assert _our_garbage(5, requests) == Counter()


def test_a_refit_abort_of_streams_in_flight_leaves_no_cycles() -> None:
    """`/admin/pause` with mode abort cuts every stream at once: the transport error each
    stream stored must not keep the frames that keep it (a reference cycle a refit makes by
    the thousand)."""

    async def requests(base: str, n: int) -> None:
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "x"}]}

        async def abort_soon() -> None:
            await asyncio.sleep(0.4)  # the streams are under way (50 chunks, 30 ms apart)
            async with httpx.AsyncClient() as client:
                paused = await client.post(base + "/admin/pause", json={"mode": "abort"})
                assert paused.json()["aborted"] >= 1  # the rest, if any, run after the resume
                await client.post(base + "/admin/resume")

        await asyncio.gather(
            _each_on_its_own_connection(base, [body] * n, "/v1/chat/completions"), abort_soon()
        )

    assert _our_garbage(5, requests) == Counter()


def test_retries_and_fallbacks_leave_no_cycles() -> None:
    """A 503, its retry, another 503 and the fallback route's answer, JSON and SSE: each
    failed attempt's error is handled and dropped without keeping the frames that raised it."""

    async def requests(base: str, n: int) -> None:
        bodies = [
            {
                "model": "overloaded",
                "stream": stream,
                "messages": [{"role": "user", "content": "x"}],
            }
            for stream in (False, True)
        ]
        await _each_on_its_own_connection(base, bodies * n, "/v1/chat/completions")

    assert _our_garbage(3, requests) == Counter()


def test_websocket_turns_leave_no_cycles() -> None:
    """Responses over a WebSocket: several turns on one socket, stored and continued, then
    the socket closes (the per-socket state, the turns' relays and the connection's task)."""

    async def requests(base: str, n: int) -> None:
        url = base.replace("http://", "ws://") + "/v1/responses"

        async def session() -> None:
            async with websockets.connect(url) as ws:
                previous = None
                for model in ("engine", "echo", "engine"):
                    body = {"type": "response.create", "model": model, "input": "hi"}
                    if previous is not None:
                        body["previous_response_id"] = previous
                    await ws.send(json.dumps(body))
                    while True:
                        event = json.loads(await ws.recv())
                        if event["type"] in ("response.completed", "error"):
                            break
                    assert event["type"] == "response.completed", event
                    previous = event["response"]["id"]

        await asyncio.gather(*(session() for _ in range(n)))

    assert _our_garbage(3, requests) == Counter()


def test_refusals_and_upstream_failures_leave_no_cycles() -> None:
    """What hostile or careless clients cause (bodies that do not parse, unknown models,
    parameters refused) and an upstream that answers 503 to a route with neither retries
    nor fallbacks: each answer is an error, each error is dropped with its frames."""

    async def requests(base: str, n: int) -> None:
        url = base + "/v1/chat/completions"
        messages = [{"role": "user", "content": "x"}]
        cases: list[tuple[dict | bytes, int]] = [
            (b"{not json", 400),
            ({"model": "nope", "messages": messages}, 404),
            ({"model": "engine"}, 400),
            ({"model": "engine", "messages": messages, "n": "many"}, 400),
            ({"model": "unretried", "messages": messages}, 503),
            ({"model": "unretried", "messages": messages, "stream": True}, 503),
        ]

        async def one(body: dict | bytes, status: int) -> None:
            async with httpx.AsyncClient() as client:
                if isinstance(body, bytes):
                    response = await client.post(url, content=body)
                else:
                    response = await client.post(url, json=body)
                assert response.status_code == status, response.text

        await asyncio.gather(*(one(body, status) for body, status in cases * n))

    assert _our_garbage(3, requests) == Counter()
