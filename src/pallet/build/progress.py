"""Build progress in BuildKit's plain format: ``#N [stage i/n] INSTR``, ``#N CACHED``,
``#N 0.123 output``, ``#N DONE 0.4s``. One lock keeps concurrent stages' lines whole.
On a terminal, "tty" mode draws BuildKit's live view instead (progress_tty)."""

from __future__ import annotations

import _thread
import os
import sys
import time
from collections.abc import Callable
from types import TracebackType

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from pallet.build.progress_tty import LiveView

_STYLES = (("CACHED", "blue"), ("DONE", "green"), ("ERROR", "bold red"))


class Progress:
    """``mode``: "plain" (lines), "tty" (a live view when ``stream`` is a terminal or a
    ``console`` is given, else the plain lines coloured), "quiet" (nothing).

    Use it as a context manager, or call :meth:`close`, so that a live view ends with its
    final summary and the terminal's cursor back.
    """

    def __init__(
        self,
        mode: str = "plain",
        stream: TextIO | None = None,
        *,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet = mode == "quiet"
        self._stream = stream or sys.stderr
        self._clock = clock
        self._lock = _thread.allocate_lock()  # threading.Lock, without threading's import
        self._next = 1
        self._started: dict[int, float] = {}
        self._console = None
        self._view: LiveView | None = None
        if mode == "tty" and (console is not None or _is_terminal(self._stream)):
            from pallet.build.progress_tty import LiveView, terminal_console

            self._view = LiveView(
                console or terminal_console(self._stream),
                clock,
                redirect_stderr=console is None and self._stream is sys.stderr,
            )
        elif mode == "tty":
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
        if self._view is not None:
            return self._view.vertex(title)
        with self._lock:
            number = self._next
            self._next += 1
            self._started[number] = self._clock()
        self._emit(f"#{number} {title}")
        return number

    def log(self, number: int, line: str) -> None:
        if self._view is not None:
            self._view.log(number, line)
            return
        elapsed = self._clock() - self._started.get(number, self._clock())
        self._emit(f"#{number} {elapsed:.3f} {line}")

    def cached(self, number: int) -> None:
        if self._view is not None:
            self._view.finish(number, "cached")
            return
        self._emit(f"#{number} CACHED")

    def done(self, number: int) -> None:
        if self._view is not None:
            self._view.finish(number, "done")
            return
        elapsed = self._clock() - self._started.get(number, self._clock())
        self._emit(f"#{number} DONE {elapsed:.1f}s")

    def error(self, number: int, message: str) -> None:
        if self._view is not None:
            # the runner reports a step it stopped because the build is stopping this way
            cancelled = message.strip() == "cancelled"
            self._view.finish(number, "canceled" if cancelled else "error")
            return
        self._emit(f"#{number} ERROR: {message.splitlines()[0] if message else ''}")

    def note(self, text: str) -> None:
        if self._view is not None:
            self._view.note(text)
            return
        self._emit(text)

    def refresh(self) -> None:
        """Redraw the live view now (it redraws itself ten times a second)."""
        if self._view is not None:
            self._view.refresh()

    def close(self, error: BaseException | None = None) -> None:
        """End the live view with its final summary; ``error``: why the build stopped."""
        if self._view is not None:
            self._view.close(error)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(exc)


def _is_terminal(stream: TextIO) -> bool:
    """A terminal that understands cursor movement (not TERM=dumb)."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _styled(line: str) -> object:
    from rich.text import Text

    number, _, rest = line.partition(" ")
    style = "dim" if rest[:1].isdigit() else "bold"
    for word, word_style in _STYLES:
        if rest.startswith(word):
            style = word_style
    return Text.assemble((number + " ", "bold"), (rest, style))
