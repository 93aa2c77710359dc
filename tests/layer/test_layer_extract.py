"""Safe extraction: metadata, whiteouts both ways, and hostile tars refused."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pallet.errors import LayerError, UnsafeLayer
from pallet.layer.extract import extract_layer
from pallet.layer.writer import write_tar

MakeTar = Callable[..., bytes]
Member = Callable[..., tarfile.TarInfo]


def extract(data: bytes, dest: Path, **kwargs: Any) -> Any:
    return extract_layer(io.BytesIO(data), dest, **kwargs)


def listing(root: Path) -> set[str]:
    return {
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    }


# -- ordinary layers -------------------------------------------------------------------


def test_diff_id_and_size_cover_the_whole_stream(
    tmp_path: Path, make_tar: MakeTar, tar_member: Member
) -> None:
    data = make_tar([(tar_member("a"), b"hello")]) + bytes(4096)  # trailing padding counts
    result = extract(data, tmp_path / "d")
    assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.size == len(data)


def test_metadata_applied(tmp_path: Path, make_tar: MakeTar, tar_member: Member) -> None:
    data = make_tar(
        [
            (tar_member("dir", tarfile.DIRTYPE, mode=0o555, mtime=1_000), b""),
            (tar_member("dir/exe", mode=0o4755, mtime=2_000), b"#!/bin/sh\n"),
            (tar_member("dir/link", tarfile.SYMTYPE, linkname="exe", mtime=3_000), b""),
            (tar_member("dir/hard", tarfile.LNKTYPE, linkname="dir/exe"), b""),
            (tar_member("fifo", tarfile.FIFOTYPE, mode=0o620), b""),
        ]
    )
    dest = tmp_path / "d"
    extract(data, dest)
    d = os.lstat(dest / "dir")
    assert (stat.S_IMODE(d.st_mode), d.st_mtime) == (0o555, 1_000)
    exe = os.lstat(dest / "dir" / "exe")
    assert (stat.S_IMODE(exe.st_mode), exe.st_mtime, exe.st_nlink) == (0o4755, 2_000, 2)
    assert os.readlink(dest / "dir" / "link") == "exe"
    assert os.lstat(dest / "dir" / "link").st_mtime == 3_000
    assert os.path.samefile(dest / "dir" / "hard", dest / "dir" / "exe")
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    assert stat.S_IMODE(os.lstat(dest / "fifo").st_mode) == 0o620


def test_xattrs_and_long_names(tmp_path: Path, make_tar: MakeTar, tar_member: Member) -> None:
    name = "a" * 120 + "/" + "b" * 200
    info = tar_member(name)
    info.pax_headers = {"SCHILY.xattr.user.k": "v"}
    dest = tmp_path / "d"
    extract(make_tar([(info, b"x")]), dest)
    assert (dest / name).read_bytes() == b"x"
    assert os.getxattr(dest / name, "user.k") == b"v"


def test_later_member_replaces_earlier_without_writing_through(
    tmp_path: Path, make_tar: MakeTar, tar_member: Member
) -> None:
    outside = tmp_path / "outside"
    outside.write_text("precious")
    data = make_tar(
        [
            (tar_member("a", tarfile.SYMTYPE, linkname=str(outside)), b""),
            (tar_member("a"), b"replaced"),
            (tar_member("orig"), b"original"),
            (tar_member("b", tarfile.LNKTYPE, linkname="orig"), b""),
            (tar_member("b"), b"new b"),
            (tar_member("dir", tarfile.DIRTYPE), b""),
            (tar_member("dir/x"), b"x"),
            (tar_member("dir"), b"now a file"),
        ]
    )
    dest = tmp_path / "d"
    extract(data, dest)
    assert outside.read_text() == "precious"
    assert (dest / "a").read_text() == "replaced" and not (dest / "a").is_symlink()
    assert (dest / "orig").read_text() == "original"
    assert (dest / "b").read_text() == "new b"
    assert (dest / "dir").read_text() == "now a file"


def test_dot_slash_names_and_root_entry(
    tmp_path: Path, make_tar: MakeTar, tar_member: Member
) -> None:
    data = make_tar(
        [
            (tar_member("./", tarfile.DIRTYPE, mode=0o700), b""),
            (tar_member("./etc/", tarfile.DIRTYPE), b""),
            (tar_member("./etc/hosts"), b"127.0.0.1 localhost\n"),
        ]
    )
    dest = tmp_path / "d"
    extract(data, dest)
    assert (dest / "etc" / "hosts").read_text().startswith("127.0.0.1")


def test_missing_parents_are_created(tmp_path: Path, make_tar: MakeTar, tar_member: Member) -> None:
    dest = tmp_path / "d"
    extract(make_tar([(tar_member("x/y/z"), b"z")]), dest)
    assert (dest / "x" / "y" / "z").read_text() == "z"
    assert stat.S_IMODE(os.stat(dest / "x").st_mode) == 0o755


@pytest.mark.root
def test_ownership_applied_as_root(tmp_path: Path, make_tar: MakeTar, tar_member: Member) -> None:
    data = make_tar(
        [
            (tar_member("f", uid=1234, gid=5678, mode=0o6755), b"x"),
            (tar_member("l", tarfile.SYMTYPE, linkname="f", uid=42, gid=43), b""),
            (tar_member("null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), b""),
        ]
    )
    dest = tmp_path / "d"
    extract(data, dest)
    st = os.lstat(dest / "f")
    # setuid/setgid survive the chown because the mode is applied after it
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o6755)
    assert (os.lstat(dest / "l").st_uid, os.lstat(dest / "l").st_gid) == (42, 43)
    assert os.lstat(dest / "null").st_rdev == os.makedev(1, 3)


def test_without_same_owner_files_belong_to_the_extractor(
    tmp_path: Path, make_tar: MakeTar, tar_member: Member
) -> None:
    dest = tmp_path / "d"
    extract(make_tar([(tar_member("f", uid=1234, gid=5678), b"x")]), dest, same_owner=False)
    assert os.lstat(dest / "f").st_uid == os.getuid()


# -- whiteouts -------------------------------------------------------------------------


def lower_layer(dest: Path) -> None:
    (dest / "a").mkdir(parents=True)
    (dest / "a" / "x").write_text("x")
    (dest / "a" / "sub").mkdir()
    (dest / "a" / "sub" / "y").write_text("y")
    (dest / "b").write_text("b")
    (dest / "c").mkdir()
    (dest / "c" / "z").write_text("z")


def test_apply_mode_whiteouts_delete_from_lower_layers(
    tmp_path: Path, make_tar: MakeTar, tar_member: Member
) -> None:
    dest = tmp_path / "d"
    lower_layer(dest)
    data = make_tar(
        [
            (tar_member("a", tarfile.DIRTYPE), b""),
            (tar_member("a/.wh..wh..opq"), b""),
            (tar_member("a/new"), b"new"),
            (tar_member(".wh.b"), b""),
            (tar_member(".wh.c"), b""),
            (tar_member("d"), b"mine"),
            (tar_member(".wh.d"), b""),  # same layer: must not hide it
            (tar_member(".wh.never-existed"), b""),
        ]
    )
    extract(data, dest, whiteouts="apply")
    assert listing(dest) == {"a", "a/new", "d"}


def test_apply_mode_opaque_marker_after_children_keeps_them(
    tmp_path: Path, make_tar: MakeTar, tar_member: Member
) -> None:
    dest = tmp_path / "d"
    lower_layer(dest)
    data = make_tar(
        [
            (tar_member("a", tarfile.DIRTYPE), b""),
            (tar_member("a/sub", tarfile.DIRTYPE), b""),
            (tar_member("a/sub/new"), b"n"),
            (tar_member("a/.wh..wh..opq"), b""),
        ]
    )
    extract(data, dest, whiteouts="apply")
    assert {p for p in listing(dest) if p.startswith("a")} == {"a", "a/sub", "a/sub/new"}


@pytest.mark.root
def test_overlay_mode_makes_whiteout_devices_and_opaque_xattrs(
    tmp_path: Path, make_tar: MakeTar, tar_member: Member
) -> None:
    data = make_tar(
        [
            (tar_member("a", tarfile.DIRTYPE), b""),
            (tar_member("a/.wh..wh..opq"), b""),
            (tar_member("a/.wh.gone"), b""),
            (tar_member(".wh.b"), b""),
        ]
    )
    dest = tmp_path / "snap"
    extract(data, dest, whiteouts="overlay")
    assert os.getxattr(dest / "a", "trusted.overlay.opaque") == b"y"
    for path in (dest / "a" / "gone", dest / "b"):
        st = os.lstat(path)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (dest / ".wh.b").exists()


@pytest.mark.root
def test_overlay_snapshot_converts_back_to_the_same_tar(tmp_path: Path) -> None:
    # an overlay-form tree (as an upper dir looks after a RUN step)
    upper = tmp_path / "upper"
    (upper / "etc" / "app").mkdir(parents=True)
    (upper / "etc" / "app" / "conf").write_text("on\n")
    os.setxattr(upper / "etc" / "app", "trusted.overlay.opaque", b"y")
    os.mknod(upper / "etc" / "old", stat.S_IFCHR, os.makedev(0, 0))
    os.chown(upper / "etc" / "old", 7, 8)
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "bin").mkdir()
    (upper / "bin" / "tool").write_bytes(b"\x7fELF")
    os.link(upper / "bin" / "tool", upper / "bin" / "alias")
    for dirpath, dirs, files in os.walk(upper, topdown=False):
        for name in dirs + files:
            os.utime(
                os.path.join(dirpath, name), (1_700_000_000, 1_700_000_000), follow_symlinks=False
            )
    first = io.BytesIO()
    write_tar(upper, first, overlay=True)
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as tar:
        names = tar.getnames()
    assert names == [
        "bin",
        "bin/alias",
        "bin/tool",
        "etc",
        "etc/app",
        "etc/app/.wh..wh..opq",
        "etc/app/conf",
        "etc/.wh.old",
        ".wh.gone",
    ]
    # OCI tar -> overlay snapshot -> OCI tar: the same bytes, hence the same diffID
    snap = tmp_path / "snap"
    result = extract(first.getvalue(), snap, whiteouts="overlay")
    second = io.BytesIO()
    write_tar(snap, second, overlay=True)
    assert second.getvalue() == first.getvalue()
    assert result.diff_id == "sha256:" + hashlib.sha256(second.getvalue()).hexdigest()


def test_overlay_whiteouts_need_root(tmp_path: Path, make_tar: MakeTar, tar_member: Member) -> None:
    data = make_tar([(tar_member(".wh.b"), b"")])
    with pytest.raises(UnsafeLayer, match=r"'\.wh\.b'.*need root"):
        extract(data, tmp_path / "d", whiteouts="overlay", same_owner=False)


# -- hostile tars ----------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """dest, plus a sibling directory that must stay untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("keep")
    return tmp_path / "dest", outside


def assert_untouched(outside: Path) -> None:
    assert listing(outside) == {"secret"}
    assert (outside / "secret").read_text() == "keep"


HOSTILE: dict[str, tuple[list[tuple[str, bytes, dict[str, Any]]], str, str]] = {
    # name: ([(member name, type, fields)], culprit named in the error, message regex)
    "dotdot": ([("../outside/x", tarfile.REGTYPE, {})], "../outside/x", r"\.\."),
    "nested dotdot": ([("a/../../outside/x", tarfile.REGTYPE, {})], "a/../../outside/x", r"\.\."),
    "absolute": ([("/etc/x", tarfile.REGTYPE, {})], "/etc/x", "absolute"),
    "symlink to root then through it": (
        [("a", tarfile.SYMTYPE, {"linkname": "/"}), ("a/etc/passwd", tarfile.REGTYPE, {})],
        "a/etc/passwd",
        "symlink",
    ),
    "symlink to outside then through it": (
        [("a", tarfile.SYMTYPE, {"linkname": "../outside"}), ("a/x", tarfile.REGTYPE, {})],
        "a/x",
        "symlink",
    ),
    "symlink chain": (
        [
            ("a", tarfile.SYMTYPE, {"linkname": "b"}),
            ("b", tarfile.SYMTYPE, {"linkname": "../outside"}),
            ("a/x", tarfile.REGTYPE, {}),
        ],
        "a/x",
        "symlink",
    ),
    "symlinked dir then dir entry below": (
        [
            ("d", tarfile.SYMTYPE, {"linkname": "../outside"}),
            ("d/sub/", tarfile.DIRTYPE, {}),
        ],
        "d/sub/",
        "symlink",
    ),
    "hardlink up": ([("h", tarfile.LNKTYPE, {"linkname": "../../x"})], "h", r"\.\."),
    "hardlink absolute": ([("h", tarfile.LNKTYPE, {"linkname": "/etc/passwd"})], "h", "absolute"),
    "hardlink through symlink": (
        [
            ("s", tarfile.SYMTYPE, {"linkname": "../outside"}),
            ("h", tarfile.LNKTYPE, {"linkname": "s/secret"}),
        ],
        "h",
        "symlink",
    ),
    "hardlink to missing": ([("h", tarfile.LNKTYPE, {"linkname": "nope"})], "h", "does not exist"),
    "whiteout through symlink": (
        [
            ("s", tarfile.SYMTYPE, {"linkname": "../outside"}),
            ("s/.wh.secret", tarfile.REGTYPE, {}),
        ],
        "s/.wh.secret",
        "symlink",
    ),
    "device as non-root": (
        [("dev", tarfile.CHRTYPE, {"devmajor": 8, "devminor": 0})],
        "dev",
        "root",
    ),
    "overlay xattr smuggled": (
        [("d", tarfile.DIRTYPE, {"pax_headers": {"SCHILY.xattr.trusted.overlay.redirect": "/x"}})],
        "d",
        "reserved",
    ),
    "NUL in name": (
        [("a", tarfile.REGTYPE, {"pax_headers": {"path": "a\x00b"}})],
        "a\x00b",
        "NUL",
    ),
    "name component too long": ([("n" * 300, tarfile.REGTYPE, {})], "n" * 300, "longer"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
@pytest.mark.parametrize("mode", ["apply", "overlay"])
def test_hostile_tar_refused(
    case: str,
    mode: str,
    sandbox: tuple[Path, Path],
    make_tar: MakeTar,
    tar_member: Member,
) -> None:
    dest, outside = sandbox
    spec, culprit, message = HOSTILE[case]
    members = []
    for name, kind, fields in spec:
        info = tar_member(name, kind, **fields)
        members.append((info, b"evil" if kind == tarfile.REGTYPE else b""))
    with pytest.raises(UnsafeLayer if case != "hardlink to missing" else LayerError) as err:
        extract(make_tar(members), dest, whiteouts=mode, same_owner=False)
    assert repr(culprit)[1:-1] in str(err.value)
    assert re.search(message, str(err.value))
    assert_untouched(outside)


def raw_header(name: bytes, kind: bytes, size: int) -> bytes:
    """A USTAR header built by hand (tarfile refuses to write these sizes)."""
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = b"0000644\x00"
    block[108:116] = b"0000000\x00"
    block[116:124] = b"0000000\x00"
    if size < 8**11:
        block[124:136] = b"%011o\x00" % size
    else:  # GNU base-256
        block[124:136] = b"\x80" + size.to_bytes(11, "big")
    block[136:148] = b"00000000000\x00"
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def test_absurd_member_size_refused(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    data = raw_header(b"huge", b"0", 2**40) + bytes(4096)
    with pytest.raises(UnsafeLayer, match=r"'huge'.*size 1099511627776"):
        extract(data, dest)
    assert not (dest / "huge").exists()
    assert_untouched(outside)


def test_absurd_pax_header_refused(sandbox: tuple[Path, Path]) -> None:
    dest, _ = sandbox
    data = raw_header(b"PaxHeaders.0/x", b"x", 1 << 30) + bytes(4096)
    with pytest.raises(UnsafeLayer, match="PAX header of 1073741824 bytes"):
        extract(data, dest)


def test_many_pax_headers_in_a_row_refused(tmp_path: Path) -> None:
    record = b"%d k=%s\n" % (len(b" k=\n") + 6 + 500_000, b"v" * 500_000)
    assert int(record.split(b" ")[0]) == len(record)
    pax = raw_header(b"PaxHeaders.0/x", b"x", len(record)) + record + bytes(-len(record) % 512)
    with pytest.raises(UnsafeLayer, match="in all"):
        extract(pax * 3 + raw_header(b"x", b"0", 0) + bytes(1024), tmp_path / "d")


def test_gnu_sparse_refused(tmp_path: Path) -> None:
    data = raw_header(b"sparse", b"S", 0) + bytes(1024)
    with pytest.raises(LayerError, match=r"'sparse'.*sparse files are not supported"):
        extract(data, tmp_path / "d")


def test_bad_checksum_refused(tmp_path: Path, make_tar: MakeTar, tar_member: Member) -> None:
    data = bytearray(make_tar([(tar_member("ok"), b"1"), (tar_member("bad"), b"2")]))
    data[1024 + 10] ^= 0x01  # inside the second header's name
    with pytest.raises(LayerError, match=r"checksum.*'ok'"):
        extract(bytes(data), tmp_path / "d")


def test_truncated_tar_refused(tmp_path: Path, make_tar: MakeTar, tar_member: Member) -> None:
    data = make_tar([(tar_member("big"), os.urandom(10_000))])
    with pytest.raises(LayerError, match=r"truncated.*'big'"):
        extract(data[:3000], tmp_path / "d")


def test_unknown_member_type_refused(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match=r"'vol'.*unsupported"):
        extract(raw_header(b"vol", b"V", 0) + bytes(1024), tmp_path / "d")
