"""Build progress in BuildKit's plain format: ``#N [stage i/n] INSTR``, ``#N CACHED``,
``#N 0.123 output``, ``#N DONE 0.4s``. One lock keeps concurrent stages' lines whole."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_STYLES = (("CACHED", "blue"), ("DONE", "green"), ("ERROR", "bold red"))


class Progress:
    """``mode``: "plain" (lines), "tty" (the same lines, coloured), "quiet" (nothing)."""

    def __init__(self, mode: str = "plain", stream: TextIO | None = None) -> None:
        self.quiet = mode == "quiet"
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._next = 1
        self._started: dict[int, float] = {}
        self._console = None
        if mode == "tty":
            from rich.console import Console

            self._console = Console(
                file=self._stream, highlight=False, soft_wrap=True, force_terminal=True
            )

    def _emit(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self._console is not None:
                self._console.print(_styled(text))
            else:
                self._stream.write(text + "\n")
                self._stream.flush()

    def vertex(self, title: str) -> int:
        with self._lock:
            number = self._next
            self._next += 1
            self._started[number] = time.monotonic()
        self._emit(f"#{number} {title}")
        return number

    def log(self, number: int, line: str) -> None:
        elapsed = time.monotonic() - self._started.get(number, time.monotonic())
        self._emit(f"#{number} {elapsed:.3f} {line}")

    def cached(self, number: int) -> None:
        self._emit(f"#{number} CACHED")

    def done(self, number: int) -> None:
        elapsed = time.monotonic() - self._started.get(number, time.monotonic())
        self._emit(f"#{number} DONE {elapsed:.1f}s")

    def error(self, number: int, message: str) -> None:
        self._emit(f"#{number} ERROR: {message.splitlines()[0] if message else ''}")

    def note(self, text: str) -> None:
        self._emit(text)


def _styled(line: str) -> object:
    from rich.text import Text

    number, _, rest = line.partition(" ")
    style = "dim" if rest[:1].isdigit() else "bold"
    for word, word_style in _STYLES:
        if rest.startswith(word):
            style = word_style
    return Text.assemble((number + " ", "bold"), (rest, style))
