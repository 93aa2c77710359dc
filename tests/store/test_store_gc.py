"""gc keeps what images and leases reach and removes everything else; check finds damage."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pallet.oci.descriptor import Descriptor
from pallet.store import Store

NAME = "docker.io/library/app:1"


def test_gc_removes_unreachable_blobs_only(store: Store, kit: Any) -> None:
    tagged = kit.simple_image("tagged")
    dangling = kit.simple_image("dangling")
    store.tag(NAME, kit.put_image(store, tagged))
    store.add_image(kit.put_image(store, dangling))
    stray = store.write_blob(b"nobody points here")
    keep = {kit.sha256(b).encoded for b in [*tagged.blobs, *dangling.blobs]}

    report = store.gc()
    assert report.removed_blobs == (stray,)
    assert report.freed_bytes == len(b"nobody points here")
    assert kit.blob_files(store) == keep
    assert store.check().ok

    store.untag(NAME)  # the last name goes: the image goes with it
    report = store.gc()
    assert set(report.removed_blobs) == {kit.sha256(b) for b in tagged.blobs}
    assert kit.blob_files(store) == {kit.sha256(b).encoded for b in dangling.blobs}


def test_shared_layers_stay_while_any_image_uses_them(store: Store, kit: Any) -> None:
    base = kit.layer_tar({"base.txt": b"base\n"})
    one = kit.raw_image([base, kit.layer_tar({"one": b"1"})], "one")
    two = kit.raw_image([base, kit.layer_tar({"two": b"2"})], "two")
    store.tag("docker.io/library/one:1", kit.put_image(store, one))
    store.tag("docker.io/library/two:1", kit.put_image(store, two))
    assert one.layers[0] == two.layers[0]
    store.untag("docker.io/library/one:1")
    store.gc()
    assert store.has_blob(two.layer_digests[0])
    assert not store.has_blob(one.layer_digests[1])
    assert store.check().ok


def test_index_keeps_its_child_manifests(store: Store, kit: Any) -> None:
    amd, arm = kit.simple_image("amd64"), kit.simple_image("arm64")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": kit.OCI_INDEX,
            "manifests": [amd.descriptor.to_json(), arm.descriptor.to_json()],
        }
    ).encode()
    kit.put_image(store, amd)
    kit.put_image(store, arm)
    store.tag(NAME, Descriptor(kit.OCI_INDEX, store.write_blob(index), len(index)))
    assert store.gc().removed_blobs == ()
    assert len(kit.blob_files(store)) == 1 + len(amd.blobs) + len(arm.blobs)


def test_dry_run_reports_without_removing(store: Store, kit: Any) -> None:
    stray = store.write_blob(b"stray")
    report = store.gc(dry_run=True)
    assert report.dry_run and report.removed_blobs == (stray,)
    assert store.has_blob(stray)


def test_a_lease_protects_blobs_until_released(store: Store, kit: Any) -> None:
    image = kit.simple_image("pulling")
    with store.lease([image.descriptor.digest]) as lease:
        kit.put_image(store, image)  # blobs written, not yet tagged
        loose = store.write_blob(b"scratch")
        lease.add(loose)
        assert store.gc().removed_blobs == ()  # the manifest's config and layers too
        assert kit.blob_files(store) == {kit.sha256(b).encoded for b in [*image.blobs, b"scratch"]}
    assert set(store.gc().removed_blobs) == {kit.sha256(b) for b in [*image.blobs, b"scratch"]}


def test_an_expired_lease_protects_nothing(store: Store, kit: Any) -> None:
    blob = store.write_blob(b"abandoned by a crashed pull")
    store.lease([blob], ttl=-1)  # never released, already expired
    assert store.gc().removed_blobs == (blob,)


def test_lease_taken_before_the_blob_exists(store: Store, kit: Any) -> None:
    data = b"arrives later"
    with store.lease([kit.sha256(data)]):
        store.gc()
        store.write_blob(data)
        store.gc()
        assert store.has_blob(kit.sha256(data))


def test_check_reports_a_corrupt_and_a_missing_blob(store: Store, kit: Any) -> None:
    image = kit.simple_image("checked")
    store.tag(NAME, kit.put_image(store, image))
    assert store.check().ok and store.check().blobs_checked == 4

    layer0, layer1 = image.layer_digests
    path = store.blob_path(layer0)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    store.blob_path(layer1).unlink()

    report = store.check()
    assert not report.ok
    assert [p.subject for p in report.corrupt] == [layer0]
    assert [p.subject for p in report.missing] == [layer1]
    assert NAME in report.missing[0].detail
    assert layer0 in str(report.corrupt[0])


def test_check_reports_a_missing_manifest(store: Store, kit: Any) -> None:
    image = kit.simple_image("gone")
    store.tag(NAME, image.descriptor)  # tagged, but no blob was ever written
    report = store.check()
    assert [p.subject for p in report.missing] == [image.descriptor.digest]


def test_gc_removes_index_temp_files_of_dead_writers(store: Store, kit: Any) -> None:
    desc = kit.put_image(store, kit.simple_image("kept"))
    store.tag(NAME, desc)
    torn = store.root / ".index.json.x1y2.tmp"
    torn.write_text('{"schemaVersion": 2, "manif')  # a writer killed before its rename
    assert store.resolve(NAME) == store.images()[0].descriptor  # readers never see it
    assert torn in store.gc().removed_leftovers
    assert not torn.exists()
    assert store.resolve(NAME).digest == desc.digest


def test_check_accepts_what_may_legitimately_be_absent(store: Store, kit: Any) -> None:
    """Other platforms of a pulled index, foreign layers, a referrer's subject."""
    native, other = kit.simple_image("native"), kit.simple_image("other-platform")
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": kit.sha256(b"windows base layer"),
        "size": 18,
        "urls": ["https://example.invalid/layer"],
    }
    config = b'{"rootfs": {"type": "layers", "diff_ids": []}}'
    with_foreign = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": kit.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": store.write_blob(config),
                "size": len(config),
            },
            "layers": [foreign],
            "subject": other.descriptor.to_json(),
        }
    ).encode()
    children = [native.descriptor.to_json(), other.descriptor.to_json()]
    children.append(
        Descriptor(kit.OCI_MANIFEST, kit.sha256(with_foreign), len(with_foreign)).to_json()
    )
    index = json.dumps({"schemaVersion": 2, "mediaType": kit.OCI_INDEX, "manifests": children})
    kit.put_image(store, native)
    store.write_blob(with_foreign)
    raw = index.encode()
    store.tag(NAME, Descriptor(kit.OCI_INDEX, store.write_blob(raw), len(raw)))
    report = store.check()
    assert report.ok, report.problems
    assert store.gc().removed_blobs == ()


def test_a_lease_taken_by_another_process_is_honoured(store: Store, kit: Any) -> None:
    blob = store.write_blob(b"pulled elsewhere")
    code = (
        "import sys; from pathlib import Path; from pallet.store import Store; "
        "from pallet.oci.digest import Digest; "
        "Store.open(Path(sys.argv[1])).lease([Digest(sys.argv[2])], ttl=600)"
    )
    subprocess.run([sys.executable, "-c", code, str(store.root), blob], check=True)
    assert store.gc().removed_blobs == ()  # the lease outlives its (exited) process
    assert store.has_blob(blob)


def test_gc_running_during_pulls_never_breaks_a_tagged_image(store: Store, kit: Any) -> None:
    """Writers follow the protocol (lease, write, tag last); gc runs all the while."""
    images = [kit.simple_image(f"pull{i}") for i in range(12)]
    done = threading.Event()
    sweeps = 0

    def collector() -> None:
        nonlocal sweeps
        while not done.is_set():
            store.gc()
            sweeps += 1

    def pull(i: int) -> None:
        image = images[i]
        with store.lease([image.descriptor.digest, *map(kit.sha256, image.blobs)]):
            for blob in image.blobs:
                if not store.has_blob(kit.sha256(blob)):
                    store.write_blob(blob)
            store.tag(f"docker.io/library/pull:{i}", image.descriptor)

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(pull, range(len(images))))
    finally:
        done.set()
        gc_thread.join()
    assert sweeps > 0
    store.gc()
    assert store.check().ok
    for i, image in enumerate(images):
        assert store.image(f"pull:{i}").digest == image.descriptor.digest
        assert all(store.has_blob(kit.sha256(b)) for b in image.blobs)
