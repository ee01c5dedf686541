"""The processes a benchmark run starts (fake upstreams, gateway, nginx, LiteLLM) and what it
reads about them from /proc (RSS, CPU time). Loopback only; every process is stopped by
its own id at the end of the run."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before by this process (the kernel may offer a
    port again once its socket closed: two calls in a row could name the same one)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
WANTED_SOMAXCONN = 16384


def raise_somaxconn() -> int:
    """The kernel's cap on listen backlogs, raised to 16,384 where we may (root in its own
    network namespace), as a host serving thousands of connecting clients would be tuned;
    returns the value in force. Every target gets the same (nginx and the gateway ask for
    16,384, LiteLLM for uvicorn's 2,048)."""
    try:
        current = int(SOMAXCONN.read_text())
        if current < WANTED_SOMAXCONN:
            SOMAXCONN.write_text(str(WANTED_SOMAXCONN))
        return int(SOMAXCONN.read_text())
    except (OSError, ValueError):
        return -1


def pin(cpu: int) -> str:
    """taskset argument for `cpu`, or '' on a one-core machine (nothing to pin apart)."""
    return str(cpu) if (os.cpu_count() or 1) > cpu else ""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (uvicorn workers, nginx workers, ...)."""
    tree = _children()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += tree.get(current, [])
    return out


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError):
            pass
    return total


def cpu_seconds(pids: list[int], system_only: bool = False) -> float:
    """User + system CPU time of the processes (all their threads); only the system (kernel)
    part if `system_only`."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            ticks += int(fields[12]) + (0 if system_only else int(fields[11]))
        except (OSError, IndexError):
            pass
    return ticks / CLK_TCK


@dataclass
class Proc:
    name: str
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    cwd: Path | None = None  # ROOT unless set (a gateway from another source tree)

    def start(self, cpu: str = "") -> Proc:
        argv = (["taskset", "-c", cpu] if cpu and shutil.which("taskset") else []) + self.args
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.started = time.perf_counter()
            self.popen = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.cwd or ROOT,
                start_new_session=True,  # its own process group: stopped as one, by its id
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tree(self) -> list[int]:
        return process_tree(self.pid)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def http_post(port: int, path: str, body: bytes, headers: str = "", timeout: float = 5.0) -> int:
    """One blocking request (start-up probes); returns the status, 0 if it failed."""
    request = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"{headers}content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request)
            head = sock.recv(64)
        return int(head[9:12]) if head.startswith(b"HTTP/1.") else 0
    except (OSError, ValueError):
        return 0


def wait_answer(
    proc: Proc, port: int, path: str, body: bytes, headers: str = "", timeout: float = 120.0
) -> float:
    """Seconds from the process start to its first 200 on `path`; raises if none came."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.tail()}")
        if http_post(port, path, body, headers, timeout=2.0) == 200:
            return time.perf_counter() - proc.started
        time.sleep(0.01)
    raise RuntimeError(f"{proc.name} gave no answer in {timeout:.0f} s:\n{proc.tail()}")


def fake_upstream(
    port: int, chunks: int, delay_ms: float, logdir: Path, model: str = "fake"
) -> Proc:
    return Proc(
        f"fake-upstream:{port}",
        [
            sys.executable,
            str(ROOT / "bench" / "fake_upstream.py"),
            "--port",
            str(port),
            "--chunks",
            str(chunks),
            "--delay-ms",
            str(delay_ms),
            "--model",
            model,
        ],
        logdir / f"fake-upstream-{port}.log",
    )


def core_speed_ms(core: int = 0) -> float:
    """A fixed pure-Python loop on `core`, in ms (best of 3): on a shared virtual machine the
    same core is sometimes much slower; this says how fast it was during a run."""
    script = "import time;t=time.perf_counter();sum(range(10**7));print(time.perf_counter()-t)"
    best = float("inf")
    for _ in range(3):
        out = subprocess.run(
            ["taskset", "-c", str(core), sys.executable, "-c", script],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        try:
            best = min(best, float(out.stdout) * 1000)
        except ValueError:
            return float("nan")
    return round(best, 1)


def machine() -> dict[str, object]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
        "loadavg_start": os.getloadavg(),
        "core0_speed_ms_start": core_speed_ms(0),
    }
