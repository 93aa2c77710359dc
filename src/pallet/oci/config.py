"""Image configuration (OCI ``config`` blob, Docker ``container.image.v1``).

The config's digest is the image ID, so a parsed config keeps its exact bytes and
``to_bytes`` returns them until something is changed. A changed or new config is written
as Go's ``json.Marshal`` would write it, and every field pallet does not model (Docker's
``container``, ``container_config``, ``docker_version``, ``Hostname``, ``Image``... or a
future spec field) is carried through: keys keep their original order, fields that were
written explicitly (``"Volumes": null``, ``"User": ""``) stay written, and keys added later
follow Docker's order. Re-serializing an unchanged Docker or BuildKit config therefore
reproduces it byte for byte.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from pallet.errors import OCIError
from pallet.oci.chainid import chain_ids
from pallet.oci.digest import Digest
from pallet.oci.jsonutil import (
    MAX_CONFIG_BYTES,
    dump_bytes,
    expect_bool,
    expect_int,
    expect_object_set,
    expect_str,
    expect_str_list,
    expect_str_map,
    load_object,
    sorted_map,
    type_name,
)
from pallet.oci.platform import Platform

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

# RFC 3339 as Go's time.Time accepts it in JSON.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})", re.IGNORECASE
)
_ENV_ENTRY = re.compile(r"[^=]+=.*", re.DOTALL)

# A field: JSON key, attribute, default, parser (value, what) -> python, emitter -> JSON.
if TYPE_CHECKING:
    _Parse = Callable[[Any, str], Any]
    _Emit = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _Field:
    """How one field of a config document is read and written."""

    key: str
    attr: str
    default: Any
    parse: _Parse
    emit: _Emit = _same
    nullable: bool = False


def _strs(value: Any, what: str) -> tuple[str, ...]:
    return expect_str_list(value, what)


def _list_out(value: Any) -> Any:
    return list(value) if value is not None else None


def _set_out(value: Any) -> Any:
    return {k: {} for k in value} if value is not None else None


def _map_out(value: Any) -> Any:
    return sorted_map(value) if value is not None else None


def _env(value: Any, what: str) -> tuple[str, ...]:
    entries = expect_str_list(value, what)
    for entry in entries:
        if not _ENV_ENTRY.fullmatch(entry):
            raise OCIError(f"{what} entry {entry!r} is not NAME=value")
    return entries


def _created(value: Any, what: str) -> str:
    text = expect_str(value, what)
    if not _RFC3339.fullmatch(text):
        raise OCIError(f"{what} {text!r} is not an RFC 3339 date-time")
    return text


_HEALTH_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


def _healthcheck(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OCIError(f"{what} must be an object, not {type_name(value)}")
    if "Test" in value and value["Test"] is not None:
        expect_str_list(value["Test"], f"{what}.Test")
    for key in (*_HEALTH_DURATIONS, "Retries"):
        if key in value:
            expect_int(value[key], f"{what}.{key}", minimum=0)
    return dict(value)


def _healthcheck_out(value: Any) -> Any:
    return dict(value) if value is not None else None


_CONTAINER_FIELDS = (
    _Field("User", "user", "", expect_str),
    _Field("ExposedPorts", "exposed_ports", None, expect_object_set, _set_out, True),
    _Field("Env", "env", None, _env, _list_out, True),
    _Field("Cmd", "cmd", None, _strs, _list_out, True),
    _Field("Healthcheck", "healthcheck", None, _healthcheck, _healthcheck_out, True),
    _Field("ArgsEscaped", "args_escaped", False, expect_bool),
    _Field("Volumes", "volumes", None, expect_object_set, _set_out, True),
    _Field("WorkingDir", "working_dir", "", expect_str),
    _Field("Entrypoint", "entrypoint", None, _strs, _list_out, True),
    _Field("OnBuild", "on_build", None, _strs, _list_out, True),
    _Field("Labels", "labels", None, expect_str_map, _map_out, True),
    _Field("StopSignal", "stop_signal", "", expect_str),
    _Field("Shell", "shell", None, _strs, _list_out, True),
)
# Docker's container.Config field order: where keys a config did not have yet go.
CONTAINER_KEY_ORDER = (
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
)

_HISTORY_FIELDS = (
    _Field("created", "created", None, _created),
    _Field("created_by", "created_by", "", expect_str),
    _Field("author", "author", "", expect_str),
    _Field("comment", "comment", "", expect_str),
    _Field("empty_layer", "empty_layer", False, expect_bool),
)
HISTORY_KEY_ORDER = tuple(f.key for f in _HISTORY_FIELDS)

# Go ocispec.Image order for keys a config did not have yet.
IMAGE_KEY_ORDER = (
    "created",
    "author",
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "config",
    "rootfs",
    "history",
)


def _parse_fields(
    fields: Sequence[_Field], doc: dict[str, Any], what: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Typed attributes and the untouched rest of ``doc``."""
    by_key = {f.key: f for f in fields}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in doc.items():
        f = by_key.get(key)
        if f is None:
            extra[key] = value
        elif value is None and (f.nullable or f.default is None):
            values[f.attr] = None
        else:
            values[f.attr] = f.parse(value, f"{what}.{key}")
    return values, extra


def _emit_fields(
    obj: Any,
    fields: Sequence[_Field],
    extra: Mapping[str, Any],
    key_order: Sequence[str],
    canonical: Sequence[str],
    special: Mapping[str, Callable[[], tuple[bool, Any]]] | None = None,
) -> dict[str, Any]:
    """Keys in their original order, then new ones in ``canonical`` order, then the rest.

    A typed field is written when it differs from its default or was written before;
    ``special`` keys decide for themselves (returning whether and what to write).
    """
    by_key = {f.key: f for f in fields}
    present = set(key_order)
    order = [
        *key_order,
        *(k for k in canonical if k not in present),
        *(k for k in extra if k not in present and k not in canonical),
    ]
    out: dict[str, Any] = {}
    for key in order:
        if key in out:
            continue
        if special and key in special:
            write, value = special[key]()
            if write or key in present:
                out[key] = value
            continue
        f = by_key.get(key)
        if f is not None:
            value = getattr(obj, f.attr)
            if value != f.default or key in present:
                out[key] = f.emit(value) if value is not None else None
        elif key in extra:
            out[key] = extra[key]
    return out


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OCIError(f"{what} must be an object, not {type_name(value)}")
    return value


@dataclass(frozen=True)
class ContainerConfig:
    """The ``config`` object: how to run the image. Unmodelled keys live in ``extra``."""

    user: str = ""
    exposed_ports: tuple[str, ...] | None = None
    env: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] | None = None
    working_dir: str = ""
    labels: Mapping[str, str] | None = field(default=None, hash=False)
    stop_signal: str = ""
    args_escaped: bool = False
    healthcheck: Mapping[str, Any] | None = field(default=None, hash=False)
    on_build: tuple[str, ...] | None = None
    shell: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("exposed_ports", "volumes"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(sorted(set(value))))
        for name in ("env", "entrypoint", "cmd", "on_build", "shell"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if self.env is not None:
            _env(list(self.env), "config.Env")
        if self.labels is not None:
            object.__setattr__(self, "labels", dict(self.labels))
        object.__setattr__(self, "extra", dict(self.extra))

    @classmethod
    def from_json(cls, value: Any, what: str = "config") -> ContainerConfig:
        doc = _object(value, what)
        values, extra = _parse_fields(_CONTAINER_FIELDS, doc, what)
        return cls(**values, extra=extra, key_order=tuple(doc))

    def to_json(self) -> dict[str, Any]:
        return _emit_fields(
            self, _CONTAINER_FIELDS, self.extra, self.key_order, CONTAINER_KEY_ORDER
        )

    def replace(self, **changes: Any) -> ContainerConfig:
        return dataclasses.replace(self, **changes)

    def env_dict(self) -> dict[str, str]:
        """``Env`` as a mapping (a later entry for the same name wins, as at run time)."""
        out: dict[str, str] = {}
        for entry in self.env or ():
            name, _, value = entry.partition("=")
            out[name] = value
        return out

    def with_env(self, name: str, value: str) -> ContainerConfig:
        """Set one variable: replaced in place if present (as Docker's ENV does), else appended."""
        entry = f"{name}={value}"
        env = list(self.env or ())
        for i, existing in enumerate(env):
            if existing.partition("=")[0] == name:
                env[i] = entry
                break
        else:
            env.append(entry)
        return self.replace(env=tuple(env))

    def with_labels(self, labels: Mapping[str, str]) -> ContainerConfig:
        return self.replace(labels={**(self.labels or {}), **labels})


@dataclass(frozen=True)
class History:
    """One history entry; ``empty_layer`` entries have no layer in ``rootfs.diff_ids``."""

    created: str | None = None
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.created is not None:
            _created(self.created, "history.created")
        object.__setattr__(self, "extra", dict(self.extra))

    @classmethod
    def from_json(cls, value: Any, what: str = "history") -> History:
        doc = _object(value, what)
        values, extra = _parse_fields(_HISTORY_FIELDS, doc, what)
        return cls(**values, extra=extra, key_order=tuple(doc))

    def to_json(self) -> dict[str, Any]:
        return _emit_fields(self, _HISTORY_FIELDS, self.extra, self.key_order, HISTORY_KEY_ORDER)


@dataclass(frozen=True)
class ImageConfig:
    """A validated image config. ``raw`` holds the parsed bytes until a change drops it.

    Equality compares content, not bytes: two encodings of the same config are equal but
    have different image IDs, so compare ``image_id`` when identity matters.
    """

    architecture: str
    os: str
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    variant: str = ""
    created: str | None = None
    author: str = ""
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[Digest, ...] = ()
    history: tuple[History, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    rootfs_extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)
    raw: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        expect_str(self.architecture, "config architecture")
        expect_str(self.os, "config os")
        if self.created is not None:
            _created(self.created, "config created")
        object.__setattr__(self, "diff_ids", tuple(Digest(d) for d in self.diff_ids))
        object.__setattr__(self, "history", tuple(self.history))
        object.__setattr__(self, "os_features", tuple(self.os_features))
        object.__setattr__(self, "extra", dict(self.extra))
        object.__setattr__(self, "rootfs_extra", dict(self.rootfs_extra))

    # -- reading -----------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageConfig:
        """Parse and validate a config blob, keeping its exact bytes."""
        doc = load_object(data, "image config", MAX_CONFIG_BYTES)
        return cls.from_json(doc, raw=bytes(data))

    @classmethod
    def from_json(cls, doc: dict[str, Any], raw: bytes | None = None) -> ImageConfig:
        what = "image config"
        for key in ("architecture", "os"):
            if key not in doc:
                raise OCIError(f"{what} has no {key}")
        values: dict[str, Any] = {
            "architecture": expect_str(doc["architecture"], f"{what} architecture"),
            "os": expect_str(doc["os"], f"{what} os"),
        }
        if "os.version" in doc:
            values["os_version"] = expect_str(doc["os.version"], f"{what} os.version")
        if doc.get("os.features") is not None:
            values["os_features"] = expect_str_list(doc["os.features"], f"{what} os.features")
        if "variant" in doc:
            values["variant"] = expect_str(doc["variant"], f"{what} variant")
        if doc.get("created") is not None:
            values["created"] = _created(doc["created"], f"{what} created")
        if "author" in doc:
            values["author"] = expect_str(doc["author"], f"{what} author")
        if doc.get("config") is not None:
            values["config"] = ContainerConfig.from_json(doc["config"], f"{what} config")
        if "rootfs" not in doc:
            raise OCIError(f"{what} has no rootfs")
        rootfs = _object(doc["rootfs"], f"{what} rootfs")
        if rootfs.get("type") != "layers":
            raise OCIError(f"{what} rootfs.type must be 'layers', not {rootfs.get('type')!r}")
        if "diff_ids" not in rootfs:
            raise OCIError(f"{what} rootfs has no diff_ids")
        diff_ids = rootfs["diff_ids"]
        if not isinstance(diff_ids, list):
            raise OCIError(f"{what} rootfs.diff_ids must be an array, not {type_name(diff_ids)}")
        values["diff_ids"] = tuple(
            Digest(expect_str(d, f"{what} rootfs.diff_ids[{i}]")) for i, d in enumerate(diff_ids)
        )
        values["rootfs_extra"] = {k: v for k, v in rootfs.items() if k not in ("type", "diff_ids")}
        if doc.get("history") is not None:
            entries = doc["history"]
            if not isinstance(entries, list):
                raise OCIError(f"{what} history must be an array, not {type_name(entries)}")
            values["history"] = tuple(
                History.from_json(h, f"{what} history[{i}]") for i, h in enumerate(entries)
            )
        modelled = {*IMAGE_KEY_ORDER}
        extra = {k: v for k, v in doc.items() if k not in modelled}
        return cls(**values, extra=extra, key_order=tuple(doc), raw=raw)

    # -- writing -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        simple: dict[str, Callable[[], tuple[bool, Any]]] = {
            "created": lambda: (self.created is not None, self.created),
            "author": lambda: (bool(self.author), self.author),
            "architecture": lambda: (True, self.architecture),
            "os": lambda: (True, self.os),
            "os.version": lambda: (bool(self.os_version), self.os_version),
            "os.features": lambda: (bool(self.os_features), list(self.os_features)),
            "variant": lambda: (bool(self.variant), self.variant),
            "config": lambda: (bool(self.config.to_json()), self.config.to_json()),
            "rootfs": lambda: (True, self._rootfs_json()),
            "history": lambda: (bool(self.history), [h.to_json() for h in self.history]),
        }
        return _emit_fields(self, (), self.extra, self.key_order, IMAGE_KEY_ORDER, simple)

    def _rootfs_json(self) -> dict[str, Any]:
        return {"type": "layers", "diff_ids": [str(d) for d in self.diff_ids], **self.rootfs_extra}

    def serialize(self) -> bytes:
        """Freshly encoded bytes (what ``to_bytes`` returns once the config has changed)."""
        return dump_bytes(self.to_json())

    def to_bytes(self) -> bytes:
        """The config's bytes: the original ones if unchanged, else deterministic new ones."""
        return self.raw if self.raw is not None else self.serialize()

    @cached_property
    def image_id(self) -> Digest:
        """Docker's image ID: the digest of the config blob."""
        return Digest.from_bytes(self.to_bytes())

    @property
    def digest(self) -> Digest:
        return self.image_id

    # -- building ----------------------------------------------------------------------

    @classmethod
    def new(cls, platform: Platform, *, created: str | None = None) -> ImageConfig:
        """An empty image (``FROM scratch``) for ``platform``."""
        return cls(
            architecture=platform.architecture,
            os=platform.os,
            os_version=platform.os_version,
            os_features=platform.os_features,
            variant=platform.variant,
            created=created,
        )

    def replace(self, **changes: Any) -> ImageConfig:
        """A copy with fields changed (its bytes are then re-encoded)."""
        return dataclasses.replace(self, raw=None, **changes)

    def with_config(self, **changes: Any) -> ImageConfig:
        """A copy with ``ContainerConfig`` fields changed (``cmd=(...)``, ``env=(...)``)."""
        return self.replace(config=self.config.replace(**changes))

    def with_layer(self, diff_id: str, history: History | None = None) -> ImageConfig:
        """A copy with one more layer and, if given, its history entry."""
        entries = self.history
        if history is not None:
            entries = (*entries, dataclasses.replace(history, empty_layer=False))
        return self.replace(diff_ids=(*self.diff_ids, Digest(diff_id)), history=entries)

    def with_history(self, *entries: History) -> ImageConfig:
        """A copy with history entries appended (metadata steps: ``empty_layer=True``)."""
        return self.replace(history=(*self.history, *entries))

    # -- views -------------------------------------------------------------------------

    @property
    def platform(self) -> Platform:
        return Platform(
            os=self.os,
            architecture=self.architecture,
            variant=self.variant,
            os_version=self.os_version,
            os_features=self.os_features,
        )

    @property
    def chain_ids(self) -> list[Digest]:
        return chain_ids(self.diff_ids)

    @property
    def chain_id(self) -> Digest | None:
        """The chain ID of all layers; None for an image without layers."""
        ids = self.chain_ids
        return ids[-1] if ids else None

    def layer_history(self) -> list[tuple[History, Digest | None]]:
        """Each history entry with the diff ID of the layer it made (None: empty layer).

        Entries are matched to layers in order, skipping ``empty_layer`` ones, as
        ``docker history`` does; layers beyond the history come last with a blank entry.
        """
        out: list[tuple[History, Digest | None]] = []
        layers = iter(self.diff_ids)
        for entry in self.history:
            out.append((entry, None if entry.empty_layer else next(layers, None)))
        out.extend((History(), diff_id) for diff_id in layers)
        return out


def history_entry(
    created_by: str,
    *,
    created: str | None = None,
    comment: str = "",
    author: str = "",
    empty_layer: bool = False,
) -> History:
    """A history entry as a build step writes it."""
    return History(
        created=created,
        created_by=created_by,
        author=author,
        comment=comment,
        empty_layer=empty_layer,
    )


def parse_env(entries: Iterable[str]) -> dict[str, str]:
    """``NAME=value`` entries as a mapping (later entries win)."""
    return ContainerConfig(env=tuple(entries)).env_dict()
