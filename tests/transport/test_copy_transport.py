"""copy(): platform resolution, --all, skipping present blobs, verification, recompression."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pallet.errors import DigestMismatch, NotFound, TransportError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.platform import Platform, host_platform
from pallet.transport.copy import VerifyingReader, copy, parse_image_manifest, parse_index_children
from pallet.transport.layout import DirFiles, LayoutDestination, LayoutSource


def source(root: Path, ref: str = "v1") -> LayoutSource:
    return LayoutSource.open(DirFiles(root), ref, f"oci:{root}")


def read_blob(src: LayoutSource, desc: Descriptor) -> bytes:
    with src.open_blob(desc) as f:
        return f.read()


@pytest.fixture
def index_layout(kit, tmp_path):
    root = tmp_path / "multi"
    multi = kit.make_index(root)
    kit.write_layout(
        root,
        [("v1", {"mediaType": mt.OCI_INDEX, "digest": multi.digest, "size": len(multi.index)})],
    )
    return root, multi


def test_index_resolves_to_the_host_platform(index_layout, kit, tmp_path) -> None:
    root, multi = index_layout
    out = tmp_path / "out"
    top = copy(source(root), LayoutDestination(out, "x"))
    assert top.digest == multi.host.manifest_digest
    other_blobs = {kit.sha256(b).split(":")[1] for b in (multi.other.config, *multi.other.layers)}
    assert not other_blobs & kit.blob_files(out)


def test_index_resolves_to_a_chosen_platform(index_layout, tmp_path) -> None:
    root, multi = index_layout
    arch = json.loads(multi.other.config)["architecture"]
    top = copy(
        source(root), LayoutDestination(tmp_path / "o", "x"), platform=Platform("linux", arch)
    )
    assert top.digest == multi.other.manifest_digest
    with pytest.raises(NotFound, match="windows/amd64"):
        copy(
            source(root),
            LayoutDestination(tmp_path / "o", "x"),
            platform=Platform("windows", "amd64"),
        )


def test_all_platforms_copies_the_index_byte_exact(index_layout, kit, tmp_path) -> None:
    root, multi = index_layout
    out = tmp_path / "out"
    top = copy(source(root), LayoutDestination(out, "x"), all_platforms=True)
    assert top.raw == multi.index
    assert kit.blob_files(out) == kit.blob_files(root)


def test_all_platforms_with_recompression_rewrites_children_and_index(
    index_layout, kit, tmp_path
) -> None:
    root, multi = index_layout
    out = tmp_path / "out"
    top = copy(
        source(root), LayoutDestination(out, "x"), all_platforms=True, dest_compression="zstd"
    )
    _, children = parse_index_children(top)
    back = source(out, "x")
    assert [c.platform for c in children] == [
        c.platform for c in parse_index_children(source(root).get_manifest())[1]
    ]
    for child, image in zip(children, (multi.other, multi.host), strict=True):
        manifest = parse_image_manifest(back.get_manifest(child.digest))
        assert read_blob(back, manifest.config) == image.config  # image ID unchanged
        assert {d.media_type for d in manifest.layers} == {mt.OCI_LAYER_ZSTD}


def test_recompress_then_back_gives_the_same_diff_ids(tiny_layout, tmp_path) -> None:
    import zstandard

    root, image = tiny_layout("v1")
    zst = tmp_path / "zst"
    top = copy(source(root), LayoutDestination(zst, "v1"), dest_compression="zstd")
    manifest = parse_image_manifest(top)
    assert manifest.config.digest == image.image_id
    assert json.loads(top.raw)["mediaType"] == mt.OCI_MANIFEST
    back = source(zst)
    tars = [
        zstandard.ZstdDecompressor().stream_reader(io.BytesIO(read_blob(back, d))).read()
        for d in manifest.layers
    ]
    assert tars == list(image.tars)
    plain = copy(source(zst), LayoutDestination(tmp_path / "plain", "v1"), dest_compression="none")
    assert [d.digest for d in parse_image_manifest(plain).layers] == image.diff_ids


def test_same_compression_is_a_byte_exact_copy(tiny_layout, tmp_path) -> None:
    root, image = tiny_layout("v1")
    top = copy(source(root), LayoutDestination(tmp_path / "o", "v1"), dest_compression="gzip")
    assert top.raw == image.manifest


def test_blobs_the_destination_has_are_skipped(tiny_layout, tmp_path) -> None:
    root, image = tiny_layout("v1")
    out = tmp_path / "out"
    first: list[tuple[str, str]] = []
    copy(
        source(root), LayoutDestination(out, "a"), progress=lambda e, d: first.append((e, d.digest))
    )
    second: list[tuple[str, str]] = []
    copy(
        source(root),
        LayoutDestination(out, "b"),
        progress=lambda e, d: second.append((e, d.digest)),
    )
    assert {e for e, _ in first} == {"copy", "done"}
    assert {e for e, _ in second} == {"skip"}
    assert len(second) == 1 + len(image.layers)


def test_layer_not_matching_the_config_diff_id_is_refused(tiny_layout, kit, tmp_path) -> None:
    import gzip

    root, image = tiny_layout("v1")
    # a well-formed gzip layer whose content is not the tar the config names
    other = gzip.compress(kit.layer_tar({"x": b"y"}), mtime=0)
    manifest = json.loads(image.manifest)
    manifest["layers"][0] = {
        "mediaType": mt.OCI_LAYER_GZIP,
        "digest": kit.sha256(other),
        "size": len(other),
    }
    raw = json.dumps(manifest).encode()
    kit.write_blob(root, other)
    kit.write_blob(root, raw)
    kit.write_layout(
        root, [("v1", {"mediaType": mt.OCI_MANIFEST, "digest": kit.sha256(raw), "size": len(raw)})]
    )
    with pytest.raises(DigestMismatch, match=image.diff_ids[0].split(":")[1]):
        copy(source(root), LayoutDestination(tmp_path / "o", "v1"), dest_compression="zstd")
    assert not (tmp_path / "o/index.json").exists()


def _desc(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", Digest.from_bytes(data), len(data))


@pytest.mark.parametrize(
    ("announced", "served", "message"),
    [
        (b"hello", b"hell", "truncated"),
        (b"hello", b"hello world", "more than 5 bytes"),
        (b"hello", b"jello", "hashes to"),
    ],
)
def test_verifying_reader(announced: bytes, served: bytes, message: str) -> None:
    reader = VerifyingReader(io.BytesIO(served), _desc(announced))
    with pytest.raises(DigestMismatch, match=message):
        while reader.read(2):
            pass


def test_verifying_reader_checks_on_the_last_byte() -> None:
    # a consumer reading exactly `size` bytes (tar writers do) still sees a bad digest
    reader = VerifyingReader(io.BytesIO(b"jello"), _desc(b"hello"))
    with pytest.raises(DigestMismatch):
        reader.read(5)
    good = VerifyingReader(io.BytesIO(b"hello"), _desc(b"hello"))
    assert good.read(5) == b"hello"
    good.finish()


def test_deeply_nested_indexes_are_refused(tiny_layout, kit, tmp_path) -> None:
    root, image = tiny_layout("v1")
    desc = image.descriptor({"os": "linux", "architecture": host_platform().architecture})
    for _ in range(12):
        raw = json.dumps(
            {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc]}
        ).encode()
        kit.write_blob(root, raw)
        desc = {
            "mediaType": mt.OCI_INDEX,
            "digest": kit.sha256(raw),
            "size": len(raw),
            "platform": desc["platform"],
        }
    kit.write_layout(root, [("deep", desc)])
    with pytest.raises(TransportError, match="nested more than"):
        copy(source(root, "deep"), LayoutDestination(tmp_path / "o", "x"))
