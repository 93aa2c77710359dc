"""``RUN --mount=type=ssh``: the client's ssh-agent, reachable inside the step.

``pallet build --ssh default`` (``$SSH_AUTH_SOCK``) or ``--ssh ID=SOCKET`` names agent
sockets. Each ssh mount of a RUN gets its own socket in the build's scratch directory,
owned and moded as the mount asks (default root, 0600, as BuildKit), whose
connections are relayed to the agent; the step's container sees that socket only,
never the host's path, and it is gone when the step ends.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import InvalidArgument

_CHUNK = 1 << 16


@dataclass(frozen=True)
class SshAgent:
    """``--ssh ID[=SOCKET]``: an agent socket the build may forward."""

    id: str
    socket: Path

    @classmethod
    def parse(cls, text: str) -> SshAgent:
        sid, eq, paths = text.partition("=")
        if not sid:
            raise InvalidArgument(f"--ssh {text!r}: expected ID or ID=SOCKET")
        if eq:
            path = paths.split(",")[0]
        else:
            env = os.environ.get("SSH_AUTH_SOCK")
            if not env:
                raise InvalidArgument(f"--ssh {text}: SSH_AUTH_SOCK is not set (no agent to use)")
            path = env
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError as exc:
            raise InvalidArgument(f"--ssh {text}: {path}: {exc.strerror}") from None
        if not is_socket:
            raise InvalidArgument(
                f"--ssh {text}: {path} is not an ssh-agent socket (key files are not "
                "supported: load the key into an agent with ssh-add)"
            )
        return cls(sid, Path(path).absolute())


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    with suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, upstream: Path) -> None:
    with client:
        try:
            agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            agent.connect(str(upstream))
        except OSError:
            return  # the agent went away: the client sees a closed connection
        with agent:
            back = threading.Thread(target=_pump, args=(agent, client), daemon=True)
            back.start()
            _pump(client, agent)
            back.join()


@contextmanager
def agent_socket(upstream: Path, path: Path, uid: int, gid: int, mode: int) -> Iterator[Path]:
    """A socket at ``path`` relaying every connection to the agent at ``upstream``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        listener.listen(16)
    except BaseException:
        listener.close()
        raise

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # shut down at the end of the step
            threading.Thread(target=_relay, args=(client, upstream), daemon=True).start()

    thread = threading.Thread(target=serve, name=f"ssh-agent {path.name}", daemon=True)
    thread.start()
    try:
        yield path
    finally:
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        listener.close()
        thread.join(5)
        path.unlink(missing_ok=True)
