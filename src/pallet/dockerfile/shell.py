"""Shell-word expansion with the exact semantics of BuildKit's Dockerfile lexer.

BuildKit (frontend/dockerfile/shell/lex.go) expands ``$VAR``, ``${VAR}`` and the
``${VAR<op>word}`` forms, removes quotes, honours the escape token of the
Dockerfile (backslash or backtick) and, for some instructions, splits the result
into words. Dockerfiles must mean here what they mean there, so this module
follows that lexer rule for rule, quirks included: unknown characters after ``$``
stay literal, positional and special parameters are always unset, ``[`` in a
``${VAR#pattern}`` is a literal character, and an empty quoted string is not a word.

Deliberate differences, all only for pathological input:

* ``${...}`` may nest at most :data:`MAX_NESTING` levels deep (BuildKit has no
  limit; Python's stack has one), and a ``${VAR#pattern}`` whose ``*`` count
  times the value's length exceeds :data:`MAX_PATTERN_WORK` is refused.
* BuildKit's word splitter shares one buffer between nested ``${VAR:-word}``
  evaluations, so the text of a word before such an operator is dropped from
  :meth:`ShellLex.process_words` (``a${X:-b}`` gives ``["b"]``). That is a
  regression in its buffer reuse; this module keeps the intended ``["ab"]``.

Which variables a word looked up is recorded (``process_word_with_matches``): the
build cache key of a step includes exactly the build args the step used.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeAlias

from pallet.errors import PalletError

__all__ = [
    "MAX_NESTING",
    "MAX_PATTERN_WORK",
    "EnvLookup",
    "ShellExpansionError",
    "ShellLex",
    "env_from_list",
]

#: how deep ``${a:-${b:-...}}`` may nest before the word is refused
MAX_NESTING = 64

#: the environment: a mapping, or a function returning None for an unset name
EnvLookup: TypeAlias = Mapping[str, str] | Callable[[str], str | None]

# Go's unicode.IsSpace, which decides where words split (Python's isspace() also
# counts the ASCII separators 0x1c-0x1f, Go does not).
_GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# POSIX special parameters; BuildKit reads them as one-character names.
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# Whitespace allowed between a heredoc's << and its terminator word.
_HEREDOC_SPACE = frozenset("\t\r ")
_BOM = "\ufeff"


class ShellExpansionError(PalletError):
    """A word cannot be expanded: bad substitution, ``${VAR:?msg}``, unbalanced quotes."""


def env_from_list(entries: Iterable[str]) -> dict[str, str]:
    """``["K=V", "K2"]`` as a mapping: no ``=`` means empty, a later entry wins."""
    env: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


class _Failure(Exception):
    """Internal: an expansion error before it is wrapped with the source word."""


class ShellLex:
    """BuildKit's lexer for one escape token.

    The keyword options mirror BuildKit's ``Lex`` fields, which its parser uses to
    detect heredocs: ``raw_quotes`` keeps quote characters in the output,
    ``raw_escapes`` keeps escape tokens, ``skip_process_quotes`` treats quotes as
    ordinary characters, ``skip_unset_env`` leaves references to unset variables
    as written.
    """

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
    ) -> None:
        if len(escape) != 1:
            raise ValueError(f"escape token must be one character, not {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env
        # characters that send a word down the slow path of process_word
        self._specials = frozenset({"$", escape} | (set() if skip_process_quotes else {"'", '"'}))
        # runs of characters that need no attention, copied in one step (keyed by
        # the character that ends the text; blanks matter only when splitting)
        self._plain = {
            (stop, split): re.compile(
                "[^"
                + re.escape(
                    "".join(self._specials | {"<", stop or ""} | (_GO_SPACE if split else set()))
                )
                + "]+"
            )
            for stop in (None, "}", "/")
            for split in (False, True)
        }

    def process_word(self, word: str, env: EnvLookup) -> str:
        """Expand ``word`` as one word: quotes removed, no splitting."""
        if not self._specials.intersection(word) and not word.startswith(_BOM):
            return word
        return _Expansion(self, word, env, want_words=False).run()[0]

    def process_words(self, word: str, env: EnvLookup) -> list[str]:
        """Expand ``word`` and split it where unquoted whitespace is (literal or expanded)."""
        return _Expansion(self, word, env, want_words=True).run()[1]

    def process_word_with_matches(
        self, word: str, env: EnvLookup
    ) -> tuple[str, set[str], set[str]]:
        """Expand as one word; also the names looked up and found, and those not found."""
        expansion = _Expansion(self, word, env, want_words=False)
        result = expansion.run()[0]
        return result, expansion.matched, expansion.unmatched


class _Words:
    """Word splitting as BuildKit does it while expanding."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _GO_SPACE:
            # a blank ends the current word; blanks between words vanish
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        # quoted text stays in the word even when it holds blanks; an empty quoted
        # string marks a word as started without giving it content
        if text:
            self.buf.append(text)
        self.in_word = True

    def finish(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf.clear()
            self.in_word = False
        return self.words


class _Expansion:
    """One expansion of one word: a cursor over the text plus what it looked up."""

    def __init__(self, lex: ShellLex, source: str, env: EnvLookup, *, want_words: bool) -> None:
        self.lex = lex
        self.source = source
        # Go's text/scanner silently drops a byte-order mark at the start
        self.text = source[1:] if source.startswith(_BOM) else source
        self.pos = 0
        self.end = len(self.text)
        self.env = env
        self.want_words = want_words
        self.raw_escapes = lex.raw_escapes
        self.depth = 0
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def run(self) -> tuple[str, list[str]]:
        try:
            return self.process_until(None, self.raw_escapes, self.want_words)
        except _Failure as exc:
            raise ShellExpansionError(
                f"failed to process {_go_quote(self.source)}: {exc}"
            ) from None
        except RecursionError:
            raise ShellExpansionError(
                f"failed to process {_go_quote(self.source)}: substitutions nested too deeply"
            ) from None

    # -- scanner -----------------------------------------------------------------

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < self.end else None

    def next(self) -> str | None:
        if self.pos < self.end:
            ch = self.text[self.pos]
            self.pos += 1
            return ch
        return None

    # -- the grammar -------------------------------------------------------------

    def process_until(
        self, stop: str | None, raw_escapes: bool, want_words: bool
    ) -> tuple[str, list[str]]:
        """Expand up to ``stop`` (consumed) or the end; an unseen ``stop`` is an error."""
        saved_raw = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._process_until(stop, want_words)
        finally:
            self.raw_escapes = saved_raw

    def _process_until(self, stop: str | None, want_words: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words() if want_words else None
        quotes = not self.lex.skip_process_quotes
        escape = self.lex.escape
        text = self.text
        plain = self.lex._plain[stop, words is not None].match
        while self.pos < self.end:
            run = plain(text, self.pos)
            if run is not None:
                piece = run.group()
                result.append(piece)
                if words is not None:
                    words.add_raw(piece)
                self.pos = run.end()
                continue
            ch = text[self.pos]
            if ch == stop:
                self.pos += 1
                return "".join(result), words.finish() if words else []
            if ch == "$" or ch == "<" or (quotes and (ch == "'" or ch == '"')):
                if ch == "$":
                    piece = self.process_dollar()
                elif ch == "<":
                    piece = self.process_possible_heredoc()
                elif ch == "'":
                    piece = self.process_single_quote()
                else:
                    piece = self.process_double_quote()
                result.append(piece)
                if words is not None:
                    # expanded variables split; quoted text and << do not
                    if ch == "$":
                        words.add_string(piece)
                    else:
                        words.add_raw(piece)
                continue
            self.pos += 1
            if ch == escape:
                if self.raw_escapes:
                    result.append(ch)
                    if words is not None:
                        words.add_raw(ch)
                if self.pos >= self.end:
                    break  # a trailing escape token is dropped
                ch = text[self.pos]
                self.pos += 1
                if words is not None:
                    words.add_raw(ch)
            elif words is not None:
                words.add_char(ch)
            result.append(ch)
        if stop is not None:
            raise _Failure(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish() if words else []

    def process_single_quote(self) -> str:
        # everything up to the next ' is literal; ' itself cannot be escaped
        start = self.pos + 1
        close = self.text.find("'", start)
        if close < 0:
            self.pos = self.end
            raise _Failure("unexpected end of statement while looking for matching single-quote")
        self.pos = close + 1
        if self.lex.raw_quotes:
            return self.text[start - 1 : close + 1]
        return self.text[start:close]

    def process_double_quote(self) -> str:
        raw_quotes = self.lex.raw_quotes
        escape = self.lex.escape
        result = ['"'] if raw_quotes else []
        self.pos += 1
        while True:
            ch = self.peek()
            if ch is None:
                raise _Failure(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.pos += 1
                if raw_quotes:
                    result.append(ch)
                return "".join(result)
            if ch == "$":
                result.append(self.process_dollar())
                continue
            self.pos += 1
            if ch == escape:
                if self.raw_escapes:
                    result.append(ch)
                following = self.peek()
                if following is None:
                    continue  # unterminated: reported on the next turn
                if following in ('"', "$", escape):
                    # only these are escapes inside double quotes
                    self.pos += 1
                    ch = following
            result.append(ch)

    def process_possible_heredoc(self) -> str:
        # "<<" keeps the blanks after it, so "<< EOF" stays one word
        self.pos += 1
        if self.peek() != "<":
            return "<"
        self.pos += 1
        start = self.pos
        while self.pos < self.end and self.text[self.pos] in _HEREDOC_SPACE:
            self.pos += 1
        return "<<" + self.text[start : self.pos]

    def process_name(self) -> str:
        text = self.text
        start = self.pos
        if start >= self.end:
            return ""
        first = text[start]
        if first.isdecimal():
            # a positional parameter takes every following digit
            while self.pos < self.end and text[self.pos].isdecimal():
                self.pos += 1
            return text[start : self.pos]
        if first in _SPECIAL_PARAMS:
            self.pos += 1
            return first
        while self.pos < self.end and (
            text[self.pos].isalpha() or text[self.pos].isdecimal() or text[self.pos] == "_"
        ):
            self.pos += 1
        return text[start : self.pos]

    def get_env(self, name: str) -> tuple[str, bool]:
        env = self.env
        if callable(env):
            value = env(name)
        else:
            value = env.get(name)
        if value is None:
            self.unmatched.add(name)
            return "", False
        self.matched.add(name)
        return value, True

    def process_dollar(self) -> str:
        self.pos += 1  # the $
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value

        self.pos += 1  # the {
        first = self.peek()
        if first is None:
            raise _Failure("syntax error: missing '}'")
        if first in "{}:":
            raise _Failure("syntax error: bad substitution")
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _Failure(f"syntax error: substitutions nested more than {MAX_NESTING} deep")
        try:
            return self._process_braced()
        finally:
            self.depth -= 1

    def _process_braced(self) -> str:
        name = self.process_name()
        op = self.next()
        if op == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if op == "/":
            return self._substitute(name)
        if op not in (":", "+", "-", "?", "#", "%"):
            raise _Failure(f"unsupported modifier ({op or chr(0xFFFD)}) in substitution")

        op_text = op
        null_is_unset = op == ":"
        if null_is_unset:
            op = self.next()
            op_text += op or chr(0xFFFD)
        pattern_op = op in ("#", "%")
        if null_is_unset and pattern_op:
            raise _Failure(f"unsupported modifier ({op_text}) in substitution")
        word = self._nested_word("}", pattern_op, "syntax error: missing '}'")

        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + op_text + word + "}"
        unset = not found or (null_is_unset and value == "")
        if op == "-":
            return word if unset else value
        if op == "+":
            return "" if unset else word
        if op == "?":
            if not found:
                raise _Failure(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _Failure(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if op == "#" or op == "%":
            # a doubled operator (## or %%) asks for the longest match
            greedy = word.startswith(op)
            if greedy:
                word = word[1:]
            if op == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _Failure(f"unsupported modifier ({op_text}) in substitution")

    def _substitute(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.pos += 1
        pattern = self._nested_word("/", True, "syntax error: missing '/' in ${}")
        replacement = self._nested_word("}", True, "syntax error: missing '}'")
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        matcher = _PatternSearch(_parse_pattern(pattern), value, greedy=True)
        if replace_all:
            return _go_replace_all(matcher, value, replacement)
        span = matcher.search(0)
        if span is None:
            return value
        return value[: span[0]] + replacement + value[span[1] :]

    def _nested_word(self, stop: str, raw_escapes: bool, missing: str) -> str:
        try:
            return self.process_until(stop, raw_escapes, want_words=False)[0]
        except _Failure:
            if self.pos >= self.end:
                raise _Failure(missing) from None
            raise


# -- ${VAR#pattern} and ${VAR/pattern/replacement} -----------------------------------


# A pattern is a sequence of elements: a literal character, _ANY (one character
# but a newline, Go's ".") or _STAR (a run of such characters, Go's ".*" / ".*?").
_ANY = 0
_STAR = 1
_Element = str | int
#: bits of bookkeeping a pattern match may use (stars x value length): beyond this a
#: ${VAR#pattern} is refused instead of exhausting memory
MAX_PATTERN_WORK = 1 << 28


@functools.lru_cache(maxsize=256)
def _parse_pattern(pattern: str) -> tuple[_Element, ...]:
    """A shell pattern as BuildKit reads it: ``*`` ``?`` and ``\\`` escapes, nothing else.

    ``[`` is a literal character (BuildKit has no bracket expressions), and
    ``\\}`` / ``\\/`` are the delimiters of ``${...}`` written literally.
    """
    elements: list[_Element] = []
    # Go's text/scanner drops a leading byte-order mark here too
    text = pattern[1:] if pattern.startswith(_BOM) else pattern
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if not elements or elements[-1] != _STAR:  # ** matches what * matches
                elements.append(_STAR)
        elif ch == "?":
            elements.append(_ANY)
        elif ch == "\\":
            if i < n and text[i] in "}/":
                continue
            escaped = text[i] if i < n else ""
            i += 1
            if escaped not in ("*", "?", "\\"):
                raise _Failure(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{escaped}'"
                )
            elements.append(escaped)
        else:
            elements.append(ch)
    return tuple(elements)


class _PatternSearch:
    """Leftmost-first matching of one pattern in one value, in Go's regexp semantics.

    BuildKit hands these patterns to Go's linear-time regexp engine; Python's
    backtracking ``re`` is exponential in the number of ``*``. Instead, for every
    element ``j`` a bit set ``ok[j]`` records the positions from which the rest of
    the pattern can match (computed right to left with shifts and masks); the
    match is then read off left to right, each ``*`` taking the shortest (lazy)
    or longest (greedy) length that still lets the rest match, which is exactly
    the match a backtracking engine finds first.
    """

    def __init__(self, elements: tuple[_Element, ...], value: str, *, greedy: bool) -> None:
        n = len(value)
        stars = elements.count(_STAR)
        if stars * (n + 1) > MAX_PATTERN_WORK:
            raise _Failure(f"pattern with {stars} '*' is too complex for a {n}-character value")
        self.elements = elements
        self.value = value
        self.greedy = greedy
        # translate every character to "0"/"1" at C speed, then read the bits
        zeros = dict.fromkeys(map(ord, set(value)), "0")
        self.not_newline = _bits(value.translate({**dict.fromkeys(zeros, "1"), 10: "0"}))
        ok = (1 << (n + 1)) - 1  # past the last element: matched, wherever we are
        self.ok_after: list[int] = [0] * len(elements)  # ok[j + 1], kept for stars
        masks: dict[str, int] = {}
        for j in range(len(elements) - 1, -1, -1):
            element = elements[j]
            self.ok_after[j] = ok
            if not ok:
                continue  # nothing after can match: nothing before can either
            if element == _STAR:
                ok = _spread_left(ok, self.not_newline, n)
            elif element == _ANY:
                ok = (ok >> 1) & self.not_newline
            else:
                assert isinstance(element, str)
                mask = masks.get(element)
                if mask is None:
                    mask = masks[element] = _bits(value.translate({**zeros, ord(element): "1"}))
                ok = (ok >> 1) & mask
        self.ok_start = ok

    def match_at(self, start: int) -> int | None:
        """End of the match that starts exactly at ``start``, or None."""
        if not (self.ok_start >> start) & 1:
            return None
        pos = start
        value = self.value
        for j, element in enumerate(self.elements):
            if element != _STAR:
                pos += 1
                continue
            newline = value.find("\n", pos)
            run = (newline if newline >= 0 else len(value)) - pos
            lengths = (self.ok_after[j] >> pos) & ((1 << (run + 1)) - 1)
            if self.greedy:
                pos += lengths.bit_length() - 1
            else:
                pos += (lengths & -lengths).bit_length() - 1
        return pos

    def search(self, start: int) -> tuple[int, int] | None:
        """The leftmost match beginning at ``start`` or later."""
        candidates = self.ok_start >> start
        if not candidates:
            return None
        begin = start + (candidates & -candidates).bit_length() - 1
        end = self.match_at(begin)
        assert end is not None
        return begin, end


def _bits(flags: str) -> int:
    """ "0"/"1" per position, position 0 first, as an int with bit i for position i."""
    return int(flags[::-1], 2) if flags else 0


def _spread_left(ok: int, passable: int, n: int) -> int:
    """Positions from which a run of ``passable`` positions leads to an ``ok`` one.

    Doubling steps: after the step with shift k, ``reach`` covers runs up to 2k long.
    """
    reach = ok
    shift = 1
    while shift <= n and passable:
        reach |= (reach >> shift) & passable
        passable &= passable >> shift
        shift <<= 1
    return reach


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    end = _PatternSearch(_parse_pattern(pattern), value, greedy=greedy).match_at(0)
    return value if end is None else value[end:]


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # Leftmost matching cannot find the shortest rightmost match: reverse the value
    # and the pattern (keeping each escape in front of what it escapes), as BuildKit.
    trimmed = _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)
    return trimmed[::-1]


def _reverse_pattern(pattern: str) -> str:
    chars = list(pattern)
    last = len(chars) - 1
    out = [""] * len(chars)
    i = 0
    while i <= last:
        if chars[i] == "\\" and i != last:
            out[last - i - 1] = "\\"
            out[last - i] = chars[i + 1]
            i += 2
        else:
            out[last - i] = chars[i]
            i += 1
    return "".join(out)


def _go_replace_all(matcher: _PatternSearch, value: str, template: str) -> str:
    """Go's Regexp.ReplaceAllString: an empty match right after a match is not replaced,
    and ``$0`` / ``${0}`` in the replacement stand for the matched text."""
    out: list[str] = []
    last_end = 0
    search = 0
    n = len(value)
    while search <= n:
        span = matcher.search(search)
        if span is None:
            break
        start, end = span
        out.append(value[last_end:start])
        if end > last_end or start == 0:
            out.append(_go_expand(template, value[start:end]))
        last_end = end
        search = search + 1 if search + 1 > end else end
    out.append(value[last_end:])
    return "".join(out)


def _go_expand(template: str, whole: str) -> str:
    """Go's Regexp.Expand for a regex with no groups: ``$$`` is ``$``, ``$0`` the match,
    any other well-formed ``$name`` is empty, a malformed one stays literal."""
    if "$" not in template:
        return template
    out: list[str] = []
    rest = template
    while True:
        before, dollar, rest = rest.partition("$")
        out.append(before)
        if not dollar:
            return "".join(out)
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        name, after = _go_template_name(rest)
        if name is None:
            out.append("$")
            continue
        rest = after
        if name == "0":
            out.append(whole)


def _go_template_name(text: str) -> tuple[str | None, str]:
    brace = text.startswith("{")
    body = text[1:] if brace else text
    i = 0
    while i < len(body) and (body[i].isalpha() or body[i].isdecimal() or body[i] == "_"):
        i += 1
    if i == 0:
        return None, text
    name = body[:i]
    if brace:
        if i >= len(body) or body[i] != "}":
            return None, text
        i += 1
    return name, body[i:]


def _go_quote(text: str) -> str:
    """Close enough to Go's %q for an error message: quoted, control characters visible."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    out.append('"')
    return "".join(out)
