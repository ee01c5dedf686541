"""Config of a managed local engine: a route's `launch` key (backends/launcher.py runs it).

Kept apart from gateway/config.py so that file stays about loading and routing.
"""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Backends that are local engines the gateway can start.
LAUNCH_BACKENDS = ("vllm", "sglang", "tgi")


class LaunchOptions(BaseModel):
    """`launch: "vllm serve ..."` or `launch: {command: ..., startup_timeout: ...}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(min_length=1, description="split like a shell line; no shell features")
    health_url: str | None = Field(
        None, description="polled until 200; default: the base_url's server root + /health"
    )
    startup_timeout: float = Field(
        900.0, gt=0, description="seconds to wait for health at start-up (then start-up fails)"
    )
    restart: bool = Field(True, description="restart the engine with backoff if it dies")
    max_backoff: float = Field(30.0, gt=0, description="longest wait between restarts")
    stop_timeout: float = Field(30.0, gt=0, description="SIGTERM grace on shutdown, then SIGKILL")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")
    cwd: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"command": value} if isinstance(value, str) else value

    @field_validator("command")
    @classmethod
    def _splits(cls, value: str) -> str:
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"launch command cannot be split: {exc}") from None
        if not argv:
            raise ValueError("launch command is empty")
        return value

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)
