"""``pallet bootstrap``: base images made on this machine, with no registry."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from pallet.images.compose import layer_from_dir, now_timestamp, write_image
from pallet.images.rootfs import DEFAULT_PATH_ENV, make_busybox_rootfs, make_debian_rootfs
from pallet.oci.config import ImageConfig, history_entry
from pallet.oci.descriptor import Descriptor
from pallet.oci.platform import host_platform
from pallet.store import Store


def _image_from_rootfs(
    store: Store, rootfs: Path, names: list[str], created_by: str, cmd: tuple[str, ...]
) -> Descriptor:
    created = now_timestamp()
    config = ImageConfig.new(host_platform(), created=created).with_config(
        env=(DEFAULT_PATH_ENV,), cmd=cmd
    )
    with store.gc_lock(), store.lease() as lease:
        layer, info = layer_from_dir(store, lease, rootfs)
        config = config.with_layer(info.diff_id, history_entry(created_by, created=created))
        cmd_text = f"CMD {json.dumps(list(cmd))}"
        config = config.with_history(history_entry(cmd_text, created=created, empty_layer=True))
        return write_image(store, lease, config, [layer], names)


def _scratch_dir(store: Store) -> Path:
    # Same filesystem as the store, so big root filesystems do not fill /tmp.
    base = store.root / "tmp"
    base.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bootstrap-", dir=base))


def bootstrap_busybox(store: Store, name: str = "busybox:latest") -> Descriptor:
    work = _scratch_dir(store)
    try:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        make_busybox_rootfs(rootfs)
        return _image_from_rootfs(
            store, rootfs, [name], "pallet bootstrap busybox (host busybox-static)", ("sh",)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bootstrap_debian(
    store: Store, suite: str, name: str | None = None, mirror: str | None = None
) -> Descriptor:
    work = _scratch_dir(store)
    try:
        rootfs = work / "rootfs"
        make_debian_rootfs(rootfs, suite, mirror)
        return _image_from_rootfs(
            store,
            rootfs,
            [name or f"debian:{suite}"],
            f"pallet bootstrap debian {suite} (debootstrap --variant=minbase)",
            ("bash",),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
