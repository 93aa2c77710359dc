"""pallet save / load / copy through the real entry point, and interop with podman,
skopeo and the docker-save fixtures."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conformance_paths import CONFORMANCE
from pallet.transport.copy import copy
from pallet.transport.layout import DirFiles, LayoutSource
from pallet.transport.store import StoreDestination

GCR = CONFORMANCE / "misc/go-containerregistry"


def pallet(root: Path, *args: str, stdin: bytes | None = None, check: bool = True):
    out = subprocess.run(
        [sys.executable, "-m", "pallet", "--root", str(root), *args],
        input=stdin,
        capture_output=True,
    )
    if check and out.returncode != 0:
        raise AssertionError(out.stderr.decode())
    return out


def lines(out) -> list[str]:
    return out.stdout.decode().splitlines()


@pytest.fixture
def store_with_tiny(tiny_layout, tmp_path):
    """A store holding tiny:1, put there in-process (the CLI's copy is tested below)."""
    layout, image = tiny_layout("v1")
    root = tmp_path / "store"
    source = LayoutSource.open(DirFiles(layout), "v1", "layout")
    destination = StoreDestination.open(root, "tiny:1")
    copy(source, destination)
    destination.close()
    return root, image


def test_save_load_round_trip(store_with_tiny, tmp_path) -> None:
    root, _image = store_with_tiny
    archive = tmp_path / "tiny.tar"
    pallet(root, "save", "-o", str(archive), "tiny:1")
    out = pallet(tmp_path / "fresh", "load", "-i", str(archive))
    assert lines(out) == ["Loaded image: tiny:1"]
    assert pallet(tmp_path / "fresh", "load", "-q", "-i", str(archive)).stdout == b""


def test_save_to_pipe_and_load_from_stdin(store_with_tiny, tmp_path) -> None:
    root, _image = store_with_tiny
    data = pallet(root, "save", "--format", "oci", "tiny:1").stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "index.json" in tar.getnames()
    assert lines(pallet(tmp_path / "fresh", "load", stdin=data)) == ["Loaded image: tiny:1"]


def test_untagged_load_prints_the_image_id(tmp_path) -> None:
    out = pallet(tmp_path / "s", "load", "-i", str(GCR / "tarball/hello-world-v25.tar"))
    assert lines(out) == [
        "Loaded image ID: sha256:ee301c921b8aadc002973b2e0c3da17d701dcd994b606769a7e6eaa100b81d44"
    ]


def test_load_of_a_docker_save_bundle(tmp_path) -> None:
    out = pallet(tmp_path / "s", "load", "-i", str(GCR / "tarball/test_bundle.tar"))
    assert lines(out) == ["Loaded image: test_image_2:latest", "Loaded image: test_image_1:latest"]
    # docker's image ID (the config file's name) survives: saving again gives the same config
    again = tmp_path / "again.tar"
    pallet(tmp_path / "s", "save", "-o", str(again), "test_image_1")
    with tarfile.open(again) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))
    assert (
        entry["Config"] == "6e0b05049ed9c17d02e1a55e80d6599dbfcce7f4f4b022e3c673e685789c470e.json"
    )
    assert entry["RepoTags"] == ["test_image_1:latest"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_manifest.tar", "no manifest.json"),
        ("null_manifest.tar", "lists no images"),
    ],
)
def test_bad_fixture_archives_fail_with_one_line(tmp_path, name: str, message: str) -> None:
    out = pallet(tmp_path / "s", "load", "-i", str(GCR / "tarball" / name), check=False)
    assert out.returncode != 0
    err = out.stderr.decode()
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_truncated_archive_fails_cleanly(store_with_tiny, tmp_path) -> None:
    root, _ = store_with_tiny
    archive = tmp_path / "tiny.tar"
    pallet(root, "save", "-o", str(archive), "tiny:1")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    out = pallet(tmp_path / "fresh", "load", "-i", str(archive), check=False)
    assert out.returncode == 1
    assert out.stderr.decode().startswith("error: ") and "Traceback" not in out.stderr.decode()


def test_save_of_a_missing_image_creates_no_file(store_with_tiny, tmp_path) -> None:
    root, _ = store_with_tiny
    out = pallet(root, "save", "-o", str(tmp_path / "x.tar"), "tiny:1", "nope:1", check=False)
    assert out.returncode != 0 and "nope" in out.stderr.decode()
    assert not list(tmp_path.glob("*x.tar*"))


def test_copy_cli_recompresses(store_with_tiny, tmp_path) -> None:
    root, image = store_with_tiny
    dest = tmp_path / "zst"
    out = pallet(root, "copy", "--dest-compress-format", "zstd", "pallet:tiny:1", f"oci:{dest}:z")
    assert "Copying blob" in out.stderr.decode()
    index = json.loads((dest / "index.json").read_text())
    manifest = json.loads((dest / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert manifest["config"]["digest"] == image.image_id
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }


def test_copy_cli_all_platforms_into_a_docker_archive_is_refused(kit, tmp_path) -> None:
    layout = tmp_path / "multi"
    multi = kit.make_index(layout)
    entry = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": multi.digest}
    kit.write_layout(layout, [("v1", {**entry, "size": len(multi.index)})])
    archive = tmp_path / "all.tar"
    out = pallet(
        tmp_path / "s",
        "copy",
        "-q",
        "--all",
        f"oci:{layout}:v1",
        f"docker-archive:{archive}",
        check=False,
    )
    assert out.returncode != 0 and "one platform per image" in out.stderr.decode()
    assert not list(tmp_path.glob("*all.tar*"))
    # without --all the host's image is picked and written
    pallet(tmp_path / "s", "copy", "-q", f"oci:{layout}:v1", f"docker-archive:{archive}:multi:1")
    with tarfile.open(archive) as tar:
        (saved,) = json.load(tar.extractfile("manifest.json"))
    assert saved["Config"] == multi.host.image_id[7:] + ".json"
    assert saved["RepoTags"] == ["multi:1"]


def test_copy_cli_rejects_bad_names(tmp_path) -> None:
    out = pallet(tmp_path / "s", "copy", "busybox", "oci:x", check=False)
    assert out.returncode != 0 and "invalid image name 'busybox'" in out.stderr.decode()


# --- interop with the real peers -------------------------------------------------------


@pytest.fixture
def podman_base():
    # podman refuses a runroot path longer than 50 characters: pytest's tmp_path is longer
    base = Path(tempfile.mkdtemp(prefix="pallet-podman-", dir="/tmp"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def podman(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        "podman",
        "--root",
        str(base / "root"),
        "--runroot",
        str(base / "run"),
        "--storage-driver",
        "vfs",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"podman {args[0]} failed: {out.stderr}")
    return out


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: the peer tests need it")


@pytest.mark.peer
@pytest.mark.parametrize("fmt", ["docker-archive", "oci"])
def test_podman_loads_pallet_save(store_with_tiny, tmp_path, podman_base, fmt: str) -> None:
    _need("podman")
    root, image = store_with_tiny
    archive = tmp_path / "tiny.tar"
    pallet(root, "save", "--format", fmt, "-o", str(archive), "tiny:1")
    podman(podman_base, "load", "-i", str(archive))
    inspected = json.loads(podman(podman_base, "image", "inspect", "tiny:1").stdout)
    assert "sha256:" + inspected[0]["Id"] == image.image_id


@pytest.mark.peer
@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_pallet_loads_podman_save(tmp_path, kit, podman_base, fmt: str) -> None:
    _need("podman")
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(kit.layer_tar({"etc/hello": b"hi\n"}))
    podman(podman_base, "import", str(rootfs), "localhost/tiny:1")
    image_id = podman(
        podman_base, "image", "inspect", "--format", "{{.Id}}", "localhost/tiny:1"
    ).stdout.strip()
    archive = tmp_path / "podman.tar"
    podman(podman_base, "save", "--format", fmt, "-o", str(archive), "localhost/tiny:1")
    store = tmp_path / "store"
    assert lines(pallet(store, "load", "-i", str(archive))) == ["Loaded image: localhost/tiny:1"]
    saved = tmp_path / "again.tar"
    pallet(store, "save", "-o", str(saved), "localhost/tiny:1")
    with tarfile.open(saved) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))
    assert entry["Config"] == f"{image_id}.json"


@pytest.mark.peer
def test_skopeo_docker_archive_loads(tiny_layout, tmp_path) -> None:
    _need("skopeo")
    layout, image = tiny_layout("v1")
    archive = tmp_path / "sk.tar"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            f"oci:{layout}:v1",
            f"docker-archive:{archive}:example.com/tiny:2",
        ],
        check=True,
        capture_output=True,
    )
    assert lines(pallet(tmp_path / "s", "load", "-i", str(archive))) == [
        "Loaded image: example.com/tiny:2"
    ]
    source_config = pallet(tmp_path / "s", "save", "--format", "oci", "example.com/tiny:2").stdout
    with tarfile.open(fileobj=io.BytesIO(source_config)) as tar:
        assert f"blobs/sha256/{image.image_id[7:]}" in tar.getnames()


@pytest.mark.peer
def test_skopeo_inspects_pallet_oci_archive(store_with_tiny, tmp_path) -> None:
    _need("skopeo")
    root, image = store_with_tiny
    archive = tmp_path / "oci.tar"
    pallet(root, "save", "--format", "oci", "-o", str(archive), "tiny:1")
    out = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--config",
            "--raw",
            f"oci-archive:{archive}:docker.io/library/tiny:1",
        ],
        capture_output=True,
        check=True,
    )
    assert out.stdout == image.config


@pytest.fixture
def distribution(tmp_path):
    """CNCF distribution (Debian's docker-registry) on 127.0.0.1, anonymous."""
    _need("docker-registry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry-data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        "log:\n  level: error\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"docker-registry exited: {proc.stderr.read().decode()}")
                time.sleep(0.05)
        else:
            pytest.fail("docker-registry did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.peer
def test_copy_to_a_registry_and_back(store_with_tiny, distribution, tmp_path) -> None:
    root, image = store_with_tiny
    remote = f"docker://{distribution}/tiny:1"
    pallet(root, "copy", "-q", "pallet:tiny:1", remote)
    out = tmp_path / "back"
    pallet(root, "copy", "-q", remote, f"oci:{out}:x")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.manifest_digest
    # docker-archive straight from the registry: layers decompressed, same image ID
    archive = tmp_path / "from-registry.tar"
    pallet(root, "copy", "-q", remote, f"docker-archive:{archive}:tiny:2")
    assert lines(pallet(tmp_path / "fresh", "load", "-i", str(archive))) == ["Loaded image: tiny:2"]


def test_write_failures_are_one_line(store_with_tiny, tmp_path) -> None:
    root, _ = store_with_tiny
    with open("/dev/full", "wb") as full:
        out = subprocess.run(
            [sys.executable, "-m", "pallet", "--root", str(root), "save", "tiny:1"],
            stdout=full,
            stderr=subprocess.PIPE,
        )
    assert out.returncode == 1
    assert out.stderr.decode().startswith("error: docker-archive:-: cannot write:")
    missing = tmp_path / "no-such-dir" / "x.tar"
    out = pallet(root, "copy", "-q", "pallet:tiny:1", f"docker-archive:{missing}", check=False)
    assert out.returncode == 1
    assert out.stderr.decode() == f"error: {missing}: cannot write: No such file or directory\n"


def test_saved_archive_is_the_same_to_a_file_or_a_pipe(kit, tmp_path) -> None:
    # an image whose two layers are the same tar: the archive holds it once
    tar = kit.layer_tar({"a": b"1"})
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [kit.sha256(tar)] * 2},
        }
    ).encode()
    layer_desc = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": kit.sha256(layer),
        "size": len(layer),
    }
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": kit.sha256(config),
                "size": len(config),
            },
            "layers": [layer_desc, layer_desc],
        }
    ).encode()
    layout = tmp_path / "dup"
    for blob in (config, layer, manifest):
        kit.write_blob(layout, blob)
    kit.write_layout(
        layout,
        [
            (
                "v1",
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": kit.sha256(manifest),
                    "size": len(manifest),
                },
            )
        ],
    )
    root = tmp_path / "store"
    pallet(root, "copy", "-q", f"oci:{layout}:v1", "pallet:dup:1")
    to_file = tmp_path / "dup.tar"
    pallet(root, "save", "-o", str(to_file), "dup:1")
    piped = pallet(root, "save", "dup:1").stdout  # a pipe: not seekable, spooled
    assert piped == to_file.read_bytes()
    with tarfile.open(to_file) as archive:
        layers = [m.name for m in archive if m.name.endswith("layer.tar")]
        (entry,) = json.load(archive.extractfile("manifest.json"))
    assert layers == [f"{kit.sha256(tar)[7:]}/layer.tar"]
    assert entry["Layers"] == layers * 2
    assert lines(pallet(tmp_path / "fresh", "load", "-i", str(to_file))) == ["Loaded image: dup:1"]


def test_ctrl_c_during_load_leaves_no_trace(store_with_tiny, tmp_path) -> None:
    root, _ = store_with_tiny
    archive = tmp_path / "tiny.tar"
    pallet(root, "save", "-o", str(archive), "tiny:1")
    data = archive.read_bytes()
    target = tmp_path / "target"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(target), "load", "-i", "/dev/stdin"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    # more than a pipe holds: once this write returns, pallet is reading the archive
    proc.stdin.write(data[: len(data) // 2] + b"\0" * (1 << 20))
    proc.stdin.flush()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == 130
    assert err.decode().strip() == "error: interrupted"
    assert not (target / "blobs").exists() or not any((target / "blobs").rglob("*"))


def test_save_through_symlinks_and_devices(store_with_tiny, tmp_path) -> None:
    root, image = store_with_tiny
    real = tmp_path / "real.tar"
    real.write_bytes(b"old")
    link = tmp_path / "link.tar"
    link.symlink_to(real)
    pallet(root, "save", "-o", str(link), "tiny:1")
    assert link.is_symlink()  # the file it names was replaced, not the link
    with tarfile.open(real) as tar:
        assert f"{image.image_id[7:]}.json" in tar.getnames()
    # /dev/stdout is written to, never replaced
    out = pallet(root, "save", "-o", "/dev/stdout", "tiny:1")
    assert out.stdout == real.read_bytes()
