"""The caller's terminal while a container's pseudo-terminal is relayed to it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def raw_terminal(stdin: int | IO[Any] | None, pid_file: Path | None = None) -> Iterator[None]:
    """Our terminal in raw mode while the runtime relays it, restored after. The runtime
    sets raw mode itself, but only once the process already runs: its first output could
    still meet our terminal's line discipline (an extra CR per line, a line echoed by us).

    With ``pid_file`` (where the runtime writes the container process's pid), our window
    size follows to the container's terminal on SIGWINCH: crun, unlike runc, sets it only
    once, at start."""
    import termios
    import tty

    fd = stdin if isinstance(stdin, int) else stdin.fileno() if stdin is not None else -1
    if fd < 0 or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    previous = None if pid_file is None else _follow_window_size(fd, pid_file)
    try:
        yield
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGWINCH, previous)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _follow_window_size(fd: int, pid_file: Path) -> Any:
    """Install the SIGWINCH handler; the previous handler."""
    import signal

    def resize(_signum: int, _frame: object) -> None:
        copy_window_size(fd, pid_file)

    return signal.signal(signal.SIGWINCH, resize)


def copy_window_size(fd: int, pid_file: Path) -> None:
    """Our terminal's size onto the container process's terminal (its stdin, a pty slave:
    setting the size on that side signals the container's foreground job as well)."""
    import fcntl
    import termios

    try:
        pid = int(pid_file.read_text().strip())
        size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        target = os.open(f"/proc/{pid}/fd/0", os.O_RDWR | os.O_NOCTTY)
    except (OSError, ValueError):
        return  # not started yet, or gone
    try:
        if os.isatty(target):
            fcntl.ioctl(target, termios.TIOCSWINSZ, size)
    except OSError:
        pass
    finally:
        os.close(target)
