"""The syntax tree of a Dockerfile, as BuildKit's parser builds it, with source positions.

Lines and columns are 1-based; a column counts characters (code points) on its physical
line. Argument values are exactly the strings BuildKit stores in its node list, so that
``dump`` reproduces BuildKit's ``result`` files; expansion of variables happens later.
"""

from __future__ import annotations

from dataclasses import dataclass

from pallet.dockerfile.gostrings import lower
from pallet.dockerfile.heredoc import chomp


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int


@dataclass(frozen=True)
class Directive:
    """A parser directive at the top of the file (``# escape=``, ``# syntax=``, ``# check=``)."""

    name: str  # lower-cased
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class Flag:
    """One ``--name[=value]`` word before an instruction's arguments (quotes removed)."""

    text: str  # the whole word as BuildKit keeps it, e.g. "--from=build"
    line: int
    column: int

    @property
    def position(self) -> Position:
        return Position(self.line, self.column)

    @property
    def name(self) -> str:
        """The flag name without dashes (``from``); empty for a bare ``--``."""
        return self.text[2:].partition("=")[0]

    @property
    def value(self) -> str | None:
        """The text after the first ``=``, or None when there is no ``=``."""
        _, eq, value = self.text.partition("=")
        return value if eq else None


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument node: its value and where it starts in the source."""

    value: str
    line: int
    column: int

    @property
    def position(self) -> Position:
        return Position(self.line, self.column)


@dataclass(frozen=True)
class Heredoc:
    """A here-document attached to RUN, COPY or ADD (``<<EOF`` ... ``EOF``)."""

    name: str  # terminator word, quotes removed
    file_descriptor: int  # leading digits as in ``3<<EOF``; 0 when absent
    expand: bool  # False when any part of the terminator word was quoted
    chomp: bool  # ``<<-``: leading tabs are removed when the content is used
    content: str  # raw body lines, each with its line ending; tabs not yet removed
    start_line: int  # line of the first body line (the terminator when the body is empty)

    def body(self) -> str:
        """The content as the instruction uses it (leading tabs removed for ``<<-``)."""
        return chomp(self.content) if self.chomp else self.content


@dataclass(frozen=True)
class Instruction:
    """One instruction (one logical line, plus its heredoc bodies)."""

    keyword: str  # as written, e.g. "RUN" or "run"
    flags: tuple[Flag, ...]
    args: tuple[Arg, ...]
    json_form: bool  # arguments came from a JSON array (exec form)
    heredocs: tuple[Heredoc, ...]
    original: str  # the logical line: continuations joined, comments dropped
    position: Position  # where the keyword starts
    start_line: int
    end_line: int  # last physical line, heredoc terminators included
    sub: Instruction | None = None  # the trigger of ONBUILD
    comments: tuple[str, ...] = ()  # comment lines directly above the instruction

    @property
    def command(self) -> str:
        """The keyword lower-cased, as BuildKit dispatches on it."""
        return lower(self.keyword)

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(a.value for a in self.args)


@dataclass(frozen=True)
class Warning:
    """A non-fatal finding of the parser (e.g. an empty continuation line)."""

    message: str
    detail: str
    url: str
    line: int


@dataclass(frozen=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]
    directives: tuple[Directive, ...] = ()
    escape: str = "\\"
    warnings: tuple[Warning, ...] = ()
    start_line: int = 0
    end_line: int = 0
    filename: str = "Dockerfile"

    def directive(self, name: str) -> str | None:
        """The value of directive ``name`` (``syntax``, ``escape``, ``check``), if given."""
        for d in self.directives:
            if d.name == name:
                return d.value
        return None
