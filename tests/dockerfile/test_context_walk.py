"""Walking a real build context directory with a .dockerignore."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet.dockerfile.context import (
    BuildContextError,
    ContextEntry,
    EntryKind,
    find_ignore_file,
    load_ignore_file,
    walk_context,
)
from pallet.dockerfile.ignore import IgnorePatternError, PatternMatcher


def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)


def _paths(entries: Iterator[ContextEntry]) -> list[str]:
    return [e.path for e in entries]


FILES = [
    "Dockerfile",
    "src/app.py",
    "src/lib/util.py",
    "build/out.bin",
    "build/keep.txt",
    "build/sub/keep.txt",
    "docs/index.md",
    "empty/",
    "a.log",
]


@pytest.fixture
def context(tmp_path: Path) -> Path:
    _tree(tmp_path, FILES)
    return tmp_path


def test_find_ignore_file_prefers_the_dockerfile_specific_one(tmp_path: Path) -> None:
    assert find_ignore_file(tmp_path, "Dockerfile") is None
    (tmp_path / ".dockerignore").write_text("x\n")
    assert find_ignore_file(tmp_path, "Dockerfile") == tmp_path / ".dockerignore"
    (tmp_path / "docker").mkdir()
    specific = tmp_path / "docker" / "app.Dockerfile.dockerignore"
    specific.write_text("y\n")
    assert find_ignore_file(tmp_path, "docker/app.Dockerfile") == specific
    assert find_ignore_file(tmp_path, str(tmp_path / "docker" / "app.Dockerfile")) == specific
    assert find_ignore_file(tmp_path, "docker/other.Dockerfile") == tmp_path / ".dockerignore"


def test_ignore_file_symlink_out_of_the_context_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("password\n")
    ctx = tmp_path / "ctx"
    _tree(ctx, ["conf/ignore"])
    (ctx / ".dockerignore").symlink_to(secret)
    assert find_ignore_file(ctx, "Dockerfile") is None
    (ctx / ".dockerignore").unlink()
    (ctx / ".dockerignore").symlink_to("conf/ignore")
    assert find_ignore_file(ctx, "Dockerfile") == ctx / ".dockerignore"


def test_load_ignore_file_error_names_the_file(tmp_path: Path) -> None:
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("ok\n!\n")
    with pytest.raises(IgnorePatternError, match=r"\.dockerignore"):
        load_ignore_file(ignore)
    ignore.write_text("*.log\n")
    assert load_ignore_file(ignore).matches("a.log")


def test_missing_context_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BuildContextError, match="not a directory"):
        list(walk_context(tmp_path / "nope", None))


def test_walk_without_matcher_yields_everything_parents_first_in_name_order(
    context: Path,
) -> None:
    paths = _paths(walk_context(context, None))
    assert paths == [
        "Dockerfile",
        "a.log",
        "build",
        "build/keep.txt",
        "build/out.bin",
        "build/sub",
        "build/sub/keep.txt",
        "docs",
        "docs/index.md",
        "empty",
        "src",
        "src/app.py",
        "src/lib",
        "src/lib/util.py",
    ]


def test_entry_kinds_and_symlinks_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _tree(outside, ["secret.txt"])
    ctx = tmp_path / "ctx"
    _tree(ctx, ["file.txt", "dir/"])
    (ctx / "link").symlink_to(outside)
    os.mkfifo(ctx / "fifo")
    entries = {e.path: e for e in walk_context(ctx, None)}
    assert set(entries) == {"file.txt", "dir", "link", "fifo"}
    assert entries["file.txt"].kind is EntryKind.FILE
    assert entries["file.txt"].stat.st_size == len("file.txt")
    assert entries["dir"].kind is EntryKind.DIR
    assert entries["link"].kind is EntryKind.SYMLINK
    assert entries["fifo"].kind is EntryKind.OTHER


def test_excluded_directory_without_exceptions_is_not_entered(
    context: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str) -> Any:
        scanned.append(os.path.relpath(path, context))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    paths = _paths(walk_context(context, PatternMatcher(["build", "*.log", "!docs/index.md"])))
    assert "build" not in scanned
    assert "build/out.bin" not in paths and "a.log" not in paths
    assert "src/lib/util.py" in paths


def test_literal_exception_reincludes_file_and_reports_its_directory(context: Path) -> None:
    paths = _paths(walk_context(context, PatternMatcher(["build", "!build/keep.txt"])))
    assert "build/out.bin" not in paths
    assert "build/sub/keep.txt" not in paths
    assert paths.index("build") == paths.index("build/keep.txt") - 1


def test_glob_exception_reaches_into_every_excluded_directory(context: Path) -> None:
    paths = _paths(walk_context(context, PatternMatcher(["build", "docs", "!**/keep.txt"])))
    assert [p for p in paths if p.startswith(("build", "docs"))] == [
        "build",
        "build/keep.txt",
        "build/sub",
        "build/sub/keep.txt",
    ]


def test_always_include_keeps_dockerfile_and_ignore_file(context: Path) -> None:
    (context / ".dockerignore").write_text("*\n")
    matcher = load_ignore_file(context / ".dockerignore")
    assert _paths(walk_context(context, matcher)) == []
    kept = _paths(walk_context(context, matcher, always_include=["Dockerfile", ".dockerignore"]))
    assert kept == [".dockerignore", "Dockerfile"]


def test_always_include_reaches_into_excluded_directory(tmp_path: Path) -> None:
    _tree(tmp_path, ["docker/app.Dockerfile", "docker/other", "main.c"])
    paths = _paths(
        walk_context(tmp_path, PatternMatcher(["docker"]), always_include=["docker/app.Dockerfile"])
    )
    assert paths == ["docker", "docker/app.Dockerfile", "main.c"]


PATTERN_SETS = [
    ["build"],
    ["*.log", "docs/"],
    ["build", "!build/keep.txt"],
    ["build/**", "!build/sub"],
    ["**", "!src", "src/lib"],
    ["src/*", "!src/lib/*"],
    ["*", "!**/keep.txt"],
    ["build", "!build/sub/*", "build/sub/keep.txt"],
]


@pytest.mark.parametrize("patterns", PATTERN_SETS, ids=str)
def test_pruned_walk_equals_exhaustive_walk(context: Path, patterns: list[str]) -> None:
    matcher = PatternMatcher(patterns)
    # reference: test every path with BuildKit's walk semantics, no pruning
    excluded: dict[str, bool] = {}
    states: dict[str, tuple[bool, ...] | None] = {"": None}
    for dirpath, dirnames, filenames in os.walk(context):
        rel_dir = os.path.relpath(dirpath, context)
        rel_dir = "" if rel_dir == "." else rel_dir
        for name in sorted(dirnames + filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            excluded[rel], states[rel] = matcher.matches_in_walk(rel, states[rel_dir])
    kept = {p for p, out in excluded.items() if not out}
    expected = set(kept)
    for path in kept:
        parts = path.split("/")
        expected.update("/".join(parts[:i]) for i in range(1, len(parts)))
    assert set(_paths(walk_context(context, matcher))) == expected
