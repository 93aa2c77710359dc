"""skopeo and umoci read what pallet's model writes, and pallet reads what skopeo writes."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pallet.oci import mediatypes as mt
from pallet.oci.config import ImageConfig, history_entry
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.index import Index
from pallet.oci.layout import LAYOUT_FILE_BYTES, blob_path, with_ref
from pallet.oci.manifest import Manifest
from pallet.oci.platform import host_platform

pytestmark = pytest.mark.peer


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"PEER MISSING: {name} is not installed; interop not checked")
    return path


def run(*args: str) -> bytes:
    done = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def make_layer() -> tuple[bytes, Digest]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        payload = b"hello from pallet\n"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = buf.getvalue()
    return gzip.compress(tar_bytes, mtime=0), Digest.from_bytes(tar_bytes)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Manifest, ImageConfig]:
    root = tmp_path / "layout"
    layer, diff_id = make_layer()
    config = (
        ImageConfig.new(host_platform(), created="2024-01-01T00:00:00Z")
        .with_config(cmd=("/hello.txt",), env=("PATH=/bin",), labels={"made-by": "pallet <&>"})
        .with_layer(diff_id, history_entry("ADD hello.txt /", created="2024-01-01T00:00:00Z"))
    )
    config_bytes = config.to_bytes()
    manifest = Manifest.build(
        Descriptor.of_bytes(mt.OCI_CONFIG, config_bytes),
        [Descriptor.of_bytes(mt.OCI_LAYER_GZIP, layer)],
    )
    index = with_ref(Index.build([]), manifest.descriptor(), "v1")
    for data in (layer, config_bytes, manifest.raw):
        path = root / blob_path(Digest.from_bytes(data))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "oci-layout").write_bytes(LAYOUT_FILE_BYTES)
    (root / "index.json").write_bytes(index.raw)
    return root, manifest, config


def test_skopeo_reads_exact_bytes(layout: tuple[Path, Manifest, ImageConfig]) -> None:
    skopeo = tool("skopeo")
    root, manifest, config = layout
    assert run(skopeo, "inspect", "--raw", f"oci:{root}:v1") == manifest.raw
    assert run(skopeo, "inspect", "--config", "--raw", f"oci:{root}:v1") == config.to_bytes()
    info = json.loads(run(skopeo, "inspect", f"oci:{root}:v1"))
    assert info["Digest"] == manifest.digest
    assert info["Labels"] == {"made-by": "pallet <&>"}


def test_pallet_reads_skopeo_docker_conversion(
    layout: tuple[Path, Manifest, ImageConfig], tmp_path: Path
) -> None:
    skopeo = tool("skopeo")
    root, manifest, config = layout
    out = tmp_path / "docker-dir"
    run(skopeo, "copy", "--quiet", "--format", "v2s2", f"oci:{root}:v1", f"dir:{out}")
    converted = Manifest.from_bytes((out / "manifest.json").read_bytes())
    assert converted.media_type == mt.DOCKER_MANIFEST
    assert converted.config.media_type == mt.DOCKER_CONFIG
    assert [layer.digest for layer in converted.layers] == [manifest.layers[0].digest]
    docker_config = ImageConfig.from_bytes((out / converted.config.digest.encoded).read_bytes())
    assert docker_config.image_id == converted.config.digest
    assert docker_config.diff_ids == config.diff_ids
    assert docker_config.config.cmd == config.config.cmd


def test_umoci_reads_layout(layout: tuple[Path, Manifest, ImageConfig]) -> None:
    umoci = tool("umoci")
    root, _, _ = layout
    stat = json.loads(run(umoci, "stat", "--json", "--image", f"{root}:v1"))
    assert [h["created_by"] for h in stat["history"]] == ["ADD hello.txt /"]
