"""Walking a 20,000-file build context with a 20-pattern .dockerignore.

Rows: pallet's walk_context without patterns, with the 20 patterns, and with an
extra ``!**/...`` exception (which forces every excluded directory to be entered,
as in BuildKit), next to two floors: Python's os.walk + lstat (what any Python
walker must pay) and GNU find (a native walker). Best of three runs each, wall and CPU time.

Usage: .venv/bin/python bench/context_bench.py
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pallet.dockerfile.context import walk_context
from pallet.dockerfile.ignore import PatternMatcher, read_ignore_file

TOP_DIRS = ["app", "build", "dist", "docs", "node_modules", "src", "tests", "tmp", "vendor", "web"]
SUBDIRS = 20
FILES_PER_DIR = 100  # 10 x 20 x 100 = 20,000 files
EXTENSIONS = [".py", ".js", ".log", ".tmp", ".md", ".o", ".json", ".bak", ".txt", ".pdf"]

DOCKERIGNORE = """\
# a realistic .dockerignore of 20 patterns
.git
**/*.log
**/*.tmp
node_modules
**/__pycache__
*.swp
build/
dist
coverage
**/.DS_Store
docs/**/*.pdf
!docs/sub00/file000.pdf
secrets/*
**/*.bak
tmp
**/*.o
vendor/**
.env
**/testdata/large*
web/sub1?/*.json
"""
GLOB_EXCEPTION = "!**/file048.txt\n"
RUNS = 3


def _make_tree(root: Path) -> int:
    count = 0
    for top in TOP_DIRS:
        for sub in range(SUBDIRS):
            directory = root / top / f"sub{sub:02d}"
            directory.mkdir(parents=True)
            for i in range(FILES_PER_DIR):
                name = f"file{i:03d}{EXTENSIONS[i % len(EXTENSIONS)]}"
                (directory / name).write_bytes(b"x")
                count += 1
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / ".dockerignore").write_text(DOCKERIGNORE)
    return count + 2


def _cpu() -> float:
    # this process and its finished children (find): steadier than wall time on a
    # machine shared with other jobs
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _best(fn: Callable[[], int]) -> tuple[float, float, int]:
    wall = cpu = float("inf")
    result = 0
    for _ in range(RUNS):
        start_wall, start_cpu = time.perf_counter(), _cpu()
        result = fn()
        wall = min(wall, time.perf_counter() - start_wall)
        cpu = min(cpu, _cpu() - start_cpu)
    return wall, cpu, result


def _row(name: str, files: int, wall: float, cpu: float, yielded: int) -> dict[str, object]:
    return {
        "name": name,
        "files in tree": files,
        "entries kept": yielded,
        "wall s": round(wall, 4),
        "cpu s": round(cpu, 4),
        "files/s (wall)": round(files / wall),
        "files/s (cpu)": round(files / cpu) if cpu > 0 else 0,
    }


def run() -> list[dict[str, object]]:
    tmp = Path(tempfile.mkdtemp(prefix="pallet-context-bench-"))
    try:
        files = _make_tree(tmp)
        patterns = read_ignore_file(DOCKERIGNORE)
        assert len(patterns) == 20, len(patterns)
        matcher = PatternMatcher(patterns)
        with_glob = PatternMatcher(patterns + read_ignore_file(GLOB_EXCEPTION))
        keep = ["Dockerfile", ".dockerignore"]

        def walk(m: PatternMatcher | None) -> Callable[[], int]:
            return lambda: sum(1 for _ in walk_context(tmp, m, always_include=keep))

        def os_walk_lstat() -> int:
            n = 0
            for dirpath, dirnames, filenames in os.walk(tmp):
                for name in dirnames + filenames:
                    os.lstat(os.path.join(dirpath, name))
                    n += 1
            return n

        rows = [
            _row("pallet walk_context, no .dockerignore", files, *_best(walk(None))),
            _row("pallet walk_context, 20 patterns", files, *_best(walk(matcher))),
            _row(
                "pallet walk_context, 20 patterns + !**/ exception", files, *_best(walk(with_glob))
            ),
            _row("floor: python os.walk + lstat (no matching)", files, *_best(os_walk_lstat)),
        ]
        find = shutil.which("find")
        if find:

            def gnu_find() -> int:
                out = subprocess.run(
                    [find, str(tmp), "-mindepth", "1", "-printf", "%s\\n"],
                    check=True,
                    capture_output=True,
                ).stdout
                return out.count(b"\n")

            rows.append(
                _row("floor: GNU find -printf (stat, no matching)", files, *_best(gnu_find))
            )
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    rows = run()
    headers = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[h]).ljust(w) for h, w in zip(headers, widths, strict=True)))


if __name__ == "__main__":
    main()
