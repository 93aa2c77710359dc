"""The store is an OCI image layout that skopeo and umoci read (and skopeo writes)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from pallet.store import Store

NAME = "docker.io/library/busybox:latest"


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed; the interop promise cannot be checked")


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{argv[0]} failed: {proc.stderr}"
    return proc.stdout


@pytest.mark.peer
def test_skopeo_inspects_a_tag_by_its_full_reference(store: Store, kit: Any) -> None:
    _need("skopeo")
    image = kit.simple_image("peer")
    store.tag(NAME, kit.put_image(store, image))
    store.add_image(kit.put_image(store, kit.simple_image("dangling")))
    info = json.loads(_run("skopeo", "inspect", f"oci:{store.root}:{NAME}"))
    assert info["Digest"] == image.descriptor.digest
    assert info["Layers"] == image.layer_digests
    assert info["Labels"] == {"label": "peer"}


@pytest.mark.peer
def test_umoci_lists_the_tags(store: Store, kit: Any) -> None:
    _need("umoci")
    desc = kit.put_image(store, kit.simple_image("peer"))
    store.tag(NAME, desc)
    store.tag("registry.example:5000/team/app:v1", desc)
    listed = _run("umoci", "ls", "--layout", str(store.root)).split()
    assert sorted(listed) == sorted([NAME, "registry.example:5000/team/app:v1"])
    _run("umoci", "stat", "--image", f"{store.root}:{NAME}")


@pytest.mark.peer
def test_what_skopeo_writes_into_the_store_reads_back(store: Store, kit: Any) -> None:
    _need("skopeo")
    image = kit.simple_image("copied")
    store.tag(NAME, kit.put_image(store, image))
    _run("skopeo", "copy", "--quiet", f"oci:{store.root}:{NAME}", f"oci:{store.root}:by-skopeo")
    assert store.resolve("by-skopeo").digest == image.descriptor.digest
    store.tag("docker.io/library/after:1", store.resolve("by-skopeo"))
    assert sorted(e.name or "" for e in store.images()) == [
        "by-skopeo",
        "docker.io/library/after:1",
        NAME,
    ]
    assert store.gc().removed_blobs == ()
    assert store.check().ok
