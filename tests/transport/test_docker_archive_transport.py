"""docker-archives: the `docker save` formats read (20.10 layout, linked layers, Docker
25+ blobs, gzip layers) and the 20.10 format written."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from conformance_paths import CONFORMANCE
from pallet.errors import DigestMismatch, NotFound, TransportError
from pallet.oci import mediatypes as mt
from pallet.transport.copy import copy, parse_image_manifest
from pallet.transport.docker_archive import DockerArchive, DockerArchiveWriter
from pallet.transport.layout import DirFiles, LayoutDestination, LayoutSource

GCR = CONFORMANCE / "misc/go-containerregistry"
TARBALL = GCR / "tarball"


def same(a: str, b: str) -> bool:
    return a == b


def read_blob(source, desc) -> bytes:
    with source.open_blob(desc) as f:
        return f.read()


def test_image_id_is_the_config_file_digest() -> None:
    archive = DockerArchive.open_path(TARBALL / "test_image_1.tar")
    source = archive.source(archive.select(None, same))
    manifest = parse_image_manifest(source.get_manifest())
    assert (
        manifest.config.digest.encoded
        == "6e0b05049ed9c17d02e1a55e80d6599dbfcce7f4f4b022e3c673e685789c470e"
    )
    (layer,) = manifest.layers
    assert layer.media_type == mt.OCI_LAYER
    data = read_blob(source, layer)
    assert hashlib.sha256(data).hexdigest() == layer.digest.encoded
    archive.close()


def test_bundle_needs_a_name() -> None:
    archive = DockerArchive.open_path(TARBALL / "test_bundle.tar")
    with pytest.raises(TransportError, match="2 images"):
        archive.select(None, same)
    assert archive.images[archive.select("test_image_2", same)].repo_tags == ("test_image_2",)
    assert archive.select("@1", same) == 1
    with pytest.raises(NotFound):
        archive.select("@2", same)
    with pytest.raises(NotFound, match="nope"):
        archive.select("nope", same)
    archive.close()


def test_linked_layer_reads_the_real_content() -> None:
    archive = DockerArchive.open_path(TARBALL / "test_link.tar")
    source = archive.source(archive.select("bazel/v1/tarball:test_image_3", same))
    manifest = parse_image_manifest(source.get_manifest())
    wanted = "8897395fd26dc44ad0e2a834335b33198cb41ac4d98dfddf58eced3853fa7b17"
    layer = next(d for d in manifest.layers if d.digest.encoded == wanted)
    data = read_blob(source, layer)
    assert data and hashlib.sha256(data).hexdigest() == wanted
    archive.close()


@pytest.mark.parametrize(
    ("name", "message"),
    [("no_manifest.tar", "no manifest.json"), ("null_manifest.tar", "lists no images")],
)
def test_archives_without_images_are_refused(name: str, message: str) -> None:
    with pytest.raises(TransportError, match=message):
        DockerArchive.open_path(TARBALL / name)


@pytest.mark.parametrize(
    ("path", "ref"),
    [
        (TARBALL / "hello-world-v25.tar", None),
        (GCR / "mutate/whiteout_dir.tar", None),
        (TARBALL / "test_link.tar", "bazel/v1/tarball:test_image_3"),
    ],
)
def test_fixtures_copy_to_a_layout_with_config_kept(path: Path, ref: str | None, tmp_path) -> None:
    archive = DockerArchive.open_path(path)
    source = archive.source(archive.select(ref, same))
    config_name = archive.images[archive.select(ref, same)].config
    with archive.files.open(config_name) as f:
        config = f.read()
    top = copy(source, LayoutDestination(tmp_path / "out", "x"))
    back = LayoutSource.open(DirFiles(tmp_path / "out"), "x", "out")
    manifest = parse_image_manifest(back.get_manifest())
    assert read_blob(back, manifest.config) == config
    assert top.digest == back.get_manifest().digest
    archive.close()


def test_gzip_layers_are_kept_compressed_and_checked_against_diff_ids(tmp_path) -> None:
    archive = DockerArchive.open_path(GCR / "mutate/whiteout_dir.tar")
    source = archive.source(0)
    manifest = parse_image_manifest(source.get_manifest())
    assert {d.media_type for d in manifest.layers} == {mt.OCI_LAYER_GZIP}
    # recompressing to zstd decompresses each layer and checks it against its diff_id
    top = copy(source, LayoutDestination(tmp_path / "z", "z"), dest_compression="zstd")
    assert {d.media_type for d in parse_image_manifest(top).layers} == {mt.OCI_LAYER_ZSTD}
    archive.close()


def _layout_source(root: Path) -> LayoutSource:
    return LayoutSource.open(DirFiles(root), "v1", f"oci:{root}")


def test_write_then_read_back(tiny_layout, kit, tmp_path) -> None:
    a_root, a = tiny_layout("v1", tag="a")
    b_root, b = tiny_layout("v1", tag="b")
    out = tmp_path / "saved.tar"
    writer = DockerArchiveWriter(out)
    copy(_layout_source(a_root), writer.image(["a:1", "a:latest"]))
    copy(_layout_source(b_root), writer.image([]))
    writer.finish()

    with tarfile.open(out) as tar:
        entries = json.load(tar.extractfile("manifest.json"))
        repositories = json.load(tar.extractfile("repositories"))
        for entry, image in zip(entries, (a, b), strict=True):
            assert tar.extractfile(entry["Config"]).read() == image.config
            tars = [tar.extractfile(p).read() for p in entry["Layers"]]
            assert tars == list(image.tars)  # uncompressed, digest == diff_id
            for path in entry["Layers"]:
                assert tar.extractfile(str(Path(path).parent / "VERSION")).read() == b"1.0"
    assert [e["RepoTags"] for e in entries] == [["a:1", "a:latest"], []]
    assert repositories == {
        "a": {
            "1": kit.sha256(a.tars[-1]).split(":")[1],
            "latest": kit.sha256(a.tars[-1]).split(":")[1],
        }
    }

    archive = DockerArchive.open_path(out)
    for i, image in enumerate((a, b)):
        source = archive.source(i)
        manifest = parse_image_manifest(source.get_manifest())
        assert manifest.config.digest == image.image_id
        assert [d.digest for d in manifest.layers] == image.diff_ids
    archive.close()


def _tampered(src: Path, member: str, data: bytes, dst: Path) -> None:
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin:
            content = tin.extractfile(info).read() if info.isfile() else None
            if info.name == member:
                content = data
                info.size = len(data)
            tout.addfile(info, io.BytesIO(content) if content is not None else None)


def test_layer_not_matching_its_diff_id_fails(tmp_path) -> None:
    layer = "555b1001d54ed229f56990845856f080b0707348b26b3aa85aaf58d5570cdee0/layer.tar"
    bad = tmp_path / "bad.tar"
    with tarfile.open(TARBALL / "test_image_1.tar") as tar:
        original = tar.extractfile(layer).read()
    _tampered(TARBALL / "test_image_1.tar", layer, original[:-1] + b"x", bad)
    archive = DockerArchive.open_path(bad)
    source = archive.source(0)
    diff_id = parse_image_manifest(source.get_manifest()).layers[0].digest
    with pytest.raises(DigestMismatch, match=diff_id.encoded):
        copy(source, LayoutDestination(tmp_path / "out", "x"))
    assert not (tmp_path / "out/index.json").exists()
    archive.close()


def test_config_without_matching_diff_ids_is_refused(tmp_path) -> None:
    config = "6e0b05049ed9c17d02e1a55e80d6599dbfcce7f4f4b022e3c673e685789c470e.json"
    bad = tmp_path / "bad.tar"
    _tampered(TARBALL / "test_image_1.tar", config, b'{"rootfs": {"diff_ids": []}}', bad)
    archive = DockerArchive.open_path(bad)
    with pytest.raises(TransportError, match="1 layers but the config lists 0"):
        archive.source(0).get_manifest()
    archive.close()


def test_docker25_archive_keeps_the_manifest_docker_wrote(tmp_path) -> None:
    # hello-world-v25.tar ships its manifest blob but an index.json without entries (as
    # upstream trimmed it); list the manifest, as Docker 25 does, and it must be used as is
    manifest_hex = "411caf340c828657e915a83ed561a79d2b8150dabad4dc079d881cbfe6f86afe"
    source_tar = TARBALL / "hello-world-v25.tar"
    with tarfile.open(source_tar) as tar:
        raw = tar.extractfile(f"blobs/sha256/{manifest_hex}").read()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": mt.OCI_MANIFEST, "digest": f"sha256:{manifest_hex}", "size": len(raw)}
        ],
    }
    fixed = tmp_path / "v25.tar"
    _tampered(source_tar, "index.json", json.dumps(index).encode(), fixed)
    archive = DockerArchive.open_path(fixed)
    top = archive.source(0).get_manifest()
    assert top.raw == raw
    archive.close()
