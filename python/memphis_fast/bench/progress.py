"""Progress of the bench on stderr.

On a terminal: a one-line bar redrawn with ``\\r``. Otherwise (output redirected to a file, a
CI log): one plain line per finished run, ``[12/96 eta 03:10] produce-sync memphis-fast 128B/1p
run 1: 14.8k msgs/s``, so that a log shows what the bench is doing while it runs. Disabled:
only the messages (failures, notes).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        width: int = 28,
        tty: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total = max(total, 1)
        self.done = 0
        self.width = width
        is_tty = self.stream.isatty() if tty is None else tty
        #: the redrawn bar (terminal)
        self.bar = enabled and is_tty
        #: one line per finished run (not a terminal)
        self.lines = enabled and not is_tty
        self.started = time.monotonic()
        self._last_len = 0

    def _eta(self) -> str:
        if self.done == 0:
            return "--:--"
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        return f"{int(left // 60):02d}:{int(left % 60):02d}"

    def show(self, label: str) -> None:
        if not self.bar:
            return
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"\r[{bar}] {self.done}/{self.total} eta {self._eta()}  {label}"
        pad = max(0, self._last_len - len(line))
        self.stream.write(line + " " * pad)
        self.stream.flush()
        self._last_len = len(line)

    def advance(self, label: str = "", outcome: str = "") -> None:
        """One run finished; ``outcome`` (e.g. ``14.8k msgs/s``) goes into the plain line."""
        self.done += 1
        if self.lines:
            tail = f": {outcome}" if outcome else ""
            self.stream.write(f"[{self.done}/{self.total} eta {self._eta()}] {label}{tail}\n")
            self.stream.flush()
        self.show(label)

    def message(self, text: str) -> None:
        """A line of its own (a failure, a note) without breaking the bar."""
        if self.bar:
            self.stream.write("\r" + " " * self._last_len + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self.stream.flush()
