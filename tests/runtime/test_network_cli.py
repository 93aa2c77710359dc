"""--network none|host|private (slirp4netns), -p publishing on 127.0.0.1, port, --add-host, --dns."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from pallet_cli import Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay, pytest.mark.peer]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_publish_a_port_and_reach_it_from_the_host(pallet: Pallet) -> None:
    port = _free_port()
    pallet(
        "run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "sh", "-c",
        "echo hello-from-ctr > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
    )  # fmt: skip
    body = b""
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as r:
                body = r.read()
            break
        except OSError:
            time.sleep(0.05)
    assert body == b"hello-from-ctr\n"
    assert pallet("port", "web").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert pallet("port", "web", "80").stdout == f"127.0.0.1:{port}\n"
    assert f"127.0.0.1:{port}->80/tcp" in pallet("ps").stdout
    doc = json.loads(pallet("inspect", "web").stdout)[0]
    assert doc["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    }
    # the port is taken now: a second container is refused (125) and nothing is created
    taken = pallet("run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
    assert taken.returncode == 125 and f"127.0.0.1:{port}" in taken.stderr
    assert len(taken.stderr.splitlines()) == 1
    assert pallet("ps", "-aq").stdout.split() == [pallet("ps", "-q").stdout.strip()]
    pallet("rm", "-f", "web")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2)


def test_network_modes_hosts_and_dns(pallet: Pallet) -> None:
    none = pallet("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net").stdout
    assert none.split() == ["lo"]
    private = pallet("run", "--rm", "busybox", "ls", "/sys/class/net").stdout.split()
    assert sorted(private) == ["lo", "tap0"]
    host = pallet("run", "--rm", "--network", "host", "busybox", "hostname").stdout.strip()
    assert host == socket.gethostname()
    out = pallet(
        "run", "--rm", "--add-host", "db.local:10.1.2.3", "--dns", "9.9.9.9", "busybox",
        "sh", "-c", "grep db.local /etc/hosts; cat /etc/resolv.conf",
    ).stdout  # fmt: skip
    assert out == "10.1.2.3\tdb.local\nnameserver 9.9.9.9\n"
