"""Provisioning steps the test session runs itself (real engines, client venvs), shown live.

pytest captures a fixture's output, so a first run sat silent for minutes while an engine
installed and started. These steps run with capture suspended: their progress lines reach
the terminal as they happen.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest


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
