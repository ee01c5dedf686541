"""The refit control plane: pause/resume admission, abort in-flight work, policy version.

A trainer pauses the gateway before a weight update and resumes it after. While paused, new
requests wait (bounded) instead of failing; in-flight requests either finish (`wait`), stay
(`keep`, frozen inside engines that support it), or are aborted (`abort`: the client gets a
503, which NeMo Gym retries after the resume). The trainer's `policy_version` is stamped on
every answer so it can measure staleness exactly.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Literal

from gateway.errors import GatewayError

PauseMode = Literal["wait", "keep", "abort"]


class _Abortable:
    """A context that registers one abort callback (a class: a generator-based context
    manager cost ~1 % of a Chat request's CPU, issue 22)."""

    __slots__ = ("_abort", "_registry")

    def __init__(self, registry: set[Callable[[], object]], abort: Callable[[], object]) -> None:
        self._registry = registry
        self._abort = abort

    def __enter__(self) -> None:
        self._registry.add(self._abort)

    def __exit__(self, *exc: object) -> None:
        self._registry.discard(self._abort)


class ControlPlane:
    def __init__(self, max_pause_wait_s: float = 300.0) -> None:
        self.max_pause_wait_s = max_pause_wait_s
        self.policy_version: str | None = None
        self.paused = False
        self.pause_mode: PauseMode | None = None
        self.paused_since: float | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # abort callbacks of upstream work in progress
        self._abortable: set[Callable[[], object]] = set()
        self.aborting = False
        # the last failed engine pause/resume call (OpenAI error shape), None after a success
        self.engine_error: dict[str, object] | None = None

    # -- admission -------------------------------------------------------------------------
    async def admit(self) -> str | None:
        """Wait while paused (bounded); returns the policy version the request runs under."""
        if self.paused:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.max_pause_wait_s
            # a loop: a pause that comes again between the resume and this task's wake-up
            # must hold it too (no admission while paused, fleet-wide or not)
            while self.paused:
                try:
                    await asyncio.wait_for(self._resumed.wait(), deadline - loop.time())
                except TimeoutError:
                    raise GatewayError(
                        503, "The gateway is paused for a weight update; retry shortly",
                        code="paused", headers={"retry-after": "5"},
                    ) from None  # fmt: skip
        self.in_flight += 1
        self._idle.clear()
        return self.policy_version

    def done(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0:
            self.in_flight = 0
            self._idle.set()

    # -- aborting ----------------------------------------------------------------------------
    def abortable(self, abort: Callable[[], object]) -> _Abortable:
        """`with control.abortable(task.cancel): ...`: the work is aborted by abort_all()."""
        return _Abortable(self._abortable, abort)

    def abort_all(self) -> int:
        callbacks = list(self._abortable)
        self.aborting = True
        for abort in callbacks:
            abort()
        return len(callbacks)

    # -- the trainer's commands ----------------------------------------------------------------
    async def pause(self, mode: PauseMode, timeout_s: float) -> dict[str, object]:
        aborted = self.stop_admitting(mode)
        drained = True
        if mode in ("wait", "abort"):
            drained = await self.drain(timeout_s)
        return {"paused": True, "mode": mode, "in_flight": self.in_flight,
                "drained": drained, "aborted": aborted}  # fmt: skip

    def stop_admitting(self, mode: PauseMode, since: float | None = None) -> int:
        """The synchronous half of a pause (no await: once it returns, nothing is admitted);
        with `abort`, in-flight work is cut off. Returns how many were aborted."""
        self.paused = True
        self.pause_mode = mode
        self.paused_since = time.time() if since is None else since
        self._resumed.clear()
        if mode != "abort":
            return 0
        return self.abort_all()  # `aborting` stays set until the drain is over

    async def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is in flight here; False when the timeout passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            self.aborting = False  # the aborted requests have seen it by now
        return True

    def resume(self) -> dict[str, object]:
        self.paused = False
        self.pause_mode = None
        self.paused_since = None
        self._resumed.set()
        return {"paused": False, "in_flight": self.in_flight}

    def status(self) -> dict[str, object]:
        return {
            "paused": self.paused,
            "mode": self.pause_mode,
            "paused_for_s": None
            if self.paused_since is None
            else math.floor((time.time() - self.paused_since) * 1000) / 1000,
            "in_flight": self.in_flight,
            "policy_version": self.policy_version,
            "engine_error": self.engine_error,
        }
