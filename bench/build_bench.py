"""``pallet build``: a 10-instruction Dockerfile over a 2,000-file, 50 MB context.

Rows: cold build; fully cached rebuild (in process, and through the CLI); one file
changed; a cold COPY of the whole context through to a gzip layer (MB/s); three
independent stages that each ``RUN sleep 2`` (run in parallel, so well under 6 s); peak
RSS. Beside podman and buildah (vfs storage in a temp root, the same busybox image
loaded into them from pallet) when they are installed; their versions are recorded.

Usage (root: overlay mounts and runc): .venv/bin/python bench/build_bench.py
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pallet.build import BuildOptions, build
from pallet.images.bootstrap import bootstrap_busybox
from pallet.store import Store

_PALLET = [sys.executable, "-m", "pallet"]
FILES = 2000
TOTAL_BYTES = 50 << 20

DOCKERFILE = """\
FROM busybox
ENV APP=/app
WORKDIR /app
COPY . /app/
RUN find /app -type f | wc -l > /count
ARG VERSION=1
LABEL version=$VERSION
RUN echo "$VERSION" > /version
EXPOSE 8080
CMD ["sh"]
"""

COPY_ONLY = "FROM scratch\nCOPY . /\n"

PARALLEL = """\
FROM busybox AS a
RUN sleep 2 && echo a > /a
FROM busybox AS b
RUN sleep 2 && echo b > /b
FROM busybox AS c
RUN sleep 2 && echo c > /c
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
COPY --from=c /c /c
"""


def _make_context(ctx: Path) -> None:
    per_file = TOTAL_BYTES // FILES
    for i in range(FILES):
        d = ctx / f"dir{i % 40:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file{i:04d}.bin").write_bytes(os.urandom(per_file))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _row(name: str, seconds: float, **extra: object) -> dict[str, object]:
    return {"name": name, "seconds": round(seconds, 3), **extra}


def _pallet_rows(tmp: Path, ctx: Path) -> list[dict[str, object]]:
    store = Store.open(tmp / "store")
    bootstrap_busybox(store, "busybox:latest")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    rows = []

    def build_main(**kw: object) -> None:
        build(store, BuildOptions(context=ctx, **kw))  # type: ignore[arg-type]

    rows.append(_row("pallet cold build (10 instructions, 2,000 files, 50 MB)", _timed(build_main)))
    rows.append(_row("pallet fully cached rebuild (in process)", _timed(build_main)))
    cli = [sys.executable, "-m", "pallet", "--root", str(store.root), "build", "-q", str(ctx)]
    rows.append(
        _row(
            "pallet fully cached rebuild (CLI process)",
            _timed(lambda: subprocess.run(cli, check=True, capture_output=True)),
        )
    )
    victim = next((ctx / "dir07").iterdir())
    victim.write_bytes(os.urandom(victim.stat().st_size))
    rows.append(_row("pallet rebuild after one file changed", _timed(build_main)))

    copy_ctx = tmp / "copy-ctx"
    shutil.copytree(ctx, copy_ctx)
    (copy_ctx / "Dockerfile").write_text(COPY_ONLY)
    seconds = _timed(lambda: build(store, BuildOptions(context=copy_ctx, no_cache=True)))
    rows.append(
        _row(
            "pallet cold COPY of the context to a gzip layer",
            seconds,
            mb_per_s=round(TOTAL_BYTES / (1 << 20) / seconds, 1),
        )
    )

    par_ctx = tmp / "par-ctx"
    par_ctx.mkdir()
    (par_ctx / "Dockerfile").write_text(PARALLEL)
    rows.append(
        _row(
            "pallet three independent stages, RUN sleep 2 each (parallel)",
            _timed(lambda: build(store, BuildOptions(context=par_ctx, no_cache=True))),
        )
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    rows.append({"name": "pallet peak RSS of the benchmark process", "peak_rss_mb": rss})
    return rows


def _peer_rows(tmp: Path, ctx: Path, store_root: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    archive = tmp / "busybox.tar"
    subprocess.run(
        [*_PALLET, "--root", str(store_root), "save", "-o", str(archive), "busybox:latest"],
        check=True,
        capture_output=True,
    )
    for tool in ("podman", "buildah"):
        binary = shutil.which(tool)
        if binary is None:
            continue
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        base = [
            binary,
            "--root",
            str(tmp / f"{tool}-root"),
            "--runroot",
            str(tmp / f"{tool}-run"),
            "--storage-driver",
            "vfs",
        ]
        try:
            loader = base if tool == "podman" else [*base[:1], *base[1:]]
            if tool == "podman":
                subprocess.run(
                    [*loader, "load", "-i", str(archive)], check=True, capture_output=True
                )
            else:
                subprocess.run(
                    [*base, "pull", f"docker-archive:{archive}"], check=True, capture_output=True
                )
                subprocess.run(
                    [*base, "tag", "docker.io/library/busybox:latest", "busybox:latest"],
                    capture_output=True,
                )
            (ctx / "Dockerfile").write_text(DOCKERFILE)
            cmd = [
                *base,
                "build" if tool == "podman" else "bud",
                "--layers",
                "--runtime",
                "runc",  # crun refuses this host's hybrid cgroup layout
                "-t",
                "bench",
                str(ctx),
            ]
            cold = _timed(lambda: subprocess.run(cmd, check=True, capture_output=True))  # noqa: B023
            cached = _timed(lambda: subprocess.run(cmd, check=True, capture_output=True))  # noqa: B023
            rows.append(_row(f"{tool} cold build", cold, version=version.strip()))
            rows.append(_row(f"{tool} fully cached rebuild", cached, version=version.strip()))
        except (subprocess.CalledProcessError, OSError) as exc:
            err = getattr(exc, "stderr", b"") or b""
            rows.append({"name": f"{tool} build", "error": err.decode()[-300:] or str(exc)})
    return rows


def run() -> list[dict[str, object]]:
    if os.geteuid() != 0:
        return [{"name": "pallet build", "skipped": "needs root (overlay mounts, runc)"}]
    tmp = Path(tempfile.mkdtemp(prefix="pallet-build-bench-"))
    try:
        ctx = tmp / "ctx"
        _make_context(ctx)
        rows = _pallet_rows(tmp, ctx)
        rows += _peer_rows(tmp, ctx, tmp / "store")
        return rows
    finally:
        subprocess.run(["umount", "-R", str(tmp)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for row in run():
        print(row)
