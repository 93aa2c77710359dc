"""OCI archives: a layout in a tar, written in one stream and read by offset."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from pallet.errors import DigestMismatch, NotFound, TransportError
from pallet.transport.copy import copy
from pallet.transport.layout import DirFiles, LayoutDestination, LayoutSource
from pallet.transport.oci_archive import (
    ArchiveIndex,
    OciArchiveWriter,
    SingleImageArchive,
    open_oci_archive_source,
)


def layout_source(root: Path, ref: str | None) -> LayoutSource:
    return LayoutSource.open(DirFiles(root), ref, f"oci:{root}")


def test_round_trip_keeps_digests_for_several_images(tiny_layout, kit, tmp_path) -> None:
    a_root, a = tiny_layout("v1", tag="a")
    b_root, b = tiny_layout("v1", tag="b")
    archive = tmp_path / "out.tar"
    writer = OciArchiveWriter(archive)
    copy(layout_source(a_root, "v1"), writer.image("a:1", "docker.io/library/a:1"))
    copy(layout_source(b_root, "v1"), writer.image("b:1"))
    writer.finish()

    with tarfile.open(archive) as tar:
        names = tar.getnames()
        index = json.load(tar.extractfile("index.json"))
    assert names[0] == "oci-layout"
    assert names[-1] == "index.json"
    assert index["manifests"][0]["annotations"] == {
        "org.opencontainers.image.ref.name": "a:1",
        "io.containerd.image.name": "docker.io/library/a:1",
    }
    for ref, image in (("a:1", a), ("b:1", b), ("docker.io/library/a:1", a)):
        back = tmp_path / f"back-{ref.replace('/', '_')}"
        top = copy(open_oci_archive_source(archive, ref), LayoutDestination(back, "x"))
        assert top.digest == image.manifest_digest
        assert kit.blob_files(back) >= {
            kit.sha256(x).split(":")[1] for x in (image.config, *image.layers)
        }


def test_no_name_needs_a_single_image(tiny_layout, tmp_path) -> None:
    root, image = tiny_layout("v1")
    archive = tmp_path / "one.tar"
    dest = SingleImageArchive(OciArchiveWriter(archive), None)
    copy(layout_source(root, "v1"), dest)
    dest.close()
    assert open_oci_archive_source(archive, None).get_manifest().digest == image.manifest_digest
    with pytest.raises(NotFound, match="nope"):
        open_oci_archive_source(archive, "nope")


def test_failed_write_leaves_no_file(tiny_layout, kit, tmp_path) -> None:
    root, image = tiny_layout("v1")
    layer = root / "blobs/sha256" / kit.sha256(image.layers[0]).split(":")[1]
    layer.write_bytes(b"\0" * len(image.layers[0]))
    dest = SingleImageArchive(OciArchiveWriter(tmp_path / "out.tar"), "v1")
    with pytest.raises(DigestMismatch):
        copy(layout_source(root, "v1"), dest)
    dest.close()
    assert list(tmp_path.glob("*out.tar*")) == []


def _archive_of(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root, arcname=".")
    return buf.getvalue()


def test_reads_compressed_and_piped_archives(tiny_layout, tmp_path) -> None:
    root, image = tiny_layout("v1")
    data = _archive_of(root)
    gz = tmp_path / "a.tar.gz"
    gz.write_bytes(gzip.compress(data))
    assert open_oci_archive_source(gz, "v1").get_manifest().digest == image.manifest_digest
    index = ArchiveIndex.from_stream(io.BytesIO(data), "stdin")
    assert LayoutSource.open(index, "v1", "stdin").get_manifest().digest == image.manifest_digest
    index.close()


@pytest.mark.parametrize("keep", [100, 2000, 5000])
def test_truncated_archive_is_refused(tiny_layout, tmp_path, keep: int) -> None:
    root, _ = tiny_layout("v1")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(_archive_of(root)[:keep])
    with pytest.raises(TransportError) as err:
        open_oci_archive_source(cut, "v1").get_manifest()
    assert "cut.tar" in str(err.value)


def test_garbage_is_not_an_archive(tmp_path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file at all" * 100)
    with pytest.raises(TransportError, match=r"junk\.tar"):
        open_oci_archive_source(junk, None)


def test_links_leaving_the_archive_are_refused(tmp_path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("index.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tar.addfile(info)
    path = tmp_path / "evil.tar"
    path.write_bytes(buf.getvalue())
    index = ArchiveIndex.open_path(path)
    with pytest.raises(TransportError, match="outside the archive"):
        index.resolve("index.json")
    index.close()


@pytest.mark.peer
def test_skopeo_reads_pallet_oci_archive(tiny_layout, tmp_path) -> None:
    root, image = tiny_layout("v1")
    archive = tmp_path / "out.tar"
    writer = OciArchiveWriter(archive)
    copy(layout_source(root, "v1"), writer.image("docker.io/library/tiny:1"))
    writer.finish()
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{archive}:docker.io/library/tiny:1"],
        capture_output=True,
        check=True,
    )
    assert out.stdout == image.manifest
    out = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--config",
            "--raw",
            f"oci-archive:{archive}:docker.io/library/tiny:1",
        ],
        capture_output=True,
        check=True,
    )
    assert out.stdout == image.config


@pytest.mark.peer
def test_pallet_reads_skopeo_oci_archive(tiny_layout, tmp_path) -> None:
    root, image = tiny_layout("v1")
    archive = tmp_path / "skopeo.tar"
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{root}:v1", f"oci-archive:{archive}:mytag"],
        check=True,
        capture_output=True,
    )
    top = copy(open_oci_archive_source(archive, "mytag"), LayoutDestination(tmp_path / "o", "x"))
    assert top.digest == image.manifest_digest
