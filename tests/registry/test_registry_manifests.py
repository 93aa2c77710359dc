"""Manifest, tag, catalog and referrers endpoints against the distribution spec."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

REPO = "conformance/repo1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def body_of(doc) -> bytes:
    return json.dumps(doc, indent=1).encode()


def push_parts(client, repo=REPO):
    layer, config = os.urandom(300), json.dumps({"os": "linux", "r": os.urandom(4).hex()}).encode()
    return (client.push_blob(repo, layer), len(layer)), (
        client.push_blob(repo, config),
        len(config),
    )


def push(client, ref, doc, media_type=None, repo=REPO):
    body = body_of(doc)
    r = client.push_manifest(repo, ref, body, media_type or doc.get("mediaType", OCI_MANIFEST))
    return r, body


def test_push_by_tag_and_pull_by_tag_and_digest(client):
    layer, config = push_parts(client)
    doc = client.image_manifest([layer], config)
    r, body = push(client, "v1", doc)
    assert r.status == 201
    digest = sha256(body)
    assert r.header("Docker-Content-Digest") == digest
    assert r.header("Location") == f"/v2/{REPO}/manifests/{digest}"
    for ref in ("v1", digest):
        got = client.request("GET", f"/v2/{REPO}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert got.status == 200
        assert got.body == body  # the exact bytes pushed
        assert got.header("Content-Type") == OCI_MANIFEST
        assert got.header("Docker-Content-Digest") == digest
        head = client.request("HEAD", f"/v2/{REPO}/manifests/{ref}")
        assert head.status == 200
        assert head.header("Content-Length") == str(len(body))
        assert head.header("Docker-Content-Digest") == digest
        assert head.body == b""


def test_push_by_digest(client):
    layer, config = push_parts(client)
    body = body_of(client.image_manifest([layer], config))
    r = client.push_manifest(REPO, sha256(body), body, OCI_MANIFEST)
    assert r.status == 201
    assert client.request("GET", f"/v2/{REPO}/manifests/{sha256(body)}").body == body


def test_push_by_digest_with_wrong_body_is_refused(client):
    layer, config = push_parts(client)
    body = body_of(client.image_manifest([layer], config))
    r = client.push_manifest(REPO, sha256(body + b" "), body, OCI_MANIFEST)
    assert r.status == 400 and r.error_codes == ["DIGEST_INVALID"]


def test_tag_query_parameters(client):
    layer, config = push_parts(client)
    body = body_of(client.image_manifest([layer], config))
    r = client.request(
        "PUT",
        f"/v2/{REPO}/manifests/{sha256(body)}?tag=a&tag=b",
        body,
        {"Content-Type": OCI_MANIFEST},
    )
    assert r.status == 201
    assert r.headers.get_all("OCI-Tag") == ["a", "b"]
    assert client.request("GET", f"/v2/{REPO}/tags/list").json()["tags"] == ["a", "b"]


def test_docker_schema2_manifest_and_list(client):
    layer, config = push_parts(client)
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": layer[0], "size": layer[1]}],
    }
    r, body = push(client, "docker", doc)
    assert r.status == 201
    lst = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": sha256(body),
                "size": len(body),
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    r, list_body = push(client, "list", lst)
    assert r.status == 201
    got = client.request("GET", f"/v2/{REPO}/manifests/list", headers={"Accept": DOCKER_LIST})
    assert got.header("Content-Type") == DOCKER_LIST and got.body == list_body


def test_accept_negotiation_refuses_unacceptable_type(client):
    layer, config = push_parts(client)
    push(client, "oci", client.image_manifest([layer], config))
    r = client.request("GET", f"/v2/{REPO}/manifests/oci", headers={"Accept": DOCKER_MANIFEST})
    assert r.status == 404 and r.error_codes == ["MANIFEST_UNKNOWN"]
    both = f"{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.9"
    assert (
        client.request("GET", f"/v2/{REPO}/manifests/oci", headers={"Accept": both}).status == 200
    )
    assert (
        client.request("GET", f"/v2/{REPO}/manifests/oci", headers={"Accept": "*/*"}).status == 200
    )


def test_index_and_nested_index(client):
    layer, config = push_parts(client)
    r, child = push(client, "child", client.image_manifest([layer], config))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(child), "size": len(child)}],
    }
    r, index_body = push(client, "index", index)
    assert r.status == 201
    nested = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_INDEX, "digest": sha256(index_body), "size": len(index_body)}
        ],
    }
    r, _ = push(client, "nested", nested)
    assert r.status == 201
    empty = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert push(client, "empty-index", empty)[0].status == 201


def test_index_with_unknown_child_is_refused(client):
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"nope"), "size": 4}],
    }
    r, _ = push(client, "bad", index)
    assert r.status == 400 and r.error_codes == ["MANIFEST_BLOB_UNKNOWN"]


def test_manifest_referencing_unknown_blob_is_refused(client):
    layer, config = push_parts(client)
    doc = client.image_manifest([layer, (sha256(b"missing layer"), 13)], config)
    r, body = push(client, "broken", doc)
    assert r.status == 400 and r.error_codes == ["MANIFEST_BLOB_UNKNOWN"]
    assert client.request("GET", f"/v2/{REPO}/manifests/broken").status == 404
    assert client.request("GET", f"/v2/{REPO}/manifests/{sha256(body)}").status == 404


def test_manifest_cannot_use_blobs_of_another_repository(client):
    layer, config = push_parts(client, "other/repo")
    r, _ = push(client, "x", client.image_manifest([layer], config))
    assert r.status == 400 and r.error_codes == ["MANIFEST_BLOB_UNKNOWN"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"schemaVersion": 1}',
        b'{"schemaVersion": 2, "layers": []}',
        b'{"schemaVersion": 2, "config": {"digest": "sha256:zz"}, "layers": []}',
    ],
    ids=["not-json", "array", "schema1", "no-config", "bad-descriptor"],
)
def test_invalid_manifests_are_400(client, body):
    r = client.push_manifest(REPO, "bad", body, OCI_MANIFEST)
    assert r.status == 400 and r.error_codes == ["MANIFEST_INVALID"]


def test_content_type_of_another_kind_is_refused(client):
    layer, config = push_parts(client)
    r, _ = push(client, "x", client.image_manifest([layer], config), media_type=OCI_INDEX)
    assert r.status == 400 and r.error_codes == ["MANIFEST_INVALID"]


def test_body_media_type_wins_over_content_type_flavour(client):
    layer, config = push_parts(client)
    r, body = push(client, "x", client.image_manifest([layer], config), media_type=DOCKER_MANIFEST)
    assert r.status == 201
    got = client.request("GET", f"/v2/{REPO}/manifests/x")
    assert got.header("Content-Type") == OCI_MANIFEST and got.body == body


def test_manifest_over_size_limit(make_registry, make_client):
    from pallet.registry.config import LimitsConfig

    client = make_client(make_registry(limits=LimitsConfig(max_manifest_bytes=200)).url)
    r = client.push_manifest(REPO, "big", b"{" + b" " * 300 + b"}", OCI_MANIFEST)
    assert r.status == 413 and r.error_codes == ["SIZE_INVALID"]


def test_artifacts_subject_and_referrers(client):
    layer, config = push_parts(client)
    r, subject_body = push(client, "subject", client.image_manifest([layer], config))
    subject = {"mediaType": OCI_MANIFEST, "digest": sha256(subject_body), "size": len(subject_body)}
    empty = client.push_blob(REPO, b"{}")
    sig_blob = client.push_blob(REPO, b"signature")
    artifact = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": EMPTY_JSON, "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": sig_blob, "size": 9}],
        "subject": subject,
        "annotations": {"org.example.kind": "sig"},
    }
    r, art_body = push(client, sha256(body_of(artifact)), artifact)
    assert r.status == 201
    assert r.header("OCI-Subject") == sha256(subject_body)
    sbom = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.sbom.config", "digest": empty, "size": 2},
        "layers": [],
        "subject": subject,
    }
    r, sbom_body = push(client, sha256(body_of(sbom)), sbom)
    assert r.status == 201
    idx_artifact = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [],
        "subject": subject,
    }
    r, idx_body = push(client, sha256(body_of(idx_artifact)), idx_artifact)
    assert r.status == 201 and r.header("OCI-Subject") == sha256(subject_body)

    r = client.request("GET", f"/v2/{REPO}/referrers/{sha256(subject_body)}")
    assert r.status == 200
    assert r.header("Content-Type") == OCI_INDEX
    index = r.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    by_digest = {m["digest"]: m for m in index["manifests"]}
    assert set(by_digest) == {sha256(art_body), sha256(sbom_body), sha256(idx_body)}
    assert by_digest[sha256(art_body)]["artifactType"] == "application/vnd.example.sig"
    assert by_digest[sha256(art_body)]["annotations"] == {"org.example.kind": "sig"}
    assert by_digest[sha256(art_body)]["size"] == len(art_body)
    # an image manifest without artifactType is listed under its config media type
    assert by_digest[sha256(sbom_body)]["artifactType"] == "application/vnd.example.sbom.config"

    r = client.request(
        "GET",
        f"/v2/{REPO}/referrers/{sha256(subject_body)}?artifactType=application/vnd.example.sig",
    )
    assert r.header("OCI-Filters-Applied") == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [sha256(art_body)]

    # deleting a referrer removes it from the list
    client.request("DELETE", f"/v2/{REPO}/manifests/{sha256(sbom_body)}")
    r = client.request("GET", f"/v2/{REPO}/referrers/{sha256(subject_body)}")
    assert sha256(sbom_body) not in {m["digest"] for m in r.json()["manifests"]}


def test_referrers_of_unknown_digest_is_empty_index(client):
    r = client.request("GET", f"/v2/never/pushed/referrers/{sha256(os.urandom(8))}")
    assert r.status == 200
    assert r.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    bad = client.request("GET", f"/v2/{REPO}/referrers/sha256:nothex")
    assert bad.status == 400 and bad.error_codes == ["DIGEST_INVALID"]


def test_missing_subject_is_accepted(client):
    empty = client.push_blob(REPO, b"{}")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.thing",
        "config": {"mediaType": EMPTY_JSON, "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(b"elsewhere"), "size": 9},
    }
    r, body = push(client, sha256(body_of(doc)), doc)
    assert r.status == 201 and r.header("OCI-Subject") == sha256(b"elsewhere")
    refs = client.request("GET", f"/v2/{REPO}/referrers/{sha256(b'elsewhere')}").json()
    assert [m["digest"] for m in refs["manifests"]] == [sha256(body)]


def test_data_field_custom_fields_nondistributable_no_layers(client):
    data = b"inline layer"
    layer_digest = client.push_blob(REPO, data)
    config = client.push_blob(REPO, b"{}")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": 2,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": len(data),
                "data": base64.b64encode(data).decode(),
            },
            {
                "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                "digest": sha256(b"foreign"),
                "size": 7,
                "urls": ["https://example.invalid/layer"],
            },
        ],
        "org.example.custom": {"anything": [1, 2, 3]},
    }
    r, body = push(client, "fancy", doc)
    assert r.status == 201, r.body
    assert client.request("GET", f"/v2/{REPO}/manifests/fancy").body == body
    no_layers = {**doc, "layers": []}
    assert push(client, "no-layers", no_layers)[0].status == 201


def test_missing_manifest_and_invalid_reference(client):
    r = client.request("GET", f"/v2/{REPO}/manifests/nosuchtag")
    assert r.status == 404 and r.error_codes == ["MANIFEST_UNKNOWN"]
    r = client.request("GET", f"/v2/{REPO}/manifests/{sha256(b'none')}")
    assert r.status == 404 and r.error_codes == ["MANIFEST_UNKNOWN"]
    r = client.push_manifest(REPO, "sha256:baddigeststring", b"{}", OCI_MANIFEST)
    assert r.status == 400
    assert client.request("GET", f"/v2/{REPO}/manifests/sha256:baddigeststring").status in (
        400,
        404,
    )
    assert client.request("GET", f"/v2/{REPO}/manifests/-bad-tag").status in (400, 404)


def test_delete_tag_then_manifest(client):
    layer, config = push_parts(client)
    r, body = push(client, "one", client.image_manifest([layer], config))
    client.request("PUT", f"/v2/{REPO}/manifests/two", body, {"Content-Type": OCI_MANIFEST})
    assert client.request("DELETE", f"/v2/{REPO}/manifests/one").status == 202
    assert client.request("GET", f"/v2/{REPO}/manifests/one").status == 404
    assert client.request("GET", f"/v2/{REPO}/manifests/two").status == 200
    assert client.request("GET", f"/v2/{REPO}/tags/list").json()["tags"] == ["two"]
    assert client.request("DELETE", f"/v2/{REPO}/manifests/{sha256(body)}").status == 202
    assert client.request("GET", f"/v2/{REPO}/manifests/two").status == 404
    assert client.request("GET", f"/v2/{REPO}/manifests/{sha256(body)}").status == 404
    assert client.request("GET", f"/v2/{REPO}/tags/list").json()["tags"] == []
    r = client.request("DELETE", f"/v2/{REPO}/manifests/{sha256(body)}")
    assert r.status == 404 and r.error_codes == ["MANIFEST_UNKNOWN"]
    assert client.request("DELETE", f"/v2/{REPO}/manifests/one").status == 404


def test_retagging_moves_the_tag(client):
    first = client.push_image(REPO, "moving", [b"a"])
    second = client.push_image(REPO, "moving", [b"b"])
    assert first != second
    got = client.request("GET", f"/v2/{REPO}/manifests/moving")
    assert got.header("Docker-Content-Digest") == second
    assert client.request("GET", f"/v2/{REPO}/manifests/{first}").status == 200


def test_tags_list_sorted_with_pagination_and_link(client):
    layer, config = push_parts(client)
    _, body = push(client, "t0", client.image_manifest([layer], config))
    names = ["b", "a", "c10", "c2", "Z", "d"]
    for tag in names:
        client.request("PUT", f"/v2/{REPO}/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST})
    everything = sorted([*names, "t0"])
    r = client.request("GET", f"/v2/{REPO}/tags/list")
    assert r.json() == {"name": REPO, "tags": everything}
    assert r.header("Link") is None
    collected, url = [], f"/v2/{REPO}/tags/list?n=3"
    while url:
        page = client.request("GET", url)
        assert page.status == 200
        collected += page.json()["tags"]
        link = page.header("Link")
        url = link[1 : link.index(">")] if link else ""
    assert collected == everything
    r = client.request("GET", f"/v2/{REPO}/tags/list?last=c2")
    assert r.json()["tags"] == [t for t in everything if t > "c2"]
    assert client.request("GET", f"/v2/{REPO}/tags/list?n=0").json()["tags"] == []
    bad = client.request("GET", f"/v2/{REPO}/tags/list?n=-1")
    assert bad.status == 400 and bad.error_codes == ["PAGINATION_NUMBER_INVALID"]


def test_tags_of_unknown_repository(client):
    r = client.request("GET", "/v2/no/such/repo/tags/list")
    assert r.status == 404 and r.error_codes == ["NAME_UNKNOWN"]


def test_catalog_with_pagination(client):
    repos = ["alpha", "beta/one", "beta/two", "gamma"]
    for repo in repos:
        client.push_image(repo, "latest", [repo.encode()])
    assert client.request("GET", "/v2/_catalog").json() == {"repositories": repos}
    page = client.request("GET", "/v2/_catalog?n=2")
    assert page.json()["repositories"] == repos[:2]
    assert page.header("Link") == '</v2/_catalog?n=2&last=beta%2Fone>; rel="next"'
    rest = client.request("GET", "/v2/_catalog?n=2&last=beta%2Fone").json()["repositories"]
    assert rest == repos[2:]


def test_accept_given_on_several_header_lines(client):
    """Go clients (the OCI conformance suite) send one Accept line per media type."""
    import http.client
    from urllib.parse import urlsplit

    digest = client.push_image(REPO, "multi-accept", [b"x"])
    parts = urlsplit(client.base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("GET", f"/v2/{REPO}/manifests/multi-accept")
    conn.putheader("Accept", OCI_INDEX)
    conn.putheader("Accept", OCI_MANIFEST)
    conn.endheaders()
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 200
    assert resp.headers["Docker-Content-Digest"] == digest
