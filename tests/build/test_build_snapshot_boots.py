"""A build step's snapshot is published without a flush. After a reboot (faked here by
rewriting its info with another boot ID) a snapshot the crash damaged is extracted
again from its layer blob before a container or a later build step reads it; an intact
one is verified and marked durable."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from build_kit import pallet_cli

from pallet.oci.digest import Digest
from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime]

MakeContext = Callable[..., Path]
EARLIER_BOOT = "00000000-0000-4000-8000-000000000000"
CONTENT = "line of the copied file\n" * 200

DOCKERFILE = """\
FROM busybox
COPY a.txt /data/a.txt
RUN wc -c < /data/a.txt > /data/size
"""


def meta(store: Store, chain_id: Digest) -> dict[str, object]:
    doc: dict[str, object] = json.loads(
        (store.snapshots.path(chain_id).parent / "meta.json").read_text()
    )
    return doc


def from_earlier_boot(store: Store, chain_id: Digest) -> None:
    path = store.snapshots.path(chain_id).parent / "meta.json"
    doc = json.loads(path.read_text())
    doc["unflushedBoot"] = EARLIER_BOOT
    path.write_text(json.dumps(doc))


def build(store: Store, ctx: Path, tag: str) -> None:
    done = pallet_cli(store.root, "build", "--progress", "plain", "-t", tag, str(ctx))
    assert done.returncode == 0, done.stderr


def copy_snapshot(store: Store, tag: str) -> tuple[Digest, Path]:
    """The chain ID of the COPY step's snapshot and the copied file in it."""
    image = store.image(tag)
    chain_id = image.chain_ids[-2]
    copied = store.snapshots.path(chain_id) / "data" / "a.txt"
    assert copied.read_text() == CONTENT
    return chain_id, copied


def test_a_run_after_a_reboot_reads_the_copy_step_again_from_its_blob(
    store: Store, make_context: MakeContext
) -> None:
    build(store, make_context({"a.txt": CONTENT}, DOCKERFILE), "boots:run")
    chain_id, copied = copy_snapshot(store, "boots:run")
    assert meta(store, chain_id)["unflushedBoot"] != EARLIER_BOOT  # this boot's
    os.truncate(copied, 10)  # the crash kept the name, lost the data
    from_earlier_boot(store, chain_id)

    ran = pallet_cli(store.root, "run", "--rm", "boots:run", "cat", "/data/a.txt")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == CONTENT
    assert copied.read_text() == CONTENT
    assert meta(store, chain_id).get("unflushedBoot") not in (None, EARLIER_BOOT)
    assert pallet_cli(store.root, "system", "check").returncode == 0


def test_a_build_after_a_reboot_verifies_what_its_steps_read(
    store: Store, make_context: MakeContext
) -> None:
    ctx = make_context({"a.txt": CONTENT}, DOCKERFILE)
    build(store, ctx, "boots:build")
    chain_id, copied = copy_snapshot(store, "boots:build")
    base = store.image("busybox").chain_ids[0]
    os.truncate(copied, 10)
    for damaged_or_not in (chain_id, base):
        from_earlier_boot(store, damaged_or_not)

    # the COPY and the first RUN are cached; the new RUN reads the COPY's snapshot
    (ctx / "Dockerfile").write_text(DOCKERFILE + "RUN cat /data/a.txt > /data/again\n")
    build(store, ctx, "boots:build")
    ran = pallet_cli(store.root, "run", "--rm", "boots:build", "cat", "/data/again")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == CONTENT
    assert "unflushedBoot" not in meta(store, base)  # intact: verified, now durable
    assert store.snapshots.path(base).is_dir()
    assert copied.read_text() == CONTENT  # damaged: extracted again


def test_a_steps_root_is_a_volatile_overlay(store: Store, make_context: MakeContext) -> None:
    # volatile: the unmount does not sync the whole filesystem under the store
    ctx = make_context({}, 'FROM busybox\nRUN grep " / / " /proc/self/mountinfo > /root-mount\n')
    build(store, ctx, "boots:volatile")
    ran = pallet_cli(store.root, "run", "--rm", "boots:volatile", "cat", "/root-mount")
    assert ran.returncode == 0, ran.stderr
    options = ran.stdout.split(" - ")[1].split()[2].split(",")
    assert "upperdir" in ran.stdout and any(o.endswith("volatile") for o in options)
