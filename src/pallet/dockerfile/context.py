"""The build context: which .dockerignore applies, and which files it leaves in.

The walk reproduces what BuildKit's context transfer (tonistiigi/fsutil) sends:
entries in lexical order, parents before children, each tested with the
per-directory results of its parent (patternmatcher's
``MatchesUsingParentResults``). An excluded directory is not entered unless an
exception (``!pattern``) could re-include something below it; if something
below it is re-included, the directory itself is reported just before it, as
fsutil does, so that a copy can recreate it. Symlinks are reported, never
followed.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pallet.dockerfile.ignore import (
    DirectoryMatcher,
    IgnorePatternError,
    PatternMatcher,
    read_ignore_file,
)
from pallet.errors import PalletError

__all__ = [
    "DOCKERIGNORE",
    "BuildContextError",
    "ContextEntry",
    "EntryKind",
    "find_ignore_file",
    "load_ignore_file",
    "walk_context",
]

DOCKERIGNORE = ".dockerignore"
#: a .dockerignore bigger than this is refused rather than read into memory
MAX_IGNORE_FILE_SIZE = 16 * 1024 * 1024
# characters that make an exception pattern more than a literal path prefix
# (fsutil's test for whether excluded directories can be skipped)
_GLOB_CHARS = frozenset("*[]?^\\")


class BuildContextError(PalletError):
    """The build context directory cannot be read."""


class EntryKind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    OTHER = "other"  # fifo, socket, device


@dataclass(frozen=True, slots=True)
class ContextEntry:
    """One entry of the context: ``path`` is relative and ``/``-separated."""

    path: str
    stat: os.stat_result
    kind: EntryKind


def find_ignore_file(context_dir: Path, dockerfile_name: str) -> Path | None:
    """The ignore file that applies: ``<Dockerfile>.dockerignore`` beside the
    Dockerfile wins over ``.dockerignore`` at the root of the context.

    A symlink is followed only while it stays inside its directory tree (BuildKit
    resolves it inside the transferred directory): one pointing elsewhere counts
    as absent, so a context cannot make the build read files outside it.
    """
    dockerfile = Path(dockerfile_name)
    if not dockerfile.is_absolute():
        dockerfile = context_dir / dockerfile
    specific = dockerfile.with_name(dockerfile.name + DOCKERIGNORE)
    if _is_file_within(specific, dockerfile.parent):
        return specific
    default = context_dir / DOCKERIGNORE
    if _is_file_within(default, context_dir):
        return default
    return None


def _is_file_within(path: Path, base: Path) -> bool:
    if not path.is_file():
        return False
    return path.resolve().is_relative_to(base.resolve())


def load_ignore_file(path: Path) -> PatternMatcher:
    """Read and compile an ignore file; errors name the file."""
    try:
        size = path.stat().st_size
        if size > MAX_IGNORE_FILE_SIZE:
            raise IgnorePatternError(f"{path}: {size} bytes is too large for an ignore file")
        data = path.read_bytes()
    except OSError as exc:
        raise IgnorePatternError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return PatternMatcher(read_ignore_file(data))
    except IgnorePatternError as exc:
        raise IgnorePatternError(f"{path}: {exc}") from None


def _kind(mode: int) -> EntryKind:
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    if stat.S_ISDIR(mode):
        return EntryKind.DIR
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    return EntryKind.OTHER


class _Pending:
    """An excluded directory that was entered: reported only if something below is kept."""

    __slots__ = ("abs_path", "emitted", "parent", "rel_path")

    def __init__(self, rel_path: str, abs_path: str, parent: _Pending | None) -> None:
        self.rel_path = rel_path
        self.abs_path = abs_path
        self.parent = parent
        self.emitted = False


@dataclass(slots=True)
class _Frame:
    abs_path: str
    rel_prefix: str  # "" at the root, else "dir/"
    matcher: DirectoryMatcher | None  # the patterns that can apply to its entries
    pending: _Pending | None  # nearest unreported excluded ancestor chain


def walk_context(
    context_dir: Path,
    matcher: PatternMatcher | None,
    *,
    always_include: Iterable[str] = (),
) -> Iterator[ContextEntry]:
    """Yield every entry of the context the matcher keeps, parents first.

    ``always_include`` names relative paths (the Dockerfile, the ignore file)
    yielded whatever the patterns say, with the directories leading to them.
    """
    root = os.fspath(context_dir)
    if not os.path.isdir(root):
        raise BuildContextError(f"build context {root} is not a directory")
    forced = {p for p in (_relative(name) for name in always_include) if p}
    forced_dirs = {p[:i] for p in forced for i, ch in enumerate(p) if ch == "/"}
    active = matcher if matcher else None
    enter_excluded = _excluded_dir_policy(active)

    # depth first, like Go's WalkDir: a directory's contents come right after it
    top = active.directory("") if active is not None else None
    stack = [(_Frame(root, "", top, None), iter(_scan(root, skip_unreadable=False)))]
    while stack:
        frame, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        rel = frame.rel_prefix + entry.name
        hits: tuple[int, ...] = ()
        excluded = False
        if frame.matcher is not None:
            excluded, hits = frame.matcher.match(rel)
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if excluded and rel not in forced:
            if is_dir and (rel in forced_dirs or enter_excluded(rel)):
                pending = _Pending(rel, entry.path, frame.pending)
                child = _Frame(entry.path, rel + "/", _below(active, rel, hits), pending)
                stack.append((child, iter(_scan(entry.path, skip_unreadable=True))))
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while we walked
        except OSError as exc:
            raise BuildContextError(f"cannot read {entry.path}: {exc.strerror}") from None
        if frame.pending is not None:
            yield from _flush(frame.pending)
        yield ContextEntry(rel, st, _kind(st.st_mode))
        if is_dir:
            child = _Frame(entry.path, rel + "/", _below(active, rel, hits), None)
            stack.append((child, iter(_scan(entry.path, skip_unreadable=False))))


def _below(
    matcher: PatternMatcher | None, rel: str, hits: tuple[int, ...]
) -> DirectoryMatcher | None:
    return matcher.directory(rel, hits) if matcher is not None else None


def _relative(name: str) -> str:
    parts = [p for p in name.replace(os.sep, "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


def _scan(path: str, *, skip_unreadable: bool) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except FileNotFoundError:
        return []
    except PermissionError:
        if skip_unreadable:
            return []  # an excluded directory: nothing in it could be sent anyway
        raise BuildContextError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise BuildContextError(f"cannot read {path}: {exc.strerror}") from None
    entries.sort(key=lambda e: e.name)
    return entries


def _flush(pending: _Pending) -> Iterator[ContextEntry]:
    """Report the unreported excluded ancestors of a kept entry, outermost first."""
    chain: list[_Pending] = []
    node: _Pending | None = pending
    while node is not None and not node.emitted:
        chain.append(node)
        node = node.parent
    for item in reversed(chain):
        item.emitted = True
        try:
            st = os.lstat(item.abs_path)
        except OSError as exc:
            raise BuildContextError(f"cannot read {item.abs_path}: {exc.strerror}") from None
        yield ContextEntry(item.rel_path, st, _kind(st.st_mode))


def _excluded_dir_policy(matcher: PatternMatcher | None) -> Callable[[str], bool]:
    """Whether an excluded directory must still be entered (fsutil's rule).

    Without exceptions, never. When every exception is a literal path (maybe
    ending in ``/*`` or ``/**``), only directories on the way to one. Otherwise an
    exception like ``!**/keep`` could match anywhere: always.
    """
    if matcher is None or not matcher.exclusions:
        return _never
    prefixes = []
    for pattern in matcher.patterns:
        if not pattern.exclusion:
            continue
        text = pattern.text.removesuffix("/**").removesuffix("/*")
        if _GLOB_CHARS.intersection(text):
            return _always
        prefixes.append(text + "/")

    def on_the_way(rel: str) -> bool:
        dir_slash = rel + "/"
        return any(prefix.startswith(dir_slash) for prefix in prefixes)

    return on_the_way


def _never(rel: str) -> bool:
    return False


def _always(rel: str) -> bool:
    return True
