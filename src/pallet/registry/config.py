"""The registry's configuration: one TOML file, overridden by command-line flags.

Every section has defaults that make ``pallet registry serve`` work out of the box on
127.0.0.1:5000 with no authentication (only loopback can reach it then).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.errors import RegistryError

DEFAULT_ADDR = "127.0.0.1:5000"
AUTH_MODES = ("none", "htpasswd", "token")
ACTIONS = ("pull", "push", "delete")


@dataclass(frozen=True)
class AccessRule:
    """Grants ``actions`` on repositories matching any glob to any of ``subjects``.

    A subject is a user name, ``group:<name>``, ``*`` (any signed-in user) or
    ``anonymous``.
    """

    subjects: tuple[str, ...]
    repositories: tuple[str, ...]
    actions: tuple[str, ...]


@dataclass(frozen=True)
class AuthConfig:
    mode: str = "none"
    htpasswd: Path | None = None
    anonymous_pull: bool = False
    realm: str = "pallet-registry"
    token_realm: str = ""  # URL of the token endpoint; derived from the request if empty
    token_service: str = "pallet-registry"
    token_issuer: str = "pallet-registry"
    token_key: Path | None = None
    token_ttl: int = 300
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    access: tuple[AccessRule, ...] = ()


@dataclass(frozen=True)
class TLSConfig:
    cert: Path | None = None
    key: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.cert is not None


@dataclass(frozen=True)
class LimitsConfig:
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_blob_bytes: int = 0  # 0: unlimited
    upload_max_age_seconds: int = 7 * 24 * 3600


@dataclass(frozen=True)
class GCConfig:
    grace_seconds: int = 3600
    schedule_minutes: int = 0  # 0: only on demand


@dataclass(frozen=True)
class RetentionPolicy:
    repositories: tuple[str, ...]
    keep_last: int | None = None
    max_age_days: float | None = None
    keep_tags: tuple[str, ...] = ()
    untagged: bool = False


@dataclass(frozen=True)
class RetentionConfig:
    policies: tuple[RetentionPolicy, ...] = ()
    schedule_minutes: int = 0
    untagged_grace_seconds: int = 3600


@dataclass(frozen=True)
class Webhook:
    url: str
    events: tuple[str, ...] = ("push", "delete")
    timeout: float = 5.0
    retries: int = 5
    backoff: float = 1.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegistryConfig:
    addr: str = DEFAULT_ADDR
    data: Path = Path("registry")
    read_only: bool = False
    access_log: bool = True
    audit_log: Path | None = None  # default <data>/audit.log
    auth: AuthConfig = field(default_factory=AuthConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    gc: GCConfig = field(default_factory=GCConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    notifications: tuple[Webhook, ...] = ()

    @property
    def host_port(self) -> tuple[str, int]:
        return split_addr(self.addr)

    @property
    def htpasswd_path(self) -> Path:
        return self.auth.htpasswd or self.data / "htpasswd"

    @property
    def audit_path(self) -> Path:
        return self.audit_log or self.data / "audit.log"

    @property
    def token_key_path(self) -> Path:
        return self.auth.token_key or self.data / "token-key.pem"

    def replace(self, **changes: Any) -> RegistryConfig:
        return dataclasses.replace(self, **changes)


def split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise RegistryError(f"invalid address {addr!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def load_config(path: Path | None, default_data: Path) -> RegistryConfig:
    """Read ``path`` (TOML) if given; relative paths in it are relative to the file."""
    if path is None:
        return RegistryConfig(data=default_data)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise RegistryError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"config {path} is not valid TOML: {exc}") from None
    try:
        return _from_toml(raw, path.parent, default_data)
    except (TypeError, ValueError, RegistryError) as exc:
        raise RegistryError(f"config {path}: {exc}") from None


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"[{key}] must be a table")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ValueError(f"unknown key(s) in {where}: {', '.join(sorted(unknown))}")


def _path(value: Any, base: Path, what: str) -> Path | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a path string")
    return (base / value).resolve()


def _strs(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(value)


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false")
    return value


def _from_toml(raw: dict[str, Any], base: Path, default_data: Path) -> RegistryConfig:
    _check_keys(
        raw,
        {"addr", "data", "read_only", "access_log", "audit_log", "auth", "tls", "limits", "gc"}
        | {"retention", "notifications"},
        "config",
    )
    auth_raw = _section(raw, "auth")
    _check_keys(
        auth_raw,
        {f.name for f in dataclasses.fields(AuthConfig)},
        "[auth]",
    )
    mode = auth_raw.get("mode", "none")
    if mode not in AUTH_MODES:
        raise ValueError(f"auth.mode must be one of {', '.join(AUTH_MODES)}, not {mode!r}")
    groups_raw = auth_raw.get("groups", {})
    if not isinstance(groups_raw, dict):
        raise ValueError("[auth.groups] must be a table of lists")
    groups = {str(k): _strs(v, f"auth.groups.{k}") for k, v in groups_raw.items()}
    rules = []
    for i, rule in enumerate(auth_raw.get("access", [])):
        if not isinstance(rule, dict):
            raise ValueError("[[auth.access]] entries must be tables")
        _check_keys(rule, {"subjects", "repositories", "actions"}, f"auth.access[{i}]")
        actions = _strs(rule.get("actions", []), f"auth.access[{i}].actions")
        bad = set(actions) - {*ACTIONS, "*"}
        if bad:
            raise ValueError(f"auth.access[{i}] has unknown action(s) {sorted(bad)}")
        if "*" in actions:
            actions = ACTIONS
        rules.append(
            AccessRule(
                subjects=_strs(rule.get("subjects", []), f"auth.access[{i}].subjects"),
                repositories=_strs(rule.get("repositories", []), f"auth.access[{i}].repositories"),
                actions=actions,
            )
        )
    auth = AuthConfig(
        mode=mode,
        htpasswd=_path(auth_raw.get("htpasswd"), base, "auth.htpasswd"),
        anonymous_pull=_bool(auth_raw.get("anonymous_pull", False), "auth.anonymous_pull"),
        realm=str(auth_raw.get("realm", "pallet-registry")),
        token_realm=str(auth_raw.get("token_realm", "")),
        token_service=str(auth_raw.get("token_service", "pallet-registry")),
        token_issuer=str(auth_raw.get("token_issuer", "pallet-registry")),
        token_key=_path(auth_raw.get("token_key"), base, "auth.token_key"),
        token_ttl=_int(auth_raw.get("token_ttl", 300), "auth.token_ttl", 1),
        groups=groups,
        access=tuple(rules),
    )
    tls_raw = _section(raw, "tls")
    _check_keys(tls_raw, {"cert", "key"}, "[tls]")
    tls = TLSConfig(
        cert=_path(tls_raw.get("cert"), base, "tls.cert"),
        key=_path(tls_raw.get("key"), base, "tls.key"),
    )
    if (tls.cert is None) != (tls.key is None):
        raise ValueError("tls needs both cert and key")
    lim_raw = _section(raw, "limits")
    _check_keys(lim_raw, {f.name for f in dataclasses.fields(LimitsConfig)}, "[limits]")
    limits = LimitsConfig(
        **{k: _int(v, f"limits.{k}") for k, v in lim_raw.items()},
    )
    gc_raw = _section(raw, "gc")
    _check_keys(gc_raw, {"grace_seconds", "schedule_minutes"}, "[gc]")
    gc = GCConfig(**{k: _int(v, f"gc.{k}") for k, v in gc_raw.items()})
    ret_raw = _section(raw, "retention")
    _check_keys(ret_raw, {"policy", "schedule_minutes", "untagged_grace_seconds"}, "[retention]")
    policies = []
    for i, pol in enumerate(ret_raw.get("policy", [])):
        if not isinstance(pol, dict):
            raise ValueError("[[retention.policy]] entries must be tables")
        _check_keys(
            pol,
            {"repositories", "keep_last", "max_age_days", "keep_tags", "untagged"},
            f"retention.policy[{i}]",
        )
        age = pol.get("max_age_days")
        if age is not None and (not isinstance(age, int | float) or age < 0):
            raise ValueError(f"retention.policy[{i}].max_age_days must be a number >= 0")
        keep_last = pol.get("keep_last")
        policies.append(
            RetentionPolicy(
                repositories=_strs(pol.get("repositories", ["*"]), "repositories"),
                keep_last=None
                if keep_last is None
                else _int(keep_last, f"retention.policy[{i}].keep_last"),
                max_age_days=None if age is None else float(age),
                keep_tags=_strs(pol.get("keep_tags", []), "keep_tags"),
                untagged=_bool(pol.get("untagged", False), "untagged"),
            )
        )
    retention = RetentionConfig(
        policies=tuple(policies),
        schedule_minutes=_int(ret_raw.get("schedule_minutes", 0), "retention.schedule_minutes"),
        untagged_grace_seconds=_int(
            ret_raw.get("untagged_grace_seconds", 3600), "retention.untagged_grace_seconds"
        ),
    )
    hooks = []
    for i, hook in enumerate(raw.get("notifications", [])):
        if not isinstance(hook, dict) or not isinstance(hook.get("url"), str):
            raise ValueError(f"notifications[{i}] needs a url")
        _check_keys(
            hook, {"url", "events", "timeout", "retries", "backoff", "headers"}, "notifications"
        )
        headers = hook.get("headers", {})
        if not isinstance(headers, dict):
            raise ValueError(f"notifications[{i}].headers must be a table")
        hooks.append(
            Webhook(
                url=hook["url"],
                events=_strs(hook.get("events", ["push", "delete"]), "events"),
                timeout=float(hook.get("timeout", 5.0)),
                retries=_int(hook.get("retries", 5), "retries"),
                backoff=float(hook.get("backoff", 1.0)),
                headers={str(k): str(v) for k, v in headers.items()},
            )
        )
    addr = str(raw.get("addr", DEFAULT_ADDR))
    split_addr(addr)
    return RegistryConfig(
        addr=addr,
        data=_path(raw.get("data"), base, "data") or default_data,
        read_only=_bool(raw.get("read_only", False), "read_only"),
        access_log=_bool(raw.get("access_log", True), "access_log"),
        audit_log=_path(raw.get("audit_log"), base, "audit_log"),
        auth=auth,
        tls=tls,
        limits=limits,
        gc=gc,
        retention=retention,
        notifications=tuple(hooks),
    )
