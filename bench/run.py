"""Run pallet's benchmarks side by side with its peers and rewrite docs/benchmarks.md.

Usage: .venv/bin/python bench/run.py [NAME ...]   (names: see BENCHMARKS; default all)

Each benchmark module exposes ``run() -> list[dict]``; every dict is one measured row
(``name`` plus whatever columns it measured). Rows of benchmarks not run this time are
kept from the previous docs/benchmarks.md, so one benchmark can be refreshed alone.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"

# name -> (module file, one-line description)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "image": ("image_bench.py", "pallet import and save of a 1 GiB rootfs, beside podman"),
    "layer": (
        "layer_bench.py",
        "import/commit of a 1 GiB incompressible layer; compress + hash throughput",
    ),
    "dockerfile": (
        "dockerfile_bench.py",
        "parsing a 10,000-line Dockerfile and a 1 MB instruction",
    ),
    "context": ("context_bench.py", "walking a 20,000-file build context with .dockerignore"),
    "registry": (
        "registry_bench.py",
        "pallet registry vs CNCF distribution: blobs and manifest GETs",
    ),
    "push_pull": ("push_pull_bench.py", "push and pull vs skopeo against a local registry"),
    "build": (
        "build_bench.py",
        "pallet build vs docker (legacy, BuildKit), podman, buildah: cached, one file changed, "
        "cold 2 GiB COPY, parallel stages",
    ),
    "run": ("run_bench.py", "pallet run --rm busybox true vs podman, docker and runc"),
}

_BEGIN = "<!-- bench:{name}:begin -->"
_END = "<!-- bench:{name}:end -->"


def _load(file: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{file[:-3]}", HERE / file)
    if spec is None or spec.loader is None:
        raise ImportError(file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_no rows_\n"
    cols: list[str] = []
    for row in rows:
        for key in row:
            if key not in cols:
                cols.append(key)

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v).replace("|", "\\|")

    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _section(name: str, desc: str, rows: list[dict[str, Any]], machine: str) -> str:
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    return (
        f"{_BEGIN.format(name=name)}\n## {name}: {desc}\n\n"
        f"Command: `.venv/bin/python bench/run.py {name}` — run {when} at {rev or '?'} on {machine}.\n\n"
        f"{_table(rows)}{_END.format(name=name)}\n"
    )


def _write_doc(sections: dict[str, str]) -> None:
    old = DOC.read_text() if DOC.exists() else ""
    kept: dict[str, str] = {}
    for name in BENCHMARKS:
        m = re.search(
            re.escape(_BEGIN.format(name=name))
            + r".*?"
            + re.escape(_END.format(name=name))
            + r"\n",
            old,
            re.S,
        )
        if m:
            kept[name] = m.group(0)
    kept.update(sections)
    head = (
        "# Benchmarks\n\n"
        "Measured by `bench/run.py`, which runs pallet and its peers side by side in one run and\n"
        "rewrites the section of each benchmark it ran. Reproduce everything with\n"
        "`.venv/bin/python bench/run.py` (after `bash scripts/install.sh`), or one with\n"
        "`.venv/bin/python bench/run.py NAME`.\n\n"
    )
    body = "\n".join(kept[n] for n in BENCHMARKS if n in kept)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(head + body)


def _rows_in_child(name: str) -> list[dict[str, Any]]:
    """Run one benchmark in a fresh interpreter: its peak-RSS readings must not include
    what earlier benchmarks of this run held (Linux carries a parent's RSS high-water mark
    into children it forks)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--rows", name], stdout=subprocess.PIPE, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"exit status {proc.returncode}")
    rows: list[dict[str, Any]] = json.loads(lines[-1])
    return rows


def _compile_bytecode() -> None:
    """Fresh .pyc files for pallet, as a wheel install leaves them: with an editable install
    and PYTHONDONTWRITEBYTECODE set, every CLI start would otherwise recompile edited modules."""
    src = HERE.parent / "src" / "pallet"
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(src)], check=True, stdout=subprocess.DEVNULL
    )
    warm = "import pallet._dataclass_code as m; m.warm()"  # what install.sh does too
    subprocess.run([sys.executable, "-c", warm], check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--rows"]:
        print(json.dumps(_load(BENCHMARKS[argv[1]][0]).run(), default=str))
        return 0
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    _compile_bytecode()
    machine = _machine()
    sections: dict[str, str] = {}
    failed = False
    for name in names:
        file, desc = BENCHMARKS[name]
        if not (HERE / file).exists():
            print(f"skip {name}: bench/{file} does not exist yet")
            continue
        print(f"== {name}: {desc}", flush=True)
        try:
            rows = _rows_in_child(name)
        except Exception as exc:  # one broken benchmark must not lose the others' numbers
            print(f"error: benchmark {name} failed: {exc!r}")
            failed = True
            continue
        print(_table(rows))
        print(json.dumps(rows, default=str))
        sections[name] = _section(name, desc, rows, machine)
    _write_doc(sections)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
