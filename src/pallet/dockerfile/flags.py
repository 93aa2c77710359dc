"""Instruction flags (``--name[=value]``) checked against what each instruction accepts.

This follows BuildKit's BFlags: a bool flag is ``--link`` or ``--link=true|false``
(case-insensitive), a string flag needs ``=value`` and may appear once, a list flag
(``--exclude``, ``--mount``) needs ``=value`` and may repeat. Errors name the flag and
carry its position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pallet.dockerfile.ast import Flag, Position
from pallet.dockerfile.gostrings import lower
from pallet.dockerfile.suggest import search

FlagKind = Literal["bool", "string", "strings"]
FlagValue = bool | str | tuple[str, ...]


class FlagError(ValueError):
    def __init__(self, message: str, position: Position | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class ParsedFlags:
    """The flags given: bools as bool, strings as str, lists as tuple (only those used)."""

    values: Mapping[str, FlagValue]
    positions: Mapping[str, Position]

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name, default)
        assert isinstance(value, bool)
        return value

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        assert value is None or isinstance(value, str)
        return value

    def texts(self, name: str) -> tuple[str, ...]:
        value = self.values.get(name, ())
        assert isinstance(value, tuple)
        return value

    def used(self, name: str) -> bool:
        return name in self.values


def parse_flags(flags: tuple[Flag, ...], spec: Mapping[str, FlagKind], keyword: str) -> ParsedFlags:
    """Check ``flags`` against ``spec`` (name -> kind) for instruction ``keyword``."""
    values: dict[str, FlagValue] = {}
    positions: dict[str, Position] = {}
    for flag in flags:
        text = flag.text
        if text == "--":
            break
        if not text.startswith("--"):
            raise FlagError(f"arg should start with -- : {text}", flag.position)
        flag_name, eq, value = text.partition("=")
        name = flag_name[2:]
        kind = spec.get(name)
        if kind is None:
            message = f'unknown flag "{flag_name}" for {keyword.upper()}'
            match = search(name, spec, case_sensitive=True)
            if match is not None:
                message += f' (did you mean "--{match}"?)'
            elif not spec:
                message += f" ({keyword.upper()} takes no flags)"
            raise FlagError(message, flag.position)
        if name in values and kind != "strings":
            raise FlagError(f"duplicate flag specified: {flag_name}", flag.position)
        positions.setdefault(name, flag.position)
        if kind == "bool":
            if eq and not value:
                raise FlagError(f"missing a value on flag: {flag_name}", flag.position)
            low = lower(value)
            if low not in ("true", "false", ""):
                raise FlagError(
                    f"expecting boolean value for flag {flag_name}, not: {value}", flag.position
                )
            values[name] = low != "false"
            continue
        if not eq:
            raise FlagError(f"missing a value on flag: {flag_name}", flag.position)
        if kind == "string":
            values[name] = value
        else:
            previous = values.get(name, ())
            assert isinstance(previous, tuple)
            values[name] = (*previous, value)
    return ParsedFlags(values, positions)
