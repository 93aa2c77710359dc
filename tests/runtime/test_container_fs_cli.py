"""diff, cp (both ways, tar streams), export, commit and rmi of an image in use."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from pallet_cli import Pallet

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
