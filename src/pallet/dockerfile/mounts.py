"""RUN --mount and --device values, parsed and checked as BuildKit does.

A value is one CSV record of ``key=value`` fields (``type=cache,target=/root/.cache``).
Values may hold build-time variables, so parsing takes an ``expand`` function for
each value; ``check_mount_syntax`` does the part BuildKit checks before expansion.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pallet.dockerfile.gostrings import lower
from pallet.dockerfile.suggest import search

MountType = Literal["bind", "cache", "tmpfs", "secret", "ssh"]
Sharing = Literal["shared", "private", "locked"]
MOUNT_TYPES: tuple[MountType, ...] = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES: tuple[Sharing, ...] = ("shared", "private", "locked")
_MOUNT_KEYS = (
    "type", "from", "source", "target", "readonly", "id", "sharing", "required", "size",
    "mode", "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env",
)  # fmt: skip
_MAX_UINT32 = (1 << 32) - 1
_MAX_INT64 = (1 << 63) - 1


class MountError(ValueError):
    pass


@dataclass(frozen=True)
class Mount:
    type: MountType = "bind"
    from_: str = ""  # stage or image to mount from (bind, cache)
    source: str = ""
    target: str = ""
    readonly: bool = True
    size_limit: int = 0  # tmpfs size in bytes; 0 means no limit
    id: str = ""  # cache id, or secret id
    sharing: Sharing | None = None
    required: bool = False
    env: str | None = None  # secret exposed as this environment variable
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class Device:
    name: str
    required: bool = False


def csv_fields(line: str) -> list[str]:
    """One CSV record (encoding/csv rules: ``""`` escapes a quote; no bare quotes)."""
    if line.endswith("\r\n"):
        line = line[:-2]
    elif line.endswith("\n"):
        line = line[:-1]
    if not line:
        raise MountError("EOF")
    fields: list[str] = []
    pos = 0
    n = len(line)
    while True:
        if pos >= n or line[pos] != '"':
            comma = line.find(",", pos)
            field = line[pos:] if comma < 0 else line[pos:comma]
            if '"' in field:
                raise MountError(
                    f'parse error on column {pos + field.index(chr(34)) + 1}: bare " in non-quoted-field'
                )
            fields.append(field)
            if comma < 0:
                return fields
            pos = comma + 1
            continue
        pos += 1
        parts: list[str] = []
        while True:
            q = line.find('"', pos)
            if q < 0:
                raise MountError(
                    f'parse error on column {pos + 1}: extraneous or missing " in quoted-field'
                )
            parts.append(line[pos:q])
            pos = q + 1
            if line.startswith('"', pos):
                parts.append('"')
                pos += 1
                continue
            if line.startswith(",", pos):
                fields.append("".join(parts))
                pos += 1
                break
            if pos >= n:
                fields.append("".join(parts))
                return fields
            raise MountError(
                f'parse error on column {pos}: extraneous or missing " in quoted-field'
            )


def _parse_bool(value: str) -> bool:
    """strconv.ParseBool."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(value)


def _parse_uint(value: str, base: int) -> int:
    """strconv.ParseUint(value, base, 32)."""
    digits = "01234567" if base == 8 else "0123456789"
    if not value or any(c not in digits for c in value) or len(value.lstrip("0")) > 12:
        raise ValueError(value)
    number = int(value, base)
    if number > _MAX_UINT32:
        raise ValueError(value)
    return number


_SIZE_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: ``64m``, ``1.5GiB``, ``1024`` (binary multiples)."""
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep < 0:
        raise ValueError(f"invalid size: '{text}'")
    if text[sep] != " ":
        number, suffix = text[: sep + 1], text[sep + 1 :]
    else:
        number, suffix = text[:sep], text[sep + 1 :]
    if len(number) > 400 or not _SIZE_NUMBER.fullmatch(number):
        raise ValueError(f"invalid size: '{text}'")
    size = float(number)
    if size < 0 or size != size or size == float("inf"):
        raise ValueError(f"invalid size: '{text}'")
    if suffix:
        low = lower(suffix)
        if len(suffix) > 3 or (low[0] == "b" and len(low) > 1):
            raise ValueError(f"invalid suffix: '{low}'")
        if low[0] != "b":
            mul = _BINARY.get(low[0])
            if (
                mul is None
                or (len(low) == 2 and low[1] != "b")
                or (len(low) == 3 and low[1:] != "ib")
            ):
                raise ValueError(f"invalid suffix: '{low}'")
            size *= mul
    if size > _MAX_INT64:
        raise ValueError(f"invalid size: '{text}'")
    return int(size)


def check_mount_syntax(value: str) -> None:
    """What BuildKit checks before variables are known: CSV syntax, no variable in from=."""
    try:
        fields = csv_fields(value)
    except MountError as err:
        raise MountError(f"failed to parse csv mounts: {err}") from None
    for field in fields:
        key, eq, val = field.partition("=")
        if eq and lower(key) == "from":
            idx = val.find("$")
            if idx != -1 and idx != len(val) - 1:
                raise MountError(
                    "'from' doesn't support variable expansion, define alias stage instead"
                )


def _suggest(message: str, value: str, options: tuple[str, ...]) -> str:
    match = search(value, options, case_sensitive=True)
    return f"{message} (did you mean {match}?)" if match else message


def parse_mount(value: str, expand: Callable[[str], str] = lambda v: v) -> Mount:
    """A --mount value as a Mount; ``expand`` resolves variables in each field value."""
    check_mount_syntax(value)
    fields = csv_fields(value)
    m: dict[str, object] = {"type": "bind"}
    mount_type: MountType = "bind"
    ro_auto = True
    for field in fields:
        key, eq, val = field.partition("=")
        key = lower(key)
        if not eq:
            if key in ("readonly", "ro"):
                m["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                m["readonly"], ro_auto = False, False
            elif key == "required":
                if mount_type not in ("secret", "ssh"):
                    raise MountError(f"unexpected key '{key}' for mount type '{mount_type}'")
                m["required"] = True
            else:
                raise MountError(f"invalid field '{field}' must be a key=value pair")
            continue
        val = expand(val)
        try:
            if key == "type":
                low = lower(val)
                if low not in MOUNT_TYPES:
                    raise MountError(_suggest(f'unsupported mount type "{val}"', val, MOUNT_TYPES))
                mount_type = low
                m["type"] = low
            elif key == "from":
                m["from_"] = val
            elif key in ("source", "src"):
                m["source"] = val
            elif key in ("target", "dst", "destination"):
                m["target"] = val
            elif key in ("readonly", "ro"):
                m["readonly"], ro_auto = _parse_bool(val), False
            elif key in ("readwrite", "rw"):
                m["readonly"], ro_auto = not _parse_bool(val), False
            elif key == "required":
                if mount_type not in ("secret", "ssh"):
                    raise MountError(f"unexpected key '{key}' for mount type '{mount_type}'")
                m["required"] = _parse_bool(val)
            elif key == "size":
                if mount_type != "tmpfs":
                    raise MountError(f"unexpected key '{key}' for mount type '{mount_type}'")
                m["size_limit"] = ram_in_bytes(val)
            elif key == "id":
                m["id"] = val
            elif key == "sharing":
                low = lower(val)
                if low not in SHARING_MODES:
                    raise MountError(
                        _suggest(f'unsupported sharing value "{val}"', val, SHARING_MODES)
                    )
                m["sharing"] = low
            elif key in ("mode", "uid", "gid"):
                try:
                    m[key] = _parse_uint(val, 8 if key == "mode" else 10)
                except ValueError:
                    raise MountError(f"invalid value {val} for {key}") from None
            elif key == "env":
                m["env"] = val
            else:
                raise MountError(_suggest(f"unexpected key '{key}' in '{field}'", key, _MOUNT_KEYS))
        except ValueError as err:
            if isinstance(err, MountError):
                raise
            raise MountError(f"invalid value for {key}: {val}") from None
    if mount_type not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if m.get(key) is not None:
                raise MountError(f'{key} not allowed for "{mount_type}" type mounts')
    if ro_auto:
        m["readonly"] = mount_type not in ("cache", "tmpfs")
    mount = Mount(**m)  # type: ignore[arg-type]
    if mount_type == "secret":
        if mount.from_:
            raise MountError("secret mount should not have a from")
        if mount.sharing:
            raise MountError("secret mount should not define sharing")
        if not mount.source and not mount.target and not mount.id:
            raise MountError("invalid secret mount. one of source, target required")
        if mount.source and mount.id:
            raise MountError("both source and id can't be set")
    if mount.sharing and mount_type != "cache":
        raise MountError(f"invalid cache sharing set for {mount_type} mount")
    return mount


def parse_device(value: str) -> Device:
    """A RUN --device value: ``name[,required[=bool]]`` or ``name=...``."""
    try:
        fields = csv_fields(value)
    except MountError as err:
        raise MountError(f"failed to parse csv devices: {err}") from None
    name = ""
    required = False
    for field in fields:
        key, eq, val = field.partition("=")
        key = lower(key)
        if not eq:
            if key == "required":
                required = True
            elif not name:
                name = field
            else:
                raise MountError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "name":
            if name:
                raise MountError(f"device name already set to {name}")
            name = val
        elif key == "required":
            try:
                required = _parse_bool(val)
            except ValueError:
                raise MountError(f"invalid value for {key}: {val}") from None
        elif not name:
            name = field
        else:
            raise MountError(
                _suggest(f"unexpected key '{key}' in '{field}'", key, ("name", "required"))
            )
    return Device(name, required)
