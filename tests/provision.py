"""Provisioning steps the test session runs itself (real engines, client venvs), shown live.

pytest captures a fixture's output, so a first run sat silent for minutes while an engine
installed and started. These steps run with capture suspended: their progress lines reach
the terminal as they happen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.upstream import free_port


def run_visible(
    config: pytest.Config, what: str, command: list[str], **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run `command` with pytest's capture suspended; say what and how long."""
    capture = config.pluginmanager.getplugin("capturemanager")
    started = time.monotonic()
    with capture.global_and_fixture_disabled():
        print(f"\n[tests] {what} ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, check=False, text=True, **kwargs)  # type: ignore[call-overload]
        took = time.monotonic() - started
        verdict = "done" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        print(f"[tests] {what}: {verdict} in {took:.0f} s", file=sys.stderr, flush=True)
    return done


def engine_unavailable(engine: str, env_name: str, reason: str) -> None:
    """Skip, or fail when CI requires the engine (`GYM_GATEWAY_REQUIRE_<ENV_NAME>=1`)."""
    if os.environ.get(f"GYM_GATEWAY_REQUIRE_{env_name}") == "1":
        pytest.fail(f"the real {engine} server is required here but {reason}", pytrace=False)
    pytest.skip(reason)


def real_engine_url(
    config: pytest.Config, engine: str, env_name: str, script: Path
) -> Iterator[str]:
    """The session's real engine, as an OpenAI base URL.

    `GYM_GATEWAY_<ENV_NAME>_URL` names a running server; `GYM_GATEWAY_<ENV_NAME>=off` skips;
    otherwise `script start PORT` provisions one on a free port (live progress) and
    `script stop PORT` ends it with the session.
    """
    url = os.environ.get(f"GYM_GATEWAY_{env_name}_URL")
    if url:
        yield url.rstrip("/")
        return
    if os.environ.get(f"GYM_GATEWAY_{env_name}") == "off":
        engine_unavailable(engine, env_name, f"GYM_GATEWAY_{env_name}=off")
    port = free_port()
    started = run_visible(
        config,
        f"starting the real {engine} CPU server on port {port} (installs it the first time)",
        ["bash", str(script), "start", str(port)],
    )
    if started.returncode != 0:
        engine_unavailable(
            engine, env_name, f"{script.name} start failed (exit {started.returncode})"
        )
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        run_visible(
            config, f"stopping the {engine} server", ["bash", str(script), "stop", str(port)]
        )
