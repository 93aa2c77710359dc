"""Finding images as docker does: full or familiar name, manifest digest, image ID or a
unique prefix of one; multi-platform entries resolve to the host's manifest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pallet.errors import Conflict, NotFound
from pallet.oci.descriptor import Descriptor
from pallet.oci.platform import host_platform
from pallet.store import Store

BUSYBOX = "docker.io/library/busybox:latest"


def test_find_by_every_kind_of_name(store: Store, kit: Any) -> None:
    image = kit.simple_image("busybox")
    desc = kit.put_image(store, image)
    store.tag(BUSYBOX, desc)
    store.tag("docker.io/library/busybox:1.36", desc)
    image_id = image.config_digest
    for name in (
        BUSYBOX,
        "busybox",
        "busybox:latest",
        "library/busybox",
        "busybox:1.36",
        desc.digest,
        f"busybox@{desc.digest}",
        image_id,
        image_id.encoded,
        image_id.encoded[:12],
        f"sha256:{image_id.encoded[:5]}",
    ):
        found = store.image(name)
        assert found.descriptor.digest == desc.digest, name
        assert found.id == image_id
    found = store.image("busybox")
    assert found.names == ("docker.io/library/busybox:1.36", BUSYBOX)
    assert found.diff_ids == tuple(image.diff_ids)
    assert found.manifest.layers == tuple(image.layer_descriptors)
    assert store.resolve(image_id.encoded[:12]).digest == desc.digest


def test_unknown_names_are_not_found(store: Store, kit: Any) -> None:
    store.tag(BUSYBOX, kit.put_image(store, kit.simple_image("x")))
    for name in ("alpine", "docker.io/library/busybox:2", "f" * 64, "Not A Name!"):
        with pytest.raises(NotFound):
            store.image(name)


def test_an_ambiguous_id_prefix_is_refused(store: Store, kit: Any) -> None:
    by_first: dict[str, Any] = {}
    label = 0
    while True:  # 17 images always include two whose IDs share a first hex digit
        image = kit.simple_image(f"img{label}")
        label += 1
        first = image.config_digest.encoded[0]
        if first in by_first:
            break
        by_first[first] = image
    other = by_first[first]
    store.tag("docker.io/library/a:1", kit.put_image(store, image))
    store.tag("docker.io/library/b:1", kit.put_image(store, other))
    with pytest.raises(Conflict, match="ambiguous"):
        store.image(first)
    assert store.image(image.config_digest.encoded).id == image.config_digest


def test_a_multi_platform_entry_gives_the_host_image(store: Store, kit: Any) -> None:
    host = host_platform()
    native, foreign = kit.simple_image("native"), kit.simple_image("foreign")
    other_arch = "s390x" if host.architecture != "s390x" else "ppc64le"
    children = [
        {**foreign.descriptor.to_json(), "platform": {"os": "linux", "architecture": other_arch}},
        {**native.descriptor.to_json(), "platform": host.to_json()},
    ]
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": kit.OCI_INDEX, "manifests": children}
    ).encode()
    kit.put_image(store, native)
    index_desc = Descriptor(kit.OCI_INDEX, store.write_blob(index), len(index))
    store.tag(BUSYBOX, index_desc)
    found = store.image("busybox")
    assert found.descriptor.digest == native.descriptor.digest
    assert found.index is not None and found.index.digest == index_desc.digest
    assert found.names == (BUSYBOX,)
    assert store.load_manifest(index_desc).config.digest == native.config_digest


def test_a_multi_platform_entry_without_the_host_image_says_so(store: Store, kit: Any) -> None:
    host = host_platform()
    absent = kit.simple_image("not pulled")
    child = {**absent.descriptor.to_json(), "platform": host.to_json()}
    index = json.dumps({"schemaVersion": 2, "mediaType": kit.OCI_INDEX, "manifests": [child]})
    raw = index.encode()
    store.tag(BUSYBOX, Descriptor(kit.OCI_INDEX, store.write_blob(raw), len(raw)))
    with pytest.raises(NotFound, match=f"busybox:latest has no {host} manifest"):
        store.image("busybox")
