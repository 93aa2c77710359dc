"""Blob endpoints against the distribution spec: every upload method, ranges, mounts, errors."""

from __future__ import annotations

import hashlib
import os

import pytest

REPO = "conformance/repo1"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def assert_blob(client, repo: str, data: bytes, digest: str) -> None:
    head = client.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert head.status == 200
    assert head.header("Content-Length") == str(len(data))
    assert head.header("Docker-Content-Digest") == digest
    got = client.request("GET", f"/v2/{repo}/blobs/{digest}")
    assert got.status == 200
    assert got.body == data
    assert got.header("Docker-Content-Digest") == digest


def start_session(client, repo: str = REPO) -> str:
    r = client.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status == 202
    assert r.header("Docker-Upload-UUID")
    location = r.header("Location")
    assert location and location.startswith(f"/v2/{repo}/blobs/uploads/")
    return location


def test_ping_answers_with_api_version(client):
    r = client.request("GET", "/v2/")
    assert r.status == 200
    assert r.header("Docker-Distribution-API-Version") == "registry/2.0"


def test_missing_blob_is_404_with_spec_error(client):
    r = client.request("GET", f"/v2/{REPO}/blobs/{sha256(b'nothing here')}")
    assert r.status == 404
    assert r.error_codes == ["BLOB_UNKNOWN"]
    assert r.header("Content-Type") == "application/json"
    assert client.request("HEAD", f"/v2/{REPO}/blobs/{sha256(b'x')}").status == 404


def test_monolithic_post_with_digest(client):
    data = os.urandom(512)
    r = client.request("POST", f"/v2/{REPO}/blobs/uploads/?digest={sha256(data)}", data)
    assert r.status == 201
    assert r.header("Location") == f"/v2/{REPO}/blobs/{sha256(data)}"
    assert r.header("Docker-Content-Digest") == sha256(data)
    assert_blob(client, REPO, data, sha256(data))


def test_post_then_put(client):
    data = os.urandom(512)
    location = start_session(client)
    r = client.request(
        "PUT",
        f"{location}?digest={sha256(data)}",
        data,
        {"Content-Type": "application/octet-stream"},
    )
    assert r.status == 201
    assert r.header("Location") == f"/v2/{REPO}/blobs/{sha256(data)}"
    assert_blob(client, REPO, data, sha256(data))


def test_chunked_upload_reports_progress_and_commits(client):
    data = os.urandom(3000)
    location = start_session(client)
    for start in range(0, 3000, 1000):
        chunk = data[start : start + 1000]
        r = client.request(
            "PATCH",
            location,
            chunk,
            {"Content-Range": f"{start}-{start + 999}", "Content-Type": "application/octet-stream"},
        )
        assert r.status == 202
        assert r.header("Range") == f"0-{start + 999}"
        assert r.header("Docker-Upload-UUID")
        location = r.header("Location")
    status = client.request("GET", location)
    assert status.status == 204
    assert status.header("Range") == "0-2999"
    r = client.request("PUT", f"{location}?digest={sha256(data)}")
    assert r.status == 201
    assert_blob(client, REPO, data, sha256(data))


def test_final_chunk_in_put(client):
    data = os.urandom(2000)
    location = start_session(client)
    r = client.request("PATCH", location, data[:1500], {"Content-Range": "0-1499"})
    assert r.status == 202
    r = client.request(
        "PUT",
        f"{r.header('Location')}?digest={sha256(data)}",
        data[1500:],
        {"Content-Range": "1500-1999"},
    )
    assert r.status == 201
    assert_blob(client, REPO, data, sha256(data))


def test_out_of_order_chunk_is_416_then_recovers(client):
    data = os.urandom(2000)
    location = start_session(client)
    assert client.request("PATCH", location, data[:1000], {"Content-Range": "0-999"}).status == 202
    bad = client.request("PATCH", location, data[1500:], {"Content-Range": "1500-1999"})
    assert bad.status == 416
    assert bad.header("Range") == "0-999"
    status = client.request("GET", location)
    assert status.status == 204 and status.header("Range") == "0-999"
    ok = client.request("PATCH", location, data[1000:], {"Content-Range": "1000-1999"})
    assert ok.status == 202
    assert client.request("PUT", f"{location}?digest={sha256(data)}").status == 201
    assert_blob(client, REPO, data, sha256(data))


def test_streamed_patch_without_content_range(client):
    data = os.urandom(70000)
    location = start_session(client)
    r = client.request("PATCH", location, data, {"Content-Type": "application/octet-stream"})
    assert r.status == 202
    assert r.header("Range") == f"0-{len(data) - 1}"
    assert client.request("PUT", f"{location}?digest={sha256(data)}").status == 201
    assert_blob(client, REPO, data, sha256(data))


def test_cancel_upload(client):
    location = start_session(client)
    assert client.request("PATCH", location, b"abc").status == 202
    assert client.request("DELETE", location).status == 204
    r = client.request("GET", location)
    assert r.status == 404
    assert r.error_codes == ["BLOB_UPLOAD_UNKNOWN"]


def test_unknown_upload_session(client):
    r = client.request("PATCH", f"/v2/{REPO}/blobs/uploads/not-a-session", b"x")
    assert r.status == 404 and r.error_codes == ["BLOB_UPLOAD_UNKNOWN"]


def test_upload_session_is_bound_to_its_repository(client):
    location = start_session(client, "a/one")
    stolen = location.replace("/v2/a/one/", "/v2/a/two/")
    assert client.request("GET", stolen).status == 404


def test_cross_repository_mount(client):
    data = os.urandom(512)
    client.push_blob(REPO, data)
    r = client.request(
        "POST", f"/v2/conformance/repo2/blobs/uploads/?mount={sha256(data)}&from={REPO}"
    )
    assert r.status == 201
    assert r.header("Location") == f"/v2/conformance/repo2/blobs/{sha256(data)}"
    assert_blob(client, "conformance/repo2", data, sha256(data))


def test_anonymous_mount_without_from(client):
    data = os.urandom(512)
    client.push_blob(REPO, data)
    r = client.request("POST", f"/v2/other/repo/blobs/uploads/?mount={sha256(data)}")
    assert r.status == 201
    assert_blob(client, "other/repo", data, sha256(data))


def test_mount_of_missing_blob_falls_back_to_session(client):
    r = client.request(
        "POST", f"/v2/conformance/repo2/blobs/uploads/?mount={sha256(b'absent')}&from={REPO}"
    )
    assert r.status == 202
    assert r.header(
        "Location",
    ) and r.header("Docker-Upload-UUID")
    assert client.request("GET", f"/v2/conformance/repo2/blobs/{sha256(b'absent')}").status == 404


def test_blob_is_per_repository(client):
    data = os.urandom(64)
    client.push_blob("a/one", data)
    r = client.request("GET", f"/v2/a/two/blobs/{sha256(data)}")
    assert r.status == 404 and r.error_codes == ["BLOB_UNKNOWN"]


def test_delete_blob(client):
    data = os.urandom(64)
    client.push_blob(REPO, data)
    assert client.request("DELETE", f"/v2/{REPO}/blobs/{sha256(data)}").status == 202
    assert client.request("GET", f"/v2/{REPO}/blobs/{sha256(data)}").status == 404
    assert client.request("DELETE", f"/v2/{REPO}/blobs/{sha256(data)}").status == 404


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=500-1499", 206, (500, 1499)),
        ("bytes=500-", 206, (500, 2047)),
        ("bytes=-500", 206, (1548, 2047)),
        ("bytes=2000-5000", 206, (2000, 2047)),
        ("bytes=500-0", 416, None),
        ("bytes=5000-10000", 416, None),
    ],
)
def test_range_requests(client, header, status, expected):
    data = os.urandom(2048)
    digest = client.push_blob(REPO, data)
    r = client.request("GET", f"/v2/{REPO}/blobs/{digest}", headers={"Range": header})
    assert r.status == status
    if expected is None:
        assert r.header("Content-Range") == "bytes */2048"
    else:
        start, end = expected
        assert r.body == data[start : end + 1]
        assert r.header("Content-Range") == f"bytes {start}-{end}/2048"


@pytest.mark.parametrize("data", [b"", b"{}"], ids=["empty", "emptyJSON"])
def test_empty_and_empty_json_blobs(client, data):
    digest = client.push_blob(REPO, data)
    assert_blob(client, REPO, data, digest)


def test_sha512_blobs(client):
    data = os.urandom(512)
    r = client.request("POST", f"/v2/{REPO}/blobs/uploads/?digest={sha512(data)}", data)
    assert r.status == 201
    assert_blob(client, REPO, data, sha512(data))
    other = os.urandom(700)
    location = start_session(client)
    assert client.request("PATCH", location, other[:300], {"Content-Range": "0-299"}).status == 202
    r = client.request("PUT", f"{location}?digest={sha512(other)}", other[300:])
    assert r.status == 201
    assert_blob(client, REPO, other, sha512(other))


def _wrong(data: bytes) -> str:
    return sha256(data + b"!")


def test_bad_digest_monolithic_is_refused_and_stored_nowhere(client, registry):
    data = os.urandom(512)
    r = client.request("POST", f"/v2/{REPO}/blobs/uploads/?digest={_wrong(data)}", data)
    assert r.status == 400 and r.error_codes == ["DIGEST_INVALID"]
    assert client.request("GET", f"/v2/{REPO}/blobs/{sha256(data)}").status == 404
    assert client.request("GET", f"/v2/{REPO}/blobs/{_wrong(data)}").status == 404
    stored = [p for p in (registry.config.data / "blobs").rglob("*") if p.is_file()]
    assert stored == []
    assert list((registry.config.data / "uploads").iterdir()) == []


def test_bad_digest_post_put_and_chunked(client, registry):
    data = os.urandom(512)
    location = start_session(client)
    r = client.request("PUT", f"{location}?digest={_wrong(data)}", data)
    assert r.status == 400 and r.error_codes == ["DIGEST_INVALID"]
    location = start_session(client)
    client.request("PATCH", location, data, {"Content-Range": f"0-{len(data) - 1}"})
    r = client.request("PUT", f"{location}?digest={_wrong(data)}")
    assert r.status == 400
    stored = [p for p in (registry.config.data / "blobs").rglob("*") if p.is_file()]
    assert stored == []
    assert list((registry.config.data / "uploads").iterdir()) == []


def test_malformed_digest_is_400(client):
    r = client.request("POST", f"/v2/{REPO}/blobs/uploads/?digest=sha256:xyz", b"x")
    assert r.status == 400 and r.error_codes == ["DIGEST_INVALID"]
    r = client.request("GET", f"/v2/{REPO}/blobs/md5:abc")
    assert r.status == 400 and r.error_codes == ["DIGEST_INVALID"]
    location = start_session(client)
    r = client.request("PUT", location)
    assert r.status == 400 and r.error_codes == ["DIGEST_INVALID"]


def test_blob_over_size_limit_is_refused(make_registry, make_client):
    from pallet.registry.config import LimitsConfig

    reg = make_registry(limits=LimitsConfig(max_blob_bytes=1000))
    client = make_client(reg.url)
    data = os.urandom(1001)
    r = client.request("POST", f"/v2/{REPO}/blobs/uploads/?digest={sha256(data)}", data)
    assert r.status == 413 and r.error_codes == ["SIZE_INVALID"]
    location = start_session(client)
    assert client.request("PATCH", location, data[:600]).status == 202
    r = client.request("PATCH", location, data[600:])
    assert r.status == 413
    # the refused chunk left the session where it was
    assert client.request("GET", location).header("Range") == "0-599"
    assert client.request("GET", f"/v2/{REPO}/blobs/{sha256(data)}").status == 404
