"""Resolve ``user[:group]`` against a root filesystem's /etc/passwd and /etc/group, as Docker does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pallet.errors import ContainerError

_MAX_ACCOUNT_FILE = 16 << 20


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _read_db(rootfs: Path, name: str) -> list[list[str]]:
    path = rootfs / "etc" / name
    # The file lives in an untrusted image: never follow a symlink out of the rootfs.
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_ACCOUNT_FILE:
            return []
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _as_id(text: str) -> int | None:
    if text.isdigit() and len(text) < 11:
        value = int(text)
        if value < 2**32 - 1:
            return value
    return None


def resolve_user(rootfs: Path, spec: str) -> ResolvedUser:
    """Resolve ``name``, ``uid``, ``name:group``, ``uid:gid`` (and mixes) as Docker does.

    A numeric uid absent from /etc/passwd is allowed (gid 0); a name that is not there is
    an error naming it. Supplementary groups come from /etc/group membership of the user
    name unless a group was given explicitly.
    """
    spec = spec.strip() or "root"
    user_part, _, group_part = spec.partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")

    uid_num = _as_id(user_part)
    entry: list[str] | None = None
    for row in passwd:
        if len(row) < 7:
            continue
        if (uid_num is None and row[0] == user_part) or (
            uid_num is not None and row[2] == user_part
        ):
            entry = row
            break
    if entry is None and uid_num is None:
        raise ContainerError(f"unable to find user {user_part}: no matching entries in passwd file")
    gid, home, user_name = 0, "/", None
    uid = uid_num if uid_num is not None else 0
    if entry is not None:
        uid = _as_id(entry[2]) or 0
        gid = _as_id(entry[3]) or 0
        home = entry[5] or "/"
        user_name = entry[0]

    additional: list[int] = []
    if group_part:
        gid_num = _as_id(group_part)
        if gid_num is not None:
            gid = gid_num
        else:
            for row in groups:
                if len(row) >= 3 and row[0] == group_part and _as_id(row[2]) is not None:
                    gid = int(row[2])
                    break
            else:
                raise ContainerError(
                    f"unable to find group {group_part}: no matching entries in group file"
                )
    elif user_name is not None:
        for row in groups:
            if len(row) >= 4 and user_name in row[3].split(",") and _as_id(row[2]) is not None:
                g = int(row[2])
                if g != gid and g not in additional:
                    additional.append(g)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=tuple(additional), home=home)


def container_gids(user: ResolvedUser) -> tuple[int, ...]:
    """Supplementary groups of a container's process as docker sets them (``run -u``,
    ``exec -u``): the primary gid first, then the memberships. BuildKit's RUN steps
    leave the primary gid out, so the build keeps ``additional_gids`` as they are."""
    return (user.gid, *(g for g in user.additional_gids if g != user.gid))
