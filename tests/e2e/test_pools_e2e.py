"""Replica pools end to end: several replica processes, sticky multi-turn rollouts, a replica
killed mid-run, 503/429 paths, and the refit control plane."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.upstream import free_port

ROOT = Path(__file__).resolve().parents[2]


class Replicas:
    def __init__(self, count: int, delay_ms: float = 0) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.replica", str(p), f"r{i}", str(delay_ms)], cwd=ROOT
            )
            for i, p in enumerate(self.ports)
        ]
        deadline = time.monotonic() + 20
        for port in self.ports:
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("replica did not start") from None
                    time.sleep(0.05)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}/v1" for p in self.ports]

    def kill(self, index: int) -> None:
        self.procs[index].kill()
        self.procs[index].wait(5)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def replicas() -> Iterator[Replicas]:
    group = Replicas(4)
    yield group
    group.stop()


def pool_config(urls: list[str], extra: str = "") -> str:
    listed = ", ".join(f'"{u}"' for u in urls)
    return f"""
models:
  - name: pool
    backend: vllm
    base_urls: [{listed}]
    health: {{interval_s: 0.5, failures_to_eject: 1, eject_s: 5}}
    retries: {{attempts: 3, backoff_s: 0.05}}
{extra}
"""


async def _rollouts(url: str, conversations: int, turns: int, kill) -> dict[int, list[str]]:
    served: dict[int, list[str]] = defaultdict(list)
    connector = aiohttp.TCPConnector(limit=0)
    done = 0
    total = conversations * turns

    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            nonlocal done
            messages = [
                {"role": "system", "content": "agent"},
                {"role": "user", "content": f"task {i}"},
            ]
            for turn in range(turns):
                async with session.post(
                    url + "/v1/chat/completions", json={"model": "pool", "messages": messages}
                ) as resp:
                    assert resp.status == 200, await resp.text()
                    body = await resp.json()
                name = body["choices"][0]["message"]["content"]
                served[i].append(name)
                messages += [
                    {"role": "assistant", "content": name},
                    {"role": "user", "content": f"obs {turn}"},
                ]
                done += 1
                if done == total * 2 // 5:
                    kill()

        await asyncio.gather(*(one(i) for i in range(conversations)))
    return served


def test_1000_sticky_rollouts_survive_a_dead_replica(replicas: Replicas, tmp_path: Path) -> None:
    gw = GatewayProcess(pool_config(replicas.urls), tmp_path).wait_ready()
    try:
        served = asyncio.run(_rollouts(gw.url, 1000, 3, lambda: replicas.kill(1)))
        pools = httpx.get(gw.url + "/admin/pools").json()["pools"][0]
    finally:
        gw.stop()
    assert len(served) == 1000 and all(len(v) == 3 for v in served.values())  # nothing lost
    moved = [names for names in served.values() if len(set(names)) > 1]
    # only conversations that lived on the killed replica moved, and only once
    for names in moved:
        switches = sum(a != b for a, b in pairwise(names))
        assert names[0] == "r1" and switches == 1 and names[-1] != "r1", names
    stayed = [names for names in served.values() if names[0] != "r1"]
    assert all(len(set(names)) == 1 for names in stayed)
    counts = defaultdict(int)
    for names in served.values():
        counts[names[0]] += 1
    assert min(counts.values()) > 150  # least-loaded placement spread the new conversations
    states = {r["upstream"]: r["state"] for r in pools["replicas"]}
    assert list(states.values()).count("ejected") == 1


def test_session_header_pins_the_replica(replicas: Replicas, tmp_path: Path) -> None:
    gw = GatewayProcess(pool_config(replicas.urls), tmp_path).wait_ready()
    try:
        names = set()
        for i in range(10):
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                headers={"x-session-id": "s-1"},
                json={"model": "pool", "messages": [{"role": "user", "content": str(i)}]},
            )
            names.add(resp.json()["choices"][0]["message"]["content"])
        assert len(names) == 1
    finally:
        gw.stop()


def test_no_replica_answering_is_502_naming_each_address(tmp_path: Path) -> None:
    """Replicas that refuse connections (no engine there): every answer, before and after
    the breaker opens, is 502 upstream_unreachable naming the addresses, with a short
    Retry-After (the SDK sleeps whatever it says before each retry)."""
    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    gw = GatewayProcess(pool_config(dead), tmp_path).wait_ready()
    try:
        for _ in range(3):
            answer = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "pool", "messages": [{"role": "user", "content": "x"}]},
            )
            assert answer.status_code == 502
            error = answer.json()["error"]
            assert error["code"] == "upstream_unreachable"
            assert any(url.removesuffix("/v1") in error["message"] for url in dead), error
        assert 1 <= int(answer.headers["retry-after"]) <= 2
    finally:
        gw.stop()


def test_backpressure_gives_429_with_retry_after(tmp_path: Path) -> None:
    slow = Replicas(1, delay_ms=500)
    config = pool_config(
        slow.urls, "    max_concurrency: 2\n    max_queue: 1\n    queue_timeout_s: 5\n"
    ).replace("retries: {attempts: 3", "retries: {attempts: 0")
    gw = GatewayProcess(config, tmp_path).wait_ready()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        gw.url + "/v1/chat/completions",
                        json={"model": "pool", "messages": [{"role": "user", "content": str(i)}]},
                    )
                    for i in range(6)
                )
            )

    try:
        results = asyncio.run(burst())
    finally:
        gw.stop()
        slow.stop()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 200, 429, 429, 429]  # 2 running + 1 queued
    rejected = next(r for r in results if r.status_code == 429)
    assert rejected.headers["retry-after"] == "1"
    assert rejected.json()["error"]["code"] == "gateway_overloaded"


async def until_sent_upstream(client: httpx.AsyncClient, url: str, count: int) -> None:
    """Wait (bounded) until `count` requests are in flight at the replicas: a fixed sleep
    was too short on a loaded machine, and the pause then came before them."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pools = (await client.get(url + "/admin/pools")).json()["pools"]
        if sum(r["in_flight"] for p in pools for r in p["replicas"]) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} requests never reached the replicas")


def test_refit_pause_resume_and_policy_version(replicas: Replicas, tmp_path: Path) -> None:
    slow = Replicas(1, delay_ms=300)
    config = pool_config(slow.urls, "    engine_control: true\n")
    gw = GatewayProcess(config, tmp_path).wait_ready()
    body = {"model": "pool", "messages": [{"role": "user", "content": "x"}]}
    try:
        set_version = httpx.post(gw.url + "/admin/policy_version", json={"version": 7})
        assert set_version.json() == {"policy_version": "7"}
        first = httpx.post(gw.url + "/v1/chat/completions", json=body)
        assert first.headers["x-policy-version"] == "7"
        assert first.json()["policy_version"] == "7"

        async def scenario() -> tuple[list[httpx.Response], dict, float, httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                in_flight = [
                    asyncio.create_task(client.post(gw.url + "/v1/chat/completions", json=body))
                    for _ in range(5)
                ]
                await until_sent_upstream(client, gw.url, 5)
                paused = await client.post(gw.url + "/admin/pause", json={"mode": "wait"})
                # wait mode returns after the in-flight requests drained: their answers are
                # already on the wire
                assert paused.json()["in_flight"] == 0
                await asyncio.wait_for(asyncio.gather(*in_flight), 10.0)
                started = time.monotonic()
                waiting = asyncio.create_task(
                    client.post(gw.url + "/v1/chat/completions", json=body)
                )
                await asyncio.sleep(0.5)
                assert not waiting.done()  # held while paused, not failed
                await client.post(gw.url + "/admin/policy_version", json={"version": "8"})
                await client.post(gw.url + "/admin/resume")
                late = await waiting
                return (
                    [t.result() for t in in_flight],
                    paused.json(),
                    time.monotonic() - started,
                    late,
                )

        finished, paused, held_for, late = asyncio.run(scenario())
        assert all(r.status_code == 200 for r in finished)
        assert paused["paused"] is True and paused["drained"] is True
        assert [e["detail"] for e in paused["engines"]] == ['{"status": "ok"}']
        assert late.status_code == 200 and held_for >= 0.5
        assert late.headers["x-policy-version"] == "8"
        calls = httpx.get(slow.urls[0].removesuffix("/v1") + "/calls").json()
        assert calls == ["/pause?mode=wait", "/resume"]
        status = httpx.get(gw.url + "/admin/status").json()
        assert status["paused"] is False and status["policy_version"] == "8"
    finally:
        gw.stop()
        slow.stop()


def test_pause_abort_fails_in_flight_with_503(tmp_path: Path) -> None:
    slow = Replicas(1, delay_ms=3000)
    gw = GatewayProcess(pool_config(slow.urls), tmp_path).wait_ready()
    body = {"model": "pool", "messages": [{"role": "user", "content": "x"}]}
    try:

        async def scenario() -> tuple[list[httpx.Response], dict]:
            async with httpx.AsyncClient(timeout=30) as client:
                tasks = [
                    asyncio.create_task(client.post(gw.url + "/v1/chat/completions", json=body))
                    for _ in range(3)
                ]
                await until_sent_upstream(client, gw.url, 3)
                paused = await client.post(gw.url + "/admin/pause", json={"mode": "abort"})
                results = await asyncio.gather(*tasks)
                await client.post(gw.url + "/admin/resume")
                return results, paused.json()

        results, paused = asyncio.run(scenario())
        assert paused["aborted"] == 3
        assert [r.status_code for r in results] == [503, 503, 503]
        assert results[0].json()["error"]["code"] == "aborted_for_refit"
        after = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10)
        assert after.status_code == 200
    finally:
        gw.stop()
        slow.stop()
