"""Snapshots: overlay-form trees keyed by chain ID, mounted as overlay lowerdirs (or
copied flat where overlay is missing), verified by check and collected by gc."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pallet.errors import NotFound
from pallet.oci.digest import Digest
from pallet.store import Store
from pallet.store import overlay as overlay_mod

Builder = Callable[[Path], None]


def add_snapshot(store: Store, kit: Any, parent: Digest | None, build: Builder) -> Digest:
    """Publish a snapshot whose tree ``build`` writes (diff ID made up per content)."""
    with store.snapshots.workspace() as work:
        build(work / "fs")
        listing = sorted(
            (str(p.relative_to(work)), p.read_bytes() if p.is_file() else b"")
            for p in work.rglob("*")
        )
        diff_id = kit.sha256(repr((parent, listing)).encode())
        return store.snapshots.adopt(work, diff_id, parent)


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def base_layer(fs: Path) -> None:
    (fs / "a.txt").write_text("a\n")
    (fs / "keep.txt").write_text("keep\n")
    (fs / "d").mkdir()
    (fs / "d" / "x").write_text("x\n")
    (fs / "d" / "y").write_text("y\n")


def upper_layer(fs: Path) -> None:
    whiteout(fs / "a.txt")
    (fs / "d").mkdir()
    os.setxattr(fs / "d", "trusted.overlay.opaque", b"y")
    (fs / "d" / "z").write_text("z\n")
    (fs / "keep.txt").write_text("changed\n")


EXPECTED = {"d": "dir", "d/z": "z\n", "keep.txt": "changed\n"}


def test_adopted_snapshots_are_keyed_by_chain_id(store: Store, kit: Any) -> None:
    bottom = add_snapshot(store, kit, None, lambda fs: (fs / "f").write_text("1"))
    top = add_snapshot(store, kit, bottom, lambda fs: (fs / "g").write_text("2"))
    info = store.snapshots.info(top)
    assert info.parent == bottom
    assert top == kit.sha256(f"{bottom} {info.diff_id}".encode())
    assert store.snapshots.path(top) == store.root / "snapshots" / top.encoded / "fs"
    assert store.snapshots.has(bottom) and store.snapshots.has(top)
    assert sorted(store.snapshots.chain_ids()) == sorted([bottom, top])
    assert [p.name for p in (store.root / "snapshots").iterdir() if p.name.startswith(".")] == []


@pytest.mark.root
@pytest.mark.overlay
def test_two_layers_with_whiteouts_mount_as_the_merged_view(
    store: Store, kit: Any, mounted: Path
) -> None:
    bottom = add_snapshot(store, kit, None, base_layer)
    top = add_snapshot(store, kit, bottom, upper_layer)
    store.snapshots.mount([bottom, top], mounted)
    try:
        assert kit.view(mounted) == EXPECTED
    finally:
        overlay_mod.unmount(mounted)


@pytest.mark.root
@pytest.mark.overlay
def test_a_build_steps_upper_dir_becomes_a_snapshot_without_copying(
    store: Store, kit: Any, mounted: Path
) -> None:
    base = add_snapshot(store, kit, None, base_layer)
    with store.snapshots.workspace() as work:
        (work / "work").mkdir()
        store.snapshots.mount([base], mounted, upperdir=work / "fs", workdir=work / "work")
        try:
            (mounted / "a.txt").unlink()  # overlay records a whiteout in the upper dir
            (mounted / "built.txt").write_text("built\n")
        finally:
            overlay_mod.unmount(mounted)
        inode = (work / "fs" / "built.txt").stat().st_ino
        top = store.snapshots.adopt(work, kit.sha256(b"step diff"), base)
    assert (store.snapshots.path(top) / "built.txt").stat().st_ino == inode
    assert sorted(p.name for p in store.snapshots.path(top).parent.iterdir()) == ["fs", "meta.json"]
    store.snapshots.mount([base, top], mounted)
    try:
        assert sorted(os.listdir(mounted)) == ["built.txt", "d", "keep.txt"]
    finally:
        overlay_mod.unmount(mounted)
    assert store.check().ok


@pytest.mark.root
def test_copy_fallback_gives_the_same_view(store: Store, kit: Any, tmp_path: Path) -> None:
    bottom = add_snapshot(store, kit, None, base_layer)
    top = add_snapshot(store, kit, bottom, upper_layer)
    dest = tmp_path / "flat"
    store.snapshots.materialize([bottom, top], dest)
    assert kit.view(dest) == EXPECTED
    assert os.listxattr(dest / "d") == []  # overlay markers are not copied as content


def _tall_stack(store: Store, kit: Any, height: int) -> list[Digest]:
    chain: list[Digest] = []
    for i in range(height):

        def build(fs: Path, i: int = i) -> None:
            (fs / f"layer-{i:03d}").write_text(str(i))

        chain.append(add_snapshot(store, kit, chain[-1] if chain else None, build))
    return chain


@pytest.mark.root
@pytest.mark.overlay
def test_120_layers_mount_with_either_mount_api(
    store: Store, kit: Any, mounted: Path, tmp_path: Path
) -> None:
    chain = _tall_stack(store, kit, 120)
    # The lowerdir list alone would overflow mount(2)'s one-page option limit.
    assert len(":".join(str(p) for p in store.snapshots.mount_lowerdirs(chain))) > 4096
    store.snapshots.mount(chain, mounted)  # fsconfig "lowerdir+" on this kernel
    try:
        assert sorted(os.listdir(mounted)) == [f"layer-{i:03d}" for i in range(120)]
    finally:
        overlay_mod.unmount(mounted)

    # Kernels before 6.8: mount(8) over short relative paths, here writable.
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    lowers = list(reversed(store.snapshots.mount_lowerdirs(chain)))
    overlay_mod._mount_short_paths(lowers, mounted, upper, work, False)
    try:
        assert len(os.listdir(mounted)) == 120
        (mounted / "new").write_text("written")
        assert (upper / "new").read_text() == "written"
    finally:
        overlay_mod.unmount(mounted)


def test_check_finds_a_modified_snapshot(store: Store, kit: Any) -> None:
    chain_id = add_snapshot(store, kit, None, lambda fs: (fs / "f").write_text("original"))
    assert store.check().ok and store.check().snapshots_checked == 1
    (store.snapshots.path(chain_id) / "f").write_text("tampered")
    report = store.check()
    assert [(p.kind, p.subject) for p in report.problems] == [("corrupt-snapshot", chain_id)]


def test_gc_removes_unreferenced_snapshots_but_not_leased_ones(store: Store, kit: Any) -> None:
    leased = add_snapshot(store, kit, None, lambda fs: (fs / "f").write_text("kept"))
    loose = add_snapshot(store, kit, None, lambda fs: (fs / "f").write_text("dropped"))
    with store.lease([leased]):
        report = store.gc()
        assert report.removed_snapshots == (loose,)
        assert store.snapshots.chain_ids() == [leased]
    assert store.gc().removed_snapshots == (leased,)
    assert list((store.root / "snapshots").iterdir()) == []


def test_gc_removes_half_built_snapshots_of_dead_builders_only(store: Store, kit: Any) -> None:
    crashed = store.root / "snapshots" / ".tmp-crashed"
    (crashed / "fs").mkdir(parents=True)
    (crashed / "fs" / "partial").write_text("half")
    with store.snapshots.workspace() as live:
        report = store.gc()
        assert report.removed_leftovers == (crashed,)
        assert live.is_dir() and not crashed.exists()
    assert not live.exists()


def test_gc_keeps_the_snapshots_of_stored_images(store: Store, kit: Any) -> None:
    image = kit.simple_image("running", nlayers=2)
    store.tag("docker.io/library/app:1", kit.put_image(store, image))
    chain: list[Digest] = []
    for diff_id in image.diff_ids:  # as if extracted: published under the image's chain IDs
        with store.snapshots.workspace() as work:
            chain.append(store.snapshots.adopt(work, diff_id, chain[-1] if chain else None))
    orphan = add_snapshot(store, kit, None, lambda fs: (fs / "f").write_text("orphan"))
    assert store.gc().removed_snapshots == (orphan,)
    assert sorted(store.snapshots.chain_ids()) == sorted(chain)
    store.untag("docker.io/library/app:1")
    assert sorted(store.gc().removed_snapshots) == sorted(chain)


def test_check_finds_a_missing_parent_snapshot(store: Store, kit: Any) -> None:
    bottom = add_snapshot(store, kit, None, lambda fs: (fs / "f").write_text("1"))
    top = add_snapshot(store, kit, bottom, lambda fs: (fs / "g").write_text("2"))
    store.snapshots.remove(bottom)
    report = store.check()
    assert [(p.kind, p.subject) for p in report.problems] == [("missing-snapshot", bottom)]
    assert top in report.missing[0].detail


def test_mounting_an_absent_snapshot_names_it(store: Store, kit: Any, mounted: Path) -> None:
    present = add_snapshot(store, kit, None, lambda fs: (fs / "f").write_text("1"))
    absent = kit.sha256(b"never extracted")
    with pytest.raises(NotFound, match=absent):
        store.snapshots.mount([present, absent], mounted)
    assert not os.path.ismount(mounted)


def _committed_snapshot(store: Store, build: Builder, epoch: int | None) -> Digest:
    """A snapshot published as a build step publishes it: its diff ID is the one
    ``commit_layer`` computed while writing the tree as a layer."""
    import io

    from pallet.layer.commit import commit_layer
    from pallet.store.snapshots import LayerOrigin

    with store.snapshots.workspace() as work:
        build(work / "fs")
        info = commit_layer(work / "fs", io.BytesIO(), overlay=True, source_date_epoch=epoch)
        return store.snapshots.adopt(work, info.diff_id, None, LayerOrigin(epoch))


def _dated_tree(fs: Path) -> None:
    (fs / "d").mkdir()
    (fs / "d" / "f").write_text("content\n")
    whiteout(fs / "gone")
    for path in (fs / "d" / "f", fs / "d", fs / "gone"):
        os.utime(path, (2_000_000_000, 2_000_000_000), follow_symlinks=False)


@pytest.mark.root  # the whiteout is a character device
@pytest.mark.parametrize("epoch", [None, 1_000_000_000])
def test_a_committed_snapshot_is_checked_against_its_diff_id(
    store: Store, kit: Any, epoch: int | None
) -> None:
    chain_id = _committed_snapshot(store, _dated_tree, epoch)
    info = store.snapshots.info(chain_id)
    assert info.tree_digest is None and info.committed is not None
    assert info.committed.source_date_epoch == epoch
    assert store.check().ok

    (store.snapshots.path(chain_id) / "d" / "f").write_text("tampered\n")
    report = store.check()
    assert [(p.kind, p.subject) for p in report.problems] == [("corrupt-snapshot", chain_id)]
    assert "modified since it was committed" in report.problems[0].detail


@pytest.mark.root
def test_a_committed_snapshot_with_a_changed_mode_or_an_extra_file_fails_check(
    store: Store, kit: Any
) -> None:
    first = _committed_snapshot(store, _dated_tree, None)
    os.chmod(store.snapshots.path(first) / "d" / "f", 0o755)
    second = _committed_snapshot(store, base_layer, None)
    (store.snapshots.path(second) / "d" / "extra").write_text("")
    subjects = sorted(p.subject for p in store.check().problems)
    assert subjects == sorted([first, second])


def test_a_meta_file_with_a_bad_epoch_is_refused_with_its_path(store: Store, kit: Any) -> None:
    import json

    chain_id = add_snapshot(store, kit, None, lambda fs: (fs / "f").write_text("1"))
    meta = store.snapshots.path(chain_id).parent / "meta.json"
    doc = json.loads(meta.read_text())
    del doc["treeDigest"]
    doc["committed"] = {"sourceDateEpoch": "soon"}
    meta.write_text(json.dumps(doc))
    report = store.check()
    assert [p.kind for p in report.problems] == ["corrupt-snapshot"]
    assert str(meta) in report.problems[0].detail
