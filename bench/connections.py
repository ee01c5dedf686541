"""Hostile client connections (issue 18 item 2): 1,000 silent + 300 slow-header connections
held for 60 s (each reopened when the gateway closes it; the attack runs in a process of its
own), while valid requests keep coming (two kept-alive clients and one that connects anew
for each request, one request at a time each), after a baseline of the same length.
Reports the gateway's descriptors and RSS over time and the valid requests' latency; and,
with --largest-answer, the RSS peak of the largest mock answer the defaults allow.

    .venv/bin/python bench/connections.py [--silent 1000] [--slow 300] [--hold 60]
    .venv/bin/python bench/connections.py --largest-answer

A figure, not a test: nothing here asserts on time. Loopback only; the gateway it starts is
stopped by its own id.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import CLK_TCK, PAGE, free_port, raise_fd_limit

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello there"}]}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def start_gateway(config: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    path = Path(tempfile.mkdtemp()) / "gw.yaml"
    path.write_text(config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gateway did not start")


class Attack:
    """Keeps `silent` connections that send nothing and `slow` ones that send their
    headers a byte a second, reopening each one the gateway closes."""

    def __init__(self, port: int, silent: int, slow: int) -> None:
        self.port, self.silent, self.slow = port, silent, slow
        self.opened = self.closed_by_gateway = self.answered_408 = 0
        self.stop = asyncio.Event()

    async def _one(self, slow: bool) -> None:
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            self.opened += 1
            sent = 0
            try:
                while not self.stop.is_set():
                    if slow:
                        writer.write(head[sent : sent + 1] if sent < len(head) else b"a")
                        sent += 1
                    try:
                        data = await asyncio.wait_for(reader.read(1024), 1.0)
                    except TimeoutError:
                        continue
                    if data.startswith(b"HTTP/1.1 408"):
                        self.answered_408 += 1
                    self.closed_by_gateway += 1
                    break
            except OSError:
                self.closed_by_gateway += 1
            finally:
                writer.close()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._one(False)) for _ in range(self.silent)]
        tasks += [asyncio.create_task(self._one(True)) for _ in range(self.slow)]
        await self.stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)


async def valid_load(url: str, stop: asyncio.Event, latencies: list[float]) -> None:
    """Two kept-alive clients and one that opens a new connection per request."""

    async def loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            resp = await client.post(url + "/v1/chat/completions", json=CHAT)
            if resp.status_code == 200:
                latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    fresh = httpx.Limits(max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(timeout=30) as a,
        httpx.AsyncClient(timeout=30) as b,
        httpx.AsyncClient(timeout=30, limits=fresh) as c,
    ):
        await asyncio.gather(loop(a), loop(b), loop(c))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def attack_process(port: int, silent: int, slow: int, seconds: float, out: Any) -> None:
    """The attack in a process of its own: its 1,300 connections must not slow the client
    that measures the valid requests."""
    raise_fd_limit()
    attack = Attack(port, silent, slow)

    async def run() -> None:
        runner = asyncio.create_task(attack.run())
        await asyncio.sleep(seconds)
        attack.stop.set()
        await runner

    asyncio.run(run())
    out.put((attack.opened, attack.closed_by_gateway, attack.answered_408))


async def phase(
    url: str, pid: int, seconds: float, attack: tuple[int, int] | None
) -> dict[str, float]:
    stop = asyncio.Event()
    latencies: list[float] = []
    samples: list[tuple[int, float]] = []
    counts = multiprocessing.Queue()
    attacker = None
    if attack is not None:
        port = int(url.rsplit(":", 1)[1])
        attacker = multiprocessing.Process(
            target=attack_process, args=(port, *attack, seconds + 5, counts)
        )
        attacker.start()
        await asyncio.sleep(5)  # the attack connections are open before measuring
    tasks = [asyncio.create_task(valid_load(url, stop, latencies))]
    cpu_start, started = cpu_s(pid), time.monotonic()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append((fds(pid), rss_mb(pid)))
        await asyncio.sleep(1)
    cpu_share = (cpu_s(pid) - cpu_start) / (time.monotonic() - started)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    opened = closed = answered_408 = 0
    if attacker is not None:
        opened, closed, answered_408 = counts.get(timeout=120)
        attacker.join(30)
    return {
        "cpu_pct": cpu_share * 100,
        "opened": opened,
        "closed": closed,
        "answered_408": answered_408,
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=0) * 1000,
        "fds_max": max(s[0] for s in samples),
        "fds_median": statistics.median(s[0] for s in samples),
        "rss_max_mb": max(s[1] for s in samples),
    }


def connections_bench(args: argparse.Namespace) -> None:
    raise_fd_limit()
    proc, url = start_gateway("models:\n  - {name: echo, backend: mock}\n")
    try:
        base = asyncio.run(phase(url, proc.pid, args.hold, None))
        hit = asyncio.run(phase(url, proc.pid, args.hold, (args.silent, args.slow)))
        after = {"fds": fds(proc.pid), "rss_mb": rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"baseline ({args.hold:g} s, no attack): {fmt(base)}")
    kinds = f"{args.silent} silent + {args.slow} slow-header"
    print(f"under attack ({kinds}, {args.hold:g} s): {fmt(hit)}")
    print(
        f"  attack connections opened {hit['opened']}, closed by the gateway "
        f"{hit['closed']} ({hit['answered_408']} with a 408)"
    )
    print(f"after: fds {after['fds']}, rss {after['rss_mb']:.0f} MB")


def fmt(r: dict[str, float]) -> str:
    return (
        f"{r['requests']} valid requests, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"max {r['max_ms']:.0f} ms; fds median {r['fds_median']:.0f} max {r['fds_max']}; "
        f"RSS max {r['rss_max_mb']:.0f} MB; gateway CPU {r['cpu_pct']:.0f} % of a core"
    )


def _rss_peak_during(pid: int, send: Any) -> tuple[Any, float]:
    peak = rss_mb(pid)
    done = False

    def sample() -> None:
        nonlocal peak
        while not done:
            peak = max(peak, rss_mb(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = send()
    finally:
        done = True
        sampler.join()
    return result, peak


def largest_answer_bench() -> None:
    """RSS peak for the largest answers the defaults allow on the mock (16 MiB of estimated
    cost): many one-character tokens, and few long ones."""
    proc, url = start_gateway("models:\n  - {name: echo, backend: mock}\n")
    limit = 16 * 1024 * 1024
    try:
        print(f"gateway RSS idle {rss_mb(proc.pid):.0f} MB")
        for word in ("w", "w" * 99):
            per_token = 58 + len(word) + 1  # backends/mock.py's estimate for a JSON answer
            count = limit // per_token - 64
            body = {**CHAT, "messages": [{"role": "user", "content": (word + " ") * count}]}

            def send(body: dict = body) -> httpx.Response:
                return httpx.post(url + "/v1/chat/completions", json=body, timeout=300)

            resp, peak = _rss_peak_during(proc.pid, send)
            bigger = httpx.post(url + "/v1/chat/completions", json={**body, "n": 2}, timeout=300)
            print(
                f"{count} tokens of {len(word)} chars: {resp.status_code}, answer "
                f"{len(resp.content) / 2**20:.1f} MiB, gateway RSS peak {peak:.0f} MB; "
                f"with n: 2 -> {bigger.status_code} {bigger.json()['error']['code']}"
            )
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silent", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--hold", type=float, default=60)
    parser.add_argument("--largest-answer", action="store_true")
    args = parser.parse_args()
    if args.largest_answer:
        largest_answer_bench()
    else:
        connections_bench(args)


if __name__ == "__main__":
    main()
