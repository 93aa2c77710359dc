"""Real-world documents from containers/image, go-containerregistry and BuildKit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conformance_paths import CONFORMANCE
from pallet.errors import OCIError
from pallet.oci import mediatypes as mt
from pallet.oci.config import ImageConfig
from pallet.oci.descriptor import Descriptor
from pallet.oci.index import Index, NoMatchingPlatform, parse_manifest_or_index, select_platform
from pallet.oci.layout import find_ref, parse_index_file, parse_layout_file
from pallet.oci.manifest import Manifest
from pallet.oci.platform import Platform

MISC = CONFORMANCE / "misc"
MANIFESTS = MISC / "containers-image" / "manifest"
CONVERSION = MISC / "containers-image" / "image-conversion"
LAYOUTS = MISC / "go-containerregistry" / "layout"
GOLDENS = MISC / "buildkit-compat-goldens"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


PARSED = {
    "oci1.index.zstd-selection.json": (Index, mt.OCI_INDEX),
    "oci1.index.zstd-selection2.json": (Index, mt.OCI_INDEX),
    "oci1index.json": (Index, mt.OCI_INDEX),
    "ocilist-variants.json": (Index, mt.OCI_INDEX),
    "ociv1.image.index.json": (Index, mt.OCI_INDEX),
    "ociv1nomime.image.index.json": (Index, mt.OCI_INDEX),
    "schema2list-variants.json": (Index, mt.DOCKER_MANIFEST_LIST),
    "schema2list.json": (Index, mt.DOCKER_MANIFEST_LIST),
    "v2list.everything.json": (Index, mt.DOCKER_MANIFEST_LIST),
    "v2list.manifest.json": (Index, mt.DOCKER_MANIFEST_LIST),
    "ociv1.manifest.json": (Manifest, mt.OCI_MANIFEST),
    "ociv1nomime.manifest.json": (Manifest, mt.OCI_MANIFEST),
    "v2s2.manifest.json": (Manifest, mt.DOCKER_MANIFEST),
    # No mediaType: the Docker config media type tells it apart (as containers/image does).
    "v2s2nomime.manifest.json": (Manifest, mt.DOCKER_MANIFEST),
}
REFUSED = {
    "non-json.manifest.json": "not UTF-8",
    "unknown-version.manifest.json": "schemaVersion 99999",
    "v2s1.manifest.json": "schema 1",
    "v2s1-unsigned.manifest.json": "schema 1",
    "v2s1-invalid-signatures.manifest.json": "schema 1",
    "ociv1.artifact.json": "invalid digest ''",
    "ociv1nomime.artifact.json": "invalid digest ''",
    # Its entries embed data ("a") that does not hash to their placeholder digests.
    "oci1.index.everything.json": "embedded data does not match",
}


def test_every_containers_image_manifest_is_classified() -> None:
    assert {p.name for p in MANIFESTS.iterdir()} == set(PARSED) | set(REFUSED)


@pytest.mark.parametrize("name", sorted(PARSED))
def test_containers_image_manifest_parses(name: str) -> None:
    data = (MANIFESTS / name).read_bytes()
    kind, media_type = PARSED[name]
    parsed = parse_manifest_or_index(data)
    assert type(parsed) is kind
    assert parsed.media_type == media_type
    assert parsed.raw == data
    assert parsed.digest == sha256(data)
    assert parsed.size == len(data)
    # The specific parser agrees with the sniffing one.
    assert kind.from_bytes(data) == parsed


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_containers_image_manifest_refused(name: str) -> None:
    with pytest.raises(OCIError, match=REFUSED[name]):
        parse_manifest_or_index((MANIFESTS / name).read_bytes())


def test_v2s2_manifest_fields() -> None:
    manifest = Manifest.from_bytes((MANIFESTS / "v2s2.manifest.json").read_bytes())
    assert manifest.config == Descriptor(
        mt.DOCKER_CONFIG,
        "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",  # type: ignore[arg-type]
        7023,
    )
    assert [(layer.size, layer.media_type) for layer in manifest.layers] == [
        (32654, mt.DOCKER_LAYER_GZIP),
        (16724, mt.DOCKER_LAYER_GZIP),
        (73109, mt.DOCKER_LAYER_GZIP),
    ]
    assert manifest.subject is None and manifest.annotations == {}


def test_oci_index_fields() -> None:
    index = Index.from_bytes((MANIFESTS / "oci1index.json").read_bytes())
    assert index.annotations == {"com.example.key1": "value1", "com.example.key2": "value2"}
    assert [d.platform for d in index.manifests] == [
        Platform("linux", "ppc64le"),
        Platform("linux", "amd64", os_features=("sse4",)),
        Platform("linux", "arm64"),
    ]
    assert index.manifests[2].artifact_type == "application/x-tar"


def test_docker_list_platform_extras() -> None:
    index = Index.from_bytes((MANIFESTS / "v2list.everything.json").read_bytes())
    (entry,) = index.manifests
    assert entry.urls == ("https://some.example/manifest",)
    assert entry.platform == Platform("b", "a", "e", "c", ("d",))


@pytest.mark.parametrize(
    ("name", "want", "digest_prefix"),
    [
        ("schema2list.json", "linux/amd64", "030fcb92"),
        ("schema2list.json", "linux/arm/v5", "9142d97e"),
        ("schema2list.json", "linux/arm/v6", "b5dbad4b"),
        # No v7 image: the newest older variant that runs on v7.
        ("schema2list.json", "linux/arm/v7", "b5dbad4b"),
        ("schema2list.json", "linux/arm64", "dc472a59"),
        ("schema2list.json", "linux/arm64/v8", "dc472a59"),
        ("schema2list.json", "linux/386", "9a33b990"),
        ("schema2list.json", "linux/s390x", "e5aa1b0a"),
        # "arm" without variant means v7.
        ("schema2list-variants.json", "linux/arm/v7", "c84b0a3a"),
        ("schema2list-variants.json", "linux/arm/v8", "c84b0a3a"),
        ("schema2list-variants.json", "linux/arm/v6", "f365626a"),
        # Equal candidates: the first listed wins.
        ("ocilist-variants.json", "linux/arm/v7", "eeeeeeee"),
        ("ocilist-variants.json", "linux/arm/v6", "dddddddd"),
        ("oci1.index.zstd-selection.json", "linux/amd64", "aaaaaaaa"),
        ("oci1.index.zstd-selection.json", "linux/arm64", "cccccccc"),
    ],
)
def test_select_platform(name: str, want: str, digest_prefix: str) -> None:
    index = Index.from_bytes((MANIFESTS / name).read_bytes())
    chosen = select_platform(index, Platform.parse(want))
    assert chosen.digest.encoded.startswith(digest_prefix)


@pytest.mark.parametrize("want", ["linux/riscv64", "windows/amd64", "linux/arm/v5"])
def test_select_platform_names_what_is_missing(want: str) -> None:
    index = Index.from_bytes((MANIFESTS / "schema2list-variants.json").read_bytes())
    with pytest.raises(NoMatchingPlatform) as info:
        select_platform(index, Platform.parse(want))
    message = str(info.value)
    assert want in message and index.digest in message and "linux/amd64" in message


CONVERSION_REFUSED = {
    "oci1-to-schema1.json": "schema 1",
    "schema1-for-oci-config.json": "schema 1",
    "schema1.json": "schema 1",
    "schema2-to-schema1-by-docker.json": "schema 1",
    # Conversions from schema 1 do not know sizes and write -1.
    "schema1-to-oci1.json": "size must be at least 0",
    "schema1-to-schema2.json": "size must be at least 0",
}


@pytest.mark.parametrize("path", sorted(CONVERSION.glob("*.json")), ids=lambda p: p.name)
def test_conversion_goldens(path: Path) -> None:
    data = path.read_bytes()
    if path.name in CONVERSION_REFUSED:
        with pytest.raises(OCIError, match=CONVERSION_REFUSED[path.name]):
            parse_manifest_or_index(data)
    elif path.name.endswith(("-config.json", "-config-extra-fields.json")):
        config = ImageConfig.from_bytes(data)
        assert config.image_id == sha256(data)
        # Re-encoding keeps everything, including fields pallet does not model.
        assert json.loads(config.serialize()) == json.loads(data)
    else:
        manifest = parse_manifest_or_index(data)
        assert isinstance(manifest, Manifest)
        assert manifest.digest == sha256(data)


def _walk_layout(root: Path) -> list[str]:
    """Parse every manifest and index reachable from index.json; check each blob's digest."""
    seen: list[str] = []
    parse_layout_file((root / "oci-layout").read_bytes())
    pending = list(parse_index_file((root / "index.json").read_bytes()).manifests)
    while pending:
        desc = pending.pop(0)
        path = root / "blobs" / desc.digest.algorithm / desc.digest.encoded
        if not path.exists():
            continue
        data = path.read_bytes()
        desc.verify(data)
        seen.append(desc.digest)
        if not (mt.is_manifest(desc.media_type) or mt.is_index(desc.media_type)):
            continue
        parsed = parse_manifest_or_index(data, desc.media_type)
        if isinstance(parsed, Index):
            pending.extend(parsed.manifests)
        else:
            pending.extend(parsed.blobs())
            if mt.is_config(parsed.config.media_type):
                config_path = root / "blobs" / "sha256" / parsed.config.digest.encoded
                ImageConfig.from_bytes(config_path.read_bytes())
    return seen


@pytest.mark.parametrize(
    "name",
    ["test_index", "test_index_one_image", "test_index_media_type", "test_gc_index"],
)
def test_go_containerregistry_layouts(name: str) -> None:
    assert _walk_layout(LAYOUTS / name)


def test_layout_ref_names() -> None:
    index = parse_index_file((LAYOUTS / "test_index" / "index.json").read_bytes())
    assert index.media_type == mt.OCI_INDEX  # no mediaType field: index.json is an index
    (two,) = find_ref(index, "2")
    assert two.media_type == mt.OCI_DESCRIPTOR
    assert find_ref(index, "5") == []


GOLDEN_DIRS = sorted(p.parent for p in GOLDENS.glob("*/*/*/manifest.json"))


@pytest.mark.parametrize("case", GOLDEN_DIRS, ids=lambda p: str(p.relative_to(GOLDENS)))
def test_buildkit_goldens(case: Path) -> None:
    manifest = Manifest.from_bytes((case / "manifest.json").read_bytes())
    family = case.parent.parent.name
    if family == "image":
        assert manifest.media_type == mt.DOCKER_MANIFEST
    elif family == "oci":
        assert manifest.media_type == mt.OCI_MANIFEST
    config_file = case / "config.json"
    if not config_file.exists():
        config_file = GOLDENS / "common" / case.parent.name / case.name / "config.json"
    if config_file.exists():
        data = config_file.read_bytes()
        config = ImageConfig.from_bytes(data)
        assert manifest.config.digest == config.image_id == sha256(data)
        assert manifest.config.size == len(data)
        assert len(config.diff_ids) == len(manifest.layers)


@pytest.mark.parametrize(
    "path", sorted(GOLDENS.glob("*/*/*/config.json")), ids=lambda p: str(p.relative_to(GOLDENS))
)
def test_buildkit_configs_reencode_byte_for_byte(path: Path) -> None:
    # Go-style escaping (\u003e), Docker's field order and explicit nulls all survive.
    data = path.read_bytes()
    config = ImageConfig.from_bytes(data)
    assert config.replace().to_bytes() == data
