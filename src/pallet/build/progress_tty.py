"""The live build view on a terminal, drawn as BuildKit's tty progress draws it.

A header ``[+] Building 12.3s (5/9)``, one line per step with its duration
(``=> CACHED [stage-0 2/4] COPY ...``, ``=> ERROR ...``), and under each step still
running the last lines of its output, dimmed. A finished step's output disappears; a
failed step's stays. rich redraws the view from its own thread at 10 Hz; the builder's
threads only change state under one lock, and a line of output is an O(1) append.
Imported only in tty mode, so plain and quiet builds never load rich.
"""

from __future__ import annotations

import atexit
import re
import threading
from collections import deque
from collections.abc import Callable
from typing import Literal, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

State = Literal["running", "done", "cached", "error", "canceled"]

#: lines of a running step's output kept under it (BuildKit shows six)
TAIL_LINES = 6
REFRESH_PER_SECOND = 10

_LABELS = {"cached": "CACHED ", "error": "ERROR ", "canceled": "CANCELED "}
_STYLES: dict[State, str] = {
    "running": "",
    "done": "blue",
    "cached": "blue",
    "error": "red",
    "canceled": "yellow",
}
# What a program writes may move the cursor or clear the screen; the view must stay intact.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def terminal_console(stream: TextIO) -> Console:
    """A console drawing on ``stream``, a terminal (the caller checked)."""
    return Console(file=stream, highlight=False, force_terminal=True)


def visible(text: str) -> str:
    """``text`` as one line of plain characters: escapes and controls removed, tabs
    expanded, and of a line redrawn with ``\\r`` (a progress bar) only its last state."""
    text = text.rstrip("\r\n")
    text = text[text.rfind("\r") + 1 :]
    return _CONTROL.sub("", _ESCAPE.sub("", text).expandtabs(8))


class _Step:
    """One vertex: what it is, when it ran, how it ended, its last lines of output."""

    __slots__ = ("ended", "started", "state", "tail", "title")

    def __init__(self, title: str, started: float) -> None:
        self.title = title
        self.started = started
        self.ended: float | None = None
        self.state: State = "running"
        self.tail: deque[str] | None = deque(maxlen=TAIL_LINES)

    def end(self, state: State, now: float) -> None:
        self.ended = now
        self.state = state
        if state != "error":  # BuildKit: a finished step's output leaves the view
            self.tail = None


class LiveView:
    """The state of a build's steps and the live display of it on ``console``."""

    def __init__(
        self,
        console: Console,
        clock: Callable[[], float],
        *,
        redirect_stderr: bool = False,
    ) -> None:
        self._console = console
        self._clock = clock
        self._redirect_stderr = redirect_stderr
        # guards everything below; never held while calling into rich's Live, whose
        # refresh thread takes its own lock and then this one (in _render)
        self._lock = threading.Lock()
        self._steps: dict[int, _Step] = {}
        self._next = 1
        self._began = clock()
        self._ended: float | None = None
        self._succeeded = False
        self._live: Live | None = None
        self._live_claimed = False

    # -- events from the builder's threads ------------------------------------------

    def vertex(self, title: str) -> int:
        with self._lock:
            number = self._next
            self._next += 1
            self._steps[number] = _Step(title, self._clock())
            start = not self._live_claimed and self._ended is None
            self._live_claimed = True
        if start:  # the first step starts the display (rich's Live calls _render at once)
            live = Live(
                console=self._console,
                get_renderable=self._render,
                refresh_per_second=REFRESH_PER_SECOND,
                redirect_stdout=False,
                redirect_stderr=self._redirect_stderr,
                vertical_overflow="crop",
            )
            live.start()
            atexit.register(self.close)  # an API caller that never closes gets its cursor back
            with self._lock:
                self._live = live
                closed = self._ended is not None
            if closed:  # close() ran while the display was starting
                live.stop()
                atexit.unregister(self.close)
        return number

    def log(self, number: int, line: str) -> None:
        with self._lock:
            step = self._steps.get(number)
            if step is not None and step.tail is not None:
                step.tail.append(line)

    def finish(self, number: int, state: State) -> None:
        """``state``: "done", "cached", "error" or "canceled"; the first outcome counts."""
        with self._lock:
            step = self._steps.get(number)
            if step is None or step.ended is not None:
                return
            step.end(state, self._clock())

    def note(self, text: str) -> None:
        """A line printed above the view (or as is before it starts)."""
        self._console.print(Text(visible(text)))

    def refresh(self) -> None:
        """Redraw now rather than at the next tick."""
        live = self._live
        if live is not None and live.is_started:
            live.refresh()

    def close(self, error: BaseException | None = None) -> None:
        """End the live display, leaving the final summary on the screen.

        Steps still open count as cancelled after Ctrl-C and as failed after an error
        (where a step raised without reporting it), so the summary names where it stopped.
        """
        with self._lock:
            if self._ended is not None:
                return
            now = self._ended = self._clock()
            failed = error is not None and not isinstance(error, KeyboardInterrupt)
            for step in self._steps.values():
                if step.ended is None:
                    step.end("error" if failed else "canceled", now)
            self._succeeded = error is None and all(
                s.state in ("done", "cached") for s in self._steps.values()
            )
            live = self._live
        if live is not None:
            live.stop()  # draws the final frame, then shows the cursor again
            atexit.unregister(self.close)

    # -- drawing (rich's refresh thread) --------------------------------------------

    def _render(self) -> Group:
        with self._lock:  # a snapshot; the text is made outside the lock
            final = self._ended is not None
            now = self._ended if self._ended is not None else self._clock()
            steps = [
                (
                    step.title,
                    step.state,
                    (step.ended if step.ended is not None else now) - step.started,
                    tuple(step.tail or ()),
                )
                for step in self._steps.values()
            ]
            succeeded = self._succeeded
            began = self._began
        finished = sum(1 for _, state, _, _ in steps if state != "running")
        header = f"[+] Building {now - began:.1f}s ({finished}/{len(steps)})"
        if final and succeeded:
            header += " FINISHED"
        if not final:  # the summary keeps every step; the live view what fits
            steps = _fit(steps, max(self._console.height - 2, 1))
        width = max(self._console.width, 20)
        lines = [Text(header, style="bold blue" if final else "bold")]
        for title, state, seconds, tail in steps:
            duration = f" {seconds:.1f}s"
            line = Text("=> " + _LABELS.get(state, "") + visible(title))
            line.truncate(width - len(duration), overflow="ellipsis", pad=True)
            line.append(duration)
            line.stylize(_STYLES[state])
            lines.append(line)
            lines += [Text("=> => # " + visible(output), style="dim") for output in tail]
        for line in lines:
            line.no_wrap = True
            line.overflow = "crop"
        return Group(*lines)


_Shown = tuple[str, State, float, tuple[str, ...]]


def _fit(steps: list[_Shown], room: int) -> list[_Shown]:
    """The steps that fit ``room`` rows: the oldest finished steps go first, then the
    oldest lines of output, so what is running now stays on the screen."""
    total = sum(1 + len(tail) for _, _, _, tail in steps)
    kept: list[_Shown] = []
    for shown in steps:
        if shown[1] != "running" and total > room:
            total -= 1 + len(shown[3])
            continue
        kept.append(shown)
    while total > room and kept:  # still too many: running steps lose their oldest lines
        title, state, seconds, tail = kept[0]
        if tail:
            kept[0] = (title, state, seconds, tail[1:])
        else:
            kept.pop(0)
        total -= 1
    return kept
