"""A one-line progress bar on stderr (``\\r``), silent when disabled or not on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.total = max(total, 1)
        self.done = 0
        self.width = width
        self.enabled = enabled and self.stream.isatty()
        self.started = time.monotonic()
        self._last_len = 0

    def _eta(self) -> str:
        if self.done == 0:
            return "--:--"
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        return f"{int(left // 60):02d}:{int(left % 60):02d}"

    def show(self, label: str) -> None:
        if not self.enabled:
            return
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"\r[{bar}] {self.done}/{self.total} eta {self._eta()}  {label}"
        pad = max(0, self._last_len - len(line))
        self.stream.write(line + " " * pad)
        self.stream.flush()
        self._last_len = len(line)

    def advance(self, label: str = "") -> None:
        self.done += 1
        self.show(label)

    def message(self, text: str) -> None:
        """A line of its own (a failure, a note) without breaking the bar."""
        if self.enabled:
            self.stream.write("\r" + " " * self._last_len + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self.stream.flush()
