"""The caller's terminal while a container's pseudo-terminal is relayed to it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO, Any


@contextlib.contextmanager
def raw_terminal(stdin: int | IO[Any] | None) -> Iterator[None]:
    """Our terminal in raw mode while runc relays it, restored after. runc sets raw mode
    itself, but only once the process already runs: its first output could still meet
    our terminal's line discipline (an extra CR per line, a line echoed by us)."""
    import termios
    import tty

    fd = stdin if isinstance(stdin, int) else stdin.fileno() if stdin is not None else -1
    if fd < 0 or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
