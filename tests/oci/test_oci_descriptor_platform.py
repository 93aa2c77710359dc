"""Digests, descriptors, media types and platforms."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pallet.errors import DigestMismatch, InvalidDigest, OCIError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest, is_digest
from pallet.oci.platform import Platform

HELLO256 = "sha256:" + hashlib.sha256(b"hello").hexdigest()
HELLO512 = "sha512:" + hashlib.sha512(b"hello").hexdigest()


def test_digest_of_bytes() -> None:
    assert Digest.from_bytes(b"hello") == HELLO256
    assert Digest.from_bytes(b"hello", "sha512") == HELLO512
    assert Digest(HELLO512).algorithm == "sha512"
    assert Digest(HELLO256).encoded == HELLO256[7:]
    Digest(HELLO256).verify(b"hello")
    with pytest.raises(DigestMismatch, match=HELLO256):
        Digest(HELLO256).verify(b"hellO")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sha256:" + "A" * 64, "lowercase hex"),
        ("sha256:" + "a" * 63, "64 lowercase hex"),
        ("sha512:" + "a" * 64, "128 lowercase hex"),
        ("md5:" + "a" * 32, "unsupported digest algorithm 'md5'"),
        ("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "unsupported"),
        ("SHA256:" + "a" * 64, "invalid digest"),
        (":abc", "invalid digest"),
        ("sha256", "invalid digest"),
        ("", "invalid digest"),
    ],
)
def test_digest_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidDigest, match=message):
        Digest(text)
    assert not is_digest(text)


def test_descriptor_json_round_trip() -> None:
    desc = Descriptor(
        mt.OCI_MANIFEST,
        Digest(HELLO256),
        5,
        annotations={"z": "1", "a": "2"},
        urls=("https://example.com/blob",),
        platform=Platform("linux", "arm64", "v8", "1.0", ("f",)),
        artifact_type="application/vnd.example+json",
        data=b"hello",
    )
    out = desc.to_json()
    assert list(out) == [
        "mediaType",
        "digest",
        "size",
        "urls",
        "annotations",
        "data",
        "platform",
        "artifactType",
    ]
    assert list(out["annotations"]) == ["a", "z"]
    assert out["data"] == base64.b64encode(b"hello").decode()
    assert Descriptor.from_json(out) == desc


@pytest.mark.parametrize(
    ("media_type", "valid"),
    [
        ("application/vnd.oci.image.manifest.v1+json", True),
        ("a" * 127 + "/" + "b" * 127, True),
        ("a" * 128 + "/b", False),
        ("a/" + "b" * 128, False),
        ("application", False),
        (".a/b", False),
        ("a/.b", False),
        ("a/b; charset=utf-8", False),
        ("", False),
    ],
)
def test_media_type_grammar(media_type: str, valid: bool) -> None:
    assert mt.is_valid_media_type(media_type) is valid
    if not valid:
        with pytest.raises(OCIError, match="mediaType"):
            Descriptor(media_type, Digest(HELLO256), 5)


def test_descriptor_embedded_data_must_match() -> None:
    doc = Descriptor.of_bytes("text/plain", b"hello", embed=True).to_json()
    doc["data"] = base64.b64encode(b"hellO").decode()
    with pytest.raises(OCIError, match="embedded data"):
        Descriptor.from_json(doc)
    doc["data"] = "aGVsbG8"  # unpadded
    with pytest.raises(OCIError, match="base64"):
        Descriptor.from_json(doc)


def test_descriptor_verify() -> None:
    desc = Descriptor.of_bytes("text/plain", b"hello")
    desc.verify(b"hello")
    with pytest.raises(DigestMismatch, match="5 bytes"):
        desc.verify(b"hello!")
    with pytest.raises(DigestMismatch):
        desc.verify(b"jello")


def test_media_type_conversions() -> None:
    assert mt.to_oci(mt.DOCKER_MANIFEST) == mt.OCI_MANIFEST
    assert mt.to_oci(mt.DOCKER_MANIFEST_LIST) == mt.OCI_INDEX
    assert mt.to_oci(mt.DOCKER_CONFIG) == mt.OCI_CONFIG
    assert mt.to_oci(mt.DOCKER_LAYER_GZIP) == mt.OCI_LAYER_GZIP
    assert mt.to_oci(mt.DOCKER_LAYER) == mt.OCI_LAYER
    assert mt.to_oci(mt.DOCKER_LAYER_FOREIGN) == mt.OCI_LAYER_NONDIST_GZIP
    assert mt.to_docker(mt.OCI_LAYER_NONDIST_GZIP) == mt.DOCKER_LAYER_FOREIGN
    assert mt.to_docker(mt.OCI_INDEX) == mt.DOCKER_MANIFEST_LIST
    with pytest.raises(ValueError, match="zstd"):
        mt.to_docker(mt.OCI_LAYER_ZSTD)
    assert mt.to_oci("application/x-custom") == "application/x-custom"
    assert mt.layer_compression(mt.OCI_LAYER_ZSTD) == "zstd"
    assert mt.base_type("Application/JSON; charset=utf-8") == "application/json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("LINUX/AMD64", Platform("linux", "amd64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/i386", Platform("linux", "386")),
        ("arm64", Platform("linux", "arm64")),
        ("windows/amd64", Platform("windows", "amd64")),
    ],
)
def test_platform_parse(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected


@pytest.mark.parametrize("text", ["", "linux/", "/amd64", "a/b/c/d", "linux/amd 64", "nonsense"])
def test_platform_parse_refused(text: str) -> None:
    with pytest.raises(OCIError, match="invalid platform"):
        Platform.parse(text)


@pytest.mark.parametrize(
    ("want", "have", "rank"),
    [
        ("linux/arm/v7", "linux/arm/v7", 0),
        ("linux/arm/v7", "linux/arm/v6", 1),
        ("linux/arm/v7", "linux/arm/v5", 2),
        ("linux/arm/v6", "linux/arm/v7", None),
        ("linux/arm/v8", "linux/arm", 1),
        ("linux/amd64", "linux/amd64", 0),
        ("linux/amd64", "linux/amd64/v2", None),
        ("linux/amd64/v3", "linux/amd64", 2),
        ("linux/amd64/v3", "linux/amd64/v2", 1),
        ("linux/arm64", "linux/arm64/v8", 0),
        ("linux/amd64", "linux/arm64", None),
        ("linux/amd64", "windows/amd64", None),
    ],
)
def test_platform_rank(want: str, have: str, rank: int | None) -> None:
    assert Platform.parse(want).rank(Platform.parse(have)) == rank
