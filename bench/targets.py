"""What the load generator is pointed at: the fake upstream itself (direct), the gateway,
nginx as a plain reverse proxy, LiteLLM's proxy, the Rust replica routers vllm-router
and SMG, and the floor (the least a Python relay on uvloop costs: bench/floor_relay.py).
Each target knows how to start, where its fast and slow routes are, and which processes to
measure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from procs import ROOT, Proc, free_port, wait_answer

CACHE = Path(os.environ.get("GYM_GATEWAY_CACHE", Path.home() / ".cache" / "gym-gateway"))
LITELLM_VENV = CACHE / "litellm-venv"
LITELLM_KEY = "sk-bench-0123456789"
# vllm-router and SMG, installed as bench/rollout.sh installs them (bench/run.sh --peers)
PEERS_VENV = CACHE / "bench-peers" / "venv"
PEER_VERSIONS = {"vllm-router": "vllm-router==0.1.17", "smg": "smg==1.13.0"}
MODEL = "bench-model"
SLOW_MODEL = "bench-slow"


@dataclass
class Target:
    name: str
    port: int  # fast routes (Chat, Responses)
    slow_port: int  # the slow-stream route
    proc: Proc | None = None  # None: nothing of ours to measure (direct)
    # more processes of the same target (a peer router's second instance, for the slow
    # route): measured with `proc`, stopped with it
    more: list[Proc] = field(default_factory=list)
    responses: bool = True  # can serve /v1/responses
    headers: str = ""  # extra request header lines
    startup_s: float | None = None
    idle_rss: int | None = None
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for proc in [self.proc, *self.more]:
            if proc is not None:
                proc.stop()

    def pids(self) -> list[int]:
        """Every process of the target (all their threads count in CPU and RSS)."""
        return [pid for proc in [self.proc, *self.more] if proc for pid in proc.tree()]


def _probe_body(model: str = MODEL) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})


# ---- the gateway --------------------------------------------------------------------------


def gateway_config(port: int, fast: int, slow: int, workers: int = 1) -> str:
    return f"""server:
  host: 127.0.0.1
  port: {port}
  workers: {workers}
models:
  - name: {MODEL}
    backend: vllm
    base_url: http://127.0.0.1:{fast}/v1
    upstream_model: fake
  - name: {SLOW_MODEL}
    backend: vllm
    base_url: http://127.0.0.1:{slow}/v1
    upstream_model: fake
"""


def start_gateway(
    python: str, port: int, fast: int, slow: int, logdir: Path, cpu: str, workers: int = 1,
    tree: Path | None = None,
) -> Target:  # fmt: skip
    """The gateway of this checkout, or of another source `tree` (named gateway@<its dir>)."""
    config = logdir / f"gateway-{port}.yaml"
    config.write_text(gateway_config(port, fast, slow, workers))
    name = "gateway" if workers == 1 else f"gateway-x{workers}"
    proc = Proc(
        name if tree is None else f"{name}@{tree.name}",
        [python, "-m", "gateway", "serve", "--config", str(config)],
        logdir / f"gateway-{port}.log",
        cwd=tree,
    ).start(cpu)
    target = Target(proc.name, port, port, proc)
    target.startup_s = wait_answer(proc, port, "/v1/chat/completions", _probe_body())
    return target


# ---- nginx --------------------------------------------------------------------------------


def ensure_nginx() -> str | None:
    """The nginx binary; installs nginx-light with apt-get when missing (says so)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("nginx not found and cannot be installed here: the nginx row is skipped")
        return None
    print("nginx not found: installing nginx-light with apt-get (one time)", flush=True)
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx-light"]):
        if subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            print(f"`{' '.join(cmd)}` failed: the nginx row is skipped")
            return None
    return shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_config(
    workdir: Path, port: int, slow_port: int, fast: int, slow: int, nofile: int
) -> str:
    temp = "\n".join(
        f"  {kind}_temp_path {workdir}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    proxy = (
        'proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; '
        "proxy_read_timeout 600s;"
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
worker_rlimit_nofile {nofile};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections {max(1024, nofile)}; multi_accept on; }}
http {{
  access_log off;
{temp}
  keepalive_timeout 75s;
  keepalive_requests 10000000;
  upstream fast {{ server 127.0.0.1:{fast}; keepalive 1024; }}
  upstream slow {{ server 127.0.0.1:{slow}; keepalive 1024; }}
  server {{ listen 127.0.0.1:{port} backlog=16384;
    location / {{ proxy_pass http://fast; {proxy} }} }}
  server {{ listen 127.0.0.1:{slow_port} backlog=16384;
    location / {{ proxy_pass http://slow; {proxy} }} }}
}}
"""


def start_nginx(
    binary: str,
    port: int,
    slow_port: int,
    fast: int,
    slow: int,
    logdir: Path,
    cpu: str,
    nofile: int,
) -> Target:
    workdir = logdir / "nginx"
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(workdir, port, slow_port, fast, slow, nofile))
    proc = Proc(
        "nginx", [binary, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
        logdir / "nginx.log",
    ).start(cpu)  # fmt: skip
    target = Target("nginx", port, slow_port, proc, responses=False)
    target.startup_s = wait_answer(proc, port, "/v1/chat/completions", _probe_body())
    return target


# ---- the floor: the least a Python relay on uvloop costs (bench/floor_relay.py) -----------


def start_floor(python: str, fast: int, slow: int, logdir: Path, cpu: str) -> Target:
    port, slow_port = free_port(), free_port()
    script = str(ROOT / "bench" / "floor_relay.py")
    proc = Proc(
        "floor", [python, script, str(port), str(slow_port), str(fast), str(slow)],
        logdir / "floor.log",
    ).start(cpu)  # fmt: skip
    target = Target("floor", port, slow_port, proc, responses=False)
    target.startup_s = wait_answer(proc, port, "/v1/chat/completions", _probe_body())
    return target


# ---- LiteLLM ------------------------------------------------------------------------------


def ensure_litellm() -> Path | None:
    """A separate venv with `litellm[proxy]` (cached; the first install takes minutes)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary
    print(f"installing litellm[proxy] into {LITELLM_VENV} (one time, a few minutes)", flush=True)
    LITELLM_VENV.parent.mkdir(parents=True, exist_ok=True)
    steps = (
        [sys.executable, "-m", "venv", str(LITELLM_VENV)],
        [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
    )
    for cmd in steps:
        if subprocess.run(cmd, check=False).returncode != 0:
            print(f"`{' '.join(cmd)}` failed: the LiteLLM row is skipped")
            return None
    return binary


def litellm_config(fast: int, slow: int) -> str:
    # hosted_vllm would send /v1/responses upstream natively; use_chat_completions_api makes
    # LiteLLM translate to Chat Completions as the gateway does, so the rows compare alike.
    def route(name: str, port: int) -> str:
        return f"""  - model_name: {name}
    litellm_params:
      model: hosted_vllm/fake
      api_base: http://127.0.0.1:{port}/v1
      api_key: none
      use_chat_completions_api: true
"""

    return f"""model_list:
{route(MODEL, fast)}{route(SLOW_MODEL, slow)}litellm_settings:
  telemetry: false
  num_retries: 0
  request_timeout: 600
general_settings:
  master_key: {LITELLM_KEY}
"""


def start_litellm(binary: Path, port: int, fast: int, slow: int, logdir: Path, cpu: str) -> Target:
    conf = logdir / "litellm.yaml"
    conf.write_text(litellm_config(fast, slow))
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    args = [str(binary), "--config", str(conf), "--host", "127.0.0.1", "--port", str(port)]
    proc = Proc("litellm", [*args, "--num_workers", "1"], logdir / "litellm.log", env).start(cpu)
    headers = f"authorization: Bearer {LITELLM_KEY}\r\n"
    target = Target("litellm", port, port, proc, headers=headers)
    target.startup_s = wait_answer(
        proc, port, "/v1/chat/completions", _probe_body(), headers, timeout=180
    )
    return target


# ---- vllm-router and SMG ------------------------------------------------------------------


def ensure_peers() -> Path | None:
    """The venv with vllm-router 0.1.17 and smg 1.13.0 (as bench/rollout.sh makes it)."""
    if all((PEERS_VENV / "bin" / name).exists() for name in PEER_VERSIONS):
        return PEERS_VENV
    print(f"installing {', '.join(PEER_VERSIONS.values())} into {PEERS_VENV} (one time)")
    PEERS_VENV.parent.mkdir(parents=True, exist_ok=True)
    steps = (
        [sys.executable, "-m", "venv", str(PEERS_VENV)],
        [str(PEERS_VENV / "bin" / "pip"), "install", "-q", *PEER_VERSIONS.values()],
    )
    for cmd in steps:
        if subprocess.run(cmd, check=False).returncode != 0:
            print(f"`{' '.join(cmd)}` failed: the vllm-router and SMG rows are skipped")
            return None
    return PEERS_VENV


def peer_argv(name: str, port: int, upstream: int, prometheus: int) -> list[str]:
    """One router in front of one fake upstream, flags as in bench/rollout_routers.py: no
    retries, no circuit breaker, no concurrency cap (the gateway has none either)."""
    common = [
        "--host", "127.0.0.1", "--port", str(port),
        "--worker-urls", f"http://127.0.0.1:{upstream}", "--policy", "round_robin",
        "--disable-retries", "--disable-circuit-breaker",
        "--request-timeout-secs", "1800",
        "--prometheus-host", "127.0.0.1", "--prometheus-port", str(prometheus),
    ]  # fmt: skip
    binary = str(PEERS_VENV / "bin" / name)
    if name == "vllm-router":
        return [binary, *common, "--max-concurrent-requests", "65536", "--log-level", "warning"]
    return [binary, "launch", *common, "--max-concurrent-requests", "-1", "--log-level", "warn"]


def start_peer(name: str, fast: int, slow: int, logdir: Path, cpu: str) -> Target:
    """vllm-router or SMG: one process per upstream (round_robin over one worker each; the
    gateway routes both by model in one process), both pinned to `cpu`. Both are tokio
    programs whose worker-thread count follows the cores they may use: pinned to one core,
    one worker thread each (plus a few idle helper threads), all counted."""
    port, slow_port = free_port(), free_port()
    procs = []
    for suffix, listen, upstream in (("", port, fast), ("-slow", slow_port, slow)):
        argv = peer_argv(name, listen, upstream, free_port())
        procs.append(Proc(f"{name}{suffix}", argv, logdir / f"{name}{suffix}-{listen}.log"))
        procs[-1].start(cpu)
    target = Target(name, port, slow_port, procs[0], responses=False, more=procs[1:])
    try:
        # SMG finds its workers' models in the background: the first 200 may take seconds
        for proc, listen, model in zip(procs, (port, slow_port), (MODEL, SLOW_MODEL), strict=True):
            body = _probe_body(model)
            seconds = wait_answer(proc, listen, "/v1/chat/completions", body, timeout=60)
            target.startup_s = seconds if target.startup_s is None else target.startup_s
    except BaseException:
        target.stop()  # the instance that did start must not outlive the failed start
        raise
    return target


def direct(fast: int, slow: int) -> Target:
    return Target("direct", fast, slow, None, responses=False)


__all__ = ["ROOT", "Target"]
