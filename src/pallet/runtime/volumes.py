"""Named and anonymous volumes under ``<root>/volumes/<name>/_data``, as Docker's local driver.

A volume is a directory that outlives containers. The first container to mount an empty
volume over a path that has content in its image copies that content in (Docker's seeding),
so ``-v data:/etc`` starts with the image's /etc.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.errors import Conflict, InvalidArgument, NotFound
from pallet.store import Store

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


@dataclass(frozen=True)
class Volume:
    name: str
    mountpoint: Path
    created: float
    labels: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False

    def inspect(self) -> dict[str, Any]:
        return {
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "Driver": "local",
            "Labels": self.labels or None,
            "Mountpoint": str(self.mountpoint),
            "Name": self.name,
            "Options": None,
            "Scope": "local",
        }


def valid_volume_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


class Volumes:
    def __init__(self, store: Store) -> None:
        self.root = store.root / "volumes"

    def _meta(self, name: str) -> Path:
        return self.root / name / "volume.json"

    def get(self, name: str) -> Volume:
        if not valid_volume_name(name):
            raise NotFound(f"get {name}: no such volume")
        try:
            doc = json.loads(self._meta(name).read_text())
        except (OSError, ValueError):
            raise NotFound(f"get {name}: no such volume") from None
        return Volume(
            name,
            self.root / name / "_data",
            float(doc.get("created", 0)),
            dict(doc.get("labels") or {}),
            bool(doc.get("anonymous")),
        )

    def create(
        self, name: str | None = None, labels: dict[str, str] | None = None
    ) -> tuple[Volume, bool]:
        """The volume, created if absent; the flag says whether it was created now."""
        anonymous = name is None
        name = name or secrets.token_hex(32)
        if not valid_volume_name(name):
            raise InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume '
                'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
                "a host directory, use absolute path"
            )
        try:
            return self.get(name), False
        except NotFound:
            pass
        (self.root / name / "_data").mkdir(parents=True, exist_ok=True)
        doc = {"created": time.time(), "labels": labels or {}, "anonymous": anonymous}
        tmp = self.root / name / "volume.json.tmp"
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self._meta(name))
        return self.get(name), True

    def all(self) -> list[Volume]:
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(self.root.iterdir()):
            try:
                out.append(self.get(entry.name))
            except NotFound:
                continue
        return out

    def remove(self, name: str, in_use_by: str | None = None) -> None:
        volume = self.get(name)
        if in_use_by:
            raise Conflict(f"remove {name}: volume is in use - [{in_use_by}]")
        shutil.rmtree(volume.mountpoint.parent)


def seed(volume: Path, image_path: Path) -> None:
    """Copy the image's content at the mount point into an empty volume, as Docker does."""
    if any(volume.iterdir()) or image_path.is_symlink() or not image_path.is_dir():
        return
    for child in image_path.iterdir():
        target = volume / child.name
        if child.is_dir() and not child.is_symlink():
            shutil.copytree(child, target, symlinks=True)
        else:
            shutil.copy2(child, target, follow_symlinks=False)
    st = image_path.stat()
    os.chown(volume, st.st_uid, st.st_gid)
    os.chmod(volume, st.st_mode & 0o7777)
