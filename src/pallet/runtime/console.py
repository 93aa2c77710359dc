"""The pseudo-terminal of a detached ``-t`` container (``run -dt``, ``create -t`` +
``start``).

With ``terminal: true`` and ``create --console-socket PATH`` the OCI runtime makes the
container's pty and sends its master over a unix socket (SCM_RIGHTS) instead of relaying
it. The monitor keeps that master: what the container writes becomes one ``stdout``
stream in its log (with the terminal's ``\\r\\n``, as docker's json-file log of a tty
container), and the container keeps a terminal however long it runs.
"""

from __future__ import annotations

import array
import contextlib
import errno
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pallet.errors import ContainerError

if TYPE_CHECKING:
    from pallet.runtime.container import Containers
    from pallet.runtime.oci_runtime import OCIRuntime
    from pallet.runtime.records import ContainerRecord

_MAX_PATH = 107  # sun_path holds 108 bytes with the NUL


class ConsoleSocket:
    """A listening unix socket for ``--console-socket``; :meth:`receive` takes the master."""

    def __init__(self, path: Path) -> None:
        if len(os.fsencode(str(path))) > _MAX_PATH:
            raise ContainerError(f"console socket path too long: {path}")
        path.unlink(missing_ok=True)
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(1)

    def receive(self, timeout: float = 10.0) -> int:
        """The pty master the runtime sent (it connects during ``create``)."""
        self._sock.settimeout(timeout)
        try:
            conn, _ = self._sock.accept()
        except OSError as exc:
            raise ContainerError("the OCI runtime sent no terminal for the container") from exc
        with conn:
            fds = array.array("i")
            _, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        if not fds:
            raise ContainerError("the OCI runtime sent no terminal for the container")
        for extra in fds[1:]:
            os.close(extra)
        return fds[0]

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)


def relay_output(
    master: int,
    out: int,
    also: Callable[[bytes], None] | None = None,
    on_end: Callable[[], None] | None = None,
) -> threading.Thread:
    """Copy the terminal's output to ``out`` (and ``also``) until every holder of the pty's
    other end has gone (the master then reads EIO); then ``on_end``, then close the master
    (last, so nothing writes to a reused descriptor number)."""

    def copy() -> None:
        try:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError as exc:
                    if exc.errno == errno.EINTR:
                        continue
                    break  # EIO: the container's side is closed
                if not chunk:
                    break
                if also is not None:
                    also(chunk)
                with contextlib.suppress(OSError):
                    while chunk:
                        chunk = chunk[os.write(out, chunk) :]
        finally:
            if on_end is not None:
                on_end()
            os.close(master)

    thread = threading.Thread(target=copy, name="console", daemon=True)
    thread.start()
    return thread


def run_with_console(
    containers: Containers,
    record: ContainerRecord,
    out: int,
    on_started: Callable[[], None] | None,
) -> int:
    """One run of a ``-t`` container under a detached monitor: ``create`` with a console
    socket, the master relayed to ``out`` (the log), then as any detached run: network,
    ``start``, wait, ``delete``. Returns the exit code."""
    from pallet.runtime.container import _forward_signals, _wait_for
    from pallet.runtime.records import now

    cdir = containers.dir(record.id)
    pid_file, runtime_log = cdir / "init.pid", cdir / "runtime.log"
    pick = getattr(containers, "runtime_for", None)  # the runtime that made this container
    runtime: OCIRuntime = pick(record) if pick is not None else containers.runtime
    runtime.state_root.mkdir(parents=True, exist_ok=True)
    console = ConsoleSocket(runtime.state_root / f"{record.id[:16]}.tty")
    try:
        created = subprocess.run(
            runtime.command_with_log(
                runtime_log, "create", "--bundle", str(cdir / "bundle"),
                "--console-socket", str(console.path), "--pid-file", str(pid_file), record.id,
            ),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            check=False,
        )  # fmt: skip
        if created.returncode != 0:
            containers._failed_to_start(record, runtime_log)
        master = console.receive()
    finally:
        console.close()
    from pallet.runtime.attach import AttachServer, socket_path

    try:
        clients: AttachServer | None = AttachServer(
            socket_path(runtime.state_root, record.id), master
        )
    except OSError:  # the container runs and logs all the same, without attach
        clients = None
    relay = (
        relay_output(master, out)
        if clients is None
        else relay_output(master, out, clients.broadcast, clients.close)
    )
    pid = int(pid_file.read_text().strip())
    record, slirp = containers._created(record, pid)
    forward = _forward_signals(runtime, record.id)
    try:
        started = subprocess.run(
            runtime.command_with_log(runtime_log, "start", record.id),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            check=False,
        )  # fmt: skip
        if started.returncode != 0:
            if slirp is not None:
                slirp.stop()
            containers._failed_to_start(record, runtime_log, 125)
        if on_started is not None:
            on_started()
        status = _wait_for(pid)
    finally:
        for sig, old in forward.items():
            signal.signal(sig, old)
    if slirp is not None:
        slirp.stop()
    relay.join(5.0)  # the last output is in the log before the exit is recorded
    runtime.delete(record.id)
    containers.records.set_state(record, state="exited", exit_code=status, finished=now(), pid=0)
    return status
