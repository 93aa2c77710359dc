""".dockerignore with Docker's exact semantics.

Reading the file follows moby's ``ignorefile.ReadAll``; matching follows
``moby/patternmatcher``, the matcher that Docker's CLI and BuildKit (through
fsutil) use. Its patterns are not .gitignore patterns: a pattern must match the
whole relative path or one of its parent directories, ``*`` never crosses ``/``,
a trailing ``/`` means nothing, ``!`` re-includes, and the last pattern that
applies wins.

patternmatcher turns each pattern into a Go regular expression, and a few
characters reach that regex unescaped (``[`` ``]`` ``^`` and whatever follows a
``\\``). To mean what Docker means even then, the Go regex is built exactly as
patternmatcher builds it and then translated, construct by construct, into an
equivalent Python regex. Go's ``\\p{...}`` Unicode classes are the one construct
not translated: such a pattern is reported as malformed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from pallet.errors import InvalidArgument

__all__ = [
    "DirectoryMatcher",
    "IgnorePatternError",
    "Pattern",
    "PatternMatcher",
    "clean_path",
    "read_ignore_file",
]

# Go's unicode.IsSpace: what strings.TrimSpace removes
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# bufio.Scanner's default limit: a longer line makes ReadAll fail
_MAX_LINE_BYTES = 64 * 1024
_BOM = "\ufeff"


class IgnorePatternError(InvalidArgument):
    """A .dockerignore pattern is malformed, or the file cannot be read."""


def clean_path(path: str) -> str:
    """Go's ``filepath.Clean`` for ``/`` paths: no ``//``, ``.`` or inner ``..``."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            # ".." at the root stays at the root
        else:
            parts.append(segment)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _go_dir(path: str) -> str:
    """Go's ``filepath.Dir``: everything before the last ``/``, cleaned."""
    return clean_path(path[: path.rfind("/") + 1])


def read_ignore_file(data: bytes | str | None) -> list[str]:
    """The patterns of a .dockerignore file, as ``ignorefile.ReadAll`` returns them."""
    if data is None:
        return []
    if isinstance(data, bytes):
        # Go keeps invalid UTF-8 byte for byte; surrogateescape does the same
        text = data.decode("utf-8", "surrogateescape")
    else:
        text = data
    patterns: list[str] = []
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if number == len(lines) and not line:
            break
        if len(line.encode("utf-8", "surrogateescape")) >= _MAX_LINE_BYTES:
            raise IgnorePatternError(f".dockerignore line {number} is too long")
        if line.endswith("\r"):
            line = line[:-1]
        if number == 1 and line.startswith(_BOM):
            line = line[1:]
        # a comment only when # is the very first character
        if line.startswith("#"):
            continue
        pattern = line.strip(_GO_SPACE)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip(_GO_SPACE)
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


class _Kind(enum.Enum):
    EXACT = "exact"
    PREFIX = "prefix"  # "dir/**": everything that starts with "dir/"
    SUFFIX = "suffix"  # "**/name": anything ending in "/name", and "name"
    REGEXP = "regexp"


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern. ``text`` is the cleaned pattern without its ``!``."""

    text: str
    exclusion: bool
    kind: _Kind
    #: path -> truthy when the pattern matches it, specialised per kind at compile
    #: time because the walk calls it for every entry and pattern
    test: Callable[[str], object] = field(repr=False, compare=False)
    #: every path the pattern matches starts with this (lets a walk skip patterns
    #: that cannot match anything in a directory)
    head: str = ""

    def match(self, path: str) -> bool:
        return bool(self.test(path))


def _make_test(text: str, kind: _Kind) -> Callable[[str], object]:
    if kind is _Kind.EXACT:
        return text.__eq__
    if kind is _Kind.PREFIX:
        prefix = text[:-2]
        return lambda path: path.startswith(prefix)
    if kind is _Kind.SUFFIX:
        suffix = text[2:]
        # "**/name" also matches "name" itself
        bare = suffix[1:] if suffix.startswith("/") else None
        return lambda path: path.endswith(suffix) or path == bare
    raise AssertionError(kind)


def _bad_regex_test(text: str, reason: str) -> Callable[[str], object]:
    def fail(path: str) -> object:
        raise IgnorePatternError(f"invalid .dockerignore pattern {text!r}: {reason}")

    return fail


class PatternMatcher:
    """A compiled .dockerignore: which context paths it excludes."""

    def __init__(self, patterns: Iterable[str]) -> None:
        compiled: list[Pattern] = []
        for raw in patterns:
            text = raw.strip(_GO_SPACE)
            if not text:
                continue
            text = clean_path(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise IgnorePatternError('illegal exclusion pattern: "!"')
                text = text[1:]
            syntax_error = _glob_syntax_error(text)
            if syntax_error:
                raise IgnorePatternError(
                    f"invalid .dockerignore pattern {raw.strip()!r}: {syntax_error}"
                )
            compiled.append(_compile(text, exclusion))
        self.patterns: tuple[Pattern, ...] = tuple(compiled)
        self._tests = tuple((p.exclusion, p.test) for p in compiled)
        #: True when some pattern re-includes (``!``): excluded directories must
        #: then still be walked, something below them may be included again
        self.exclusions = any(p.exclusion for p in compiled)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, path: str) -> bool:
        """Whether ``path`` (relative, ``/``-separated) is excluded from the context.

        patternmatcher's ``MatchesOrParentMatches``: a pattern applies when it
        matches the path or any of its parent directories. The context root
        (``.`` or empty) is never excluded.
        """
        return self.matching_pattern(path) is not None

    def matching_pattern(self, path: str) -> str | None:
        """The pattern that excludes ``path`` (the last to apply), or None if it is kept."""
        if path in ("", "."):
            return None
        parents = _parent_prefixes(path)
        excluded_by: Pattern | None = None
        for pattern in self.patterns:
            # an inclusion can only change an unmatched path, an exception a matched one
            if pattern.exclusion != (excluded_by is not None):
                continue
            test = pattern.test
            if test(path) or any(test(parent) for parent in parents):
                excluded_by = None if pattern.exclusion else pattern
        return excluded_by.text if excluded_by else None

    def matches_in_walk(
        self, path: str, parent_state: Sequence[bool] | None
    ) -> tuple[bool, tuple[bool, ...]]:
        """``MatchesUsingParentResults``: what BuildKit's context walk asks.

        ``parent_state`` is the state returned for the parent directory (None at
        the top, or when unknown: the parents are then checked here). Returns
        whether ``path`` is excluded and the state to pass for its children.
        """
        if not parent_state:
            return self._matches_checking_parents(path)
        matched = False
        state: list[bool] = []
        record = state.append
        for (exclusion, test), inherited in zip(self._tests, parent_state, strict=True):
            if inherited:
                # the parent matched this pattern: so does everything below it
                record(True)
                matched = not exclusion
            elif exclusion != matched:
                record(False)
            elif test(path):
                record(True)
                matched = not exclusion
            else:
                record(False)
        return matched, tuple(state)

    def directory(self, path: str, hits: Iterable[int] = ()) -> DirectoryMatcher:
        """The matcher for the entries of directory ``path`` ("" for the root) in a
        walk; ``hits`` are the patterns the directory itself matched
        (:meth:`DirectoryMatcher.match` returns them). Same results as
        :meth:`matches_in_walk`, minus the patterns that cannot match below."""
        inherited = set(hits)
        prefix = path + "/" if path else ""
        steps: list[tuple[int, bool, Callable[[str], object] | None]] = []
        for index, pattern in enumerate(self.patterns):
            if index in inherited:
                steps.append((index, pattern.exclusion, None))
            elif pattern.head.startswith(prefix) or prefix.startswith(pattern.head):
                steps.append((index, pattern.exclusion, pattern.test))
        return DirectoryMatcher(tuple(steps))

    def _matches_checking_parents(self, path: str) -> tuple[bool, tuple[bool, ...]]:
        matched = False
        state: list[bool] = []
        parents: list[str] | None = None
        for exclusion, test in self._tests:
            if exclusion != matched:
                state.append(False)
                continue
            hit = bool(test(path))
            if not hit:
                if parents is None:
                    parents = _parent_prefixes(path)
                hit = any(test(parent) for parent in parents)
            state.append(hit)
            if hit:
                matched = not exclusion
        return matched, tuple(state)


class DirectoryMatcher:
    """The patterns that can apply inside one directory, in order (see
    :meth:`PatternMatcher.directory`)."""

    __slots__ = ("_steps",)

    def __init__(self, steps: tuple[tuple[int, bool, Callable[[str], object] | None], ...]) -> None:
        # (pattern index, is an exception, test or None when the directory matched it)
        self._steps = steps

    def match(self, path: str) -> tuple[bool, tuple[int, ...]]:
        """Whether the entry is excluded, and the patterns it matched (for its children)."""
        matched = False
        hits: list[int] = []
        for index, exclusion, test in self._steps:
            if test is None:
                # the directory matched this pattern: so does everything below it
                hits.append(index)
                matched = not exclusion
            elif exclusion == matched and test(path):
                hits.append(index)
                matched = not exclusion
        return matched, tuple(hits)


def _parent_prefixes(path: str) -> list[str]:
    """``a``, ``a/b`` for ``a/b/c`` (computed as patternmatcher does, via Dir)."""
    parent = _go_dir(path)
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[: i + 1]) for i in range(len(dirs))]


# -- pattern syntax: Go's filepath.Match rules ----------------------------------------


def _glob_syntax_error(pattern: str) -> str | None:
    """What ``filepath.Match(pattern, ".")`` would reject, or None."""
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges:
                    i += 1
                    break
                i = _class_char_end(pattern, i)
                if i < 0:
                    return "syntax error in pattern"
                if pattern[i] == "-":
                    i = _class_char_end(pattern, i + 1)
                    if i < 0:
                        return "syntax error in pattern"
                ranges += 1
        elif ch == "\\":
            if i + 1 >= n:
                return "syntax error in pattern"
            i += 2
        else:
            i += 1
    return None


def _class_char_end(pattern: str, i: int) -> int:
    """Index after one (possibly escaped) class character, -1 if malformed (Go's getEsc)."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        return -1
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            return -1
    if "\udc80" <= pattern[i] <= "\udcff":
        return -1  # a byte that was not valid UTF-8
    i += 1
    # a class character must be followed by more of the class
    return i if i < n else -1


# -- compiling: patternmatcher's classification and Go regex ---------------------------

_GO_REGEX_META = frozenset(".+()|{}$")


def _compile(text: str, exclusion: bool) -> Pattern:
    kind, go_regex = _classify(text)
    if kind is _Kind.EXACT:
        return Pattern(text, exclusion, kind, _make_test(text, kind), head=text)
    if kind is _Kind.PREFIX:
        return Pattern(text, exclusion, kind, _make_test(text, kind), head=text[:-2])
    if kind is _Kind.SUFFIX:
        return Pattern(text, exclusion, kind, _make_test(text, kind))
    try:
        test = _compile_go_regex(go_regex)
    except (_GoRegexError, re.error) as exc:
        # patternmatcher only reports this when the pattern is consulted
        return Pattern(text, exclusion, kind, _bad_regex_test(text, str(exc)))
    literal = _LITERAL_HEAD.match(text)
    return Pattern(text, exclusion, kind, test, head=literal.group() if literal else "")


# the characters a regexp-kind pattern starts with that reach its regex as themselves
_LITERAL_HEAD = re.compile(r"[^*?\[\]\\^\ufeff]*")


def _classify(text: str) -> tuple[_Kind, str]:
    """patternmatcher's compile: how the pattern matches, and its Go regex."""
    kind = _Kind.EXACT
    regex = ["^"]
    # Go's text/scanner skips a leading byte-order mark
    chars = text[1:] if text.startswith(_BOM) else text
    pos, n = 0, len(chars)
    first = True
    while pos < n:
        ch = chars[pos]
        pos += 1
        if ch == "*":
            if pos < n and chars[pos] == "*":
                pos += 1
                if pos < n and chars[pos] == "/":
                    pos += 1  # "**/" is "**"
                if pos >= n:
                    if kind is _Kind.EXACT:
                        kind = _Kind.PREFIX
                    else:
                        regex.append(".*")
                        kind = _Kind.REGEXP
                else:
                    regex.append("(.*/)?")
                    kind = _Kind.REGEXP
                if first:
                    kind = _Kind.SUFFIX
            else:
                regex.append("[^/]*")
                kind = _Kind.REGEXP
        elif ch == "?":
            regex.append("[^/]")
            kind = _Kind.REGEXP
        elif ch in _GO_REGEX_META:
            regex.append("\\" + ch)
        elif ch == "\\":
            if pos < n:
                regex.append("\\" + chars[pos])
                pos += 1
                kind = _Kind.REGEXP
            else:
                regex.append("\\")
        elif ch == "[" or ch == "]":
            regex.append(ch)
            kind = _Kind.REGEXP
        else:
            regex.append(ch)
        first = False
    if kind is _Kind.REGEXP:
        regex.append("$")
    return kind, "".join(regex)


# -- Go regexp syntax -> Python re ------------------------------------------------------


class _GoRegexError(Exception):
    pass


_MAX_RUNE = 0x10FFFF
_Ranges = list[tuple[int, int]]

# Go's POSIX classes ([:name:]) and Perl classes (\d \s \w), all ASCII
_POSIX_CLASSES: dict[str, _Ranges] = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A), (0x5F, 0x5F)],
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
_PERL_CLASSES: dict[str, _Ranges] = {
    "d": [(0x30, 0x39)],
    "s": [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)],
    "w": _POSIX_CLASSES["word"],
}
_C_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
_HEX = "0123456789abcdefABCDEF"


@dataclass(frozen=True)
class _Set:
    """One character out of ``ranges`` (inclusive code point pairs)."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Assert:
    kind: str  # "A" start of text, "z" end of text, "b" / "B" ASCII word boundary


@dataclass(frozen=True)
class _Group:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Repeat:
    item: _Node
    least: int
    most: int | None  # None: unbounded


_Node = _Set | _Assert | _Group | _Repeat
_DOT = _Set(((0, 9), (11, _MAX_RUNE)))  # Go's . does not match a newline


def _compile_go_regex(go: str) -> Callable[[str], object]:
    """A match test for a Go regex from patternmatcher (it anchors itself: ^...$).

    Python's backtracking engine is exponential in the number of unbounded
    repetitions (``a*b*c*d*`` against a long name), Go's is linear. Patterns with
    at most two run on ``re``; longer ones on a linear-time NFA simulation.
    """
    items = _parse_go_regex(go)
    if _unbounded(items) <= 2:
        return re.compile("".join(_python_regex(node) for node in items), re.ASCII).match
    return _Nfa(items).matches


def _parse_go_regex(go: str) -> tuple[_Node, ...]:
    """Parse the subset of Go regexp syntax patternmatcher can produce (flags: Perl)."""
    stack: list[list[_Node]] = [[]]
    i, n = 0, len(go)
    while i < n:
        ch = go[i]
        seq = stack[-1]
        if ch in "*+?":
            if not seq or isinstance(seq[-1], _Repeat):
                raise _GoRegexError(f"missing or repeated argument to repetition operator {ch}")
            least, most = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
            seq[-1] = _Repeat(seq[-1], least, most)
            i += 1
            if i < n and go[i] == "?":
                i += 1  # non-greedy: the same for a yes/no match
            continue
        if ch == "(":
            stack.append([])
            i += 1
        elif ch == ")":
            if len(stack) == 1:
                raise _GoRegexError("unexpected )")
            group = _Group(tuple(stack.pop()))
            stack[-1].append(group)
            i += 1
        elif ch in "|{":
            # patternmatcher escapes these; reaching here would be a bug of ours
            raise _GoRegexError(f"unsupported regex syntax {ch}")
        elif ch == "\\":
            nodes, i = _parse_go_escape(go, i)
            seq.extend(nodes)
        elif ch == "[":
            ranges, i = _parse_class(go, i)
            seq.append(_Set(tuple(ranges)))
        elif ch == ".":
            seq.append(_DOT)
            i += 1
        elif ch == "^":
            seq.append(_Assert("A"))
            i += 1
        elif ch == "$":
            seq.append(_Assert("z"))
            i += 1
        else:
            seq.append(_Set(((ord(ch), ord(ch)),)))
            i += 1
    if len(stack) != 1:
        raise _GoRegexError("missing closing )")
    return tuple(stack[0])


def _parse_go_escape(go: str, i: int) -> tuple[list[_Node], int]:
    """An escape outside a class, at ``go[i] == '\\'``."""
    if i + 1 >= len(go):
        raise _GoRegexError("trailing backslash at end of expression")
    code = go[i + 1]
    if code in "Azb" or code == "B":
        return [_Assert(code)], i + 2
    if code == "Q":
        end = go.find("\\E", i + 2)
        literal = go[i + 2 :] if end < 0 else go[i + 2 : end]
        nodes: list[_Node] = [_Set(((ord(c), ord(c)),)) for c in literal]
        return nodes, len(go) if end < 0 else end + 2
    if code in "dDsSwW":
        ranges = _PERL_CLASSES[code.lower()]
        return [_Set(tuple(_negate(ranges) if code.isupper() else ranges))], i + 2
    if code in "pP":
        raise _GoRegexError(f"unsupported Unicode class escape \\{code}")
    rune, j = _parse_escape(go, i)
    return [_Set(((rune, rune),))], j


def _unbounded(items: Iterable[_Node]) -> int:
    count = 0
    for node in items:
        if isinstance(node, _Group):
            count += _unbounded(node.items)
        elif isinstance(node, _Repeat):
            count += (node.most is None) + _unbounded([node.item])
    return count


def _python_regex(node: _Node) -> str:
    if isinstance(node, _Set):
        if len(node.ranges) == 1 and node.ranges[0][0] == node.ranges[0][1]:
            return re.escape(chr(node.ranges[0][0]))
        return _python_class(list(node.ranges))
    if isinstance(node, _Assert):
        # Go's $ and \z are the very end: Python's \Z; \b is ASCII (re.ASCII)
        return {"A": "\\A", "z": "\\Z", "b": "\\b", "B": "\\B"}[node.kind]
    if isinstance(node, _Group):
        return "(?:" + "".join(_python_regex(item) for item in node.items) + ")"
    suffix = {(0, None): "*", (1, None): "+", (0, 1): "?"}[(node.least, node.most)]
    return "(?:" + _python_regex(node.item) + ")" + suffix


def _is_word(ch: str) -> bool:
    return ch < "\x80" and (ch.isalnum() or ch == "_")


class _Inst(NamedTuple):
    op: int
    a: int = 0  # jump target (split: first choice)
    b: int = 0  # split: second choice
    ranges: tuple[tuple[int, int], ...] = ()
    kind: str = ""  # assertion


_CHAR, _SPLIT, _JMP, _ASSERT, _MATCH = range(5)


class _Nfa:
    """Thompson NFA: time linear in the path, as Go's engine."""

    def __init__(self, items: tuple[_Node, ...]) -> None:
        self.prog: list[_Inst] = []
        for node in items:
            self._emit(node)
        self.prog.append(_Inst(_MATCH))

    def _emit(self, node: _Node) -> None:
        prog = self.prog
        if isinstance(node, _Set):
            prog.append(_Inst(_CHAR, ranges=node.ranges))
        elif isinstance(node, _Assert):
            prog.append(_Inst(_ASSERT, kind=node.kind))
        elif isinstance(node, _Group):
            for item in node.items:
                self._emit(item)
        elif node.most is None and node.least == 0:  # x*: L: split(body, out); body; jmp L
            loop = len(prog)
            prog.append(_Inst(_SPLIT))
            self._emit(node.item)
            prog.append(_Inst(_JMP, loop))
            prog[loop] = _Inst(_SPLIT, loop + 1, len(prog))
        elif node.most is None:  # x+: body; split(body, out)
            start = len(prog)
            self._emit(node.item)
            prog.append(_Inst(_SPLIT, start, len(prog) + 1))
        else:  # x?: split(body, out); body
            split = len(prog)
            prog.append(_Inst(_SPLIT))
            self._emit(node.item)
            prog[split] = _Inst(_SPLIT, split + 1, len(prog))

    def matches(self, text: str) -> bool:
        """Whether a prefix of ``text`` matches (the regex anchors itself with ^...$)."""
        prog = self.prog
        states = self._closure([0], text, 0)
        for pos, ch in enumerate(text):
            if any(prog[pc].op == _MATCH for pc in states):
                return True
            code = ord(ch)
            following = [
                pc + 1
                for pc in states
                if prog[pc].op == _CHAR and any(lo <= code <= hi for lo, hi in prog[pc].ranges)
            ]
            if not following:
                return False
            states = self._closure(following, text, pos + 1)
        return any(prog[pc].op == _MATCH for pc in states)

    def _closure(self, start: list[int], text: str, pos: int) -> set[int]:
        """The states reachable without consuming a character."""
        seen: set[int] = set()
        todo = list(start)
        while todo:
            pc = todo.pop()
            if pc in seen:
                continue
            seen.add(pc)
            inst = self.prog[pc]
            if inst.op == _SPLIT:
                todo.append(inst.a)
                todo.append(inst.b)
            elif inst.op == _JMP:
                todo.append(inst.a)
            elif inst.op == _ASSERT and _assertion_holds(inst.kind, text, pos):
                todo.append(pc + 1)
        return seen


def _assertion_holds(kind: str, text: str, pos: int) -> bool:
    if kind == "A":
        return pos == 0
    if kind == "z":
        return pos == len(text)
    before = pos > 0 and _is_word(text[pos - 1])
    after = pos < len(text) and _is_word(text[pos])
    return (before != after) == (kind == "b")


def _parse_escape(go: str, i: int) -> tuple[int, int]:
    """Go's parseEscape: one escaped rune at ``go[i] == '\\'``; returns (rune, next index)."""
    n = len(go)
    if i + 1 >= n:
        raise _GoRegexError("trailing backslash at end of expression")
    code = go[i + 1]
    j = i + 2
    if code < "\x80" and not code.isalnum():
        return ord(code), j  # escaped punctuation is itself
    if code in "1234567" and not (j < n and "0" <= go[j] <= "7"):
        raise _GoRegexError(f"invalid escape sequence: \\{code}")  # a backreference
    if code in "01234567":
        value = ord(code) - 0x30
        for _ in range(2):
            if j < n and "0" <= go[j] <= "7":
                value = value * 8 + ord(go[j]) - 0x30
                j += 1
        return value, j
    if code == "x":
        if j < n and go[j] == "{":
            end = go.find("}", j + 1)
            digits = go[j + 1 : end] if end >= 0 else ""
            if not digits or any(d not in _HEX for d in digits) or int(digits, 16) > _MAX_RUNE:
                raise _GoRegexError("invalid escape sequence: \\x{")
            return int(digits, 16), end + 1
        pair = go[j : j + 2]
        if len(pair) != 2 or any(d not in _HEX for d in pair):
            raise _GoRegexError("invalid escape sequence: \\x")
        return int(pair, 16), j + 2
    if code in _C_ESCAPES:
        return _C_ESCAPES[code], j
    raise _GoRegexError(f"invalid escape sequence: \\{code}")


def _parse_class(go: str, i: int) -> tuple[_Ranges, int]:
    """Go's parseClass at ``go[i] == '['``: the ranges it matches and the index after ``]``."""
    n = len(go)
    i += 1
    negated = i < n and go[i] == "^"
    if negated:
        i += 1
    ranges: _Ranges = []
    first = True
    while i >= n or go[i] != "]" or first:
        first = False
        if i + 2 < n and go[i] == "[" and go[i + 1] == ":":
            end = go.find(":]", i + 2)
            if end >= 0:
                name = go[i + 2 : end]
                negate_group = name.startswith("^")
                group = _POSIX_CLASSES.get(name[1:] if negate_group else name)
                if group is None:
                    raise _GoRegexError(f"invalid character class range: [:{name}:]")
                ranges.extend(_negate(group) if negate_group else group)
                i = end + 2
                continue
        if i + 1 < n and go[i] == "\\" and go[i + 1] in "pP":
            raise _GoRegexError(f"unsupported Unicode class escape \\{go[i + 1]}")
        if i + 1 < n and go[i] == "\\" and go[i + 1] in "dDsSwW":
            code = go[i + 1]
            group = _PERL_CLASSES[code.lower()]
            ranges.extend(_negate(group) if code.isupper() else group)
            i += 2
            continue
        lo, i = _class_char(go, i)
        hi = lo
        if i + 1 < n and go[i] == "-" and go[i + 1] != "]":
            hi, i = _class_char(go, i + 1)
            if hi < lo:
                raise _GoRegexError("invalid character class range")
        ranges.append((lo, hi))
    i += 1  # the ]
    return (_negate(ranges) if negated else ranges), i


def _class_char(go: str, i: int) -> tuple[int, int]:
    if i >= len(go):
        raise _GoRegexError("missing closing ]")
    if go[i] == "\\":
        return _parse_escape(go, i)
    return ord(go[i]), i + 1


def _negate(ranges: _Ranges) -> _Ranges:
    out: _Ranges = []
    nxt = 0
    for lo, hi in sorted(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= _MAX_RUNE:
        out.append((nxt, _MAX_RUNE))
    return out


def _python_class(ranges: _Ranges) -> str:
    if not ranges:
        return "(?!)"  # an empty class matches nothing
    parts = []
    for lo, hi in ranges:
        parts.append(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}")
    return "[" + "".join(parts) + "]"
