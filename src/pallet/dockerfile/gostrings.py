"""Go string semantics the BuildKit parser depends on, reproduced for Python ``str``.

Dockerfile text is decoded as UTF-8 with ``surrogateescape``: a byte that is not valid
UTF-8 becomes a lone surrogate U+DC80..U+DCFF. Go keeps such bytes inside its strings,
and its standard library treats them in ways the parser output depends on (printed as
``\\xHH`` by ``strconv.Quote``, turned into U+FFFD by ``strings.ToLower`` or by rune
iteration). The helpers here make those cases come out byte-for-byte as in Go.
"""

from __future__ import annotations

import re

# unicode.IsSpace: Latin-1 spaces plus the White_Space property.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACE_SET = frozenset(GO_SPACE)

# unicode.IsSpace(rune(b)) for a single byte, as Go code that loops over bytes uses it.
BYTE_SPACES = frozenset(b"\t\n\v\f\r \x85\xa0")

REPLACEMENT = "\ufffd"

# regexp `[\t\v\f\r ]+`, BuildKit's reWhitespace
RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")

_ESCAPE_SURROGATES = re.compile("[\udc80-\udcff]")
_ALL_SURROGATES = re.compile("[\ud800-\udfff]")
_NEEDS_QUOTING = re.compile(r'[^\x20-\x7e]|["\\]')
_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}

# Characters assigned (all printable) in Unicode 15.0, which BuildKit's Go uses, but not
# in the Unicode 14.0 of Python 3.11's unicodedata; derived from the Unicode 15.0 data.
_PRINTABLE_SINCE_UNICODE_15 = (
    (0x0CF3, 0x0CF3),
    (0x0ECE, 0x0ECE),
    (0x10EFD, 0x10EFF),
    (0x1123F, 0x11241),
    (0x11B00, 0x11B09),
    (0x11F00, 0x11F10),
    (0x11F12, 0x11F3A),
    (0x11F3E, 0x11F59),
    (0x1342F, 0x1342F),
    (0x13440, 0x13455),
    (0x1B132, 0x1B132),
    (0x1B155, 0x1B155),
    (0x1D2C0, 0x1D2D3),
    (0x1DF25, 0x1DF2A),
    (0x1E030, 0x1E06D),
    (0x1E08F, 0x1E08F),
    (0x1E4D0, 0x1E4F9),
    (0x1F6DC, 0x1F6DC),
    (0x1F774, 0x1F776),
    (0x1F77B, 0x1F77F),
    (0x1F7D9, 0x1F7D9),
    (0x1FA75, 0x1FA77),
    (0x1FA87, 0x1FA88),
    (0x1FAAD, 0x1FAAF),
    (0x1FABB, 0x1FABD),
    (0x1FABF, 0x1FABF),
    (0x1FACE, 0x1FACF),
    (0x1FADA, 0x1FADB),
    (0x1FAE8, 0x1FAE8),
    (0x1FAF7, 0x1FAF8),
    (0x2B739, 0x2B739),
    (0x31350, 0x323AF),
)


def _is_print(ch: str) -> bool:
    """unicode.IsPrint of Go (Unicode 15.0)."""
    if ch.isprintable():
        return True
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in _PRINTABLE_SINCE_UNICODE_15)


def is_space(ch: str) -> bool:
    """unicode.IsSpace for one character."""
    return ch in _GO_SPACE_SET


def trim_space(s: str) -> str:
    """strings.TrimSpace."""
    return s.strip(GO_SPACE)


def trim_left_space(s: str) -> str:
    """strings.TrimLeftFunc(s, unicode.IsSpace)."""
    return s.lstrip(GO_SPACE)


def runes(s: str) -> str:
    """What ranging over a Go string yields: every byte of invalid UTF-8 becomes U+FFFD."""
    if s.isascii():
        return s
    return _ESCAPE_SURROGATES.sub(REPLACEMENT, s)


def invalid_to_replacement(s: str) -> str:
    """Every surrogate (escaped byte or lone UTF-16 half) becomes U+FFFD, as Go's JSON does."""
    if s.isascii():
        return s
    return _ALL_SURROGATES.sub(REPLACEMENT, s)


def _lower_char(ch: str) -> str:
    if ch == "\u0130":  # Go uses the simple mapping; Python's full mapping gives two chars
        return "i"
    low = ch.lower()
    return low if len(low) == 1 else ch


def _upper_char(ch: str) -> str:
    up = ch.upper()
    return up if len(up) == 1 else ch


def lower(s: str) -> str:
    """strings.ToLower (per-rune simple case mapping; invalid bytes become U+FFFD)."""
    if s.isascii():
        return s.lower()
    return "".join(_lower_char(c) for c in runes(s))


def upper(s: str) -> str:
    """strings.ToUpper (per-rune simple case mapping; invalid bytes become U+FFFD)."""
    if s.isascii():
        return s.upper()
    return "".join(_upper_char(c) for c in runes(s))


def equal_fold(a: str, b: str) -> bool:
    """strings.EqualFold, close enough for the ASCII keywords it is used with."""
    return lower(a) == lower(b)


def _quote_char(ch: str) -> str:
    simple = _SIMPLE_ESCAPES.get(ch)
    if simple is not None:
        return simple
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not valid UTF-8
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x20 or o == 0x7F:
        return f"\\x{o:02x}"
    if _is_print(ch):  # letters, marks, numbers, punctuation, symbols, ASCII space
        return ch
    if 0xD800 <= o <= 0xDFFF:  # cannot occur in a Go string; Go would print U+FFFD
        return REPLACEMENT
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def quote(s: str) -> str:
    """strconv.Quote."""
    if not _NEEDS_QUOTING.search(s):
        return f'"{s}"'
    return '"' + _NEEDS_QUOTING.sub(lambda m: _quote_char(m.group()), s) + '"'


def to_bytes(s: str) -> bytes:
    """The Go bytes of a decoded string (escaped bytes come back as themselves)."""
    return s.encode("utf-8", "surrogateescape")


def from_bytes(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")
