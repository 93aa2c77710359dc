"""Dockerfile text -> syntax tree, reproducing BuildKit's ``parser.Parse`` exactly.

The file is read as physical lines (LF-terminated; CR and LF trimmed from the end). The
top comment lines may be parser directives. An instruction is a logical line: its first
physical line (leading whitespace removed) plus every following line while the previous
one ends with the escape character (optionally followed by blanks); comment lines and
blank lines inside a continuation are skipped. The keyword is the first word; ``--``
words after it are flags; the rest is split into arguments by rules that depend on the
instruction (see ``_ARG_PARSERS``). RUN, COPY and ADD (also under ONBUILD) in shell form
may declare heredocs, whose bodies are the physical lines that follow.

Every quirk of the Go implementation that shows in the tree is kept on purpose (flags are
scanned byte by byte, HEALTHCHECK's type is cut at a byte that Go thinks is a space, ...)
because the tree must match BuildKit's dump byte for byte.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pallet.dockerfile import gostrings
from pallet.dockerfile.ast import (
    Arg,
    Directive,
    Dockerfile,
    Flag,
    Heredoc,
    Instruction,
    Position,
    Warning,
)
from pallet.dockerfile.directives import DirectiveError, DirectiveParser, check_escape
from pallet.dockerfile.errors import DockerfileError
from pallet.dockerfile.gostrings import (
    BYTE_SPACES,
    GO_SPACE,
    RE_WHITESPACE,
    from_bytes,
    is_space,
    lower,
    quote,
    runes,
    to_bytes,
    trim_left_space,
    trim_space,
)
from pallet.dockerfile.heredoc import (
    HeredocLexError,
    HeredocTooDeep,
    HeredocWord,
    heredocs_from_line,
)
from pallet.dockerfile.jsonform import NotStringArray, parse_json_array

MAX_LINE_BYTES = 65535  # bufio.MaxScanTokenSize - 1: longer physical lines are refused
MAX_ONBUILD_NESTING = 64  # ONBUILD ONBUILD ... deeper than this is refused, not recursed into

_HEREDOC_COMMANDS = frozenset({"add", "copy", "run"})
_BOM = "\ufeff"
_NON_WS_RUN = re.compile(r"[^\t\v\f\r ]+")
_GO_WORD_RUN = re.compile("[^" + re.escape(GO_SPACE) + "]+")

EMPTY_CONTINUATION_URL = "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"
EMPTY_CONTINUATION_DETAIL = "Empty continuation lines will become errors in a future release"


class _LineError(Exception):
    """An error in one logical line; the caller adds the position."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass
class _Parsed:
    """What one logical line parses to, with offsets into that line."""

    keyword: str
    keyword_at: int
    flags: list[tuple[str, int]]
    args: list[tuple[str, int]]
    json_form: bool
    sub: _Parsed | None
    original: str


class _LineMap:
    """Maps offsets in a logical line back to (line, column) in the file."""

    def __init__(self) -> None:
        self.starts: list[int] = []  # offset in the logical line where each piece starts
        self.places: list[tuple[int, int]] = []  # (line, column) of each piece's start
        self._last = 0

    def add(self, at: int, line: int, column: int) -> None:
        self.starts.append(at)
        self.places.append((line, column))

    def place(self, offset: int) -> tuple[int, int]:
        """(line, column) of ``offset``."""
        starts = self.starts
        i = self._last  # offsets mostly come in increasing order: try the last piece first
        if not (starts[i] <= offset and (i + 1 == len(starts) or offset < starts[i + 1])):
            i = bisect.bisect_right(starts, offset) - 1
            if i < 0:
                i = 0
            self._last = i
        line, column = self.places[i]
        return line, column + offset - starts[i]

    def position(self, offset: int) -> Position:
        return Position(*self.place(offset))


# ---------------------------------------------------------------------------- public


def parse(text: str | bytes, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile into its syntax tree; raise DockerfileError on invalid input."""
    data = _as_bytes(text)
    try:
        return _Parser(data, filename).run()
    except DockerfileError as err:
        err.filename = filename
        raise
    except RecursionError:  # defensive: every recursion below is bounded
        raise DockerfileError("Dockerfile is nested too deeply", filename=filename) from None


def _as_bytes(text: str | bytes) -> bytes:
    if isinstance(text, bytes | bytearray | memoryview):
        return bytes(text)
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates that do not stand for bytes
        return text.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------- main loop


class _Parser:
    def __init__(self, data: bytes, filename: str) -> None:
        chunks = data.split(b"\n")
        self.lines: list[str] = []  # physical lines, each with its "\n" (the last may lack it)
        self.too_long_at: int | None = None
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            if i == last and not chunk:
                break
            if len(chunk) > MAX_LINE_BYTES:
                self.too_long_at = i + 1
                break  # the Go scanner stops here; what came before is still parsed
            self.lines.append(from_bytes(chunk) + ("\n" if i < last else ""))
        self.filename = filename
        self.escape = "\\"
        self.directive_parser = DirectiveParser()
        self.directives: list[Directive] = []
        self.warnings: list[Warning] = []

    def error(self, message: str, line: int | None, column: int | None = 1) -> DockerfileError:
        return DockerfileError(message, line, column, filename=self.filename)

    def process_line(self, raw: str, line_no: int, strip_left: bool) -> tuple[str, bool, int]:
        """processLine: trim the newline (and leading blanks), look for a directive.

        Returns the text (empty for a comment), whether it was a directive, and how many
        leading characters were stripped.
        """
        token = raw.rstrip("\r\n")
        stripped = 0
        if strip_left:
            kept = trim_left_space(token)
            stripped = len(token) - len(kept)
            token = kept
        is_directive = False
        if not self.directive_parser.done:
            try:
                d = self.directive_parser.parse_line(token)
                if d is not None:
                    if d.name == "escape":
                        self.escape = check_escape(d.value)
                    self.directives.append(Directive(d.name, d.value, line_no))
                    is_directive = True
            except DirectiveError as err:
                raise self.error(str(err), line_no) from None
        if _is_comment(token):
            token = ""
        return token, is_directive, stripped

    def trim_continuation(self, token: str) -> tuple[str, bool]:
        """Remove a trailing escape (plus blanks); say whether the line ends the instruction."""
        esc = self.escape
        body = token.rstrip(" \t")
        if body.endswith(esc):
            body = body[:-1]
            if not body or body[-1] != esc:
                return body, False
        return token, True

    def run(self) -> Dockerfile:
        lines = self.lines
        n = len(lines)
        i = 0
        current = 0  # number of physical lines consumed
        children: list[Instruction] = []
        comments: list[str] = []
        while i < n:
            raw = lines[i]
            i += 1
            column_base = 1
            if current == 0 and raw.startswith(_BOM):
                raw = raw[1:]
            if _is_comment(raw):
                comment = trim_space(_drop_first_byte(raw))
                if comment:
                    comments.append(comment)
                else:
                    comments = []
            token, is_directive, stripped = self.process_line(raw, current + 1, True)
            if is_directive and comments:
                comments.pop()
            current += 1
            start_line = current
            token, end = self.trim_continuation(token)
            if end and not token:
                continue
            pieces = [token]
            linemap = _LineMap()
            linemap.add(0, current, column_base + stripped)
            length = len(token)
            empty_continuation = False
            while not end and i < n:
                raw = lines[i]
                i += 1
                token, _, _ = self.process_line(raw, current + 1, False)
                current += 1
                if _is_comment(raw):
                    continue
                if not trim_left_space(token.rstrip("\r\n")):
                    empty_continuation = True
                    continue
                token, end = self.trim_continuation(token)
                linemap.add(length, current, 1)
                pieces.append(token)
                length += len(token)
            line = "".join(pieces)
            if len(pieces) > 1 and _ESCAPED_BYTE.search(line):
                line = _rejoin_bytes(pieces)
            if empty_continuation:
                self.warnings.append(
                    Warning(
                        "Empty continuation line found in: " + line,
                        EMPTY_CONTINUATION_DETAIL,
                        EMPTY_CONTINUATION_URL,
                        current,
                    )
                )
            try:
                parsed = _parse_line(line, self.escape, 0, 0)
            except _LineError as err:
                pos = linemap.position(err.offset)
                raise self.error(err.message, pos.line, pos.column) from None
            heredocs: list[Heredoc] = []
            if _can_contain_heredoc(parsed) and "<<" in line:
                try:
                    words = heredocs_from_line(line)
                except HeredocLexError as err:
                    raise self.error(str(err), start_line) from None
                except HeredocTooDeep as err:
                    raise self.error(str(err), start_line) from None
                for word in words:
                    body_start = current + 1
                    doc, i, current = self.read_heredoc(word, i, current)
                    if doc is None:
                        pos = linemap.position(parsed.keyword_at)
                        raise self.error("unterminated heredoc", pos.line, pos.column)
                    heredocs.append(
                        Heredoc(
                            name=word.name,
                            file_descriptor=word.file_descriptor,
                            expand=word.expand,
                            chomp=word.chomp,
                            content=doc,
                            start_line=body_start,
                        )
                    )
            children.append(
                _to_instruction(
                    parsed, linemap, start_line, current, tuple(heredocs), tuple(comments)
                )
            )
            comments = []
        if not children:
            raise self.error("file with no instructions", None)
        if self.too_long_at is not None:
            raise self.error(
                f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}",
                self.too_long_at,
            )
        return Dockerfile(
            instructions=tuple(children),
            directives=tuple(self.directives),
            escape=self.escape,
            warnings=tuple(self.warnings),
            start_line=children[0].start_line,
            end_line=children[-1].end_line,
            filename=self.filename,
        )

    def read_heredoc(self, word: HeredocWord, i: int, current: int) -> tuple[str | None, int, int]:
        """Collect body lines up to the terminator; None when the file ends first."""
        body: list[str] = []
        lines = self.lines
        n = len(lines)
        while i < n:
            raw = lines[i]
            i += 1
            current += 1
            candidate = raw.rstrip("\r\n")
            if word.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == word.name:
                return "".join(body), i, current
            body.append(raw)
        return None, i, current


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _rejoin_bytes(pieces: list[str]) -> str:
    """Join continued lines as bytes, as Go does.

    Removing an escape and a line break can glue the bytes of one UTF-8 character that
    was split across lines; Go sees that character, so decode the joined bytes again.
    (Columns after such a character may then be off by the bytes it merged.)
    """
    return from_bytes(b"".join(to_bytes(p) for p in pieces))


def _is_comment(text: str) -> bool:
    return trim_left_space(text).startswith("#")


def _drop_first_byte(raw: str) -> str:
    """string(bytesRead[1:]): drops one byte, which may be part of a wider character."""
    if raw[:1].isascii():
        return raw[1:]
    return from_bytes(to_bytes(raw)[1:])


def _can_contain_heredoc(parsed: _Parsed) -> bool:
    node = parsed
    if lower(node.keyword) == "onbuild" and node.sub is not None:
        node = node.sub
    return lower(node.keyword) in _HEREDOC_COMMANDS and not node.json_form


def _to_instruction(
    parsed: _Parsed,
    linemap: _LineMap,
    start_line: int,
    end_line: int,
    heredocs: tuple[Heredoc, ...],
    comments: tuple[str, ...],
) -> Instruction:
    place = linemap.place
    sub = None
    if parsed.sub is not None:
        sub = _to_instruction(parsed.sub, linemap, start_line, end_line, (), ())
    return Instruction(
        keyword=parsed.keyword,
        flags=tuple(Flag(text, *place(at)) for text, at in parsed.flags),
        args=tuple(Arg(value, *place(at)) for value, at in parsed.args),
        json_form=parsed.json_form,
        heredocs=heredocs,
        original=parsed.original,
        position=linemap.position(parsed.keyword_at),
        start_line=start_line,
        end_line=end_line,
        sub=sub,
        comments=comments,
    )


# ---------------------------------------------------------------------------- one line


def _parse_line(line: str, escape: str, base: int, depth: int) -> _Parsed:
    """newNodeFromLine: keyword, flags and arguments of one logical line.

    ``base`` is the offset of ``line`` inside the whole logical line (non-zero for the
    trigger of ONBUILD), so every offset returned is relative to the whole line.
    """
    trimmed = trim_space(line)
    lead = base + len(line) - len(trim_left_space(line))
    m = RE_WHITESPACE.search(trimmed)
    flags: list[tuple[str, int]] = []
    rest = ""
    rest_at = lead
    if m is None:
        keyword = trimmed
    else:
        keyword = trimmed[: m.start()]
        after = trimmed[m.end() :]
        rest, rest_offset, flags = _extract_flags(after, escape)
        rest_at = lead + m.end() + rest_offset
        flags = [(text, lead + m.end() + at) for text, at in flags]
        stripped = trim_space(rest)
        rest_at += len(rest) - len(trim_left_space(rest))
        rest = stripped
    command = lower(keyword)
    if command == "onbuild":
        sub = None
        if rest:
            if depth >= MAX_ONBUILD_NESTING:
                raise _LineError(
                    "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", lead - base
                )
            sub = _parse_line(rest, escape, rest_at, depth + 1)
        return _Parsed(keyword, lead, flags, [], False, sub, line)
    parser = _ARG_PARSERS.get(command, _parse_ignore)
    try:
        args, json_form = parser(rest, escape, keyword)
    except _LineError as err:
        raise _LineError(err.message, rest_at + err.offset) from None
    return _Parsed(
        keyword,
        lead,
        flags,
        [(value, rest_at + at) for value, at in args],
        json_form,
        None,
        line,
    )


def _extract_flags(text: str, escape: str) -> tuple[str, int, list[tuple[str, int]]]:
    """extractBuilderFlags: leading ``--`` words, scanned byte by byte as Go does.

    Go walks the UTF-8 bytes and appends each byte as if it were a code point (so
    non-ASCII text in flags comes out Latin-1-mangled) and treats bytes 0x85 and 0xA0 as
    spaces; the flags reproduce that. Returns the remaining text, its offset in ``text``
    and the flags with their offsets.
    """
    if text.isascii():
        view = text
        char_at: Callable[[int], int] = _identity
    else:
        raw = to_bytes(text)
        view = raw.decode("latin-1")
        char_at = _byte_to_char_map(text, len(raw))
    esc = escape
    n = len(view)
    words: list[tuple[str, int]] = []
    word: list[str] = []
    phase = 0  # 0: between words, 1: in a word, 2: in quotes
    quote_char = ""
    blank_ok = False
    start = 0
    pos = 0
    while pos <= n:
        ch = view[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if ord(ch) in BYTE_SPACES:
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or view[pos + 1] != "-":
                return _rest(text, view, pos), char_at(pos), words
            phase = 1
            start = pos
        if pos == n:  # end of input inside a word
            joined = "".join(word)
            if joined != "--" and (blank_ok or joined):
                words.append((joined, char_at(start)))
            break
        if phase == 1:
            if ord(ch) in BYTE_SPACES:
                joined = "".join(word)
                phase = 0
                if joined == "--":
                    return _rest(text, view, pos), char_at(pos), words
                if blank_ok or joined:
                    words.append((joined, char_at(start)))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in "'\"":
                quote_char = ch
                blank_ok = True
                phase = 2
                pos += 1
                continue
            if ch == esc:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = view[pos]
            word.append(ch)
            pos += 1
            continue
        # phase 2: inside quotes
        if ch == quote_char:
            phase = 1
            pos += 1
            continue
        if ch == esc:
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            ch = view[pos]
        word.append(ch)
        pos += 1
    return "", char_at(n), words


def _identity(i: int) -> int:
    return i


def _byte_to_char_map(text: str, nbytes: int) -> Callable[[int], int]:
    """Char offset for each byte offset of ``text``'s UTF-8 form (mid-char -> that char)."""
    table = [0] * (nbytes + 1)
    b = 0
    for ci, ch in enumerate(text):
        width = 1 if "\udc80" <= ch <= "\udcff" else len(ch.encode("utf-8", "surrogatepass"))
        for k in range(width):
            table[b + k] = ci
        b += width
    table[nbytes] = len(text)
    return table.__getitem__


def _rest(text: str, view: str, pos: int) -> str:
    if view is text:
        return text[pos:]
    return from_bytes(view[pos:].encode("latin-1"))


# ---------------------------------------------------------------------------- arguments

_Args = tuple[list[tuple[str, int]], bool]


def _parse_ignore(rest: str, escape: str, keyword: str) -> _Args:
    """Unknown instructions keep one empty argument (BuildKit: ``(foo "")``)."""
    return [("", 0)], False


def _parse_string(rest: str, escape: str, keyword: str) -> _Args:
    return ([(rest, 0)] if rest else []), False


def _split_whitespace(rest: str) -> list[tuple[str, int]]:
    return [(m.group(), m.start()) for m in _NON_WS_RUN.finditer(rest)]


def _parse_whitespace_delimited(rest: str, escape: str, keyword: str) -> _Args:
    return _split_whitespace(rest), False


def _json(rest: str) -> list[tuple[str, int]] | None:
    try:
        return parse_json_array(rest)
    except NotStringArray as err:
        raise _LineError(str(err)) from None


def _parse_maybe_json(rest: str, escape: str, keyword: str) -> _Args:
    if not rest:
        return [], False
    elements = _json(rest)
    if elements is not None:
        return elements, True
    return [(rest, 0)], False


def _parse_maybe_json_to_list(rest: str, escape: str, keyword: str) -> _Args:
    elements = _json(rest)
    if elements is not None:
        return elements, True
    return _split_whitespace(rest), False


def _parse_healthcheck(rest: str, escape: str, keyword: str) -> _Args:
    """HEALTHCHECK: the type word, then the command like RUN (cut at Go's byte spaces)."""
    if rest.isascii():
        view: str | bytes = rest
        spaces: Sequence[str] | frozenset[int] = " \t\n\v\f\r"
    else:
        view = to_bytes(rest)
        spaces = BYTE_SPACES
    n = len(view)
    sep = 0
    while sep < n and view[sep] not in spaces:
        sep += 1
    nxt = sep
    while nxt < n and view[nxt] in spaces:
        nxt += 1
    if sep == 0:
        return [], False
    if isinstance(view, bytes):
        typ = from_bytes(view[:sep])
        tail = from_bytes(view[nxt:])
        tail_at = len(rest) - len(tail)
    else:
        typ, tail, tail_at = rest[:sep], rest[nxt:], nxt
    cmd, json_form = _parse_maybe_json(tail, escape, keyword)
    return [(typ, 0)] + [(v, tail_at + at) for v, at in cmd], json_form


def parse_words(rest: str, escape: str) -> list[tuple[str, int]]:
    """parseWords: split on whitespace, keeping quotes and escapes inside the words.

    A quote groups text up to the matching quote (an escape inside double quotes
    protects the next character); an escape outside quotes protects the next character;
    an escape at the very end is dropped. Invalid UTF-8 becomes U+FFFD, as Go's rune
    iteration makes it.
    """
    s = runes(rest)
    if "'" not in s and '"' not in s and escape not in s:
        return [(m.group(), m.start()) for m in _GO_WORD_RUN.finditer(s)]
    plain, in_double = _word_patterns(escape)
    words: list[tuple[str, int]] = []
    n = len(s)
    pos = 0
    while True:
        pos = _GO_SPACE_RUN.match(s, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            return words
        start = pos
        word: list[str] = []
        blank_ok = False
        while pos < n:
            m = plain.match(s, pos)
            if m is not None:
                word.append(m.group())
                pos = m.end()
                continue
            ch = s[pos]
            if is_space(ch):
                break
            if ch == escape:
                if pos + 1 < n:
                    word.append(s[pos : pos + 2])
                pos += 2
                continue
            # a quote: text up to the matching quote, which is kept too
            blank_ok = True
            word.append(ch)
            pos += 1
            if ch == "'":
                close = s.find("'", pos)
                end = n if close < 0 else close + 1
                word.append(s[pos:end])
                pos = end
                continue
            while pos < n:
                m = in_double.match(s, pos)
                if m is not None:
                    word.append(m.group())
                    pos = m.end()
                    continue
                c = s[pos]
                if c == '"':
                    word.append(c)
                    pos += 1
                    break
                # the escape: keeps itself and the next character; dropped at the end
                if pos + 1 < n:
                    word.append(s[pos : pos + 2])
                pos += 2
        if blank_ok or word:
            words.append(("".join(word), start))
        pos = min(pos, n)


_GO_SPACE_RUN = re.compile("[" + re.escape(GO_SPACE) + "]*")


@functools.cache
def _word_patterns(escape: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Runs of ordinary characters outside quotes, and inside double quotes."""
    outside = re.compile("[^" + re.escape(GO_SPACE + "'\"" + escape) + "]+")
    inside = re.compile("[^" + re.escape('"' + escape) + "]+")
    return outside, inside


def _parse_arg(rest: str, escape: str, keyword: str) -> _Args:
    return parse_words(rest, escape), False


def _parse_name_val(rest: str, escape: str, keyword: str) -> _Args:
    """ENV and LABEL: ``key value`` (legacy) or ``key=value ...``."""
    words = parse_words(rest, escape)
    if not words:
        return [], False
    if "=" not in words[0][0]:
        m = RE_WHITESPACE.search(rest)
        if m is None:
            raise _LineError(f"{gostrings.upper(keyword)} must have two arguments")
        return [(rest[: m.start()], 0), (rest[m.end() :], m.end()), ("", m.end())], False
    out: list[tuple[str, int]] = []
    for word, at in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise _LineError(
                f"Syntax error - can't find = in {quote(word)}. Must be of the form: name=value",
                at,
            )
        out += [(key, at), (value, at + len(key) + 1), ("=", at + len(key))]
    return out, False


_ARG_PARSERS: dict[str, Callable[[str, str, str], _Args]] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_arg,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_name_val,
    "expose": _parse_whitespace_delimited,
    "from": _parse_whitespace_delimited,
    "healthcheck": _parse_healthcheck,
    "label": _parse_name_val,
    "maintainer": _parse_string,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}
