"""A plain progress bar on stderr (no dependency): redrawn in place on a terminal, a line every
10% otherwise (CI logs)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str = "", stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.tty = self.stream.isatty()
        self._last_step = -1
        self._last_draw = 0.0

    def advance(self, ok: bool = True) -> None:
        self.done += 1
        self.failed += not ok
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw >= 0.1 or self.done == self.total:
                self._last_draw = now
                self.stream.write("\r" + self.line())
                self.stream.flush()
        else:
            step = self.done * 10 // self.total
            if step != self._last_step:
                self._last_step = step
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def line(self, width: int = 30) -> str:
        fraction = self.done / self.total
        filled = int(fraction * width)
        elapsed = time.monotonic() - self.started
        eta = elapsed / fraction - elapsed if fraction else 0.0
        bar = "#" * filled + "-" * (width - filled)
        return (
            f"{self.label}[{bar}] {self.done}/{self.total} {fraction:4.0%} "
            f"failed {self.failed}  {elapsed:5.1f}s  eta {eta:5.1f}s"
        )

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
