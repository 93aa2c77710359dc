"""The default private network: slirp4netns gives the container's network namespace a tap
device with outbound NAT (10.0.2.100, gateway 10.0.2.2, DNS 10.0.2.3), as rootless Podman
does; ``-p`` forwards a host port on 127.0.0.1 to it through slirp4netns' API socket."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import ContainerError, InvalidArgument
from pallet.paths import which
from pallet.runtime import spawn

GUEST_ADDR = "10.0.2.100"
DNS_ADDR = "10.0.2.3"


@dataclass(frozen=True)
class PortMapping:
    host_ip: str
    host_port: int
    container_port: int
    proto: str = "tcp"

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.proto}"

    @classmethod
    def from_str(cls, text: str) -> PortMapping:
        """The inverse of ``str()``, for mappings kept in container records."""
        host, _, rest = text.partition("->")
        ip, _, port = host.rpartition(":")
        ctr, _, proto = rest.partition("/")
        return cls(ip, int(port), int(ctr), proto)


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidArgument(f"invalid port {text!r} in publish specification '{spec}'")
    return int(text)


def parse_publish(spec: str) -> PortMapping:
    """``[IP:]HOST:CTR[/tcp|udp]`` or ``CTR`` (a free host port); the host side is on
    127.0.0.1 unless an IP is given."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid protocol {proto!r} in publish specification '{spec}'")
    parts = body.split(":")
    if len(parts) == 1:
        return PortMapping("127.0.0.1", 0, _port(parts[0], spec), proto)
    if len(parts) == 2:
        host_ip, host, ctr = "127.0.0.1", parts[0], parts[1]
    elif len(parts) == 3:
        host_ip, host, ctr = parts[0] or "127.0.0.1", parts[1], parts[2]
    else:
        raise InvalidArgument(f"invalid publish specification '{spec}'")
    return PortMapping(host_ip, _port(host, spec) if host else 0, _port(ctr, spec), proto)


def reserve(mapping: PortMapping) -> PortMapping:
    """Check the host port is free (docker fails before creating anything); pick one for 0."""
    import socket  # only with -p: a run without ports skips its 2 ms import

    kind = socket.SOCK_STREAM if mapping.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((mapping.host_ip, mapping.host_port))
        except OSError as exc:
            raise ContainerError(
                f"driver failed programming external connectivity: Bind for "
                f"{mapping.host_ip}:{mapping.host_port} failed: {exc.strerror}"
            ) from None
        port = sock.getsockname()[1]
    return PortMapping(mapping.host_ip, port, mapping.container_port, mapping.proto)


class Slirp:
    """One slirp4netns process serving one container's network namespace."""

    def __init__(self, proc: spawn.Process, api: Path, exit_w: int) -> None:
        self.proc = proc
        self.api = api
        self._exit_w = exit_w

    @classmethod
    def start(cls, pid: int, api: Path) -> Slirp:
        binary = which("slirp4netns")
        if binary is None:
            raise ContainerError(
                "the default network needs slirp4netns (apt install slirp4netns); "
                "or use --network none|host"
            )
        api.unlink(missing_ok=True)
        ready_r, ready_w = os.pipe()
        # slirp4netns ends when this pipe closes: with its monitor, even a SIGKILLed one
        exit_r, exit_w = os.pipe()
        os.set_inheritable(exit_w, False)
        proc = spawn.spawn(
            [binary, "--configure", "--mtu=65520", "--disable-host-loopback",
             f"--api-socket={api}", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}",
             str(pid), "tap0"],
            stdin=spawn.DEVNULL,
            stdout=spawn.DEVNULL,
            stderr=spawn.DEVNULL,
            pass_fds=(ready_w, exit_r),
        )  # fmt: skip
        os.close(ready_w)
        os.close(exit_r)
        with os.fdopen(ready_r, "rb") as ready:
            ok = ready.read(1) == b"1"
        if not ok:
            os.close(exit_w)
            proc.wait()
            raise ContainerError("failed to set up the container network (slirp4netns)")
        return cls(proc, api, exit_w)

    def forward(self, mapping: PortMapping) -> None:
        request = {
            "execute": "add_hostfwd",
            "arguments": {
                "proto": mapping.proto,
                "host_addr": mapping.host_ip,
                "host_port": mapping.host_port,
                "guest_addr": GUEST_ADDR,
                "guest_port": mapping.container_port,
            },
        }
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.api))
            sock.sendall(json.dumps(request).encode())
            sock.shutdown(socket.SHUT_WR)
            answer = sock.recv(65536)
        with contextlib.suppress(ValueError):
            doc = json.loads(answer)
            if isinstance(doc, dict) and "error" in doc:
                raise ContainerError(f"cannot publish {mapping}: {doc['error'].get('desc', doc)}")

    def stop(self) -> None:
        """End slirp4netns and wait for it."""
        self.signal_stop()
        self.wait()

    def signal_stop(self) -> None:
        """Tell slirp4netns to end, without waiting (its exit overlaps other teardown)."""
        with contextlib.suppress(OSError):
            os.close(self._exit_w)
        # the exit pipe alone lets slirp4netns linger ~30 ms in its event loop; it keeps
        # no state worth a graceful end (its API socket is ours to remove), so end it at once
        with contextlib.suppress(OSError):
            self.proc.kill()

    def release(self) -> None:
        """Forget a killed slirp4netns without waiting for its exit (only where nothing
        else is started after it, as its zombie is reaped when this process ends)."""
        self.api.unlink(missing_ok=True)

    def wait(self) -> None:
        try:
            exited = _exits_within(self.proc.pid, 5.0)
        except OSError:  # no pidfd (old kernel): Popen's polling wait
            try:
                self.proc.wait(5)
                exited = True
            except TimeoutError:
                exited = False
        if not exited:
            self.proc.kill()
        self.proc.wait()
        self.api.unlink(missing_ok=True)


def _exits_within(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` to exit (not reaping it) for at most ``timeout`` seconds.

    A pidfd wakes us the moment it exits; ``Popen.wait(timeout)`` would poll with
    growing sleeps and add tens of milliseconds to every ``pallet run``."""
    import select

    fd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)
