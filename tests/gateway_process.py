"""Start the real gateway (`python -m gateway serve`) on a free port, as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.upstream import free_port


class GatewayProcess:
    def __init__(self, config_text: str | None, workdir: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gateway-{self.port}.log"
        args = [sys.executable, "-m", "gateway", "serve", "--port", str(self.port)]
        if config_text is not None:
            config = workdir / f"gateway-{self.port}.yaml"
            config.write_text(config_text)
            args += ["--config", str(config)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # stored responses and the compaction key go to the test's directory, not $HOME
        state = {"GYM_GATEWAY_SERVER__STATE_DIR": str(workdir / f"state-{self.port}")}
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT,
            env={**state, **os.environ, **(env or {})},
        )  # fmt: skip

    def wait_ready(self, timeout: float = 20.0) -> GatewayProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"gateway did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode
