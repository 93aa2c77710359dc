"""Names and references are checked against the spec's grammar before storage is touched."""

from __future__ import annotations

import pytest

from pallet.registry.names import is_valid_name, is_valid_tag
from pallet.registry.routing import BLOB, MANIFEST, TAGS, UPLOAD, UPLOAD_START, match


@pytest.mark.parametrize("name", ["a", "library/ubuntu", "a.b/c_d/e__f/g-h", "x--y", "0/1/2/3/4/5"])
def test_valid_names(name):
    assert is_valid_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "../etc",
        "a/../b",
        "a//b",
        "/abs",
        "a/",
        "a_",
        "-a",
        "a..b",
        "a/./b",
        "a\x00b",
        "a" * 256,
        "a___b",
        "a b",
    ],
)
def test_invalid_names(name):
    assert not is_valid_name(name)


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A-b_c.d", "a" * 128])
def test_valid_tags(tag):
    assert is_valid_tag(tag)


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a" * 129, "a/b", "a:b", "a b"])
def test_invalid_tags(tag):
    assert not is_valid_tag(tag)


def test_routes_are_matched_from_the_end():
    assert match("a/blobs/b/manifests/latest") == match("a/blobs/b/manifests/latest")
    assert match("a/blobs/b/manifests/latest").kind == MANIFEST
    assert match("a/blobs/b/manifests/latest").name == "a/blobs/b"
    assert match("x/y/tags/list").kind == TAGS
    assert match("x/blobs/uploads/").kind == UPLOAD_START
    assert match("x/blobs/uploads/123").kind == UPLOAD
    assert match("x/blobs/sha256:abc").kind == BLOB
    assert match("x/nothing") is None


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../../etc/passwd/manifests/latest",
        "/v2/a/%2e%2e/b/manifests/latest",
        "/v2/UPPER/manifests/latest",
        "/v2/a%00b/blobs/uploads/",
        "/v2/-a/tags/list",
    ],
)
def test_bad_names_get_name_invalid(client, path):
    method = "POST" if path.endswith("uploads/") else "GET"
    r = client.request(method, path)
    assert r.status in (400, 404)
    if r.status == 400:
        assert r.error_codes == ["NAME_INVALID"]


def test_traversal_in_digest_is_refused(client):
    r = client.request("GET", "/v2/a/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd")
    assert r.status in (400, 404)
    assert b"root:" not in r.body


def test_unknown_route_and_wrong_method(client):
    r = client.request("GET", "/v2/a/b/nonsense")
    assert r.status == 404
    r = client.request("POST", "/v2/a/manifests/latest")
    assert r.status == 405 and r.error_codes == ["UNSUPPORTED"]
    assert client.request("PATCH", "/v2/_catalog").status == 405


def test_read_only_mode_refuses_writes_and_serves_reads(make_registry, make_client, tmp_path):
    writer = make_registry()
    client = make_client(writer.url)
    digest = client.push_image("ro/repo", "v1", [b"content"])
    data_dir = writer.config.data
    writer.stop()
    from pallet.registry.config import RegistryConfig
    from pallet.registry.server import ThreadedRegistry

    config = RegistryConfig(addr="127.0.0.1:0", data=data_dir, read_only=True, access_log=False)
    with ThreadedRegistry(config) as reader:
        ro = make_client(reader.url)
        assert (
            ro.request("GET", "/v2/ro/repo/manifests/v1").header("Docker-Content-Digest") == digest
        )
        r = ro.request("POST", "/v2/ro/repo/blobs/uploads/")
        assert r.status == 405 and r.error_codes == ["UNSUPPORTED"]
        assert ro.request("DELETE", f"/v2/ro/repo/manifests/{digest}").status == 405
        assert ro.request("GET", "/v2/ro/repo/manifests/v1").status == 200
