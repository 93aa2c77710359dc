"""Property: any tree -> tar -> extracted tree is the same tree, and tars the same again."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet.layer.extract import extract_layer
from pallet.layer.writer import write_tar

IS_ROOT = os.geteuid() == 0

short_names = st.text(alphabet="abcAB01-_.é ", min_size=1, max_size=10).filter(
    lambda n: n not in (".", "..") and not n.startswith(".wh.")
)
long_names = st.text(alphabet="lmn", min_size=101, max_size=200)
names = st.one_of(short_names, short_names, short_names, long_names)
mtimes = st.integers(min_value=0, max_value=2**33)
ids = st.integers(min_value=0, max_value=70_000)
xattrs = st.dictionaries(
    st.text(alphabet="abc.", min_size=1, max_size=8).map(lambda k: "user." + k),
    st.binary(max_size=40),
    max_size=2,
)
common = {"mtime": mtimes, "uid": ids, "gid": ids}

files = st.fixed_dictionaries(
    {
        "kind": st.just("file"),
        "data": st.binary(max_size=3000),
        # owner-readable: a non-root run must still be able to read what it wrote
        "mode": st.integers(min_value=0, max_value=0o7777).map(lambda m: m | 0o400),
        "xattrs": xattrs,
        **common,
    }
)
symlinks = st.fixed_dictionaries(
    {
        "kind": st.just("symlink"),
        "target": st.text(alphabet="ab/.", min_size=1, max_size=30),
        **common,
    }
)
hardlinks = st.fixed_dictionaries({"kind": st.just("hardlink"), "pick": st.integers(0, 50)})
fifos = st.fixed_dictionaries(
    {"kind": st.just("fifo"), "mode": st.integers(0o400, 0o777), **common}
)
leaves = st.one_of(files, files, symlinks, hardlinks, fifos)


def dirs(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "kind": st.just("dir"),
            "children": st.dictionaries(names, children, max_size=5),
            "mode": st.integers(0o700, 0o7777).map(lambda m: m | 0o700),
            "xattrs": xattrs,
            **common,
        }
    )


trees = st.dictionaries(names, st.recursive(leaves, dirs, max_leaves=20), max_size=6)


def build(root: Path, tree: dict[str, Any]) -> None:
    made_files: list[Path] = []
    finish: list[tuple[Path, dict[str, Any]]] = []

    def create(path: Path, node: dict[str, Any]) -> None:
        kind = node["kind"]
        if kind == "hardlink":
            if not made_files:
                path.write_bytes(b"stand-in")
                return
            os.link(made_files[node["pick"] % len(made_files)], path)
            return
        if kind == "file":
            path.write_bytes(node["data"])
            made_files.append(path)
        elif kind == "symlink":
            os.symlink(node["target"], path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
            for name, child in node["children"].items():
                create(path / name, child)
        finish.append((path, node))

    for name, node in tree.items():
        create(root / name, node)
    # metadata last, deepest first, so creating children does not disturb it
    for path, node in reversed(finish):
        for key, value in node.get("xattrs", {}).items():
            os.setxattr(path, key, value)
        if IS_ROOT:
            os.chown(path, node["uid"], node["gid"], follow_symlinks=False)
        if node["kind"] != "symlink":
            os.chmod(path, node["mode"])
        os.utime(path, (node["mtime"], node["mtime"]), follow_symlinks=False)


def tar_bytes(root: Path) -> bytes:
    buf = io.BytesIO()
    write_tar(root, buf)
    return buf.getvalue()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tree=trees)
def test_tree_survives_tar_and_extract(
    tree: dict[str, Any], snapshot_tree: Callable[[Path], dict[str, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, dest = Path(tmp, "src"), Path(tmp, "dest")
        src.mkdir()
        build(src, tree)
        data = tar_bytes(src)
        result = extract_layer(io.BytesIO(data), dest, whiteouts="apply")
        assert snapshot_tree(dest) == snapshot_tree(src)
        # canonical form: the extracted tree writes the very same bytes
        assert tar_bytes(dest) == data
        assert result.size == len(data)


@pytest.mark.root
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, gone=st.lists(short_names, max_size=3, unique=True))
def test_overlay_snapshot_roundtrip_keeps_diff_id(tree: dict[str, Any], gone: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        upper, snap = Path(tmp, "upper"), Path(tmp, "snap")
        upper.mkdir()
        build(upper, tree)
        for name in gone:
            if not os.path.lexists(upper / name):
                os.mknod(upper / name, 0o020000, os.makedev(0, 0))
        first = io.BytesIO()
        write_tar(upper, first, overlay=True)
        result = extract_layer(io.BytesIO(first.getvalue()), snap, whiteouts="overlay")
        second = io.BytesIO()
        write_tar(snap, second, overlay=True)
        assert second.getvalue() == first.getvalue()
        assert result.diff_id == "sha256:" + hashlib.sha256(first.getvalue()).hexdigest()
