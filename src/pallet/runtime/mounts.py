"""``-v``, ``--mount`` and ``--tmpfs`` specifications, parsed before anything is created."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from pallet.errors import InvalidArgument
from pallet.runtime.volumes import valid_volume_name

Kind = Literal["bind", "volume", "tmpfs"]
_MODES = {"rw", "ro", "z", "Z"}


@dataclass(frozen=True)
class MountRequest:
    kind: Kind
    target: str
    source: str = ""  # host path (bind), volume name ("" = anonymous), unused for tmpfs
    readonly: bool = False
    options: tuple[str, ...] = ()  # tmpfs size=/mode=
    seed: bool = True  # a new volume gets the image's content (not with volume-nocopy)


def _check_target(target: str, spec: str) -> str:
    if not target.startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{spec}': container path must be absolute"
        )
    if any(part == ".." for part in target.split("/")):
        raise InvalidArgument(f"invalid volume specification: '{spec}': '..' in container path")
    return os.path.normpath(target)


def parse_volume(spec: str) -> MountRequest:
    """``-v /ctr[:ro]`` (anonymous), ``-v NAME:/ctr[:ro]``, ``-v /host:/ctr[:ro|rw]``."""
    parts = spec.split(":")
    if len(parts) == 1:
        return MountRequest("volume", _check_target(parts[0], spec))
    if len(parts) == 2 and parts[1] and set(parts[1].split(",")) <= _MODES:
        # docker reads a second part that is only modes as an anonymous volume's modes
        readonly = "ro" in parts[1].split(",")
        return MountRequest("volume", _check_target(parts[0], spec), readonly=readonly)
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, target = parts[0], _check_target(parts[1], spec)
    modes = parts[2].split(",") if len(parts) == 3 else []
    for mode in modes:
        if mode not in _MODES:
            raise InvalidArgument(f"invalid mode: {mode} in volume specification '{spec}'")
    readonly = "ro" in modes
    if source.startswith("/"):
        return MountRequest("bind", target, os.path.normpath(source), readonly)
    if not valid_volume_name(source):
        raise InvalidArgument(
            f"invalid volume specification: '{spec}': \"{source}\" includes invalid "
            'characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are '
            "allowed. If you intended to pass a host directory, use absolute path"
        )
    return MountRequest("volume", target, source, readonly)


def parse_mount(spec: str) -> MountRequest:
    """``--mount type=bind|volume|tmpfs,source=..,target=..[,readonly][,tmpfs-size=..]``."""
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro", "volume-nocopy") and not sep:
            value = "true"
        elif not sep:
            raise InvalidArgument(f"invalid field '{item}' must be a key=value pair in '{spec}'")
        fields[key] = value
    kind = fields.pop("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount type {kind!r} in '{spec}'")
    target = fields.pop("target", fields.pop("destination", fields.pop("dst", "")))
    if not target:
        raise InvalidArgument(f"invalid mount config: target is required in '{spec}'")
    target = _check_target(target, spec)
    source = fields.pop("source", fields.pop("src", ""))
    readonly = fields.pop("readonly", fields.pop("ro", "false")).lower() in ("1", "true")
    options: list[str] = []
    if "tmpfs-size" in fields:
        options.append(f"size={fields.pop('tmpfs-size')}")
    if "tmpfs-mode" in fields:
        options.append(f"mode={fields.pop('tmpfs-mode')}")
    fields.pop("bind-propagation", None)
    nocopy = fields.pop("volume-nocopy", "false").lower() in ("1", "true")
    if fields:
        raise InvalidArgument(f"unexpected key '{next(iter(fields))}' in '{spec}'")
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid mount config: bind source must be absolute in '{spec}'")
        if not os.path.exists(source):
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {source}'
            )
        return MountRequest("bind", target, os.path.normpath(source), readonly)
    if kind == "tmpfs":
        if source:
            raise InvalidArgument(f"invalid mount config: tmpfs takes no source in '{spec}'")
        return MountRequest("tmpfs", target, "", readonly, tuple(options))
    if source and not valid_volume_name(source):
        raise InvalidArgument(f"invalid volume name {source!r} in '{spec}'")
    return MountRequest("volume", target, source, readonly, seed=not nocopy)


def parse_tmpfs(spec: str) -> MountRequest:
    path, _, opts = spec.partition(":")
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid tmpfs specification {spec!r}: path must be absolute")
    return MountRequest(
        "tmpfs", os.path.normpath(path), options=tuple(o for o in opts.split(",") if o)
    )
