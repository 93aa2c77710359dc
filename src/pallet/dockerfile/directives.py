"""Parser directives: ``# syntax=``, ``# escape=`` and ``# check=`` at the top of a file.

Directives are read only from the leading comment lines; the first line that is not a
known ``# name=value`` comment (a blank line, an ordinary comment, an instruction) ends
them for good, and a repeated directive is an error, as in BuildKit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pallet.dockerfile.gostrings import lower, trim_left_space

KNOWN = frozenset({"syntax", "escape", "check"})
VALID_ESCAPES = ("\\", "`")

# Go's \s is [\t\n\f\r ] (no \v)
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")


class DirectiveError(ValueError):
    """A directive is repeated or has an invalid value."""


@dataclass(frozen=True)
class ParsedDirective:
    name: str
    value: str
    line: int


class DirectiveParser:
    """Reads directives line by line until the first line that is not one."""

    def __init__(self, comment: str = "#", line: int = 0) -> None:
        self.comment = comment
        self.line = line
        self.done = False
        self._seen: set[str] = set()

    def parse_line(self, text: str) -> ParsedDirective | None:
        self.line += 1
        if self.done:
            return None
        if not text.startswith(self.comment):
            self.done = True
            return None
        m = _DIRECTIVE.fullmatch(trim_left_space(text[len(self.comment) :]))
        if m is None:
            self.done = True
            return None
        name = lower(m.group(1))
        if name not in KNOWN:
            self.done = True
            return None
        if name in self._seen:
            raise DirectiveError(f"only one {name} parser directive can be used")
        self._seen.add(name)
        return ParsedDirective(name, m.group(2), self.line)

    def parse_all(self, text: str) -> list[ParsedDirective]:
        """Every directive at the top of ``text`` (stops quietly at an error)."""
        found: list[ParsedDirective] = []
        for line in _scan_lines(text):
            if self.done:
                break
            try:
                d = self.parse_line(line)
            except DirectiveError:
                break
            if d is not None:
                found.append(d)
        return found


def check_escape(value: str) -> str:
    if value not in VALID_ESCAPES:
        raise DirectiveError(f"invalid escape token '{value}' does not match ` or \\")
    return value


def _scan_lines(text: str) -> list[str]:
    """bufio.ScanLines: split on LF, drop one trailing CR per line, no empty last line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


@dataclass(frozen=True)
class FoundDirective:
    ref: str  # the value up to its first space
    cmdline: str  # the whole value
    line: int


def detect_syntax(text: str) -> FoundDirective | None:
    """The ``syntax`` directive, also accepting ``//`` comments and a JSON object."""
    return _parse_directive("syntax", text, any_format=True)


def parse_directive(key: str, text: str) -> FoundDirective | None:
    """Directive ``key`` from ``#`` comments only (e.g. ``check``)."""
    return _parse_directive(key, text, any_format=False)


def _parse_directive(key: str, text: str, *, any_format: bool) -> FoundDirective | None:
    text = text.removeprefix("\ufeff")
    first, nl, rest = text.partition("\n")
    line = 0
    if first.startswith("#!"):
        text = rest if nl else ""
        line = 1
    for comment in ("#", "//") if any_format else ("#",):
        for d in DirectiveParser(comment, line).parse_all(text):
            if d.name == key:
                return FoundDirective(d.value.partition(" ")[0], d.value, d.line)
    if any_format:
        value = _json_directive(key, text)
        if value is not None:
            return FoundDirective(value, value, line)
    return None


def _json_directive(key: str, text: str) -> str | None:
    def no_constants(name: str) -> object:
        raise ValueError(name)

    try:
        obj = json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str):
            return value
    return None
