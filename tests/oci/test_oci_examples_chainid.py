"""The image spec's own examples, and its ChainID vectors."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from conformance_paths import CONFORMANCE
from pallet.errors import OCIError
from pallet.oci import mediatypes as mt
from pallet.oci.chainid import chain_id, chain_ids, chain_strings
from pallet.oci.config import ImageConfig
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.index import Index
from pallet.oci.jsonutil import load_object
from pallet.oci.layout import LAYOUT_FILE_BYTES, parse_layout_file
from pallet.oci.manifest import Manifest

IMAGE_SPEC = CONFORMANCE / "image-spec"
EXAMPLES: list[dict[str, Any]] = json.loads((IMAGE_SPEC / "examples" / "index.json").read_text())[
    "examples"
]
CHAIN_CASES: list[dict[str, Any]] = json.loads((IMAGE_SPEC / "chainid.json").read_text())["cases"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e["file"])
def test_spec_example_is_accepted(example: dict[str, Any]) -> None:
    assert example["expected_valid"] is True
    data = (IMAGE_SPEC / "examples" / example["file"]).read_bytes()
    media_type = example["media_type"]
    if media_type == mt.OCI_DESCRIPTOR:
        Descriptor.from_json(load_object(data, "descriptor"))
    elif media_type == mt.OCI_MANIFEST:
        assert Manifest.from_bytes(data).raw == data
    elif media_type == mt.OCI_INDEX:
        assert Index.from_bytes(data).raw == data
    elif media_type == mt.OCI_CONFIG:
        assert ImageConfig.from_bytes(data).to_bytes() == data
    elif media_type == mt.OCI_LAYOUT_HEADER:
        assert parse_layout_file(data) == "1.0.0"
    else:
        pytest.fail(f"unexpected media type {media_type}")


def test_empty_config_descriptor_embeds_its_data() -> None:
    data = (IMAGE_SPEC / "examples" / "manifest-02-empty-config.json").read_bytes()
    desc = Descriptor.from_json(load_object(data, "descriptor"))
    assert desc.data == mt.EMPTY_JSON
    assert desc == Descriptor.of_bytes(mt.OCI_EMPTY, mt.EMPTY_JSON, embed=True)


def test_layout_file_bytes() -> None:
    assert json.loads(LAYOUT_FILE_BYTES) == {"imageLayoutVersion": "1.0.0"}
    with pytest.raises(OCIError, match="imageLayoutVersion"):
        parse_layout_file(b'{"imageLayoutVersion": "2.0.0"}')


@pytest.mark.parametrize("case", CHAIN_CASES, ids=lambda c: c["name"])
def test_chain_id_vectors(case: dict[str, Any]) -> None:
    assert chain_strings(case["diff_ids"]) == case["chain_ids"]


def test_chain_ids_of_real_digests() -> None:
    layers = [Digest.from_bytes(bytes([i])) for i in range(3)]
    second = "sha256:" + hashlib.sha256(f"{layers[0]} {layers[1]}".encode()).hexdigest()
    third = "sha256:" + hashlib.sha256(f"{second} {layers[2]}".encode()).hexdigest()
    assert chain_ids(layers) == [layers[0], second, third]
    assert chain_id(layers) == third
    assert chain_id(layers[:1]) == layers[0]


def test_chain_id_refuses_bad_input() -> None:
    with pytest.raises(OCIError, match="without layers"):
        chain_id([])
    with pytest.raises(OCIError, match="invalid sha256 digest"):
        chain_ids(["sha256:a"])


@pytest.mark.parametrize("size", [0, 1, 64, (256 << 10) - 1, 256 << 10, (256 << 10) + 1, 1 << 20])
def test_digest_of_bytes_is_sha256_on_both_sides_of_the_small_input_path(size: int) -> None:
    """Small inputs hash without OpenSSL (sha256_hex), large ones through hashlib: the
    digest is the same either way."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert Digest.from_bytes(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert Digest.from_bytes(data, "sha512") == "sha512:" + hashlib.sha512(data).hexdigest()
