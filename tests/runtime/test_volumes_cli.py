"""Named and anonymous volumes, seeding, --mount, --tmpfs and --read-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pallet_cli import Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


def test_named_volume_persists_and_is_seeded(pallet: Pallet) -> None:
    pallet("run", "--rm", "-v", "data:/etc", "busybox", "sh", "-c", "echo kept > /etc/note")
    # the volume was seeded from the image's /etc and keeps what the first container wrote
    out = pallet("run", "--rm", "-v", "data:/etc", "busybox", "sh", "-c",
                 "cat /etc/note; test -f /etc/passwd && echo seeded").stdout  # fmt: skip
    assert out == "kept\nseeded\n"
    assert pallet("volume", "ls", "-q").stdout.split() == ["data"]
    doc = json.loads(pallet("volume", "inspect", "data").stdout)[0]
    assert doc["Name"] == "data" and doc["Driver"] == "local"
    assert Path(doc["Mountpoint"], "note").read_text() == "kept\n"
    # read-only mount of the same volume
    ro = pallet("run", "--rm", "--mount", "type=volume,source=data,target=/d,readonly",
                "busybox", "sh", "-c", "cat /d/note; touch /d/x || echo ro")  # fmt: skip
    assert ro.stdout == "kept\nro\n"
    pallet("create", "--name", "holder", "-v", "data:/x", "busybox", "true")
    in_use = pallet("volume", "rm", "data", check=False)
    assert in_use.returncode == 1 and "volume is in use" in in_use.stderr
    pallet("rm", "holder")
    assert pallet("volume", "rm", "data").stdout.strip() == "data"
    assert pallet("volume", "ls", "-q").stdout == ""


def test_anonymous_volumes_removed_with_rm_v(pallet: Pallet) -> None:
    pallet("run", "--name", "anon", "-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/f")
    names = pallet("volume", "ls", "-q").stdout.split()
    assert len(names) == 1 and len(names[0]) == 64
    doc = json.loads(pallet("inspect", "anon").stdout)[0]
    assert [m["Destination"] for m in doc["Mounts"]] == ["/scratch"]
    assert doc["Mounts"][0]["Name"] == names[0]
    pallet("rm", "-v", "anon")
    assert pallet("volume", "ls", "-q").stdout == ""
    pallet("volume", "create", "keepme")
    pallet("run", "--rm", "-v", "/tmp/anon2", "busybox", "true")  # --rm drops it too
    assert pallet("volume", "ls", "-q").stdout.split() == ["keepme"]
    pallet("volume", "prune", "-f")
    assert pallet("volume", "ls", "-q").stdout.split() == ["keepme"]
    pallet("volume", "prune", "-a", "-f")
    assert pallet("volume", "ls", "-q").stdout == ""


def test_bind_tmpfs_and_read_only_rootfs(pallet: Pallet, tmp_path: Path) -> None:
    host = tmp_path / "shared"
    host.mkdir()
    script = (
        "echo w > /data/from-ctr; touch /rootfile 2>/dev/null || echo ro-root; "
        "echo t > /scratch/t && grep -c ' /scratch tmpfs' /proc/mounts"
    )
    out = pallet(
        "run", "--rm", "--read-only", "--tmpfs", "/scratch:size=1m",
        "--mount", f"type=bind,source={host},target=/data", "busybox", "sh", "-c", script,
    ).stdout  # fmt: skip
    assert out == "ro-root\n1\n"
    assert (host / "from-ctr").read_text() == "w\n"
    missing = pallet("run", "--rm", "--mount", "type=bind,source=/no/such,target=/x",
                     "busybox", "true", check=False)  # fmt: skip
    assert missing.returncode == 125 and "/no/such" in missing.stderr
