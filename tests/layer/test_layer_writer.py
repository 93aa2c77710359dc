"""The deterministic tar writer: Docker-style headers, order, metadata, overlay mode."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pallet.errors import InvalidArgument, LayerError
from pallet.layer import tarformat as tf
from pallet.layer.writer import source_date_epoch_from_env, write_tar


def tar_of(root: Path, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    write_tar(root, buf, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def populate(root: Path, order: list[str]) -> None:
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
        os.utime(path, (1_500_000_000, 1_500_000_000))
    for dirpath, _, _ in os.walk(root):
        os.utime(dirpath, (1_500_000_000, 1_500_000_000))


def test_same_tree_same_bytes_whatever_creation_order(tmp_path: Path) -> None:
    names = ["b/z", "a-b", "a/c", "a/b", "a.txt", "c"]
    populate(tmp_path / "one", names)
    populate(tmp_path / "two", list(reversed(names)))
    first = tar_of(tmp_path / "one")
    assert first == tar_of(tmp_path / "two")
    # Go's filepath.Walk order: per directory, children sorted by byte name
    assert [m.name for m in members(first)] == [
        "a",
        "a/b",
        "a/c",
        "a-b",
        "a.txt",
        "b",
        "b/z",
        "c",
    ]


def test_headers_look_like_dockers(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").write_text("hello")
    data = tar_of(tmp_path)
    # raw bytes: directory names end with '/', ustar magic, empty uname/gname
    first = data[:512]
    assert first[:4] == b"dir/"
    assert first[257:265] == b"ustar\x0000"
    assert first[265:297] == bytes(32)
    assert first[297:329] == bytes(32)
    # the archive ends with two zero blocks and nothing more
    assert data.endswith(bytes(1024))
    assert len(data) == 512 + 512 + 512 + 1024
    file = members(data)[1]
    assert (file.uname, file.gname, file.size) == ("", "", 5)


def test_metadata_recorded(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    os.chmod(f, 0o4751)
    os.utime(f, (1_000, 1_234_567_890))
    os.symlink("../somewhere", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo", 0o640)
    by_name = {m.name: m for m in members(tar_of(tmp_path))}
    assert by_name["f"].mode == 0o4751
    assert by_name["f"].mtime == 1_234_567_890
    assert by_name["f"].uid == os.getuid()
    assert by_name["link"].issym() and by_name["link"].linkname == "../somewhere"
    assert by_name["fifo"].isfifo() and by_name["fifo"].mode == 0o640


def test_hardlinks_point_at_first_path(tmp_path: Path) -> None:
    (tmp_path / "b").write_text("shared")
    os.link(tmp_path / "b", tmp_path / "a")
    os.link(tmp_path / "b", tmp_path / "c")
    got = members(tar_of(tmp_path))
    assert [(m.name, m.type, m.linkname, m.size) for m in got] == [
        ("a", tarfile.REGTYPE, "", 6),
        ("b", tarfile.LNKTYPE, "a", 0),
        ("c", tarfile.LNKTYPE, "a", 0),
    ]


def test_long_names_and_xattrs(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90) / ("e" * 90)
    deep.mkdir(parents=True)
    longest = deep / ("f" * 200)
    longest.write_text("x")
    os.setxattr(longest, "user.note", b"\x00binary\xff")
    names = {m.name: m for m in members(tar_of(tmp_path))}
    rel = f"{'d' * 90}/{'e' * 90}/{'f' * 200}"
    assert rel in names
    assert (
        names[rel].pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape")
        == b"\x00binary\xff"
    )


def test_source_date_epoch_clamps_newer_mtimes(tmp_path: Path) -> None:
    (tmp_path / "old").write_text("o")
    (tmp_path / "new").write_text("n")
    os.utime(tmp_path / "old", (100, 100))
    os.utime(tmp_path / "new", (2_000_000_000, 2_000_000_000))
    got = {m.name: m.mtime for m in members(tar_of(tmp_path, source_date_epoch=1_000))}
    assert got == {"new": 1_000, "old": 100}


def test_source_date_epoch_from_env() -> None:
    assert source_date_epoch_from_env({}) is None
    assert source_date_epoch_from_env({"SOURCE_DATE_EPOCH": ""}) is None
    assert source_date_epoch_from_env({"SOURCE_DATE_EPOCH": "1700000000"}) == 1_700_000_000
    with pytest.raises(InvalidArgument, match="SOURCE_DATE_EPOCH"):
        source_date_epoch_from_env({"SOURCE_DATE_EPOCH": "yesterday"})


def test_paths_restricts_and_sorts(tmp_path: Path) -> None:
    populate(tmp_path, ["a/x", "a/y", "b"])
    got = members(tar_of(tmp_path, paths=["b", "a/y", "./a", "a/y"]))
    assert [m.name for m in got] == ["a", "a/y", "b"]
    with pytest.raises(LayerError, match="leaves"):
        tar_of(tmp_path, paths=["../etc"])


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="not a directory"):
        tar_of(tmp_path / "missing")


def test_big_numbers_go_to_pax() -> None:
    entry = tf.Entry(
        name="big", type=tf.REG, size=9 << 30, uid=3_000_000, gid=5, mtime=-5, mode=0o644
    )
    header = tf.encode_header(entry)
    info = tarfile.TarInfo.frombuf(header[-512:], "utf-8", "surrogateescape")
    assert info.size == 0  # the real value is in the PAX record
    with tarfile.open(fileobj=io.BytesIO(header + bytes(1024)), mode="r|") as tar:
        pax = tar.next()
        assert pax is not None
        assert (pax.size, pax.uid, pax.gid, pax.mtime) == (9 << 30, 3_000_000, 5, -5)


@pytest.mark.root
def test_overlay_mode_converts_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "keep").write_text("k")
    os.setxattr(tmp_path / "dir", "trusted.overlay.opaque", b"y")
    os.setxattr(tmp_path / "dir", "trusted.overlay.origin", b"junk")
    os.setxattr(tmp_path / "dir", "user.kept", b"1")
    os.mknod(tmp_path / "gone", 0o020000, os.makedev(0, 0))
    os.mknod(tmp_path / "null", 0o020666, os.makedev(1, 3))
    got = members(tar_of(tmp_path, overlay=True))
    assert [(m.name, m.type) for m in got] == [
        ("dir", tarfile.DIRTYPE),
        ("dir/.wh..wh..opq", tarfile.REGTYPE),
        ("dir/keep", tarfile.REGTYPE),
        (".wh.gone", tarfile.REGTYPE),
        ("null", tarfile.CHRTYPE),
    ]
    assert got[0].pax_headers == {"SCHILY.xattr.user.kept": "1"}
    assert got[3].mode == 0o600 and got[3].size == 0
    assert (got[4].devmajor, got[4].devminor) == (1, 3)
    # without overlay=True the device is just a device and xattrs are kept as they are
    plain = {m.name: m for m in members(tar_of(tmp_path))}
    assert plain["gone"].ischr()
    assert "SCHILY.xattr.trusted.overlay.opaque" in plain["dir"].pax_headers


_segments = st.text(alphabet=st.sampled_from("abcXYZ09._-é€ü"), min_size=1, max_size=60).filter(
    lambda s: s not in (".", "..")
)
_names = st.lists(_segments, min_size=1, max_size=5).map("/".join)
_kinds = st.sampled_from([tf.REG, tf.DIR, tf.SYM, tf.LNK, tf.CHR, tf.FIFO])
# around each field's octal limit, so both the USTAR and the PAX forms are drawn
_numbers = st.one_of(st.integers(0, 300), st.sampled_from([(1 << 21) - 1, 1 << 21, 1 << 40]))
_sizes = st.one_of(st.integers(0, 300), st.sampled_from([(1 << 33) - 1, 1 << 33]))


@settings(max_examples=300, deadline=None)
@given(
    name=_names,
    kind=_kinds,
    mode=st.integers(0, 0o7777),
    uid=_numbers,
    gid=_numbers,
    size=_sizes,
    mtime=st.one_of(_sizes, st.just(-1)),
    link=st.one_of(st.just(""), _names),
    dev=st.integers(0, (1 << 21) - 1),
    xattrs=st.lists(
        st.tuples(_segments, st.binary(max_size=20)), max_size=2, unique_by=lambda x: x[0]
    ),
)
def test_any_header_reads_back_with_tarfile(
    name: str,
    kind: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    link: str,
    dev: int,
    xattrs: list[tuple[str, bytes]],
) -> None:
    if kind == tf.DIR:
        name += "/"
    entry = tf.Entry(name, kind, mode, uid, gid, size, mtime, link, dev, dev, tuple(sorted(xattrs)))
    header = tf.encode_header(entry)
    # tarfile checks every block's checksum and applies the PAX records
    with tarfile.open(fileobj=io.BytesIO(header + bytes(1024)), mode="r|") as tar:
        info = tar.next()
        assert info is not None
        assert info.name == name.rstrip("/")
        assert info.type == kind
        assert (info.mode, info.uid, info.gid, info.mtime) == (mode, uid, gid, mtime)
        assert info.size == size
        assert info.linkname == link
        if kind == tf.CHR:
            assert (info.devmajor, info.devminor) == (dev, dev)
        got = {k: v for k, v in info.pax_headers.items() if k.startswith(tf.XATTR_PREFIX)}
        assert got == {tf.XATTR_PREFIX + k: v.decode("utf-8", "surrogateescape") for k, v in xattrs}
