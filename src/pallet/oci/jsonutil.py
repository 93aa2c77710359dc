"""Strict JSON reading and deterministic, Go-compatible JSON writing.

Reading: manifests and configs arrive from registries and archives, so they are hostile.
Only UTF-8 JSON objects are accepted, without duplicate keys (two parsers could disagree on
which value wins, and a digest then no longer pins one meaning), NaN/Infinity, or runaway
nesting; the caller's size limit is enforced before parsing.

Writing: the output is what Go's ``encoding/json`` writes for the same values (``<``, ``>``,
``&``, U+2028 and U+2029 escaped, other text kept as UTF-8), so pallet's bytes match what
Docker, containerd and BuildKit write for the same document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pallet.errors import OCIError

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any, NoReturn

# Registries refuse manifests over 4 MiB (distribution, containerd); configs get room for
# long histories but stay bounded.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 8 * 1024 * 1024

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def load_object(data: bytes, what: str, max_size: int = MAX_MANIFEST_BYTES) -> dict[str, Any]:
    """Parse ``data`` as one JSON object; every failure is an ``OCIError`` naming ``what``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise OCIError(f"{what} must be bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise OCIError(f"{what} is too large ({len(data)} bytes, limit {max_size})")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OCIError(f"{what} is not UTF-8 text (byte {exc.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except _Duplicate as exc:
        raise OCIError(f"{what} has a duplicate key {exc.key!r}") from None
    except json.JSONDecodeError as exc:
        raise OCIError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError) as exc:
        raise OCIError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise OCIError(f"{what} must be a JSON object, not {type(doc).__name__}")
    return doc


def dump_bytes(value: Any, *, indent: int | None = None) -> bytes:
    """Deterministic JSON bytes (key order as given), escaped the way Go escapes.

    ``indent=None`` is Go's ``json.Marshal``; ``indent=2`` its ``MarshalIndent(v, "", "  ")``.
    """
    separators = (",", ":") if indent is None else (",", ": ")
    try:
        text = json.dumps(
            value, indent=indent, separators=separators, ensure_ascii=False, allow_nan=False
        )
        # Only strings can hold these characters, so a plain translation is exact.
        return text.translate(_GO_ESCAPE_TABLE).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise OCIError(f"cannot encode JSON: {exc}") from None


# -- typed field access for validators ------------------------------------------------


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def expect_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise OCIError(f"{what} must be a string, not {type_name(value)}")
    return value


def expect_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise OCIError(f"{what} must be true or false, not {type_name(value)}")
    return value


def expect_int(value: Any, what: str, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise OCIError(f"{what} must be an integer, not {type_name(value)}")
    if minimum is not None and value < minimum:
        raise OCIError(f"{what} must be at least {minimum}, not {value}")
    if not -(2**63) <= value < 2**63:
        raise OCIError(f"{what} is out of range ({value})")
    return value


def expect_str_list(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise OCIError(f"{what} must be an array of strings, not {type_name(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise OCIError(f"{what}[{i}] must be a string, not {type_name(item)}")
    return tuple(value)


def expect_str_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise OCIError(f"{what} must be an object of strings, not {type_name(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise OCIError(f"{what}[{key!r}] must be a string, not {type_name(item)}")
    return dict(value)


def expect_object_set(value: Any, what: str) -> tuple[str, ...]:
    """Go's ``map[string]struct{}`` (``ExposedPorts``, ``Volumes``): keys, sorted as Go writes them."""
    if not isinstance(value, dict):
        raise OCIError(f"{what} must be an object, not {type_name(value)}")
    for key, item in value.items():
        if not isinstance(item, dict):
            raise OCIError(f"{what}[{key!r}] must be an object, not {type_name(item)}")
    return tuple(sorted(value))


def sorted_map(value: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping with keys in Go's map order (sorted by UTF-8 bytes, i.e. code points)."""
    return {k: value[k] for k in sorted(value)}
