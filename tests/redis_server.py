"""A real `redis-server` (Debian package `redis-server`) on a free port, for the fleet tests.

Without the binary the fleet tests skip, unless GYM_GATEWAY_REQUIRE_REDIS=1 (CI sets it): then
they fail, so a CI machine without Redis cannot pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.upstream import free_port


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed (apt-get install -y redis-server)"
            if os.environ.get("GYM_GATEWAY_REQUIRE_REDIS") == "1":
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        # no persistence: a restart loses the state, the case the fleet must survive
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir)]  # fmt: skip
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # abrupt on purpose: what a crash looks like to the fleet
            self.proc.wait(5)
        self.proc = None
