"""The JSON-array ("exec") form of RUN, CMD, ENTRYPOINT, SHELL, ADD, COPY and VOLUME.

BuildKit hands the argument text to Go's ``encoding/json``; whatever Go rejects falls
back to the shell form, and a valid array with a non-string element is a hard error.
The scanner below follows Go's grammar and its quirks rather than Python's ``json``
module: no NaN/Infinity, nesting deeper than 10000 is a syntax error, a number that
overflows float64 makes decoding fail (so the text falls back to shell form), and
invalid UTF-8 or unpaired UTF-16 surrogates in strings become U+FFFD. It is iterative,
so hostile nesting cannot exhaust the Python stack.
"""

from __future__ import annotations

import math
import re

from pallet.dockerfile.gostrings import invalid_to_replacement, trim_left_space

MAX_DEPTH = 10000  # encoding/json's maxNestingDepth

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_PLAIN = re.compile(r'[^"\\\x00-\x1f]+')
_HEX4 = re.compile(r"\\u([0-9a-fA-F]{4})")
_WS = re.compile(r"[ \t\n\r]*")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS = ("true", "false", "null")

# scanner states
_VALUE, _FIRST_VALUE, _AFTER_VALUE, _KEY, _FIRST_KEY, _COLON = range(6)


class NotStringArray(ValueError):
    """A valid JSON array with an element that is not a string."""

    MESSAGE = "when using JSON array syntax, arrays must be comprised of strings only"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class _Syntax(Exception):
    pass


def parse_json_array(text: str) -> list[tuple[str, int]] | None:
    """The elements of ``text`` as a JSON string array, each with its offset in ``text``.

    None when ``text`` is not a JSON array Go would decode (the caller falls back to the
    shell form); raises NotStringArray for a valid array with non-string elements.
    """
    start = len(text) - len(trim_left_space(text))
    if not text.startswith("[", start):
        return None
    try:
        elements, overflow = _scan(text, start)
    except _Syntax:
        return None
    if overflow:
        return None
    out: list[tuple[str, int]] = []
    for value, offset in elements:
        if value is None:
            raise NotStringArray()
        out.append((value, offset))
    return out


def _scan(s: str, pos: int) -> tuple[list[tuple[str | None, int]], bool]:
    n = len(s)
    stack: list[str] = ["["]
    elements: list[tuple[str | None, int]] = []
    overflow = False
    pos += 1
    state = _FIRST_VALUE
    while True:
        pos = _WS.match(s, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            raise _Syntax
        c = s[pos]
        if state in (_VALUE, _FIRST_VALUE):
            if state == _FIRST_VALUE and c == "]":
                stack.pop()
                pos += 1
                if not stack:
                    break
                state = _AFTER_VALUE
                continue
            top_level = len(stack) == 1
            if c in "[{":
                if top_level:
                    elements.append((None, pos))
                stack.append(c)
                if len(stack) > MAX_DEPTH:
                    raise _Syntax
                pos += 1
                state = _FIRST_VALUE if c == "[" else _FIRST_KEY
                continue
            if c == '"':
                value, end = _string(s, pos)
                if top_level:
                    elements.append((value, pos))
                pos = end
            elif c == "-" or "0" <= c <= "9":
                m = _NUMBER.match(s, pos)
                if m is None:
                    raise _Syntax
                if math.isinf(float(m.group())):
                    overflow = True
                if top_level:
                    elements.append((None, pos))
                pos = m.end()
            else:
                for lit in _LITERALS:
                    if s.startswith(lit, pos):
                        break
                else:
                    raise _Syntax
                if top_level:
                    elements.append((None, pos))
                pos += len(lit)
            state = _AFTER_VALUE
        elif state == _AFTER_VALUE:
            container = stack[-1]
            if c == ",":
                pos += 1
                state = _VALUE if container == "[" else _KEY
            elif (c == "]" and container == "[") or (c == "}" and container == "{"):
                stack.pop()
                pos += 1
                if not stack:
                    break
            else:
                raise _Syntax
        elif state in (_KEY, _FIRST_KEY):
            if state == _FIRST_KEY and c == "}":
                stack.pop()
                pos += 1
                state = _AFTER_VALUE
                continue
            if c != '"':
                raise _Syntax
            _, pos = _string(s, pos)
            state = _COLON
        else:  # _COLON
            if c != ":":
                raise _Syntax
            pos += 1
            state = _VALUE
    if _WS.match(s, pos).end() != n:  # type: ignore[union-attr]
        raise _Syntax
    return elements, overflow


def _string(s: str, pos: int) -> tuple[str, int]:
    """Decode the JSON string starting at ``s[pos] == '"'``; return it and the end offset."""
    n = len(s)
    pos += 1
    out: list[str] = []
    while True:
        m = _PLAIN.match(s, pos)
        if m is not None:
            out.append(invalid_to_replacement(m.group()))
            pos = m.end()
        if pos >= n:
            raise _Syntax
        c = s[pos]
        if c == '"':
            return "".join(out), pos + 1
        if c != "\\" or pos + 1 >= n:
            raise _Syntax  # a control character, or a backslash at the very end
        e = s[pos + 1]
        simple = _ESCAPES.get(e)
        if simple is not None:
            out.append(simple)
            pos += 2
            continue
        u = _HEX4.match(s, pos)
        if u is None:
            raise _Syntax
        code = int(u.group(1), 16)
        pos = u.end()
        if 0xD800 <= code <= 0xDFFF:
            low = _HEX4.match(s, pos)
            low_code = int(low.group(1), 16) if low is not None else -1
            if code <= 0xDBFF and 0xDC00 <= low_code <= 0xDFFF and low is not None:
                out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low_code - 0xDC00)))
                pos = low.end()
            else:
                out.append("\ufffd")
            continue
        out.append(chr(code))
