"""Real clients against the registry on 127.0.0.1: skopeo, podman, and docker (a private
dockerd from tests/docker_daemon.py)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import docker_daemon
from pallet.registry.auth.htpasswd import Htpasswd
from pallet.registry.config import AccessRule, AuthConfig

pytestmark = pytest.mark.peer

private_dockerd = docker_daemon.dockerd_fixture  # the session fixture `dockerd`, here too


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed: this interop test cannot run")
    return path


def _run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=120, input=input)
    assert out.returncode == 0, f"{' '.join(args)}\n{out.stdout}\n{out.stderr}"
    return out


def make_layout(root: Path, tag: str, payload: bytes) -> str:
    """A one-layer OCI image layout; returns the manifest digest."""
    (root / "blobs" / "sha256").mkdir(parents=True)

    def put(data: bytes) -> str:
        hexd = hashlib.sha256(data).hexdigest()
        (root / "blobs" / "sha256" / hexd).write_bytes(data)
        return "sha256:" + hexd

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("payload.txt")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
            "config": {"Cmd": ["/payload.txt"]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    digest = put(manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return digest


def _host(url: str) -> str:
    return url.split("://", 1)[1]


def test_skopeo_copy_in_and_out_inspect_list_tags_delete(registry, client, tmp_path):
    skopeo = _need("skopeo")
    digest = make_layout(tmp_path / "src", "v1", b"hello from skopeo\n")
    host = _host(registry.url)
    dest = f"docker://{host}/interop/skopeo:v1"
    _run(skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", dest)
    assert (
        client.request("GET", "/v2/interop/skopeo/manifests/v1").header("Docker-Content-Digest")
        == digest
    )
    _run(
        skopeo,
        "copy",
        "--dest-tls-verify=false",
        dest.replace(":v1", ":v1"),
        f"docker://{host}/interop/skopeo:v2",
        "--src-tls-verify=false",
    )
    inspect = json.loads(_run(skopeo, "inspect", "--tls-verify=false", dest).stdout)
    assert inspect["Digest"] == digest
    tags = json.loads(
        _run(skopeo, "list-tags", "--tls-verify=false", f"docker://{host}/interop/skopeo").stdout
    )
    assert tags["Tags"] == ["v1", "v2"]
    _run(skopeo, "copy", "--src-tls-verify=false", dest, f"oci:{tmp_path / 'out'}:v1")
    out_index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert out_index["manifests"][0]["digest"] == digest
    layer_blobs = sorted(p.name for p in (tmp_path / "out" / "blobs" / "sha256").iterdir())
    assert layer_blobs == sorted(p.name for p in (tmp_path / "src" / "blobs" / "sha256").iterdir())
    _run(skopeo, "delete", "--tls-verify=false", dest)
    assert client.request("GET", "/v2/interop/skopeo/manifests/v1").status == 404
    assert client.request("GET", f"/v2/interop/skopeo/manifests/{digest}").status == 404


def test_skopeo_docker_schema2_round_trip(registry, client, tmp_path):
    skopeo = _need("skopeo")
    make_layout(tmp_path / "src", "v1", b"schema2 payload\n")
    dest = f"docker://{_host(registry.url)}/interop/schema2:v1"
    _run(
        skopeo,
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        f"oci:{tmp_path / 'src'}:v1",
        dest,
    )
    got = client.request(
        "GET",
        "/v2/interop/schema2/manifests/v1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert got.header("Content-Type") == "application/vnd.docker.distribution.manifest.v2+json"
    raw = json.loads(_run(skopeo, "inspect", "--raw", "--tls-verify=false", dest).stdout)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    _run(skopeo, "copy", "--src-tls-verify=false", dest, f"dir:{tmp_path / 'out'}")
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == got.json()


@pytest.fixture
def podman_cmd() -> Iterator[list[str]]:
    podman = _need("podman")
    # podman refuses a runroot longer than 50 characters: pytest's tmp_path is too long.
    short = Path(tempfile.mkdtemp(prefix="pm", dir="/tmp"))
    yield [
        podman,
        "--root",
        str(short / "root"),
        "--runroot",
        str(short / "run"),
        "--storage-driver",
        "vfs",
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
    ]
    shutil.rmtree(short, ignore_errors=True)


def test_podman_push_and_pull(registry, client, tmp_path, podman_cmd):
    skopeo = _need("skopeo")
    podman = podman_cmd
    host = _host(registry.url)
    digest = make_layout(tmp_path / "src", "v1", b"podman payload\n")
    _run(
        skopeo,
        "copy",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'src'}:v1",
        f"docker://{host}/interop/base:v1",
    )
    _run(*podman, "pull", "--tls-verify=false", f"{host}/interop/base:v1")
    _run(*podman, "tag", f"{host}/interop/base:v1", f"{host}/interop/podman:pushed")
    _run(*podman, "push", "--tls-verify=false", f"{host}/interop/podman:pushed")
    pushed = client.request("GET", "/v2/interop/podman/manifests/pushed")
    assert pushed.status == 200
    layers = pushed.json()["layers"]
    assert layers and all(
        client.request("HEAD", f"/v2/interop/podman/blobs/{layer['digest']}").status == 200
        for layer in layers
    )
    _run(*podman, "rmi", "-a", "-f")
    _run(*podman, "pull", "--tls-verify=false", f"{host}/interop/podman:pushed")
    images = _run(*podman, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert f"{host}/interop/podman:pushed" in images
    del digest


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_podman_login_and_push(make_registry, make_client, tmp_path, mode, podman_cmd):
    skopeo = _need("skopeo")
    podman = podman_cmd
    htpasswd = tmp_path / "htpasswd"
    Htpasswd(htpasswd).set("alice", "wonderland")
    auth = AuthConfig(
        mode=mode,
        htpasswd=htpasswd,
        access=(AccessRule(subjects=("alice",), repositories=("*",), actions=("pull", "push")),),
    )
    reg = make_registry(auth=auth)
    host = _host(reg.url)
    authfile = tmp_path / "auth.json"
    bad = subprocess.run(
        [
            *podman,
            "login",
            "--tls-verify=false",
            "--authfile",
            str(authfile),
            "-u",
            "alice",
            "-p",
            "wrong",
            host,
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    _run(
        *podman,
        "login",
        "--tls-verify=false",
        "--authfile",
        str(authfile),
        "-u",
        "alice",
        "--password-stdin",
        host,
        input="wonderland\n",
    )
    assert host in json.loads(authfile.read_text())["auths"]
    make_layout(tmp_path / "src", "v1", b"authenticated payload\n")
    _run(
        skopeo,
        "copy",
        "--dest-tls-verify=false",
        "--dest-authfile",
        str(authfile),
        f"oci:{tmp_path / 'src'}:v1",
        f"docker://{host}/private/app:v1",
    )
    _run(
        *podman, "pull", "--tls-verify=false", "--authfile", str(authfile), f"{host}/private/app:v1"
    )
    _run(*podman, "tag", f"{host}/private/app:v1", f"{host}/private/app:v2")
    _run(
        *podman, "push", "--tls-verify=false", "--authfile", str(authfile), f"{host}/private/app:v2"
    )
    alice = make_client(reg.url, auth="Basic " + base64.b64encode(b"alice:wonderland").decode())
    if mode == "htpasswd":
        assert alice.request("GET", "/v2/private/app/tags/list").json()["tags"] == ["v1", "v2"]
    anonymous = subprocess.run(
        [
            *podman,
            "pull",
            "--tls-verify=false",
            "--authfile",
            str(tmp_path / "none.json"),
            f"{host}/private/app:v1",
        ],
        capture_output=True,
        text=True,
    )
    assert anonymous.returncode != 0


def test_docker_cli_push_pull(registry, client, dockerd):
    """dockerd 20.10 pushes to and pulls from the registry on 127.0.0.1 (an insecure
    registry docker allows on loopback); the pulled image runs."""
    host = _host(registry.url)
    ref = f"{host}/interop/docker:v1"
    dockerd.import_busybox("interop-busybox:latest")
    dockerd.docker("tag", "interop-busybox:latest", ref)
    pushed_log = dockerd.docker("push", ref)
    served = client.request(
        "GET",
        "/v2/interop/docker/manifests/v1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert served.status == 200
    digest = served.header("Docker-Content-Digest")
    assert f"digest: {digest}" in pushed_log
    layers = served.json()["layers"]
    assert len(layers) == 1
    assert client.request("HEAD", f"/v2/interop/docker/blobs/{layers[0]['digest']}").status == 200
    dockerd.docker("rmi", ref, "interop-busybox:latest")
    dockerd.docker("pull", ref)
    repo_digests = json.loads(
        dockerd.docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref)
    )
    assert repo_digests == [f"{host}/interop/docker@{digest}"]
    out = dockerd.docker("run", "--rm", "--network", "none", ref, "cat", "/etc/hostname")
    assert out.strip()
    dockerd.docker("rmi", ref)
