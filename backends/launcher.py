"""Managed local engines: a route's `launch` command, started and watched by the gateway.

At start-up (the app's lifespan) each engine is spawned in its own process group and the
gateway waits for its health URL; an engine that exits or stays unhealthy past
`startup_timeout` fails the start-up with its last log lines. While serving, an engine that
dies is restarted with exponential backoff (reset once it has run for a minute). Its output
is logged line by line, prefixed with the route name. On shutdown: SIGTERM to the group,
SIGKILL after `stop_timeout`.

The process group, not the process, is the engine: vLLM forks an EngineCore and workers that
hold the model (GPU memory on a GPU). When the main process dies, whatever else is left of
its group is ended (SIGTERM, then SIGKILL) before a restart, and on shutdown the group is
ended even when its leader has already gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
import time
from collections import deque
from typing import Any

import aiohttp

from gateway.config import RouteConfig
from gateway.engines import LaunchOptions

log = logging.getLogger("gateway.engine")

HEALTH_POLL_S = 0.5
GROUP_POLL_S = 0.1
_SECRET_NAMES = ("key", "token", "secret", "password")
STABLE_AFTER_S = 60.0  # an engine up this long starts the next restart backoff from 1 s
_TAIL_LINES = 20


class EngineStartError(RuntimeError):
    """An engine did not become healthy at start-up."""


def _die_with_parent() -> None:
    """In the child: start a new process group, and get SIGTERM if the gateway dies."""
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is left (zombies of the gateway's own child count
    until reaped, which `proc.wait()` does)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def end_group(pgid: int, grace: float, route: str) -> None:
    """SIGTERM every process left in the group, SIGKILL what is still there after `grace`."""
    if not group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            log.warning("[%s] engine processes ignored SIGTERM; killing the group", route)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            break
        await asyncio.sleep(GROUP_POLL_S)
    while group_alive(pgid):  # SIGKILL is not ignorable: only the kernel's reaping is left
        if time.monotonic() >= deadline + 10:
            log.error("[%s] engine process group %d survived SIGKILL", route, pgid)
            return
        await asyncio.sleep(GROUP_POLL_S)


def secrets_of(route: RouteConfig) -> list[str]:
    """Values never to log: the route's key, secret-looking flags and environment values
    (vLLM, for one, logs its non-default arguments, `--api-key` included)."""
    found = []
    if route.api_key is not None and route.api_key.get_secret_value():
        found.append(route.api_key.get_secret_value())
    options = route.launch
    if options is not None:
        argv = options.argv
        for flag, value in itertools.pairwise(argv):
            if flag.startswith("-") and any(n in flag.lower() for n in _SECRET_NAMES):
                found.append(value)
        for name, value in options.env.items():
            if any(n in name.lower() for n in _SECRET_NAMES):
                found.append(value)
    return sorted({v for v in found if len(v) >= 4}, key=len, reverse=True)


def default_health_url(route: RouteConfig) -> str:
    base = route.base_url or ""
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    return root + "/health"


class ManagedEngine:
    def __init__(self, route: RouteConfig) -> None:
        assert route.launch is not None
        self.route = route.name
        self.options: LaunchOptions = route.launch
        self.health_url = self.options.health_url or default_health_url(route)
        self._secrets = secrets_of(route)
        self.proc: asyncio.subprocess.Process | None = None
        self.state = "stopped"
        self.restarts = 0
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._started_at = 0.0
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None

    # -- process -----------------------------------------------------------------------------
    async def _spawn(self) -> None:
        env = {**os.environ, **self.options.env}
        self.proc = await asyncio.create_subprocess_exec(
            *self.options.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=self.options.cwd,
            preexec_fn=_die_with_parent,
            limit=1 << 20,
        )
        self._started_at = time.monotonic()
        self.state = "starting"
        program = self.options.argv[0]  # not the whole line: it may hold an API key
        log.info("[%s] started engine %s (pid %d)", self.route, program, self.proc.pid)
        self._pump = asyncio.create_task(self._pump_logs(self.proc))

    async def _pump_logs(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line past the limit: take what is buffered
                raw = await proc.stdout.read(1 << 16)
            if not raw:
                return
            for line in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
                for secret in self._secrets:
                    line = line.replace(secret, "***")
                if line.strip():
                    self.tail.append(line)
                    log.info("[%s] %s", self.route, line)

    async def _healthy(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(self.health_url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _wait_healthy(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise EngineStartError(
                        f"engine for route '{self.route}' exited with code "
                        f"{self.proc.returncode} before it was healthy; last lines:\n"
                        + "\n".join(self.tail)
                    )
                if await self._healthy(session):
                    self.state = "running"
                    log.info("[%s] engine healthy at %s", self.route, self.health_url)
                    return
                if deadline is not None and time.monotonic() > deadline:
                    raise EngineStartError(
                        f"engine for route '{self.route}' was not healthy at {self.health_url} "
                        f"within {timeout:g} s; last lines:\n" + "\n".join(self.tail)
                    )
                await asyncio.sleep(HEALTH_POLL_S)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self._spawn()
        try:
            await self._wait_healthy(self.options.startup_timeout)
        except BaseException:
            await self.stop()
            raise
        self._supervisor = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        backoff = 1.0
        while True:
            assert self.proc is not None
            code = await self.proc.wait()
            if self._stopping:
                return
            # The main process is gone; its EngineCore and workers may not be (issue 18).
            await end_group(self.proc.pid, self.options.stop_timeout, self.route)
            ran = time.monotonic() - self._started_at
            self.state = "crashed"
            if not self.options.restart:
                log.error("[%s] engine exited with code %s; restart is off", self.route, code)
                return
            if ran >= STABLE_AFTER_S:
                backoff = 1.0
            log.warning(
                "[%s] engine exited with code %s after %.0f s; restarting in %.0f s",
                self.route, code, ran, backoff,
            )  # fmt: skip
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.options.max_backoff)
            self.restarts += 1
            await self._spawn()
            with contextlib.suppress(EngineStartError):
                await self._wait_healthy(None)  # exits are handled by the next loop turn

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        proc = self.proc
        if proc is not None and proc.returncode is None:
            self._signal(proc, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.options.stop_timeout)
            except TimeoutError:
                log.warning("[%s] engine ignored SIGTERM; killing it", self.route)
                self._signal(proc, signal.SIGKILL)
                await proc.wait()
        if proc is not None:  # what outlived the leader (or was left by a crash) goes too
            await end_group(proc.pid, self.options.stop_timeout, self.route)
        if self._pump is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pump, 5)
        self.state = "stopped"

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        # The engine leads its own process group (vLLM forks EngineCore and workers).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def status(self) -> dict[str, Any]:
        pid = self.proc.pid if self.proc is not None and self.proc.returncode is None else None
        return {"state": self.state, "pid": pid, "restarts": self.restarts}


class EngineSupervisor:
    """All managed engines of a config: started together, stopped together."""

    def __init__(self, routes: list[RouteConfig]) -> None:
        self.engines = [ManagedEngine(r) for r in routes if r.launch is not None]

    async def start(self) -> None:
        results = await asyncio.gather(*(e.start() for e in self.engines), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            for failure in failures:
                log.error("%s", failure)
            raise failures[0]

    async def stop(self) -> None:
        await asyncio.gather(*(e.stop() for e in self.engines), return_exceptions=True)

    def status(self) -> dict[str, dict[str, Any]]:
        return {e.route: e.status() for e in self.engines}
