"""Manifests and indexes: strict parsing of hostile bytes, deterministic building."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from pallet.errors import OCIError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import ANNOTATION_REF_NAME, Descriptor
from pallet.oci.index import Index, parse_manifest_or_index, select_platform
from pallet.oci.layout import find_ref, with_ref, without_ref
from pallet.oci.manifest import Manifest
from pallet.oci.platform import Platform

CONFIG = Descriptor.of_bytes(mt.OCI_CONFIG, b'{"architecture":"amd64","os":"linux"}')
LAYER = Descriptor.of_bytes(mt.OCI_LAYER_GZIP, b"layer-bytes")
D = "sha256:" + "a" * 64


def manifest_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": CONFIG.to_json(),
        "layers": [LAYER.to_json()],
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_digest_is_over_exact_bytes() -> None:
    # Same document, different whitespace: different digests, both kept exactly.
    compact = json.dumps(manifest_doc(), separators=(",", ":")).encode()
    pretty = json.dumps(manifest_doc(), indent=7).encode()
    a, b = Manifest.from_bytes(compact), Manifest.from_bytes(pretty)
    assert a.raw == compact and b.raw == pretty
    assert a.digest == "sha256:" + hashlib.sha256(compact).hexdigest()
    assert b.digest == "sha256:" + hashlib.sha256(pretty).hexdigest()
    assert a.digest != b.digest
    assert (a.config, a.layers) == (b.config, b.layers)
    assert a.descriptor() == Descriptor(mt.OCI_MANIFEST, a.digest, len(compact))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (manifest_doc(schemaVersion=...), "no schemaVersion"),
        (manifest_doc(schemaVersion=1), "schema 1"),
        (manifest_doc(schemaVersion=3), "unsupported schemaVersion 3"),
        (manifest_doc(schemaVersion="2"), "schemaVersion must be an integer"),
        (manifest_doc(schemaVersion=True), "schemaVersion must be an integer"),
        (manifest_doc(mediaType=mt.OCI_INDEX), "is an image index"),
        (manifest_doc(mediaType="text/plain"), "unsupported manifest media type"),
        (manifest_doc(mediaType="not a type"), "invalid manifest mediaType"),
        (manifest_doc(config=...), "no config"),
        (manifest_doc(config="x"), "config must be a JSON object"),
        (manifest_doc(layers=...), "no layers"),
        (manifest_doc(layers=None), "layers must be an array, not null"),
        (
            manifest_doc(layers=[{"mediaType": mt.OCI_LAYER, "size": 1}]),
            r"layers\[0\] has no digest",
        ),
        (manifest_doc(layers=[{**LAYER.to_json(), "size": 1.0}]), "size must be an integer"),
        (manifest_doc(layers=[{**LAYER.to_json(), "size": -1}]), "at least 0"),
        (manifest_doc(layers=[{**LAYER.to_json(), "size": 2**63}]), "out of range"),
        (manifest_doc(layers=[{**LAYER.to_json(), "urls": ["not a url"]}]), "invalid URL"),
        (manifest_doc(layers=[{**LAYER.to_json(), "annotations": {"a": 1}}]), "must be a string"),
        (manifest_doc(subject="nope"), "subject must be a JSON object"),
        (manifest_doc(artifactType="nope"), "invalid manifest artifactType"),
        (manifest_doc(annotations=[]), "annotations must be an object"),
        (manifest_doc(manifests=[]), "ambiguous"),
    ],
)
def test_manifest_refused(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(OCIError, match=message):
        Manifest.from_bytes(encode(doc))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'\xef\xbb\xbf{"schemaVersion": 2}', "not valid JSON"),
        (b'{"schemaVersion": 2, "schemaVersion": 2}', "duplicate key 'schemaVersion'"),
        (b'{"schemaVersion": NaN}', "not valid JSON"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
        (b" " * (4 * 1024 * 1024 + 1), "too large"),
    ],
)
def test_hostile_bytes_refused(data: bytes, message: str) -> None:
    with pytest.raises(OCIError, match=message):
        parse_manifest_or_index(data)


def test_announced_media_type() -> None:
    data = encode(manifest_doc(mediaType=...))
    assert Manifest.from_bytes(data).media_type == mt.OCI_MANIFEST
    # A Content-Type (with parameters) stands in for the missing field.
    docker = Manifest.from_bytes(data, mt.DOCKER_MANIFEST + "; charset=utf-8")
    assert docker.media_type == mt.DOCKER_MANIFEST
    # Generic types say nothing.
    assert Manifest.from_bytes(data, "application/json").media_type == mt.OCI_MANIFEST
    # Announced as an index but is a manifest: refused.
    with pytest.raises(OCIError, match="announced as"):
        Manifest.from_bytes(encode(manifest_doc()), mt.OCI_INDEX)
    with pytest.raises(OCIError, match="announced as"):
        parse_manifest_or_index(encode(manifest_doc()), mt.DOCKER_MANIFEST_LIST)


def test_build_is_deterministic_and_parses_back() -> None:
    subject = Descriptor(mt.OCI_MANIFEST, D, 10)  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {
        "annotations": {"b": "2", "a": "<&>"},
        "subject": subject,
        "artifact_type": "application/vnd.example+type",
    }
    one = Manifest.build(CONFIG, [LAYER], **kwargs)
    two = Manifest.build(CONFIG, [LAYER], **kwargs)
    assert one.raw == two.raw and one.digest == two.digest
    assert Manifest.from_bytes(one.raw) == one
    doc = json.loads(one.raw)
    assert list(doc) == [
        "schemaVersion",
        "mediaType",
        "artifactType",
        "config",
        "layers",
        "subject",
        "annotations",
    ]
    assert list(doc["annotations"]) == ["a", "b"]
    # Go's escaping, as containerd and BuildKit write it.
    assert b'"\\u003c\\u0026\\u003e"' in one.raw
    assert one.raw.startswith(b'{\n  "schemaVersion": 2,\n  "mediaType"')


def test_build_docker_manifest() -> None:
    config = Descriptor.of_bytes(mt.DOCKER_CONFIG, b"{}")
    layer = Descriptor.of_bytes(mt.DOCKER_LAYER_GZIP, b"x")
    manifest = Manifest.build(config, [layer], media_type=mt.DOCKER_MANIFEST)
    assert manifest.is_docker
    assert Manifest.from_bytes(manifest.raw, mt.DOCKER_MANIFEST) == manifest
    with pytest.raises(OCIError, match="no annotations"):
        Manifest.build(config, [layer], media_type=mt.DOCKER_MANIFEST, annotations={"a": "b"})
    with pytest.raises(OCIError, match="cannot build a manifest"):
        Manifest.build(config, [layer], media_type=mt.OCI_INDEX)


def test_zero_layer_image() -> None:
    manifest = Manifest.build(CONFIG, [])
    assert Manifest.from_bytes(manifest.raw).layers == ()
    assert manifest.blobs() == (CONFIG,)


def platformed(arch: str, variant: str = "", os_: str = "linux") -> Descriptor:
    return Descriptor(
        mt.OCI_MANIFEST,
        "sha256:" + hashlib.sha256(f"{os_}/{arch}/{variant}".encode()).hexdigest(),  # type: ignore[arg-type]
        100,
        platform=Platform(os_, arch, variant),
    )


def test_index_build_and_parse() -> None:
    entries = [platformed("amd64"), platformed("arm64", "v8"), platformed("arm", "v7")]
    index = Index.build(entries, annotations={"x": "y"})
    again = Index.from_bytes(index.raw)
    assert again == index
    assert again.manifests == tuple(entries)
    assert index.descriptor().media_type == mt.OCI_INDEX
    docker = Index.build(entries, media_type=mt.DOCKER_MANIFEST_LIST)
    assert parse_manifest_or_index(docker.raw) == docker


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"schemaVersion": 2, "manifests": "x"}, "manifests must be an array"),
        ({"schemaVersion": 2, "manifests": [{"mediaType": "", "digest": D, "size": 1}]}, "invalid"),
        (
            {"schemaVersion": 2, "manifests": [], "config": CONFIG.to_json()},
            "ambiguous",
        ),
        ({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "manifests": []}, "not an index"),
        (
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": mt.OCI_MANIFEST,
                        "digest": D,
                        "size": 1,
                        "platform": {"os": "linux"},
                    }
                ],
            },
            "architecture",
        ),
    ],
)
def test_index_refused(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(OCIError, match=message):
        Index.from_bytes(encode(doc))


def test_select_platform_prefers_exact_then_compatible() -> None:
    index = Index.build([platformed("arm", "v6"), platformed("arm", "v7"), platformed("amd64")])
    assert select_platform(index, Platform.parse("linux/arm/v7")).platform == Platform(
        "linux", "arm", "v7"
    )
    assert select_platform(index, Platform.parse("linux/arm/v6")).platform == Platform(
        "linux", "arm", "v6"
    )
    assert select_platform(index, Platform.parse("linux/x86_64")).platform == Platform(
        "linux", "amd64"
    )


def test_select_platform_skips_attestations_and_takes_unlabelled() -> None:
    attestation = Descriptor(
        mt.OCI_MANIFEST,
        D,  # type: ignore[arg-type]
        1,
        annotations={"vnd.docker.reference.type": "attestation-manifest"},
        platform=Platform("unknown", "unknown"),
    )
    bare = Descriptor(mt.OCI_MANIFEST, "sha256:" + "b" * 64, 2)  # type: ignore[arg-type]
    index = Index.build([attestation, bare])
    assert select_platform(index, Platform("linux", "amd64")) == bare
    assert index.images() == (bare,)


def test_layout_refs() -> None:
    a, b = platformed("amd64"), platformed("arm64")
    index = with_ref(Index.build([]), a, "v1")
    index = with_ref(index, b, "v2")
    index = with_ref(index, b, "v1")  # retag: v1 moves
    assert [d.digest for d in find_ref(index, "v1")] == [b.digest]
    assert [d.ref_name for d in index.manifests] == ["v2", "v1"]
    assert without_ref(index, "v2").manifests == (b.with_annotation(ANNOTATION_REF_NAME, "v1"),)
