"""Documents pallet builds validate against the image spec's own JSON schemas."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from conformance_paths import CONFORMANCE
from pallet.oci import mediatypes as mt
from pallet.oci.config import ImageConfig, history_entry
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.index import Index
from pallet.oci.layout import LAYOUT_FILE_BYTES
from pallet.oci.manifest import Manifest
from pallet.oci.platform import Platform

SCHEMA_DIR = CONFORMANCE / "image-spec/schema"
# Alias URLs from upstream schema/schema.go (see image-spec/FORMAT.md).
ALIASES = {
    "config-schema.json": ["https://opencontainers.org/schema/image/config"],
    "content-descriptor.json": [
        "https://opencontainers.org/schema/descriptor",
        "https://opencontainers.org/schema/image/content-descriptor.json",
    ],
    "defs-descriptor.json": [
        "https://opencontainers.org/schema/image/descriptor/mediaType",
        "https://opencontainers.org/schema/defs-descriptor.json",
        "https://opencontainers.org/schema/image/defs-descriptor.json",
    ],
    "defs.json": [
        "https://opencontainers.org/schema/defs.json",
        "https://opencontainers.org/schema/image/defs.json",
        "https://opencontainers.org/schema/image/descriptor/defs.json",
    ],
    "image-index-schema.json": ["https://opencontainers.org/schema/image/index"],
    "image-layout-schema.json": ["https://opencontainers.org/schema/image/layout"],
    "image-manifest-schema.json": ["https://opencontainers.org/schema/image/manifest"],
}
SCHEMA_FOR = {
    mt.OCI_MANIFEST: "image-manifest-schema.json",
    mt.OCI_INDEX: "image-index-schema.json",
    mt.OCI_CONFIG: "config-schema.json",
    mt.OCI_LAYOUT_HEADER: "image-layout-schema.json",
}


def _registry() -> Registry:  # type: ignore[type-arg]
    registry: Registry = Registry()  # type: ignore[type-arg]
    for name, aliases in ALIASES.items():
        resource = DRAFT4.create_resource(json.loads((SCHEMA_DIR / name).read_text()))
        for uri in [name, *aliases]:
            registry = registry.with_resource(uri, resource)
    return registry


REGISTRY = _registry()
LAYER = Descriptor.of_bytes(mt.OCI_LAYER_GZIP, b"layer")


def validate(media_type: str, data: bytes) -> None:
    schema = json.loads((SCHEMA_DIR / SCHEMA_FOR[media_type]).read_text())
    validator = Draft4Validator(
        schema, registry=REGISTRY, format_checker=Draft4Validator.FORMAT_CHECKER
    )
    errors = sorted(str(e.message) for e in validator.iter_errors(json.loads(data)))
    assert errors == []


def test_validator_refuses_a_bad_document() -> None:
    # Guard: the schema machinery is live, so the passes below mean something.
    with pytest.raises(AssertionError):
        validate(mt.OCI_MANIFEST, b'{"schemaVersion": 3, "config": {}, "layers": []}')
    # A flaw only a $ref'd definition catches: references resolve.
    bad_layer = {**LAYER.to_json(), "digest": "sha256:UPPER!"}
    doc = {"schemaVersion": 2, "config": LAYER.to_json(), "layers": [bad_layer]}
    with pytest.raises(AssertionError):
        validate(mt.OCI_MANIFEST, json.dumps(doc).encode())


def built_config() -> ImageConfig:
    return (
        ImageConfig.new(Platform("linux", "arm", "v7"), created="2024-01-01T00:00:00Z")
        .with_config(
            env=("PATH=/bin",),
            cmd=("sh",),
            entrypoint=None,
            labels={"a": "b"},
            exposed_ports=("80/tcp",),
            volumes=("/data",),
            working_dir="/",
            stop_signal="SIGTERM",
            user="1:1",
        )
        .with_layer(
            Digest.from_bytes(b"tar"), history_entry("ADD x /", created="2024-01-01T00:00:00Z")
        )
        .with_history(history_entry("CMD sh", empty_layer=True))
    )


def test_built_config_matches_schema() -> None:
    validate(mt.OCI_CONFIG, built_config().to_bytes())


def test_built_manifest_matches_schema() -> None:
    config = built_config()
    config_desc = Descriptor.of_bytes(mt.OCI_CONFIG, config.to_bytes())
    subject = Descriptor.of_bytes(mt.OCI_MANIFEST, b"{}")
    manifest = Manifest.build(
        config_desc,
        [LAYER.with_annotation("x", "y")],
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        subject=subject,
        artifact_type="application/vnd.example+type",
    )
    validate(mt.OCI_MANIFEST, manifest.raw)


def test_built_index_matches_schema() -> None:
    manifest = Manifest.build(Descriptor.of_bytes(mt.OCI_CONFIG, b"{}"), [LAYER])
    index = Index.build(
        [
            manifest.descriptor(platform=Platform("linux", "amd64", os_features=("sse4",))),
            manifest.descriptor(annotations={"org.opencontainers.image.ref.name": "v1"}),
        ],
        annotations={"k": "v"},
    )
    validate(mt.OCI_INDEX, index.raw)


def test_layout_file_matches_schema() -> None:
    validate(mt.OCI_LAYOUT_HEADER, LAYOUT_FILE_BYTES)
