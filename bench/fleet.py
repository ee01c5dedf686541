"""The fleet's costs (docs/scaling.md): pause propagation with 2, 4 and 8 members, and what
fleet membership adds to a request.

    .venv/bin/python -m bench.fleet [--members 2 4 8] [--repeats 30] [--seconds 5]

Needs `redis-server` (Debian package). Members are real `gym-gateway serve` processes with
a mock route; they share one Redis started on a free port.

* propagation: `POST /admin/pause {"mode": "keep"}` on one member returns once every live
  member reported that it applied the pause (and from then on admits nothing), so the call's
  duration is the time from the call to every member refusing new work. Each repeat resumes.
* fleet rate: 32 closed-loop clients (bench/loadgen.py) over 1 and over 2 members.
* per request: p50 latency at concurrency 1 and 32 to one member with and without a
  `cluster:` block, and the member's CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

from bench.loadgen import CellResult, Scenario, build_request, closed_loop
from tests.gateway_process import GatewayProcess
from tests.redis_server import RedisServer

MOCK = "models:\n  - name: echo\n    backend: mock\n"
BODY = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def cluster(url: str) -> str:
    return f"cluster: {{redis_url: '{url}'}}\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Observer:
    """Timestamps (this process's perf_counter) of the fleet's messages, from a thread
    subscribed to the events and reports channels: where a pause's time goes."""

    def __init__(self, redis_url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(redis_url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe("gym-gateway:events", "gym-gateway:reports")
        self.seen: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # closed at the end
            for message in self.pubsub.listen():
                if message["type"] == "message":
                    self.seen.append((time.perf_counter(), message["channel"].decode()))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.pubsub.close()
            self.client.close()


def propagation(
    redis_url: str, workdir: Path, members: int, repeats: int
) -> tuple[list[float], dict[str, list[float]]]:
    """The pause calls' durations (ms) and their parts: call → the state published (the HTTP
    request and the script), published → the last member's report seen (members waking up),
    last report → the answer at the client (the caller waking up, its answer)."""
    procs = [GatewayProcess(cluster(redis_url) + MOCK, workdir) for _ in range(members)]
    observer = Observer(redis_url)
    parts: dict[str, list[float]] = {"to_publish": [], "to_last_report": [], "to_answer": []}
    try:
        for p in procs:
            p.wait_ready(60)
        url = procs[0].url
        times = []
        with httpx.Client(timeout=30) as http:
            while len(http.get(url + "/admin/status").json()["fleet"]["members"]) < members:
                time.sleep(0.1)
            for _ in range(repeats):
                time.sleep(0.05)  # the previous resume's reports are in
                observer.seen.clear()
                start = time.perf_counter()
                answer = http.post(url + "/admin/pause", json={"mode": "keep"})
                end = time.perf_counter()
                times.append((end - start) * 1000)
                assert answer.status_code == 200 and answer.json()["fleet"]["members"] == members
                seen = list(observer.seen)
                events = [t for t, channel in seen if channel.endswith("events")]
                reports = [t for t, channel in seen if channel.endswith("reports")]
                if events and len(reports) >= members:
                    parts["to_publish"].append((events[0] - start) * 1000)
                    parts["to_last_report"].append((reports[members - 1] - events[0]) * 1000)
                    parts["to_answer"].append((end - reports[members - 1]) * 1000)
                http.post(url + "/admin/resume")
        return times, parts
    finally:
        observer.close()
        for p in procs:
            p.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


# a key with a (never reached) request limit: in a fleet, one Redis script per request, the
# cost an exact fleet-wide admission (max_concurrency) would add to every request
LIMITED = (
    "server:\n  api_keys:\n"
    "    - {name: bench, key: bench-key-123, requests_per_minute: 1000000000}\n"
)
AUTH = "authorization: Bearer bench-key-123\r\n"


def scenario(port: int, extra: str = "") -> Scenario:
    return Scenario("chat", build_request("127.0.0.1", port, "/v1/chat/completions",
                                          orjson.dumps(BODY), extra))  # fmt: skip


async def load(
    procs: list[GatewayProcess], concurrency: int, seconds: float, extra: str = ""
) -> CellResult:
    """Closed-loop clients (bench/loadgen.py) split over the members; results summed."""
    per = max(1, concurrency // len(procs))
    cells = await asyncio.gather(*(
        closed_loop("127.0.0.1", p.port, scenario(p.port, extra), per, 1.0, seconds)
        for p in procs
    ))  # fmt: skip
    total = CellResult(seconds=max(c.seconds for c in cells))
    for cell in cells:
        total.completed += cell.completed
        total.errors += cell.errors
        total.latencies += cell.latencies
    return total


def per_request(config: str, workdir: Path, seconds: float, extra: str = "") -> dict[str, float]:
    proc = GatewayProcess(config, workdir).wait_ready(60)
    try:
        result = {}
        for concurrency in (1, 32):
            cpu = cpu_seconds(proc.proc.pid)
            cell = asyncio.run(load([proc], concurrency, seconds, extra))
            assert cell.errors == 0, cell.errors
            used = cpu_seconds(proc.proc.pid) - cpu
            result[f"p50_ms_c{concurrency}"] = statistics.median(cell.latencies) * 1000
            result[f"cpu_us_per_request_c{concurrency}"] = used / max(1, cell.completed) * 1e6
        return result
    finally:
        proc.stop()


def fleet_rate(redis_url: str, workdir: Path, members: int, seconds: float) -> float:
    procs = [GatewayProcess(cluster(redis_url) + MOCK, workdir) for _ in range(members)]
    try:
        for p in procs:
            p.wait_ready(60)
        return asyncio.run(load(procs, 32, seconds)).rps
    finally:
        for p in procs:
            p.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=5.0, help="per load cell")
    parser.add_argument("--propagation-only", action="store_true")
    parser.add_argument("--per-request-repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir).start()
        try:
            print(f"load average before: {os.getloadavg()}")
            print(
                "| members | pause call → every member refusing: p50 ms | p99 ms | max ms "
                "| p50 / p99 ms: call → published | → last member's report | → answer |"
            )
            print("| --- | --- | --- | --- | --- | --- | --- |")
            for n in args.members:
                t, parts = propagation(redis.url, workdir, n, args.repeats)
                split = " | ".join(f"{pct(v, 0.5):.1f} / {pct(v, 0.99):.1f}"
                                   for v in parts.values())  # fmt: skip
                print(f"| {n} | {pct(t, 0.5):.1f} | {pct(t, 0.99):.1f} | {max(t):.1f} | {split} |")
            print(f"load average after: {os.getloadavg()}")
            if args.propagation_only:
                return
            print()
            rates = {n: fleet_rate(redis.url, workdir, n, args.seconds) for n in (1, 2)}
            print("| members (mock route, 32 clients) | fleet req/s |")
            print("| --- | --- |")
            for n, rate in rates.items():
                print(f"| {n} | {rate:,.0f} |")
            print()
            arms = {
                "no cluster": (MOCK, ""),
                "cluster": (cluster(redis.url) + MOCK, ""),
                "limited key": (LIMITED + MOCK, AUTH),
                "limited key + cluster (a Redis script per request)": (
                    cluster(redis.url) + LIMITED + MOCK, AUTH),
            }  # fmt: skip
            for repeat in range(args.per_request_repeats):  # A/B/C alternating
                cells = {arm: per_request(config, workdir, args.seconds, extra)
                         for arm, (config, extra) in arms.items()}  # fmt: skip
                base = cells["no cluster"]
                # added: cluster vs no cluster; the limited key's Redis cost vs the same key
                # checked locally
                bases = {arm: base for arm in arms}
                bases["limited key + cluster (a Redis script per request)"] = cells["limited key"]
                print(f"| per request (mock route, one member), run {repeat + 1} | "
                      + " | ".join(arms) + " |")  # fmt: skip
                print("| --- " * (len(arms) + 1) + "|")
                for key in base:
                    values = " | ".join(
                        f"{cell[key]:.3f}"
                        + ("" if arm in ("no cluster", "limited key")
                           else f" ({cell[key] - bases[arm][key]:+.3f})")
                        for arm, cell in cells.items()
                    )  # fmt: skip
                    print(f"| {key} | {values} |")
                print(f"load average: {os.getloadavg()}")
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
