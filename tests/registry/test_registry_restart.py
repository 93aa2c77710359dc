"""Upload sessions live on disk and in metadata, so a restarted server resumes them."""

from __future__ import annotations

import hashlib
import os

from pallet.registry.config import RegistryConfig
from pallet.registry.server import ThreadedRegistry


def test_upload_resumes_after_restart(tmp_path, make_client):
    config = RegistryConfig(addr="127.0.0.1:0", data=tmp_path / "data", access_log=False)
    data = os.urandom(300_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with ThreadedRegistry(config) as first:
        client = make_client(first.url)
        location = client.request("POST", "/v2/r/app/blobs/uploads/").header("Location")
        r = client.request("PATCH", location, data[:100_000], {"Content-Range": "0-99999"})
        assert r.status == 202
    with ThreadedRegistry(config) as second:
        client = make_client(second.url)
        status = client.request("GET", location)
        assert status.status == 204 and status.header("Range") == "0-99999"
        r = client.request(
            "PATCH", location, data[100_000:200_000], {"Content-Range": "100000-199999"}
        )
        assert r.status == 202
    with ThreadedRegistry(config) as third:
        client = make_client(third.url)
        r = client.request("PUT", f"{location}?digest={digest}", data[200_000:])
        assert r.status == 201
        assert client.request("GET", f"/v2/r/app/blobs/{digest}").body == data


def test_committed_content_survives_restart(tmp_path, make_client):
    config = RegistryConfig(addr="127.0.0.1:0", data=tmp_path / "data", access_log=False)
    with ThreadedRegistry(config) as first:
        digest = make_client(first.url).push_image("r/app", "v1", [b"persisted"])
    with ThreadedRegistry(config) as second:
        client = make_client(second.url)
        assert (
            client.request("GET", "/v2/r/app/manifests/v1").header("Docker-Content-Digest")
            == digest
        )
        assert client.request("GET", "/v2/r/app/tags/list").json()["tags"] == ["v1"]
