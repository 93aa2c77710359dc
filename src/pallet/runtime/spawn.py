"""Start the runtime's commands with ``os.posix_spawn``.

``pallet run`` starts three or four short processes (the OCI runtime's create, start and
delete; slirp4netns). ``subprocess`` would do, but importing it (with threading, selectors,
locale, signal tables) is 5 ms of every ``pallet run``; ``posix_spawn`` is in ``os``.
Children start as ``subprocess`` starts them: inheriting only stdio and the descriptors
passed (Python opens its own close-on-exec; inheritable ones this process was given are
closed in the child, as ``close_fds`` does), with SIGPIPE and SIGXFSZ back at their
defaults.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import IO, Any

#: a stream connected to /dev/null (subprocess.DEVNULL's value, so either may be given)
DEVNULL = -3
#: ``stderr`` into wherever ``stdout`` goes (subprocess.STDOUT's value)
STDOUT = -2

if TYPE_CHECKING:
    Stream = int | IO[Any] | None


class Process:
    """A started child, as much of ``subprocess.Popen`` as pallet uses."""

    def __init__(self, pid: int, args: Sequence[str]) -> None:
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None

    def _reaped(self, status: int) -> int:
        self.returncode = os.waitstatus_to_exitcode(status)  # -N for signal N, as Popen
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 255  # reaped elsewhere (a subreaper's wait)
                return self.returncode
            if pid == self.pid:
                return self._reaped(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; ``TimeoutError`` if it still runs after ``timeout`` seconds."""
        if self.returncode is not None:
            return self.returncode
        if timeout is None:
            while True:
                try:
                    _, status = os.waitpid(self.pid, 0)
                except ChildProcessError:
                    self.returncode = 255
                    return self.returncode
                except InterruptedError:
                    continue
                return self._reaped(status)
        deadline = time.monotonic() + timeout
        delay = 0.001
        while (code := self.poll()) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.args[0]} (pid {self.pid}) still runs")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return code

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _fd(stream: Stream) -> int | None:
    if stream is None or isinstance(stream, int):
        return stream
    return stream.fileno()


def _inherited_fds(keep: set[int]) -> list[int]:
    """Our inheritable descriptors above stdio, but those in ``keep``."""
    out = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                if os.get_inheritable(fd):
                    out.append(fd)
            except OSError:  # the directory listing's own descriptor, closed by now
                continue
    return out


def spawn(
    argv: Sequence[str],
    *,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    pass_fds: Sequence[int] = (),
    new_session: bool = False,
    new_group: bool = False,
) -> Process:
    """Start ``argv`` (``argv[0]`` a path): streams are None (ours), DEVNULL, an fd or a
    file; ``pass_fds`` stay open in the child under their own numbers. ``new_group``: a
    process group of its own (the terminal's Ctrl-C does not reach it)."""
    actions: list[tuple[Any, ...]] = []
    for target, stream in enumerate((stdin, stdout, stderr)):
        fd = _fd(stream)
        if fd == DEVNULL:
            flags = os.O_RDONLY if target == 0 else os.O_WRONLY
            actions.append((os.POSIX_SPAWN_OPEN, target, os.devnull, flags, 0))
        elif fd == STDOUT and target == 2:
            actions.append((os.POSIX_SPAWN_DUP2, 1, 2))  # after stdout's own
        elif fd is not None and fd < 0:
            raise ValueError(f"spawn: unsupported stream {fd} (pipes: use subprocess)")
        elif fd is not None and fd != target:
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
        elif fd is not None:  # already there: only make sure it survives the exec
            os.set_inheritable(fd, True)
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds(set(pass_fds))]
    restore = [fd for fd in pass_fds if not os.get_inheritable(fd)]
    for fd in restore:
        os.set_inheritable(fd, True)
    # setpgroup has no "unset" value: give it only when asked for
    group: dict[str, Any] = {"setpgroup": 0} if new_group and not new_session else {}
    try:
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            os.environ,
            file_actions=actions,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            setsid=new_session,
            **group,
        )
    finally:
        for fd in restore:
            os.set_inheritable(fd, False)
    return Process(pid, argv)


def run(argv: Sequence[str], **kwargs: Any) -> int:
    """Start ``argv`` and wait for it: its exit code (-N if signal N ended it)."""
    return spawn(argv, **kwargs).wait()
