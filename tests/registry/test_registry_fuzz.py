"""Random requests at every route: the registry answers each with a 4xx or 2xx, never a 500."""

from __future__ import annotations

import hashlib
import http.client
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pallet.registry.config import AuthConfig, RegistryConfig
from pallet.registry.server import ThreadedRegistry

_DIGEST = "sha256:" + hashlib.sha256(b"seed").hexdigest()
names = st.sampled_from(
    ["fuzz/repo", "a", "UP", "..", "a/../b", "a//b", "x" * 300, "%00", "_catalog", "a/blobs"]
) | st.text(alphabet="abc/._-%:", min_size=1, max_size=20)
refs = st.sampled_from(
    ["latest", _DIGEST, "sha256:", "sha256:zz", "md5:00", "", "..", "-x", "a" * 200, "uploads"]
) | st.text(alphabet="abcdef0123456789:sha-._", max_size=80)
tails = st.sampled_from(
    [
        "manifests/{r}",
        "blobs/{r}",
        "blobs/uploads/",
        "blobs/uploads/{r}",
        "tags/list",
        "referrers/{r}",
        "{r}",
    ]
)
queries = st.lists(
    st.tuples(
        st.sampled_from(["digest", "mount", "from", "n", "last", "tag", "artifactType", "x"]),
        st.sampled_from([_DIGEST, "fuzz/repo", "-1", "0", "99999999999", "", "sha256:bad", "%"])
        | st.text(max_size=20),
    ),
    max_size=3,
)
header_values = st.sampled_from(
    [
        "bytes=0-10",
        "bytes=-5",
        "bytes=9-1",
        "0-3",
        "5-2",
        "abc",
        "bytes */*",
        "application/json",
        "application/vnd.oci.image.manifest.v1+json",
        "Basic !!!",
        "Bearer x.y.z",
        "",
    ]
) | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
headers = st.dictionaries(
    st.sampled_from(["Range", "Content-Range", "Content-Type", "Accept", "Authorization"]),
    header_values,
    max_size=3,
)
bodies = st.sampled_from(
    [
        b"",
        b"{}",
        b"[]",
        b"null",
        json.dumps({"schemaVersion": 2, "config": {}}).encode(),
        json.dumps({"schemaVersion": 2, "manifests": [{"digest": _DIGEST}]}).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "layers": "x",
                "config": {"mediaType": "a/b", "digest": _DIGEST, "size": -1},
            }
        ).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "subject": 5,
                "config": {"mediaType": "a/b", "digest": _DIGEST, "size": 4},
            }
        ).encode(),
        b"\xff\xfe",
    ]
) | st.binary(max_size=200)


@pytest.mark.parametrize("mode", ["none", "token"])
def test_no_route_answers_500(tmp_path, mode):
    config = RegistryConfig(
        addr="127.0.0.1:0",
        data=tmp_path / "data",
        access_log=False,
        auth=AuthConfig(mode=mode, anonymous_pull=True),
    )
    with ThreadedRegistry(config) as reg:
        port = reg.server.port
        seen: set[int] = set()

        @settings(
            max_examples=150 if mode == "none" else 100,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]),
            name=names,
            tail=tails,
            ref=refs,
            query=queries,
            hdrs=headers,
            body=bodies,
        )
        @example("POST", "fuzz/repo", "blobs/uploads/", "", [], {}, b"")
        @example("GET", "fuzz/repo", "referrers/{r}", _DIGEST, [("artifactType", "")], {}, b"")
        def probe(method, name, tail, ref, query, hdrs, body):
            path = "/v2/" + quote(name, safe="/%") + "/" + tail.format(r=quote(ref, safe=":%"))
            if query:
                path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request(
                    method, path, body=body, headers={**hdrs, "Content-Length": str(len(body))}
                )
                resp = conn.getresponse()
                resp.read()
            finally:
                conn.close()
            seen.add(resp.status)
            assert resp.status < 500, (method, path, hdrs, body, resp.status)

        probe()
        if mode == "none":
            assert any(200 <= s < 300 for s in seen)  # the probe does reach working paths
        assert any(400 <= s < 500 for s in seen)


def test_token_endpoint_never_answers_500(tmp_path):
    config = RegistryConfig(
        addr="127.0.0.1:0",
        data=tmp_path / "data",
        access_log=False,
        auth=AuthConfig(mode="token", anonymous_pull=True),
    )
    with ThreadedRegistry(config) as reg:
        port = reg.server.port

        @settings(
            max_examples=100,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            method=st.sampled_from(["GET", "POST"]),
            scopes=st.lists(
                st.sampled_from(
                    [
                        "repository:a/b:pull",
                        "repository:a:*",
                        "registry:catalog:*",
                        ":",
                        "repository::",
                    ]
                )
                | st.text(max_size=30),
                max_size=3,
            ),
            hdrs=headers,
            body=bodies
            | st.sampled_from(
                [b"grant_type=password&username=x&password=y", b"grant_type=refresh_token"]
            ),
        )
        def probe(method, scopes, hdrs, body):
            path = "/token?service=pallet-registry" + "".join(
                f"&scope={quote(s, safe='')}" for s in scopes
            )
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request(
                    method, path, body=body, headers={**hdrs, "Content-Length": str(len(body))}
                )
                resp = conn.getresponse()
                resp.read()
            finally:
                conn.close()
            assert resp.status < 500, (method, path, hdrs, body, resp.status)

        probe()
