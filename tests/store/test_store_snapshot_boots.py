"""Snapshots are published without a flush and marked with the boot that wrote them:
trusted in that boot, verified once in a later one (the machine went down meanwhile),
extracted again from their blob if the crash damaged them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pallet.errors import NotFound
from pallet.oci.digest import Digest
from pallet.store import Store
from pallet.store import snapshots as snapshots_mod
from pallet.store.snapshots import SnapshotStore

NAME = "docker.io/library/app:1"
EARLIER_BOOT = "00000000-0000-4000-8000-000000000000"


def stored_image(store: Store, kit: Any) -> Any:
    image = kit.raw_image(
        [
            kit.layer_tar({"etc/conf": b"setting=1\n" * 100, "bin/tool": b"\x7fELF" + b"x" * 4000}),
            kit.layer_tar({"app/data.txt": b"payload\n" * 50}),
        ],
        "boots",
    )
    store.tag(NAME, kit.put_image(store, image))
    return store.image(NAME)


def ensure(store: Store, stored: Any) -> list[Path]:
    return store.snapshots.ensure(stored.manifest.layers, stored.diff_ids)


def meta_path(store: Store, chain_id: Digest) -> Path:
    return store.snapshots.path(chain_id).parent / "meta.json"


def from_earlier_boot(store: Store, chain_id: Digest) -> None:
    """Rewrite a snapshot's info as an earlier boot would have left it: unflushed."""
    meta = meta_path(store, chain_id)
    doc = json.loads(meta.read_text())
    doc["unflushedBoot"] = EARLIER_BOOT
    meta.write_text(json.dumps(doc))


def reopened(store: Store) -> Store:
    """The store as a new process sees it (nothing remembered of this one's checks)."""
    return Store.open(store.root)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[Digest]:
    """Chain IDs whose trees were verified, in order."""
    seen: list[Digest] = []
    original = SnapshotStore.verify

    def counting(self: SnapshotStore, chain_id: Digest) -> str | None:
        seen.append(chain_id)
        return original(self, chain_id)

    monkeypatch.setattr(SnapshotStore, "verify", counting)
    return seen


def test_a_snapshot_is_published_marked_with_this_boot(store: Store, kit: Any) -> None:
    stored = stored_image(store, kit)
    ensure(store, stored)
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    for chain_id in stored.chain_ids:
        assert json.loads(meta_path(store, chain_id).read_text())["unflushedBoot"] == boot
        assert store.snapshots.info(chain_id).unflushed_boot == boot


def test_snapshots_of_this_boot_are_used_without_verification(
    store: Store, kit: Any, verifications: list[Digest]
) -> None:
    stored = stored_image(store, kit)
    paths = ensure(store, stored)
    inode = (paths[1] / "app" / "data.txt").stat().st_ino
    again = reopened(store)
    assert again.snapshots.ensure(stored.manifest.layers, stored.diff_ids) == paths
    assert again.snapshots.mount_lowerdirs(stored.chain_ids) == paths
    assert verifications == []
    assert (paths[1] / "app" / "data.txt").stat().st_ino == inode


def test_an_intact_snapshot_of_an_earlier_boot_is_verified_once_then_durable(
    store: Store, kit: Any, verifications: list[Digest]
) -> None:
    stored = stored_image(store, kit)
    paths = ensure(store, stored)
    inode = (paths[0] / "etc" / "conf").stat().st_ino
    from_earlier_boot(store, stored.chain_ids[0])

    after_reboot = reopened(store)
    assert after_reboot.snapshots.ensure(stored.manifest.layers, stored.diff_ids) == paths
    assert verifications == [stored.chain_ids[0]]
    assert (paths[0] / "etc" / "conf").stat().st_ino == inode  # kept, not extracted again
    doc = json.loads(meta_path(store, stored.chain_ids[0]).read_text())
    assert "unflushedBoot" not in doc  # what a new boot read back is on disk
    assert after_reboot.snapshots.info(stored.chain_ids[0]).unflushed_boot is None

    reopened(store).snapshots.ensure(stored.manifest.layers, stored.diff_ids)
    assert verifications == [stored.chain_ids[0]]


@pytest.mark.parametrize("damage", ["truncated", "missing", "empty-meta"])
def test_a_damaged_snapshot_of_an_earlier_boot_is_extracted_again(
    store: Store, kit: Any, damage: str
) -> None:
    stored = stored_image(store, kit)
    paths = ensure(store, stored)
    bottom = stored.chain_ids[0]
    expected = (paths[0] / "etc" / "conf").read_bytes()
    from_earlier_boot(store, bottom)
    if damage == "truncated":  # the crash kept the file's name but not all its data
        os.truncate(paths[0] / "etc" / "conf", 3)
    elif damage == "missing":
        (paths[0] / "bin" / "tool").unlink()
    else:  # even meta.json's data did not reach the disk
        meta_path(store, bottom).write_bytes(b"")

    after_reboot = reopened(store)
    assert after_reboot.snapshots.ensure(stored.manifest.layers, stored.diff_ids) == paths
    assert (paths[0] / "etc" / "conf").read_bytes() == expected
    assert (paths[0] / "bin" / "tool").read_bytes().startswith(b"\x7fELF")
    assert after_reboot.snapshots.info(bottom).trusted()
    assert after_reboot.check().ok
    assert [p.name for p in store.snapshots.dir.iterdir() if p.name.startswith(".")] == []


def test_mounting_a_damaged_snapshot_of_an_earlier_boot_refuses_it_until_ensured(
    store: Store, kit: Any
) -> None:
    stored = stored_image(store, kit)
    paths = ensure(store, stored)
    top = stored.chain_ids[1]
    os.truncate(paths[1] / "app" / "data.txt", 0)
    from_earlier_boot(store, top)
    after_reboot = reopened(store)
    with pytest.raises(NotFound, match=top):
        after_reboot.snapshots.mount_lowerdirs(stored.chain_ids)
    assert not after_reboot.snapshots.has(top)  # removed: it would only fail again
    after_reboot.snapshots.ensure(stored.manifest.layers, stored.diff_ids)
    assert after_reboot.snapshots.mount_lowerdirs(stored.chain_ids) == paths
    assert (paths[1] / "app" / "data.txt").read_bytes() == b"payload\n" * 50


def test_check_marks_intact_snapshots_of_an_earlier_boot_durable(store: Store, kit: Any) -> None:
    stored = stored_image(store, kit)
    paths = ensure(store, stored)
    for chain_id in stored.chain_ids:
        from_earlier_boot(store, chain_id)
    os.truncate(paths[1] / "app" / "data.txt", 1)
    report = reopened(store).check()
    assert [(p.kind, p.subject) for p in report.problems] == [
        ("corrupt-snapshot", stored.chain_ids[1])
    ]
    assert store.snapshots.info(stored.chain_ids[0]).unflushed_boot is None
    assert store.snapshots.info(stored.chain_ids[1]).unflushed_boot == EARLIER_BOOT


def test_without_a_boot_id_snapshots_are_flushed_and_durable(
    store: Store, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[Path] = []
    monkeypatch.setattr(snapshots_mod, "_boot_id", "")
    monkeypatch.setattr(snapshots_mod, "_sync_filesystem", flushed.append)
    stored = stored_image(store, kit)
    ensure(store, stored)
    assert flushed == [store.snapshots.dir]  # one flush for both layers
    for chain_id in stored.chain_ids:
        assert "unflushedBoot" not in json.loads(meta_path(store, chain_id).read_text())


def test_concurrent_users_of_a_damaged_snapshot_all_get_it_whole(store: Store, kit: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    stored = stored_image(store, kit)
    paths = ensure(store, stored)
    expected = (paths[0] / "etc" / "conf").read_bytes()
    os.truncate(paths[0] / "etc" / "conf", 0)
    from_earlier_boot(store, stored.chain_ids[0])

    def use(_: int) -> bytes:
        mine = reopened(store)  # each as its own process would: nothing shared but the disk
        lowers = mine.snapshots.ensure(stored.manifest.layers, stored.diff_ids)
        return (lowers[0] / "etc" / "conf").read_bytes()

    with ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(use, range(4)))
    assert seen == [expected] * 4
    assert store.check().ok
    assert [p.name for p in store.snapshots.dir.iterdir() if p.name.startswith(".")] == []
