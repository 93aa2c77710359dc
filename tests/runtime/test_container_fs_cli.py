"""diff, cp (both ways, tar streams), export, commit and rmi of an image in use."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from pallet_cli import CLI_ENV, Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


def test_diff_lists_added_changed_deleted(pallet: Pallet) -> None:
    pallet(
        "run", "--name", "edit", "busybox", "sh", "-c",
        "echo new > /etc/added; rm /etc/group; mkdir -p /srv/d; echo x > /srv/d/f",
    )  # fmt: skip
    lines = pallet("diff", "edit").stdout.splitlines()
    assert "A /etc/added" in lines and "D /etc/group" in lines and "C /etc" in lines
    assert "A /srv" in lines or "C /srv" in lines
    assert "A /srv/d/f" in lines
    assert not any(line.endswith(("/etc/hosts", "/etc/resolv.conf")) for line in lines)


def test_cp_both_ways_files_dirs_and_tar_streams(pallet: Pallet, tmp_path: Path) -> None:
    pallet("run", "-d", "--name", "box", "busybox", "sleep", "60")
    src = tmp_path / "in.txt"
    src.write_text("from host\n")
    pallet("cp", str(src), "box:/tmp/")
    assert pallet("exec", "box", "cat", "/tmp/in.txt").stdout == "from host\n"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "leaf").write_text("leaf\n")
    pallet("cp", str(tree), "box:/tmp")  # into an existing directory
    assert pallet("exec", "box", "cat", "/tmp/tree/sub/leaf").stdout == "leaf\n"
    pallet("cp", str(tree), "box:/opt")  # a new path: the copy takes that name
    assert pallet("exec", "box", "cat", "/opt/sub/leaf").stdout == "leaf\n"
    pallet("exec", "box", "sh", "-c", "echo made inside > /tmp/out.txt")
    pallet("cp", "box:/tmp/out.txt", str(tmp_path))
    assert (tmp_path / "out.txt").read_text() == "made inside\n"
    pallet("cp", "box:/tmp/tree", str(tmp_path / "copied"))
    assert (tmp_path / "copied" / "sub" / "leaf").read_text() == "leaf\n"
    # tar streams: out on stdout, in on stdin
    proc = Pallet.__call__(pallet, "cp", "box:/tmp/out.txt", "-")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout.encode()), mode="r:") as tar:
        member = tar.getmember("out.txt")
        assert tar.extractfile(member).read() == b"made inside\n"  # type: ignore[union-attr]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"streamed\n"
        info = tarfile.TarInfo("streamed.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        evil = tarfile.TarInfo("../../../../escape.txt")
        evil.size = 0
        tar.addfile(evil, io.BytesIO(b""))
    bad = pallet("cp", "-", "box:/tmp", input=buf.getvalue(), check=False)
    assert bad.returncode != 0 and "escape" in bad.stderr
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w") as tar:
        tar.addfile(info, io.BytesIO(data))
    pallet("cp", "-", "box:/tmp", input=good.getvalue())
    assert pallet("exec", "box", "cat", "/tmp/streamed.txt").stdout == "streamed\n"
    missing = pallet("cp", "box:/no/such", str(tmp_path), check=False)
    assert missing.returncode == 1 and "/no/such" in missing.stderr


def test_export_is_the_merged_rootfs(pallet: Pallet, tmp_path: Path) -> None:
    pallet("run", "--name", "exp", "busybox", "sh", "-c", "echo hi > /marker; rm /etc/group")
    out = tmp_path / "fs.tar"
    pallet("export", "-o", str(out), "exp")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert "marker" in names and "bin/busybox" in names and "etc/group" not in names
        assert tar.extractfile("marker").read() == b"hi\n"  # type: ignore[union-attr]


def test_commit_then_run_and_rmi_conflict(pallet: Pallet) -> None:
    pallet("run", "--name", "src", "busybox", "sh", "-c", "echo baked > /baked")
    image_id = pallet(
        "commit", "-m", "bake it", "--author", "Ada <ada@example.com>",
        "-c", "ENV FLAVOR=lemon", "-c", 'CMD ["cat", "/baked"]', "src", "baked:v1",
    ).stdout.strip()  # fmt: skip
    assert image_id.startswith("sha256:")
    assert pallet("run", "--rm", "baked:v1").stdout == "baked\n"
    assert pallet("run", "--rm", "baked:v1", "sh", "-c", "echo $FLAVOR").stdout == "lemon\n"
    doc = json.loads(pallet("inspect", "baked:v1").stdout)[0]
    assert doc["Author"] == "Ada <ada@example.com>" and doc["Id"] == image_id
    history = pallet("history", "--no-trunc", "baked:v1").stdout
    assert "bake it" in history or "echo baked" in history
    # the image the container was made from cannot be removed while the container exists
    refused = pallet("rmi", "busybox", check=False)
    assert refused.returncode == 1
    assert "conflict: unable to remove repository reference" in refused.stderr
    assert "is using its referenced image" in refused.stderr
    pallet("rm", "src")
    pallet("rmi", "busybox")


def test_cp_reaches_volumes_and_bind_mounts_running_or_stopped(
    pallet: Pallet, tmp_path: Path
) -> None:
    host_dir = tmp_path / "bound"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("bound\n")
    pallet(
        "run", "-d", "--name", "vols", "-v", "data:/data", "-v", f"{host_dir}:/bind",
        "--tmpfs", "/scratch", "busybox", "sh", "-c",
        "echo in-volume > /data/made; ln -s /data /shortcut; echo ready; sleep 60",
    )  # fmt: skip
    for _ in range(100):
        if "ready" in pallet("logs", "vols").stdout:
            break
        time.sleep(0.05)
    volume = Path(json.loads(pallet("volume", "inspect", "data").stdout)[0]["Mountpoint"])
    upper = pallet.root / "containers" / json.loads(pallet("inspect", "vols").stdout)[0]["Id"]
    src = tmp_path / "in.txt"
    src.write_text("copied in\n")
    # into the volume and the bind mount: where the container sees them, not the layer
    pallet("cp", str(src), "vols:/data/")
    pallet("cp", str(src), "vols:/shortcut/via-link.txt")  # a symlink to the volume
    pallet("cp", str(src), "vols:/bind/new.txt")
    assert (volume / "in.txt").read_text() == "copied in\n"
    assert (volume / "via-link.txt").read_text() == "copied in\n"
    assert (host_dir / "new.txt").read_text() == "copied in\n"
    assert not (upper / "upper" / "data" / "in.txt").exists()
    assert pallet("exec", "vols", "cat", "/data/in.txt").stdout == "copied in\n"
    # out of them, one file or the whole tree with the mounts in place
    out = tmp_path / "out"
    out.mkdir()
    pallet("cp", "vols:/data/made", str(out))
    pallet("cp", "vols:/bind", str(out / "bind-copy"))
    assert (out / "made").read_text() == "in-volume\n"
    assert sorted(p.name for p in (out / "bind-copy").iterdir()) == ["from-host", "new.txt"]
    whole = subprocess.run(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "cp", "vols:/", "-"],
        capture_output=True, env=CLI_ENV, check=True,
    )  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(whole.stdout)) as tar:
        names = set(tar.getnames())
    assert {"./data/made", "./bind/from-host", "./etc/passwd"} <= names
    # a file bind-mounted in is written in place: the container sees the new content
    hosts = tmp_path / "hosts"
    hosts.write_text("10.9.8.7\tcopied.example\n")
    pallet("cp", str(hosts), "vols:/etc/hosts")
    assert pallet("exec", "vols", "cat", "/etc/hosts").stdout == hosts.read_text()
    # a tmpfs has no copy on the host: refused with one line, not written beneath it
    refused = pallet("cp", str(src), "vols:/scratch/", check=False)
    assert refused.returncode == 1 and "tmpfs" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    # stopped: the volume is still what cp reads and writes
    pallet("stop", "-t", "0", "vols")
    pallet("cp", str(src), "vols:/data/after-stop.txt")
    assert (volume / "after-stop.txt").read_text() == "copied in\n"
    pallet("cp", "vols:/data/made", str(out / "made-again"))
    assert (out / "made-again").read_text() == "in-volume\n"


def test_cp_into_a_container_never_writes_through_its_symlinks(
    pallet: Pallet, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    pallet("run", "--name", "trap", "busybox", "sh", "-c",
           f"mkdir /d; ln -s {outside}/victim /d/f; ln -s {outside} /d/sub")  # fmt: skip
    src = tmp_path / "f"
    src.write_text("payload\n")
    pallet("cp", str(src), "trap:/d/")  # replaces the link /d/f, not what it names
    assert not (outside / "victim").exists()
    tree = tmp_path / "sub"
    tree.mkdir()
    (tree / "g").write_text("payload\n")
    pallet("cp", str(tree), "trap:/d/")  # the link /d/sub becomes the copied directory
    assert list(outside.iterdir()) == []
    out = tmp_path / "out"
    out.mkdir()
    pallet("cp", "trap:/d/f", str(out))
    pallet("cp", "trap:/d/sub/g", str(out))
    assert (out / "f").read_text() == (out / "g").read_text() == "payload\n"
