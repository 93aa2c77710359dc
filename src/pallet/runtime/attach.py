"""``pallet attach`` to a detached ``-t`` container: the monitor, which holds the pty
master, serves a unix socket beside the runtime's state; each client gets the terminal's
output from then on and its input goes to the terminal, as docker's attach to a ``-dit``
container. Detach with Ctrl-P Ctrl-Q (docker's default keys).

Client to monitor, framed: one type byte (``d`` data, ``w`` window size as four
unsigned shorts), a 4-byte big-endian length, the payload. Monitor to client: the raw
terminal output; end of stream when the container's terminal is closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import termios
import threading
from pathlib import Path
from typing import IO

from pallet.errors import ContainerError

DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q
_HEADER = struct.Struct(">cI")
_MAX_FRAME = 1 << 20


def socket_path(state_root: Path, container_id: str) -> Path:
    # sun_path holds 108 bytes: short, beside the runtime's state as slirp's socket
    return state_root / f"{container_id[:16]}.attach"


class AttachServer:
    """Serves the clients of one run's terminal (``master``)."""

    def __init__(self, path: Path, master: int) -> None:
        path.unlink(missing_ok=True)
        self.path = path
        self.master = master
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        os.chmod(path, 0o600)
        self._sock.listen(8)
        threading.Thread(target=self._accept, name="attach", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            conn.settimeout(5.0)  # a stuck client is dropped, the log goes on
            with self._lock:
                self._clients.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """Input frames of one client, until it goes."""
        conn_file = conn.makefile("rb")
        try:
            while True:
                header = conn_file.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return
                kind, size = _HEADER.unpack(header)
                if size > _MAX_FRAME:
                    return
                payload = conn_file.read(size)
                if kind == b"d":
                    while payload:
                        payload = payload[os.write(self.master, payload) :]
                elif kind == b"w" and len(payload) == 8:
                    fcntl.ioctl(self.master, termios.TIOCSWINSZ, payload)
        except (OSError, ValueError):
            return
        finally:
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        with self._lock:
            if conn in self._clients:
                self._clients.remove(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def broadcast(self, chunk: bytes) -> None:
        with self._lock:
            clients = list(self._clients)
        for conn in clients:
            try:
                conn.sendall(chunk)
            except OSError:
                self._drop(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        self.path.unlink(missing_ok=True)
        with self._lock:
            clients, self._clients = self._clients, []
        for conn in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()


def _frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def _window_size(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def attach_terminal(path: Path, stdin: IO[bytes], stdout: IO[bytes]) -> bool:
    """Relay our terminal to the container's until it ends (True) or the detach keys are
    typed (False)."""
    from pallet.runtime.terminal import raw_terminal

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise ContainerError(f"cannot attach to the container's terminal: {exc.strerror}") from exc
    in_fd, out_fd = stdin.fileno(), stdout.fileno()
    wake_r, wake_w = os.pipe()

    def resized(_signum: int, _frame_: object) -> None:
        os.write(wake_w, b"w")

    previous = signal.signal(signal.SIGWINCH, resized)
    pending = b""  # a detach sequence may arrive split across reads
    try:
        with raw_terminal(stdin if os.isatty(in_fd) else None):
            size = _window_size(out_fd) or _window_size(in_fd)
            if size is not None:
                sock.sendall(_frame(b"w", size))
            sources = [sock.fileno(), in_fd, wake_r]
            while True:
                ready, _, _ = select.select(sources, [], [])
                if wake_r in ready:
                    os.read(wake_r, 64)
                    size = _window_size(out_fd) or _window_size(in_fd)
                    if size is not None:
                        sock.sendall(_frame(b"w", size))
                if sock.fileno() in ready:
                    data = sock.recv(65536)
                    if not data:
                        return True
                    os.write(out_fd, data)
                if in_fd in ready:
                    data = os.read(in_fd, 65536)
                    if not data:
                        sources.remove(in_fd)  # our input ended; the output goes on
                        continue
                    data = pending + data
                    if DETACH_KEYS in data:
                        before = data[: data.index(DETACH_KEYS)]
                        if before:
                            sock.sendall(_frame(b"d", before))
                        return False
                    pending = data[-1:] if data.endswith(DETACH_KEYS[:1]) else b""
                    data = data[: len(data) - len(pending)]
                    if data:
                        sock.sendall(_frame(b"d", data))
    finally:
        signal.signal(signal.SIGWINCH, previous)
        os.close(wake_r)
        os.close(wake_w)
        sock.close()
        with contextlib.suppress(OSError):
            sys.stdout.flush()
