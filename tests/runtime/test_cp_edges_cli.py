"""``pallet cp`` edge cases: mounts below the destination, ``.wh.*`` names, symlinks
planted (or swapped in while the copy runs) by the container, and user namespaces."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pallet_cli import CLI_ENV, Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


def _cid(pallet: Pallet, name: str) -> str:
    return str(json.loads(pallet("inspect", name).stdout)[0]["Id"])


def _tar(members: dict[str, bytes], uid: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mode = len(data), uid, uid, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _cli(pallet: Pallet, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), *args],
        input=stdin, capture_output=True, env=CLI_ENV, check=True,
    )  # fmt: skip
    return proc.stdout


@pytest.mark.parametrize("running", [True, False])
def test_a_tree_copied_over_mount_points_fills_the_mounts(
    pallet: Pallet, tmp_path: Path, running: bool
) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    src = tmp_path / "src"
    (src / "vol").mkdir(parents=True)
    (src / "bind" / "sub").mkdir(parents=True)
    (src / "top.txt").write_text("top\n")
    (src / "vol" / "a.txt").write_text("in the volume\n")
    (src / "bind" / "b.txt").write_text("in the bind mount\n")
    (src / "bind" / "sub" / "c.txt").write_text("deeper\n")
    pallet("create", "--name", "m1", "-v", "cpvol:/dst/vol", "-v", f"{bind}:/dst/bind",
           "busybox", "sleep", "60")  # fmt: skip
    if running:
        pallet("start", "m1")
    pallet("cp", f"{src}/.", "m1:/dst")
    assert (bind / "b.txt").read_text() == "in the bind mount\n"
    assert (bind / "sub" / "c.txt").read_text() == "deeper\n"
    upper = pallet.root / "containers" / _cid(pallet, "m1") / "upper"
    assert (upper / "dst" / "top.txt").read_text() == "top\n"
    assert not (upper / "dst" / "vol" / "a.txt").exists()  # not in the layer beneath
    assert not (upper / "dst" / "bind" / "b.txt").exists()
    # the volume holds it: a second container with the volume reads it
    out = pallet("run", "--rm", "-v", "cpvol:/v", "busybox", "cat", "/v/a.txt")
    assert out.stdout == "in the volume\n"


def test_wh_names_are_plain_files(pallet: Pallet, tmp_path: Path) -> None:
    pallet("run", "-d", "--name", "w1", "busybox", "sh", "-c",
           "mkdir -p /dst/d && echo keep > /dst/hidden && echo keep > /dst/d/x; sleep 60")  # fmt: skip
    pallet("exec", "w1", "test", "-f", "/dst/d/x")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / ".wh.hidden").write_text("a file\n")
    (src / "d" / ".wh..wh..opq").write_text("also a file\n")
    pallet("cp", f"{src}/.", "w1:/dst")
    stream = _tar({".wh.from-stream": b"plain\n"})
    _cli(pallet, "cp", "-", "w1:/dst", stdin=stream)
    out = pallet("exec", "w1", "sh", "-c",
                 "cat /dst/hidden /dst/d/x /dst/.wh.hidden /dst/d/.wh..wh..opq /dst/.wh.from-stream")  # fmt: skip
    assert out.stdout == "keep\nkeep\na file\nalso a file\nplain\n"


def test_a_planted_symlink_is_replaced_not_followed(pallet: Pallet, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    # in the container, d points at the host path of `outside` (absolute, as a host path)
    pallet("run", "-d", "--name", "s1", "busybox", "sh", "-c",
           f"mkdir -p /tgt && ln -s {outside} /tgt/d && ln -s {outside} /tgt/f; sleep 60")  # fmt: skip
    pallet("exec", "s1", "test", "-L", "/tgt/d")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "payload").write_text("x\n")
    (src / "f").write_text("file\n")
    pallet("cp", f"{src}/.", "s1:/tgt")
    _cli(pallet, "cp", "-", "s1:/tgt", stdin=_tar({"d/streamed": b"y\n"}))
    assert list(outside.iterdir()) == []
    out = pallet(
        "exec", "s1", "sh", "-c", "test -d /tgt/d && ! test -L /tgt/d && cat /tgt/d/* /tgt/f"
    )
    assert out.stdout == "x\ny\nfile\n"
    # a hostile stream naming ../ is refused, naming the member
    bad = _tar({"../../escape": b"z"})
    proc = subprocess.run(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "cp", "-", "s1:/tgt"],
        input=bad, capture_output=True, env=CLI_ENV,
    )  # fmt: skip
    assert proc.returncode != 0 and b"../../escape" in proc.stderr
    assert list(outside.iterdir()) == []


def test_a_directory_swapped_for_a_symlink_mid_copy_lets_nothing_through(
    pallet: Pallet, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    pallet("run", "-d", "--name", "r1", "busybox", "sh", "-c",
           f"mkdir -p /race; while true; do rm -rf /race/d; ln -s {outside} /race/d; "
           "rm -f /race/d; mkdir /race/d; done")  # fmt: skip
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(100):
        (src / "d" / f"f{i}").write_text(f"{i}\n")
    for _ in range(4):  # each copy races the loop; failing with an error is fine
        pallet("cp", f"{src}/.", "r1:/race", check=False)
        assert list(outside.iterdir()) == []
    # and out of it: the host's files the link names are never read into the copy
    (outside / "host-secret").write_text("secret\n")
    for i in range(3):
        out = tmp_path / f"out{i}"
        pallet("cp", "r1:/race", str(out), check=False)
        assert not list(out.rglob("host-secret"))
        proc = subprocess.run(
            [sys.executable, "-m", "pallet", "--root", str(pallet.root), "cp", "r1:/race", "-"],
            capture_output=True, env=CLI_ENV,
        )  # fmt: skip
        assert b"secret" not in proc.stdout


def test_cp_under_a_user_namespace_uses_the_containers_ids(pallet: Pallet, tmp_path: Path) -> None:
    pallet("run", "-d", "--name", "u1", "--userns=auto", "busybox", "sleep", "60")
    (tmp_path / "f.txt").write_text("hi\n")
    (tmp_path / "f.txt").chmod(0o640)
    pallet("cp", str(tmp_path / "f.txt"), "u1:/root/f.txt")
    _cli(pallet, "cp", "-a", "-", "u1:/tmp", stdin=_tar({"owned": b"o\n"}, uid=1000))
    out = pallet("exec", "u1", "stat", "-c", "%u:%g %a", "/root/f.txt", "/tmp/owned")
    assert out.stdout.splitlines() == ["0:0 640", "1000:1000 644"]
    with tarfile.open(fileobj=io.BytesIO(_cli(pallet, "cp", "u1:/etc/passwd", "-"))) as tar:
        [member] = tar.getmembers()
    assert (member.uid, member.gid) == (0, 0)
    pallet("cp", "-a", "u1:/tmp/owned", str(tmp_path / "out"))
    st = (tmp_path / "out").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)
