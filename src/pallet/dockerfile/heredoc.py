"""Finding here-documents (``<<EOF``) in an instruction line, as BuildKit does.

BuildKit splits the whole instruction line into words with its shell lexer (quotes and
escapes kept, unset variables left as written, an empty environment) and tests every
word against ``^(\\d*)<<(-?)\\s*([^<]*)$``. The terminator is then lexed twice, with
and without quote removal: if the two differ, part of it was quoted and the body is
not expanded. The lexer below reproduces exactly that subset of the shell lexer,
including its quirks (a ``${...}`` inside a word drops the word's earlier text; ``${a//x/y}``
is re-emitted with one slash), because the set of heredocs decides which lines of the
file belong to the instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pallet.dockerfile.gostrings import GO_SPACE, is_space, runes

_HEREDOC_WORD = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)", re.DOTALL)
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_MAX_UINT64 = (1 << 64) - 1
_MAX_NESTING = 150  # ${...} inside ${...}: deeper input is refused, not recursed into
_ESCAPE = "\\"  # the heredoc lexer always uses backslash, whatever `# escape=` says


class HeredocLexError(ValueError):
    """The lexer rejected the text (e.g. an unterminated quote)."""


class HeredocTooDeep(ValueError):
    """Variable references nested too deeply to analyse."""


@dataclass(frozen=True)
class HeredocWord:
    """A heredoc recognised in an instruction line (before its body is read)."""

    name: str
    file_descriptor: int
    expand: bool
    chomp: bool


def chomp(content: str) -> str:
    """Remove leading tabs from every line (the meaning of ``<<-``)."""
    return _LEADING_TABS.sub("", content)


def parse_heredoc(word: str) -> HeredocWord | None:
    """Classify one word: a heredoc, None (not one), or HeredocLexError (bad quoting)."""
    m = _HEREDOC_WORD.fullmatch(word)
    if m is None:
        return None
    digits, dash, rest = m.groups()
    fd = _saturating_uint(digits)
    if not rest:
        return None
    words = process_words(rest, raw_quotes=False, raw_escapes=False)
    if len(words) != 1:
        return None
    words_raw = process_words(rest, raw_quotes=True, raw_escapes=False)
    if len(words_raw) != len(words):
        raise HeredocLexError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word, raw = words[0], words_raw[0]
    quotes = word.count("'") + word.count('"')
    raw_quotes = raw.count("'") + raw.count('"')
    return HeredocWord(
        name=word, file_descriptor=fd, expand=quotes == raw_quotes, chomp=dash == "-"
    )


def _saturating_uint(digits: str) -> int:
    """strconv.ParseUint with its error ignored: empty gives 0, overflow saturates."""
    significant = digits.lstrip("0")
    if len(significant) > 20:
        return _MAX_UINT64
    return min(int(significant or "0"), _MAX_UINT64)


def heredocs_from_line(line: str) -> list[HeredocWord]:
    """The heredocs an instruction line declares, in order."""
    try:
        words = process_words(line, raw_quotes=True, raw_escapes=True)
    except HeredocLexError:
        return []  # BuildKit ignores lexing errors of the whole line
    docs = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def process_words(text: str, *, raw_quotes: bool, raw_escapes: bool) -> list[str]:
    """Split ``text`` into words like BuildKit's ``Lex.ProcessWords`` (empty env, unset kept)."""
    lexer = _Lexer(text, raw_quotes, raw_escapes)
    _, words = lexer.process_stop_on(None, raw_escapes)
    return words


def _plain_run(stop: str | None) -> re.Pattern[str]:
    special = "$<'\"" + _ESCAPE + (stop or "") + GO_SPACE
    return re.compile("[^" + re.escape(special) + "]+")


_PLAIN = {stop: _plain_run(stop) for stop in (None, "}", "/")}
_SPACE_RUN = re.compile("[" + re.escape(GO_SPACE) + "]+")


class _Words:
    """wordsStruct: accumulates words in the lexer's shared buffer."""

    __slots__ = ("in_word", "lexer", "words")

    def __init__(self, lexer: _Lexer) -> None:
        self.lexer = lexer
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        lx = self.lexer
        if is_space(ch):
            if self.in_word and lx.buf_len:
                self.words.append("".join(lx.buf))
                lx.buf.clear()
                lx.buf_len = 0
                self.in_word = False
        else:
            self.add_raw_string(ch)

    def add_raw_string(self, s: str) -> None:
        lx = self.lexer
        lx.buf.append(s)
        lx.buf_len += len(s)
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def get_words(self) -> list[str]:
        lx = self.lexer
        if lx.buf_len:
            self.words.append("".join(lx.buf))
            lx.buf.clear()
            lx.buf_len = 0
            self.in_word = False
        return self.words


class _Lexer:
    def __init__(self, text: str, raw_quotes: bool, raw_escapes: bool) -> None:
        text = runes(text)  # text/scanner yields U+FFFD for invalid UTF-8
        if text.startswith("\ufeff"):  # and skips a leading byte order mark
            text = text[1:]
        self.s = text
        self.n = len(text)
        self.pos = 0
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        # Go's Lex shares one words buffer between nested calls; so does this port.
        self.buf: list[str] = []
        self.buf_len = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.s[self.pos] if self.pos < self.n else None

    def next(self) -> str | None:
        if self.pos < self.n:
            self.pos += 1
            return self.s[self.pos - 1]
        return None

    def process_stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        self.buf.clear()
        self.buf_len = 0
        words = _Words(self)
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        plain = _PLAIN[stop]
        try:
            while self.pos < self.n:
                m = plain.match(self.s, self.pos)
                if m is not None:
                    chunk = m.group()
                    result.append(chunk)
                    words.add_raw_string(chunk)
                    self.pos = m.end()
                    continue
                ch = self.s[self.pos]
                if is_space(ch):  # a run of blanks ends the word once; the rest are no-ops
                    m = _SPACE_RUN.match(self.s, self.pos)
                    assert m is not None
                    words.add_char(ch)
                    result.append(m.group())
                    self.pos = m.end()
                    continue
                if stop is not None and ch == stop:
                    self.pos += 1
                    return "".join(result), words.get_words()
                if ch == "$":
                    tmp = self.process_dollar()
                    result.append(tmp)
                    words.add_string(tmp)
                    continue
                if ch in "<'\"":
                    if ch == "<":
                        tmp = self.process_possible_heredoc()
                    elif ch == "'":
                        tmp = self.process_single_quote()
                    else:
                        tmp = self.process_double_quote()
                    result.append(tmp)
                    words.add_raw_string(tmp)
                    continue
                self.pos += 1
                if ch == _ESCAPE:
                    if self.raw_escapes:
                        words.add_raw_string(ch)
                        result.append(ch)
                    nxt = self.next()
                    if nxt is None:
                        break
                    words.add_raw_string(nxt)
                    result.append(nxt)
                else:
                    words.add_char(ch)
                    result.append(ch)
            if stop is not None:
                raise HeredocLexError(
                    f"unexpected end of statement while looking for matching {stop}"
                )
            return "".join(result), words.get_words()
        finally:
            self.raw_escapes = saved

    def process_single_quote(self) -> str:
        self.pos += 1
        end = self.s.find("'", self.pos)
        if end < 0:
            raise HeredocLexError(
                "unexpected end of statement while looking for matching single-quote"
            )
        body = self.s[self.pos : end]
        self.pos = end + 1
        return f"'{body}'" if self.raw_quotes else body

    def process_double_quote(self) -> str:
        self.pos += 1
        out = ['"'] if self.raw_quotes else []
        while True:
            p = self.peek()
            if p is None:
                raise HeredocLexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if p == '"':
                self.pos += 1
                if self.raw_quotes:
                    out.append('"')
                return "".join(out)
            if p == "$":
                out.append(self.process_dollar())
                continue
            self.pos += 1
            ch = p
            if ch == _ESCAPE:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt is None:
                    continue
                if nxt in ('"', "$", _ESCAPE):
                    self.pos += 1
                    ch = nxt
            out.append(ch)

    def process_dollar(self) -> str:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise HeredocTooDeep("variable references nested too deeply")
        try:
            return self._dollar()
        finally:
            self.depth -= 1

    def _dollar(self) -> str:
        self.pos += 1  # '$'
        if self.peek() != "{":
            name = self.process_name()
            return "$" + name  # every variable is unset; unset ones are kept as written
        self.pos += 1
        p = self.peek()
        if p is None:
            raise HeredocLexError("syntax error: missing '}'")
        if p in "{}:":
            raise HeredocLexError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        chs = ch if ch is not None else "\ufffd"
        if ch == "}":
            return "${" + name + "}"
        if ch is not None and ch in ":+-?#%":
            null_is_unset = False
            if ch == ":":
                null_is_unset = True
                ch = self.next()
                chs += ch if ch is not None else "\ufffd"
            raw_escapes = ch in ("#", "%")
            if null_is_unset and raw_escapes:
                raise HeredocLexError(f"unsupported modifier ({chs}) in substitution")
            try:
                word, _ = self.process_stop_on("}", raw_escapes)
            except HeredocLexError:
                if self.peek() is None:
                    raise HeredocLexError("syntax error: missing '}'") from None
                raise
            return "${" + name + chs + word + "}"
        if ch == "/":
            if self.peek() == "/":
                self.pos += 1
            try:
                pattern, _ = self.process_stop_on("/", True)
            except HeredocLexError:
                if self.peek() is None:
                    raise HeredocLexError("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self.process_stop_on("}", True)
            except HeredocLexError:
                if self.peek() is None:
                    raise HeredocLexError("syntax error: missing '}'") from None
                raise
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        raise HeredocLexError(f"unsupported modifier ({chs}) in substitution")

    def process_name(self) -> str:
        name: list[str] = []
        while (ch := self.peek()) is not None:
            if not name and ch.isdecimal():
                while (c := self.peek()) is not None and c.isdecimal():
                    name.append(c)
                    self.pos += 1
                return "".join(name)
            if not name and ch in "@*#?-$!0":
                self.pos += 1
                return ch
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(ch)
            self.pos += 1
        return "".join(name)

    def process_possible_heredoc(self) -> str:
        self.pos += 1
        if self.peek() != "<":
            return "<"
        self.pos += 1
        start = self.pos
        while self.pos < self.n and self.s[self.pos] in "\t\r ":
            self.pos += 1
        return "<<" + self.s[start : self.pos]
