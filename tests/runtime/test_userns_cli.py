"""User namespaces: ``--userns=auto[:size=N]``, ``--uidmap`` / ``--gidmap``. The container's
root is an unprivileged host ID; the image's files read as root's inside (idmapped
layers); what it writes to a bind mount is owned by the mapped host ID."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from pallet_cli import CLI_ENV, Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


def _uid_map(text: str) -> list[tuple[int, int, int]]:
    return [(int(a), int(b), int(c)) for a, b, c in (line.split() for line in text.splitlines())]


def test_auto_maps_root_to_an_unprivileged_host_id(pallet: Pallet, tmp_path: Path) -> None:
    data = tmp_path / "data"  # missing: created for the container's root, as docker does
    out = pallet(
        "run", "--rm", "--userns=auto", "-v", f"{data}:/data", "busybox", "sh", "-c",
        "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u; "
        "touch /etc/x && stat -c '%u:%g' /etc/passwd /etc/x /bin/sh; touch /data/made-inside",
    ).stdout  # fmt: skip
    uids, gids, inside = out.split("--\n")
    [(ctr, host, size)] = _uid_map(uids)
    assert (ctr, size) == (0, 65536) and host >= 1000  # root is not the host's root
    assert _uid_map(gids) == [(0, host, 65536)]
    # uid 0 inside; the image's files (0 on disk) are root's, so root may write /etc
    assert inside.split() == ["0", "0:0", "0:0", "0:0"]
    st = (data / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (host, host)


def test_explicit_maps_and_a_bind_mount(pallet: Pallet, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    (shared / "host-file").write_text("x")
    out = pallet(
        "run", "--rm", "--uidmap", "0:300000:2000", "--gidmap", "0:400000:3000",
        "-v", f"{shared}:/shared", "busybox", "sh", "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; stat -c '%u:%g' /shared/host-file; "
        "touch /shared/by-root; su -s /bin/sh nobody -c 'id -u' 2>&1 || true",
    ).stdout  # fmt: skip
    lines = out.splitlines()
    assert _uid_map("\n".join(lines[:2])) == [(0, 300000, 2000), (0, 400000, 3000)]
    assert lines[2] == "65534:65534"  # host root's file: unmapped, the overflow ID
    st = (shared / "by-root").stat()
    assert (st.st_uid, st.st_gid) == (300000, 400000)


def test_auto_blocks_do_not_overlap(pallet: Pallet) -> None:
    maps = []
    for name in ("a1", "a2"):
        pallet("run", "-d", "--name", name, "--userns=auto:size=1000", "busybox", "sleep", "60")
        maps.append(_uid_map(pallet("exec", name, "cat", "/proc/self/uid_map").stdout)[0])
    (_, h1, n1), (_, h2, n2) = maps
    assert n1 == n2 == 1000
    assert h1 + n1 <= h2 or h2 + n2 <= h1
    doc = json.loads(pallet("inspect", "a1").stdout)[0]
    assert doc["HostConfig"]["UsernsMode"] == "auto"


def test_commit_and_export_keep_the_containers_ids(pallet: Pallet) -> None:
    pallet(
        "run", "--name", "c1", "--userns=auto", "busybox", "sh", "-c",
        "echo hi > /etc/added; mkdir /home/u; chown 1000:1000 /home/u",
    )  # fmt: skip
    pallet("commit", "c1", "committed:1")
    out = pallet("run", "--rm", "committed:1", "stat", "-c", "%u:%g", "/etc/added", "/home/u")
    assert out.stdout.split() == ["0:0", "1000:1000"]
    with tarfile.open(fileobj=io.BytesIO(_export(pallet, "c1"))) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar.getmembers()}
    assert owners["etc/added"] == (0, 0) and owners["home/u"] == (1000, 1000)
    assert owners["bin/sh"] == (0, 0)


def test_commit_of_a_deletion_has_a_root_owned_whiteout(pallet: Pallet) -> None:
    pallet("run", "--name", "d1", "--userns=auto", "busybox", "rm", "/etc/group")
    assert pallet("diff", "d1").stdout == "C /etc\nD /etc/group\n"
    before = set((pallet.root / "blobs" / "sha256").iterdir())
    pallet("commit", "d1", "deleted:1")
    whiteouts = []
    for blob in set((pallet.root / "blobs" / "sha256").iterdir()) - before:
        with contextlib.suppress(tarfile.TarError), tarfile.open(blob, "r:*") as tar:
            whiteouts += [m for m in tar.getmembers() if m.name == "etc/.wh.group"]
    assert [(m.uid, m.gid) for m in whiteouts] == [(0, 0)]
    proc = pallet("run", "--rm", "deleted:1", "ls", "/etc/group", check=False)
    assert proc.returncode != 0


def _export(pallet: Pallet, name: str) -> bytes:
    proc = subprocess.run(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "export", name],
        capture_output=True, env=CLI_ENV, check=True,
    )  # fmt: skip
    return proc.stdout


def test_named_volume_seeded_for_the_mapped_root(pallet: Pallet) -> None:
    out = pallet(
        "run", "--rm", "--userns=auto", "-v", "seeded:/etc", "busybox", "sh", "-c",
        "stat -c '%u:%g' /etc /etc/passwd; touch /etc/new-in-volume && echo written",
    ).stdout  # fmt: skip
    assert out.split() == ["0:0", "0:0", "written"]


def test_networks_under_a_user_namespace(pallet: Pallet) -> None:
    for network in ("none", "host"):
        out = pallet("run", "--rm", "--userns=auto", "--network", network, "busybox",
                     "cat", "/proc/self/uid_map")  # fmt: skip
        assert _uid_map(out.stdout)[0][0] == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    pallet(
        "run", "-d", "--name", "web", "--userns=auto", "-p", f"{port}:80", "busybox", "sh", "-c",
        "echo hello-userns > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
    )  # fmt: skip
    body = b""
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as r:
                body = r.read()
            break
        except OSError:
            time.sleep(0.05)
    assert body == b"hello-userns\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--userns=keep-id",), "unsupported --userns"),
        (("--uidmap", "0:100000"), "CONTAINER_ID:HOST_ID:SIZE"),
        (("--uidmap", "1:100000:10"), "ID 0"),
        (("--uidmap", "0:100000:10", "--uidmap", "5:200000:10"), "overlap"),
        (("--userns=auto", "--uidmap", "0:100000:10"), "cannot be combined"),
        (("--userns=auto:size=x",), "size=N"),
        (("--uidmap", "0:100000:100", "-u", "1000"), "uid 1000 is not mapped"),
    ],
)
def test_bad_userns_flags_are_refused(pallet: Pallet, flags: tuple[str, ...], message: str) -> None:
    proc = pallet("run", "--rm", *flags, "busybox", "true", check=False)
    assert proc.returncode == 125
    assert message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert pallet("ps", "-aq").stdout == ""
    assert not os.path.exists(pallet.root / "containers") or not any(
        (pallet.root / "containers").iterdir()
    )
