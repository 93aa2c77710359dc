"""OCI layout directories: read by name as containers/image does, written as skopeo does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance_paths import CONFORMANCE
from pallet.errors import DigestMismatch, NotFound, TransportError
from pallet.oci import mediatypes as mt
from pallet.transport.copy import copy
from pallet.transport.layout import DirFiles, LayoutDestination, LayoutSource

FIXTURES = CONFORMANCE / "misc/containers-image/oci-layout"


def open_layout(root: Path, ref: str | None) -> LayoutSource:
    return LayoutSource.open(DirFiles(root), ref, f"oci:{root}")


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("a", mt.OCI_INDEX),
        ("b", mt.OCI_MANIFEST),
        ("c", mt.DOCKER_MANIFEST_LIST),
        ("d", mt.DOCKER_MANIFEST),
    ],
)
def test_lookup_by_ref_name(name: str, media_type: str) -> None:
    source = open_layout(FIXTURES / "name_lookups", name)
    assert source.top.media_type == media_type
    assert source.top.digest.encoded == name * 64


def test_lookup_of_unknown_name_and_bad_entry() -> None:
    with pytest.raises(NotFound, match="this-does-not-exist"):
        open_layout(FIXTURES / "name_lookups", "this-does-not-exist")
    with pytest.raises(TransportError, match="x-completely-unknown"):
        open_layout(FIXTURES / "name_lookups", "invalid-mime")


def test_no_name_picks_the_only_image_and_refuses_ambiguity() -> None:
    source = open_layout(FIXTURES / "manifest", None)
    assert (
        source.top.digest
        == "sha256:84afb6189c4d69f2d040c5f1dc4e0a16fed9b539ce9cfb4ac2526ae4e0576cc0"
    )
    assert source.top.size == 496
    with pytest.raises(TransportError, match="2 images"):
        open_layout(FIXTURES / "two_images_manifest", None)


def test_copy_layout_to_layout_keeps_bytes_and_names_entry_as_given(
    tiny_layout, kit, tmp_path
) -> None:
    src_root, image = tiny_layout("v1")
    dst_root = tmp_path / "out"
    top = copy(open_layout(src_root, "v1"), LayoutDestination(dst_root, "mytag"))
    assert top.digest == image.manifest_digest
    assert kit.blob_files(dst_root) == kit.blob_files(src_root)
    index = json.loads((dst_root / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [
        "mytag"
    ]
    # the same name again replaces the entry instead of adding a second one
    other_root, other = tiny_layout("v1", tag="other")
    copy(open_layout(other_root, "v1"), LayoutDestination(dst_root, "mytag"))
    index = json.loads((dst_root / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [other.manifest_digest]


def test_corrupt_blob_fails_naming_it_and_commits_nothing(tiny_layout, kit, tmp_path) -> None:
    src_root, image = tiny_layout("v1")
    bad = kit.sha256(image.layers[1]).split(":")[1]
    (src_root / "blobs/sha256" / bad).write_bytes(
        image.layers[0][: len(image.layers[1])].ljust(len(image.layers[1]), b"x")
    )
    dst_root = tmp_path / "out"
    with pytest.raises(DigestMismatch, match=bad):
        copy(open_layout(src_root, "v1"), LayoutDestination(dst_root, "v1"))
    assert not (dst_root / "index.json").exists()
    assert bad not in kit.blob_files(dst_root)


def test_missing_blob_is_named(tiny_layout, kit, tmp_path) -> None:
    src_root, image = tiny_layout("v1")
    gone = kit.sha256(image.config).split(":")[1]
    (src_root / "blobs/sha256" / gone).unlink()
    with pytest.raises(NotFound, match=gone):
        copy(open_layout(src_root, "v1"), LayoutDestination(tmp_path / "out", "v1"))


@pytest.mark.peer
def test_skopeo_and_umoci_read_what_pallet_writes(tiny_layout, tmp_path) -> None:
    src_root, image = tiny_layout("v1")
    dst_root = tmp_path / "out"
    copy(open_layout(src_root, "v1"), LayoutDestination(dst_root, "mytag"))
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{dst_root}:mytag"], capture_output=True, check=True
    )
    assert out.stdout == image.manifest
    if shutil.which("umoci"):
        listed = subprocess.run(
            ["umoci", "ls", "--layout", str(dst_root)], capture_output=True, text=True, check=True
        )
        assert listed.stdout.split() == ["mytag"]


@pytest.mark.peer
def test_pallet_reads_what_skopeo_writes(tiny_layout, tmp_path) -> None:
    src_root, image = tiny_layout("v1")
    skopeo_root = tmp_path / "skopeo"
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{src_root}:v1", f"oci:{skopeo_root}:copied"],
        check=True,
        capture_output=True,
    )
    top = copy(open_layout(skopeo_root, "copied"), LayoutDestination(tmp_path / "again", "x"))
    assert top.digest == image.manifest_digest
