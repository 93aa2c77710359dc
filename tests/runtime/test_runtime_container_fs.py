"""Container paths mapped to the host through a runtime spec's mounts (no root needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pallet.errors import InvalidArgument, NotFound
from pallet.runtime.container_fs import ContainerFS


def _fs(tmp_path: Path, mounts: list[dict[str, object]]) -> ContainerFS:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "data").mkdir()
    (rootfs / "data" / "beneath").write_text("layer\n")
    (rootfs / "proc").mkdir()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mounts": mounts}))
    return ContainerFS.from_bundle("box", rootfs, config)


def _bind(dest: str, source: Path) -> dict[str, object]:
    return {"destination": dest, "type": "bind", "source": str(source), "options": ["rbind"]}


def test_volume_paths_map_to_their_source(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "x").write_text("in volume\n")
    fs = _fs(tmp_path, [_bind("/data", vol)])
    assert fs.resolve("/data/x") == ("/data/x", vol / "x")
    assert fs.resolve("/data") == ("/data", vol)
    assert fs.resolve("/etc/passwd")[1] == tmp_path / "rootfs" / "etc" / "passwd"
    # what the mount hides is not what the container sees
    with pytest.raises(NotFound, match="/data/beneath in container box"):
        fs.existing("/data/beneath")
    assert [name for name, _, _ in fs.children("/data")] == ["x"]


def test_symlinks_resolve_in_the_containers_view(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    fs = _fs(tmp_path, [_bind("/data", vol)])
    rootfs = tmp_path / "rootfs"
    os.symlink("/data", rootfs / "abs")  # absolute: the container's /data, not the host's
    os.symlink("../data/f", rootfs / "etc" / "rel")
    os.symlink("/", vol / "up")  # inside the volume, pointing at the container's root
    assert fs.resolve("/abs/f") == ("/data/f", vol / "f")
    assert fs.resolve("/etc/rel") == ("/data/f", vol / "f")
    assert fs.resolve("/data/up/etc") == ("/etc", rootfs / "etc")
    assert fs.resolve("/../../etc")[1] == rootfs / "etc"  # no way above the root
    # the last component is kept as a link when asked (cp without -L)
    assert fs.resolve("/abs", follow_last=False) == ("/abs", rootfs / "abs")
    os.symlink("loop", rootfs / "loop")
    with pytest.raises(InvalidArgument, match="symbolic links"):
        fs.resolve("/loop/x")


def test_a_mount_destination_behind_a_symlink_lands_where_the_runtime_puts_it(
    tmp_path: Path,
) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    os.symlink("/srv", rootfs / "link")
    (tmp_path / "config.json").write_text(json.dumps({"mounts": [_bind("/link", vol)]}))
    fs = ContainerFS.from_bundle("box", rootfs, tmp_path / "config.json")
    assert fs.resolve("/srv/f")[1] == vol / "f"
    assert fs.resolve("/link/f")[1] == vol / "f"


def test_kernel_trees_and_tmpfs_are_refused(tmp_path: Path) -> None:
    fs = _fs(
        tmp_path,
        [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            _bind("/sys", Path("/sys")),  # --network host binds the host's /sys
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"},
        ],
    )
    for path in ("/proc/1/environ", "/sys/kernel", "/dev/null"):
        with pytest.raises(InvalidArgument, match="kernel filesystem"):
            fs.resolve(path)
    with pytest.raises(InvalidArgument, match="tmpfs mount at /scratch"):
        fs.resolve("/scratch/f")
    assert [name for name, _, _ in fs.children("/")] == ["data", "etc"]
