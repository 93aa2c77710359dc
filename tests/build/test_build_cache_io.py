"""``--cache-to type=local`` / ``--cache-from type=local``: one store's step cache
carried to another store through an OCI layout, through the real CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from build_kit import pallet_cli

from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime]

MakeContext = Callable[..., Path]

# /rand differs on every run: the same bytes in another store prove the layer was reused
DOCKERFILE = """\
FROM busybox
COPY a.txt /a.txt
RUN head -c 32 /dev/urandom | od -x > /rand
ENV DONE=1
"""


def _fresh_store(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


def _build(root: Path, ctx: Path, *args: str, out: Path) -> str:
    built = pallet_cli(
        root, "build", "--progress", "plain", "-o", f"type=local,dest={out}", *args, str(ctx)
    )
    assert built.returncode == 0, built.stderr
    return built.stderr


def test_cache_moves_between_stores(
    store: Store, busybox_template: Path, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = make_context({"a.txt": "A\n"}, DOCKERFILE)
    layout = tmp_path / "cache"
    _build(store.root, ctx, "--cache-to", f"type=local,dest={layout}", out=tmp_path / "one")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]

    other = _fresh_store(busybox_template, tmp_path / "other")
    log = _build(other, ctx, "--cache-from", f"type=local,src={layout}", out=tmp_path / "two")
    assert log.count("CACHED") == 2, log  # COPY and RUN
    assert (tmp_path / "two/rand").read_bytes() == (tmp_path / "one/rand").read_bytes()

    # a changed input reruns from its step on, whatever the imported cache holds
    (ctx / "a.txt").write_text("changed\n")
    log = _build(other, ctx, "--cache-from", f"type=local,src={layout}", out=tmp_path / "three")
    assert "CACHED" not in log
    assert (tmp_path / "three/rand").read_bytes() != (tmp_path / "one/rand").read_bytes()


def test_cache_from_faults(store: Store, make_context: MakeContext, tmp_path: Path) -> None:
    ctx = make_context({"a.txt": "A\n"}, "FROM busybox\nCOPY a.txt /\n")
    # no layout there yet: nothing to import, the build goes on (as BuildKit)
    missing = tmp_path / "none"
    assert _build(store.root, ctx, "--cache-from", f"type=local,src={missing}", out=tmp_path / "o")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "index.json").write_text("{not json")
    built = pallet_cli(store.root, "build", "--cache-from", f"type=local,src={bad}", str(ctx))
    assert built.returncode != 0
    assert f"error: --cache-from {bad}: index.json: not JSON" in built.stderr
    built = pallet_cli(store.root, "build", "--cache-to", "type=registry,ref=x", str(ctx))
    assert built.returncode != 0 and "only type=local is supported" in built.stderr
