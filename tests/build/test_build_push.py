"""``pallet build --push``: every ``-t`` name reaches its registry (a real
docker-registry on 127.0.0.1), checked with skopeo, an independent client."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from build_kit import pallet_cli

from pallet.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "transport"))

from registry_fixtures import Registry, free_port, start_registry

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime, pytest.mark.peer]

MakeContext = Callable[..., Path]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


def _remote_manifest(ref: str) -> bytes:
    if shutil.which("skopeo") is None:
        pytest.skip("LOUD SKIP: skopeo is not installed")
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def test_push_sends_every_tag(store: Store, registry: Registry, make_context: MakeContext) -> None:
    ctx = make_context({"a.txt": "pushed\n"}, "FROM busybox\nCOPY a.txt /a.txt\n")
    names = [f"{registry.host}/built/app:v1", f"{registry.host}/built/app:v2"]
    built = pallet_cli(
        store.root, "build", "--progress", "plain", "--push", "-t", names[0], "-t", names[1],
        str(ctx),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.strip()
    for name in names:
        raw = _remote_manifest(name)
        manifest = json.loads(raw)
        # the registry holds the image pallet built: same config (image ID), base + COPY
        assert manifest["config"]["digest"] == image_id
        assert len(manifest["layers"]) == 2
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        assert f"pushed {name}@{digest}" in built.stderr


def test_push_without_a_tag_fails_before_building(store: Store, make_context: MakeContext) -> None:
    ctx = make_context({}, "FROM busybox\nRUN echo should-not-run\n")
    built = pallet_cli(store.root, "build", "--progress", "plain", "--push", str(ctx))
    assert built.returncode != 0
    assert "error: --push needs at least one -t NAME" in built.stderr
    assert "should-not-run" not in built.stderr


def test_unreachable_registry_fails_naming_it(store: Store, make_context: MakeContext) -> None:
    ctx = make_context({"b.txt": "x\n"}, "FROM busybox\nCOPY b.txt /\n")
    name = f"127.0.0.1:{free_port()}/nowhere/app:v1"
    built = pallet_cli(store.root, "build", "--progress", "plain", "--push", "-t", name, str(ctx))
    assert built.returncode != 0
    last = built.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "127.0.0.1" in last, built.stderr
    # the image was still built and tagged locally
    assert pallet_cli(store.root, "inspect", name).returncode == 0
