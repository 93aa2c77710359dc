"""Trees that COPY, ADD and bind mounts read from: the build context (as .dockerignore
leaves it) or a mounted stage or image filesystem.

Paths are relative and ``/``-separated ("" is the root). Sources are matched with
Go's ``filepath.Match`` rules per path component (``*`` never crosses a ``/``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from pallet.build.context_hash import ContextHasher
from pallet.build.fsops import secure_join
from pallet.dockerfile.context import find_ignore_file, load_ignore_file, walk_context
from pallet.dockerfile.ignore import PatternMatcher
from pallet.errors import BuildError

_GLOB = frozenset("*?[")


def clean(path: str) -> str:
    """A source path as a relative path inside its tree (``..`` cannot climb out)."""
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return "/".join(out)


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class SourceTree:
    """A tree on disk read through ``lstat``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def stat(self, rel: str) -> os.stat_result | None:
        try:
            return os.lstat(self.path(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def children(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def resolve(self, rel: str) -> str:
        """``rel`` with every symlink (the last one too) resolved inside the tree."""
        real = secure_join(self.root, rel)
        return clean(os.path.relpath(real, self.root))

    def resolve_parent(self, rel: str) -> str:
        """``rel`` with the symlinks of its parent directories resolved."""
        head, _, name = rel.rpartition("/")
        return join(self.resolve(head), name) if head else rel

    def walk(self, rel: str) -> Iterator[tuple[str, os.stat_result]]:
        """``rel`` and everything below it, parents first, children sorted."""
        st = self.stat(rel)
        if st is None:
            return
        yield rel, st
        if stat.S_ISDIR(st.st_mode):
            for name in self.children(rel):
                yield from self.walk(join(rel, name))

    def glob(self, pattern: str) -> list[str]:
        """Paths matching ``pattern`` (no symlink followed on the way), sorted."""
        found = [""]
        for part in clean(pattern).split("/"):
            if not part:
                continue
            nxt: list[str] = []
            for base in found:
                if _GLOB.intersection(part):
                    regex = _go_pattern(part)
                    nxt.extend(join(base, n) for n in self.children(base) if regex(n))
                elif self.stat(join(base, part)) is not None:
                    nxt.append(join(base, part))
            found = nxt
        return sorted(p for p in found if p)

    def content_digest(self, paths: list[str]) -> str:
        """A digest of the trees under ``paths``: names, types, modes, link targets and
        file contents (never mtimes), for cache keys."""
        h = hashlib.sha256()
        for top in paths:
            for rel, st in self.walk(top):
                h.update(f"{rel}\0{st.st_mode:o}\0".encode())
                if stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(self.path(rel)).encode() + b"\0")
                elif stat.S_ISREG(st.st_mode):
                    h.update(self.file_digest(rel, st).encode() + b"\0")
        return "sha256:" + h.hexdigest()

    def file_digest(self, rel: str, st: os.stat_result) -> str:
        h = hashlib.sha256()
        with open(self.path(rel), "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()


def _go_pattern(part: str) -> Callable[[str], bool]:
    # Go negates a class with ``^``, fnmatch with ``!``
    translated = part.replace("[^", "[!")
    return lambda name: fnmatch.fnmatchcase(name, translated)


class ContextTree(SourceTree):
    """The build context directory, with what .dockerignore excludes made invisible.

    File digests come from the store's persistent cache (``context_hash``), so an
    unchanged context costs a ``stat`` per file.
    """

    def __init__(self, root: Path, dockerfile_name: str, hasher: ContextHasher) -> None:
        super().__init__(root)
        ignore = find_ignore_file(root, dockerfile_name)
        self.ignore_file = ignore
        self.matcher: PatternMatcher | None = load_ignore_file(ignore) if ignore else None
        self._hasher = hasher
        self._entries: dict[str, os.stat_result] | None = None
        self._children: dict[str, list[str]] = {}
        self._digests: dict[str, str] = {}  # relative path -> hex sha256
        self._lock = threading.Lock()  # stages on several threads share one context

    def _index(self) -> dict[str, os.stat_result]:
        with self._lock:
            return self._index_locked()

    def _index_locked(self) -> dict[str, os.stat_result]:
        if self._entries is None:
            entries: dict[str, os.stat_result] = {"": os.lstat(self.root)}
            children: dict[str, list[str]] = {"": []}
            for entry in walk_context(self.root, self.matcher):
                entries[entry.path] = entry.stat
                parent, _, name = entry.path.rpartition("/")
                children.setdefault(parent, []).append(name)
                if stat.S_ISDIR(entry.stat.st_mode):
                    children.setdefault(entry.path, [])
            self._children = children
            self._entries = entries
        return self._entries

    def stat(self, rel: str) -> os.stat_result | None:
        return self._index().get(rel)

    def read_entries(self) -> dict[str, os.stat_result] | None:
        """Every visible entry (relative path -> lstat, the root left out) as the build
        found it, if it looked at the context at all."""
        with self._lock:
            if self._entries is None:
                return None
            return {rel: st for rel, st in self._entries.items() if rel}

    def children(self, rel: str) -> list[str]:
        self._index()
        return sorted(self._children.get(rel, []))

    def excluded_by(self, rel: str) -> str | None:
        """The .dockerignore pattern that hides ``rel``, if one does."""
        if self.matcher is None:
            return None
        return self.matcher.matching_pattern(rel)

    def file_digest(self, rel: str, st: os.stat_result) -> str:
        entries = self._index()
        with self._lock:
            if rel not in self._digests:
                self._prefetch(entries)
            return self._digests[rel]

    def _prefetch(self, entries: dict[str, os.stat_result]) -> None:
        # One batch for the whole context: the cache answers most with a stat.
        base = str(self.root) + "/"
        files = [
            (base + rel, st)
            for rel, st in entries.items()
            if rel and stat.S_ISREG(st.st_mode) and rel not in self._digests
        ]
        skip = len(base)
        for path, digest in self._hasher.digests(files).items():
            self._digests[path[skip:]] = digest.removeprefix("sha256:")


def missing_source(tree: SourceTree, source: str, where: str) -> BuildError:
    rel = clean(source)
    if isinstance(tree, ContextTree):
        pattern = tree.excluded_by(rel)
        if pattern is not None:
            return BuildError(
                f"{where}: {source}: not found in the build context: excluded by "
                f"{tree.ignore_file.name if tree.ignore_file else '.dockerignore'} "
                f"pattern {pattern!r}"
            )
        return BuildError(f"{where}: {source}: not found in the build context")
    return BuildError(f"{where}: {source}: not found")
