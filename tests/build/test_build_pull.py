"""Base images missing from the store are pulled (here from a CNCF registry on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from build_kit import do_build

from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime, pytest.mark.peer]

REGISTRY_BIN = "/usr/bin/docker-registry"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip(f"LOUD SKIP: {REGISTRY_BIN} (Debian docker-registry) is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = {
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "registry-data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    (tmp_path / "registry.yml").write_text(json.dumps(config))  # JSON is YAML
    proc = subprocess.Popen(
        [REGISTRY_BIN, "serve", str(tmp_path / "registry.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("docker-registry did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_missing_base_image_is_pulled(
    store: Store,
    registry: str,
    make_context: MakeContext,
    tmp_path: Path,
) -> None:
    from pallet.images.lookup import find_image
    from pallet.transport.registry_push import push

    ref = f"{registry}/library/bb:1"
    store.tag(ref, find_image(store, "busybox:latest").descriptor)
    push(ref, store.root)
    fresh_store = Store.open(tmp_path / "empty-store")  # nothing there: all is pulled
    ctx = make_context({}, f"FROM {ref}\nRUN echo pulled > /p\n")
    result = do_build(fresh_store, ctx)
    assert result.executed_steps == 1
    assert find_image(fresh_store, ref).config.diff_ids[0] == result.config.diff_ids[0]
    again = do_build(fresh_store, ctx, pull=True)  # --pull: fetched again, same image
    assert again.cached_steps == 1


MakeContext = Callable[..., Path]
