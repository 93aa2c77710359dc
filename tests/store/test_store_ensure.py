"""Snapshots from real layer blobs: each layer extracted once, verified against its diff
ID, never visible half-done; the stack mounts as the image's filesystem."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pallet.errors import DigestMismatch
from pallet.oci.digest import Digest
from pallet.store import Store
from pallet.store import overlay as overlay_mod

NAME = "docker.io/library/app:1"


def two_layer_image(kit: Any) -> Any:
    base = kit.layer_tar(
        {"a.txt": b"a\n", "keep.txt": b"keep\n", "d": "dir", "d/x": b"x\n", "d/y": b"y\n"}
    )
    # OCI whiteouts: .wh.a.txt deletes a.txt; .wh..wh..opq hides the old contents of d.
    top = kit.layer_tar(
        {".wh.a.txt": b"", "d": "dir", "d/.wh..wh..opq": b"", "d/z": b"z\n", "keep.txt": b"new\n"}
    )
    return kit.raw_image([base, top], "whiteouts")


EXPECTED = {"d": "dir", "d/z": "z\n", "keep.txt": "new\n"}


def test_ensure_extracts_each_layer_once_under_its_chain_id(store: Store, kit: Any) -> None:
    image = two_layer_image(kit)
    store.tag(NAME, kit.put_image(store, image))
    stored = store.image(NAME)
    paths = store.snapshots.ensure(stored.manifest.layers, stored.diff_ids)
    assert paths == [store.snapshots.path(c) for c in stored.chain_ids]
    assert store.snapshots.info(stored.chain_ids[1]).parent == stored.chain_ids[0]
    assert store.snapshots.info(stored.chain_ids[1]).diff_id == image.diff_ids[1]
    inode = paths[0].stat().st_ino
    assert store.snapshots.ensure(stored.manifest.layers, stored.diff_ids) == paths
    assert paths[0].stat().st_ino == inode  # not extracted again
    assert (paths[0] / "d" / "x").read_text() == "x\n"
    assert store.check().ok and store.check().snapshots_checked == 2
    assert store.gc().removed_snapshots == ()


def test_a_layer_that_does_not_match_its_diff_id_leaves_no_snapshot(store: Store, kit: Any) -> None:
    image = kit.simple_image("lying")
    kit.put_image(store, image)
    wrong = [image.diff_ids[0], kit.sha256(b"something else")]
    with pytest.raises(DigestMismatch, match=image.layer_digests[1]):
        store.snapshots.ensure(image.layer_descriptors, wrong)
    assert store.snapshots.chain_ids() == [image.diff_ids[0]]  # the good layer stays
    assert [p.name for p in (store.root / "snapshots").iterdir()] == [image.diff_ids[0].encoded]


@pytest.mark.root
@pytest.mark.overlay
def test_a_two_layer_image_with_whiteouts_mounts_merged(
    store: Store, kit: Any, mounted: Path
) -> None:
    store.tag(NAME, kit.put_image(store, two_layer_image(kit)))
    stored = store.image(NAME)
    store.snapshots.ensure(stored.manifest.layers, stored.diff_ids)
    store.snapshots.mount(stored.chain_ids, mounted)
    try:
        assert kit.view(mounted) == EXPECTED
    finally:
        overlay_mod.unmount(mounted)


@pytest.mark.root
def test_the_copy_fallback_of_an_image_matches_the_mount(
    store: Store, kit: Any, tmp_path: Path
) -> None:
    store.tag(NAME, kit.put_image(store, two_layer_image(kit)))
    stored = store.image(NAME)
    store.snapshots.ensure(stored.manifest.layers, stored.diff_ids)
    store.snapshots.materialize(stored.chain_ids, tmp_path / "rootfs")
    assert kit.view(tmp_path / "rootfs") == EXPECTED


@pytest.mark.root
@pytest.mark.overlay
def test_a_120_layer_image_is_extracted_and_mounted(store: Store, kit: Any, mounted: Path) -> None:
    tars = [kit.layer_tar({f"layer-{i:03d}": str(i).encode()}) for i in range(120)]
    store.tag(NAME, kit.put_image(store, kit.raw_image(tars, "tall")))
    stored = store.image(NAME)
    with store.lease([stored.digest]):
        store.snapshots.ensure(stored.manifest.layers, stored.diff_ids)
        store.snapshots.mount(stored.chain_ids, mounted)
    try:
        assert sorted(os.listdir(mounted)) == [f"layer-{i:03d}" for i in range(120)]
    finally:
        overlay_mod.unmount(mounted)


def test_a_leased_image_keeps_its_snapshots_through_gc(store: Store, kit: Any) -> None:
    image = kit.simple_image("leased")
    desc = kit.put_image(store, image)
    chain: list[Digest]
    with store.lease([desc.digest]):
        store.snapshots.ensure(image.layer_descriptors, image.diff_ids)
        chain = store.snapshots.chain_ids()
        assert store.gc().removed_snapshots == ()
    assert sorted(store.gc().removed_snapshots) == sorted(chain)


def test_concurrent_ensures_of_one_image_agree(store: Store, kit: Any) -> None:
    image = two_layer_image(kit)
    kit.put_image(store, image)
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: store.snapshots.ensure(image.layer_descriptors, image.diff_ids), range(4)
            )
        )
    assert all(r == results[0] for r in results)
    assert sorted(p.name for p in (store.root / "snapshots").iterdir()) == sorted(
        p.parent.name for p in results[0]
    )
    assert store.check().ok


_CRASHING_BUILDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pallet.store import Store

    store = Store.open(Path(sys.argv[1]))
    with store.snapshots.workspace() as work:
        (work / "fs" / "half-extracted").write_text("partial")
        print(work, flush=True)
        sys.stdin.read()  # wait to be killed
    """
)


def test_a_builder_killed_midway_leaves_nothing_visible(store: Store) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_BUILDER, str(store.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    work = Path(child.stdout.readline().strip())
    assert (work / "fs" / "half-extracted").exists()
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdin.close()
    child.stdout.close()
    assert store.snapshots.chain_ids() == []
    assert store.check().ok
    assert store.gc().removed_leftovers == (work,)
    assert list((store.root / "snapshots").iterdir()) == []


def test_an_image_unpacks_flat_without_snapshots(store: Store, kit: Any, tmp_path: Path) -> None:
    """The rootless fallback: blobs unpacked in order, whiteouts deleting."""
    image = two_layer_image(kit)
    kit.put_image(store, image)
    store.snapshots.materialize_layers(image.layer_descriptors, image.diff_ids, tmp_path / "fs")
    assert kit.view(tmp_path / "fs") == EXPECTED
    assert store.snapshots.chain_ids() == []
    wrong = [image.diff_ids[0], kit.sha256(b"other")]
    with pytest.raises(DigestMismatch, match=image.layer_digests[1]):
        store.snapshots.materialize_layers(image.layer_descriptors, wrong, tmp_path / "again")
