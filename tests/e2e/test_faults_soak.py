"""Fault-injection soak: every upstream fault of docs/operations.md, on both generation
endpoints, JSON and streaming, 11,000 times through one real gateway process.

Each answer must be the documented client-visible result; the gateway must keep serving
good requests in between and after; its resident memory must not grow over 10,000 fault
requests (measured from /proc/PID/status after a warm-up of 1,000).
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson
import pytest

from tests.gateway_process import GatewayProcess

WARM_UP = 1_000
SOAK = 10_000
CONCURRENCY = 64
MAX_RSS_GROWTH_KIB = 25 * 1024
HELLO = [{"role": "user", "content": "soak"}]
TIMEOUT_504 = "504 upstream_timeout"
NO_EJECT = "health: {failures_to_eject: 1000000, path: null}"
# Upstream behaviours (tests/upstream.py) soaked here, each on its own route, with the
# timeouts that make the slow ones fail fast; the others get room for a loaded machine.
FAULT_UPSTREAMS = {
    "ok": "{first_byte: 5, idle: 5}",
    "slow-json": "{first_byte: 0.2, idle: 0.2}",
    "stall": "{first_byte: 5, idle: 0.2}",
    "reset": "{first_byte: 5, idle: 5}",
    "garbage": "{first_byte: 5, idle: 5}",
    "truncated": "{first_byte: 5, idle: 5}",
    "midstream-error": "{first_byte: 5, idle: 5}",
    "err-html": "{first_byte: 5, idle: 5}",
    "err-429": "{first_byte: 5, idle: 5}",
}
# The scripted upstream in a process of its own, so the load generator does not slow it.
UPSTREAM_MAIN = (
    "import sys; from tests.upstream import ScriptedUpstream; "
    "s = ScriptedUpstream().start(); print(s.base_url, flush=True); sys.stdin.read(); s.stop()"
)


@dataclass(frozen=True)
class Case:
    route: str
    endpoint: str  # "chat" | "responses"
    stream: bool
    expect: str  # the outcome() label the client must see
    also: str | None = None  # an equally documented label (a timeout before the first byte)


def soak_config(upstream_url: str) -> str:
    lines = [
        "server:",
        "  log_level: warning",
        "models:",
        "  - {name: echo, backend: mock}",
        "  - name: dead",  # refused connection: nothing listens on the discard port
        "    backend: vllm",
        "    base_url: http://127.0.0.1:9/v1",
        "    retries: {attempts: 0}",
        f"    {NO_EJECT}",
        "  - name: dead-breaker",  # the same with the default circuit breaker
        "    backend: vllm",
        "    base_url: http://127.0.0.1:9/v1",
        "    retries: {attempts: 0}",
        "    health: {path: null}",
    ]
    for name, timeouts in FAULT_UPSTREAMS.items():
        lines += [
            f"  - name: up-{name}",
            "    backend: vllm",
            f"    base_url: {upstream_url}",
            f"    upstream_model: {name}",
            f"    timeouts: {timeouts}",
            "    retries: {attempts: 0}",
            f"    {NO_EJECT}",
        ]
    return "\n".join(lines) + "\n"


def cases() -> list[Case]:
    """The mix: each fault on both endpoints, JSON and stream where the fault applies."""
    out: list[Case] = []
    for endpoint in ("chat", "responses"):
        broken = "stream-error" if endpoint == "chat" else "response.failed"
        error_code = 500 if endpoint == "chat" else "server_error"
        out += [
            Case("echo", endpoint, False, "200 ok"),
            Case("echo", endpoint, True, "200 stream-ok"),
            Case("up-ok", endpoint, True, "200 stream-ok"),
            Case("dead", endpoint, False, "502 upstream_unreachable"),
            Case("dead", endpoint, True, "502 upstream_unreachable"),
            Case("dead-breaker", endpoint, False, "502|503 unreachable-or-ejected"),
            Case("up-slow-json", endpoint, False, TIMEOUT_504),
            Case("up-slow-json", endpoint, True, TIMEOUT_504),
            # idle also bounds the wait for the answer headers: on a loaded machine the
            # stall may start before them (504, as for any timeout before the first byte)
            Case("up-stall", endpoint, True, f"200 {broken} upstream_timeout", TIMEOUT_504),
            Case("up-reset", endpoint, True, f"200 {broken} upstream_error"),
            Case("up-truncated", endpoint, True, f"200 {broken} upstream_truncated"),
            # the upstream's own error chunk (code 500) is passed on; Responses names no int code
            Case("up-midstream-error", endpoint, True, f"200 {broken} {error_code}"),
            Case("up-garbage", endpoint, False, "502 upstream_invalid"),
            Case("up-err-html", endpoint, False, "500 html-named"),
            Case("up-err-html", endpoint, True, "500 html-named"),
            Case("up-err-429", endpoint, False, "429 retry-after 7"),
            Case("up-err-429", endpoint, True, "429 retry-after 7"),
        ]
    return out


def request_body(case: Case) -> dict:
    if case.endpoint == "chat":
        return {"model": case.route, "messages": HELLO, "stream": case.stream}
    return {"model": case.route, "input": "soak", "stream": case.stream}


def _sse_data(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


def outcome(status: int, headers: dict[str, str], raw: bytes, case: Case) -> str:
    """What the client saw, as a short label comparable with Case.expect."""
    if status >= 400:
        error = orjson.loads(raw)["error"]
        # OpenAI's four fields (+ an engine's integer code as upstream_code)
        assert set(error) - {"upstream_code"} == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"], error
        if status == 429:
            return f"429 retry-after {headers.get('retry-after')}"
        if status == 500 and "text/html" in error["message"] and "<html>" not in raw.decode():
            return "500 html-named"
        if case.route == "dead-breaker" and error["code"] in (
            "upstream_unreachable",
            "no_healthy_upstream",
        ):
            return "502|503 unreachable-or-ejected"
        return f"{status} {error['code']}"
    text = raw.decode()
    if not case.stream:
        doc = orjson.loads(raw)
        assert doc.get("choices") or doc.get("output"), doc
        return f"{status} ok"
    data = _sse_data(text)
    if case.endpoint == "chat":
        if data[-1] != "[DONE]":
            return f"{status} no-[DONE]"
        last = orjson.loads(data[-2])
        if "error" in last:
            return f"{status} stream-error {last['error'].get('code')}"
        return f"{status} stream-ok"
    events = [orjson.loads(d) for d in data]
    terminal = [e for e in events if e["type"] in TERMINAL]
    if len(terminal) != 1 or events[-1] is not terminal[0]:
        return f"{status} terminal-events {[e['type'] for e in terminal]}"
    if events[-1]["type"] == "response.failed":
        errors = [e for e in events if e["type"] == "error"]
        return f"{status} response.failed {errors[-1]['code'] if errors else None}"
    return f"{status} stream-ok"


TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


async def run_mix(url: str, mix: list[Case], count: int, start: int) -> Counter[str]:
    """Send `count` requests of the mix (from position `start`) with bounded concurrency;
    return the mismatches (case -> seen) counted."""
    paths = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}
    wrong: Counter[str] = Counter()
    order = itertools.islice(itertools.cycle(mix), start, start + count)
    timeout = aiohttp.ClientTimeout(total=20)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for case in order:  # one shared iterator: each case is taken once
                async with session.post(url + paths[case.endpoint], json=request_body(case)) as r:
                    raw = await r.read()
                    headers = {k.lower(): v for k, v in r.headers.items()}
                    seen = outcome(r.status, headers, raw, case)
                if seen not in (case.expect, case.also):
                    wrong[f"{case} -> {seen}"] += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return wrong


@pytest.fixture(scope="module")
def soak_upstream() -> Iterator[str]:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_MAIN],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # it logs every connection the gateway drops on purpose
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    base_url = proc.stdout.readline().strip()
    assert base_url.startswith("http://127.0.0.1:"), base_url
    yield base_url
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="module")
def soak_gateway(
    soak_upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("soak")
    proc = GatewayProcess(soak_config(soak_upstream), workdir).wait_ready()
    yield proc
    proc.stop()


def assert_serves(gw: GatewayProcess) -> None:
    for route in ("echo", "up-ok"):
        resp = httpx.post(
            gw.url + "/v1/chat/completions", json={"model": route, "messages": HELLO}, timeout=10
        )
        assert resp.status_code == 200, resp.text
    assert httpx.get(gw.url + "/health", timeout=10).status_code == 200


def test_each_fault_gives_the_documented_result(soak_gateway: GatewayProcess) -> None:
    mix = cases()
    wrong = asyncio.run(run_mix(soak_gateway.url, mix, len(mix), 0))
    assert not wrong, dict(wrong)
    assert_serves(soak_gateway)


def test_soak_keeps_serving_and_memory_flat(soak_gateway: GatewayProcess) -> None:
    mix = cases()
    pid = soak_gateway.proc.pid
    wrong = asyncio.run(run_mix(soak_gateway.url, mix, WARM_UP, 0))
    assert not wrong, dict(wrong)
    before = rss_kib(pid)
    wrong = asyncio.run(run_mix(soak_gateway.url, mix, SOAK, WARM_UP))
    after = rss_kib(pid)
    assert not wrong, dict(wrong)
    assert soak_gateway.proc.poll() is None, soak_gateway.log()[-2000:]
    assert_serves(soak_gateway)
    print(f"gateway RSS: {before} KiB after warm-up, {after} KiB after {SOAK} requests")
    assert after - before < MAX_RSS_GROWTH_KIB, (before, after)
