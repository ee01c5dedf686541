"""The routers the rollout benchmark compares, how each starts and how each is given the
session key: the gateway (one row per pool strategy), vllm-router 0.1.17, SMG 1.13, and a
direct round robin from the client. Peers come from PyPI into one venv of their own,
~/.cache/gym-gateway/bench-peers/venv (bench/rollout.sh installs them)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from procs import Proc, free_port
from rollout_workload import Client

CACHE = Path(os.environ.get("GYM_GATEWAY_CACHE", Path.home() / ".cache" / "gym-gateway"))
PEERS = CACHE / "bench-peers"
MODEL = "sim-model"

GATEWAY_POLICIES = (
    "round_robin",
    "least_loaded",
    "consistent_hash",
    "sticky_least_loaded",
    "group_affinity",
)
VLLM_ROUTER_POLICIES = ("round_robin", "cache_aware", "consistent_hash", "sticky_least_loaded")
SMG_POLICIES = ("cache_aware", "prefix_hash", "manual")


@dataclass
class Arm:
    router: str
    policy: str

    @property
    def name(self) -> str:
        return f"{self.router}:{self.policy}"


def all_arms() -> list[Arm]:
    arms = [Arm("direct", "round_robin")]
    arms += [Arm("gym-gateway", p) for p in GATEWAY_POLICIES]
    arms += [Arm("vllm-router", p) for p in VLLM_ROUTER_POLICIES]
    arms += [Arm("smg", p) for p in SMG_POLICIES]
    return arms


def peer_binary(router: str) -> Path | None:
    path = PEERS / "venv" / "bin" / ("vllm-router" if router == "vllm-router" else "smg")
    return path if path.exists() else None


def _finish_vllm_router(base: str):
    async def finish(http: aiohttp.ClientSession, session: str) -> None:
        async with http.post(f"{base}/finish_session", params={"session_id": session}) as resp:
            await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"/finish_session: HTTP {resp.status}")

    return finish


@dataclass
class Started:
    proc: Proc | None
    client: Client


def gateway_config(port: int, policy: str, worker_urls: list[str]) -> str:
    urls = "\n".join(f"      - {u}/v1" for u in worker_urls)
    return f"""server:
  host: 127.0.0.1
  port: {port}
models:
  - name: {MODEL}
    backend: vllm
    strategy: {policy}
    base_urls:
{urls}
"""


def start(arm: Arm, python: str, worker_urls: list[str], logdir: Path) -> Started:
    """Start the router for `arm` (not waiting for it) and say how to talk to it."""
    if arm.router == "direct":
        urls = [f"{u}/v1/chat/completions" for u in worker_urls]
        return Started(None, Client(urls[0], MODEL, direct_urls=urls))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v1/chat/completions"
    log = logdir / f"{arm.router}-{arm.policy}.log"
    if arm.router == "gym-gateway":
        config = logdir / f"gateway-{arm.policy}.yaml"
        config.write_text(gateway_config(port, arm.policy, worker_urls))
        proc = Proc(arm.name, [python, "-m", "gateway", "serve", "--config", str(config)], log)
        return Started(proc.start(), Client(url, MODEL, "x-session-id"))
    binary = peer_binary(arm.router)
    if binary is None:
        raise RuntimeError(f"{arm.router} is not installed under {PEERS} (run bench/rollout.sh)")
    prom = str(free_port())
    if arm.router == "vllm-router":
        # flags: vllm_router/router_args.py of vllm-router 0.1.17 (docs/performance.md)
        argv = [
            str(binary), "--host", "127.0.0.1", "--port", str(port),
            "--worker-urls", *worker_urls, "--policy", arm.policy,
            "--disable-retries", "--disable-circuit-breaker",
            "--max-concurrent-requests", "65536",
            "--request-timeout-secs", "1800", "--health-check-interval-secs", "60",
            "--prometheus-host", "127.0.0.1", "--prometheus-port", prom,
            "--log-level", "warning",
        ]  # fmt: skip
        header = (
            "X-Session-ID" if arm.policy in ("consistent_hash", "sticky_least_loaded") else None
        )
        finish = _finish_vllm_router(base) if arm.policy == "sticky_least_loaded" else None
        return Started(Proc(arm.name, argv, log).start(), Client(url, MODEL, header, finish))
    # smg launch: flags of smg 1.13.0 (model_gateway/src/main.rs)
    argv = [
        str(binary), "launch", "--host", "127.0.0.1", "--port", str(port),
        "--worker-urls", *worker_urls, "--policy", arm.policy,
        "--disable-retries", "--disable-circuit-breaker",
        "--max-concurrent-requests", "-1", "--request-timeout-secs", "1800",
        "--prometheus-host", "127.0.0.1", "--prometheus-port", prom,
        "--log-level", "warn",
    ]  # fmt: skip
    header = None
    if arm.policy == "manual":
        # new keys to the replica with the fewest requests (the default is random)
        argv += ["--assignment-mode", "min_load"]
        header = "X-SMG-Routing-Key"
    return Started(Proc(arm.name, argv, log).start(), Client(url, MODEL, header))


def have_taskset() -> bool:
    return shutil.which("taskset") is not None
