"""The gateway served in this process (uvicorn in a background thread on a loopback port), so
`compare` measures the same HTTP path a client sees without a separate `serve`."""

from __future__ import annotations

import logging
import socket
import threading
import time

from gateway.config import GatewayConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class InProcessGateway:
    def __init__(self, config: GatewayConfig, config_path: str | None = None) -> None:
        import uvicorn

        from gateway.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(config, config_path)
        # Quiet: the comparison's own progress and report are the output.
        logging.getLogger("gateway").setLevel(logging.ERROR)
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_level="error",
                access_log=False,
                lifespan="on",
                timeout_keep_alive=75,
            )
        )
        self._thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)

    def __enter__(self) -> InProcessGateway:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(30)
