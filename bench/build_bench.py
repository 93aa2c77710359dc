"""``pallet build`` side by side with docker (legacy builder and BuildKit), podman and buildah.

Scenarios (issue #4), every tool on the same files in one run:

1. fully cached rebuild of a 10-instruction Dockerfile over a 2,000-file, 50 MB
   context (after one cold build, which is reported too); the first round's time is
   shown beside the median (pallet's first fully cached rebuild runs the planner and
   records the build, later identical ones replay that record);
2. the same after one context file changed (a different file each round);
3. cold build of ``COPY . /`` of 2 GiB (100 large incompressible files + 20,000 small
   text files) through to a compressed layer: pallet's build writes the gzip layer
   into its store; a peer's build stores the layer uncompressed, so its own compression
   is added: docker pushes to a local CNCF registry on 127.0.0.1 (``docker push``
   gzips), podman and buildah push to an ``oci:`` directory (gzip);
4. three independent stages that each ``RUN sleep 2`` (pallet, and BuildKit, which
   runs stages in parallel too);
5. pallet's peak RSS while building the 2 GiB layer (GNU time's %M of the pallet CLI
   process; a forked child inherits its parent's ru_maxrss, so getrusage is not used).

Every command is a separate process under GNU time: wall seconds, and CPU seconds
(user + sys of the process and the children it waited for). Docker's work happens in
its daemon, so its CPU column adds what the private dockerd and its containerd spent.
Repeated measurements (cached, one change, parallel stages) take the median of BENCH_ROUNDS.

pallet runs as installed (bytecode cached); peers use scratch roots under one temp dir:
a private dockerd (bench/dockerd.py), podman/buildah with overlay storage (vfs where
overlay cannot mount) and runc. The busybox base comes from ``pallet save``.

Sizes can be made smaller while developing: BENCH_CTX_FILES, BENCH_CTX_MB,
BENCH_COPY_MB, BENCH_BIG_FILES, BENCH_SMALL_FILES, BENCH_ROUNDS; BENCH_PEERS picks
peers (comma list of docker-legacy, docker-buildkit, podman, buildah); BENCH_TMP the
scratch parent directory.

Usage (root: overlay mounts and runc): .venv/bin/python bench/build_bench.py
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
# the installed command, as users run it (python -m pallet would add runpy's imports)
_COMMAND = Path(sys.executable).with_name("pallet")
PALLET = [str(_COMMAND)] if _COMMAND.exists() else [sys.executable, "-m", "pallet"]
REGISTRY = "/usr/bin/docker-registry"
GNU_TIME = "/usr/bin/time"

CTX_FILES = int(os.environ.get("BENCH_CTX_FILES", "2000"))
CTX_BYTES = int(os.environ.get("BENCH_CTX_MB", "50")) << 20
COPY_BYTES = int(os.environ.get("BENCH_COPY_MB", "2048")) << 20
BIG_FILES = int(os.environ.get("BENCH_BIG_FILES", "100"))
SMALL_FILES = int(os.environ.get("BENCH_SMALL_FILES", "20000"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
ALL_PEERS = ("docker-legacy", "docker-buildkit", "podman", "buildah")
PEERS = [p for p in os.environ.get("BENCH_PEERS", ",".join(ALL_PEERS)).split(",") if p]

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

# As installed: bytecode cached (the dev environment may set PYTHONDONTWRITEBYTECODE,
# which would make every pallet process compile its modules again).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# measuring -----------------------------------------------------------------------


# NamedTuples, not dataclasses: bench/run.py loads this file without a sys.modules entry,
# which dataclasses need.
class Sample(NamedTuple):
    seconds: float
    cpu: float
    rss_mib: float


def _proc_cpu(pid: int) -> float:
    """CPU seconds a process and its reaped children spent (utime+stime+cutime+cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def _daemon_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    return _proc_cpu(pid) + sum(_proc_cpu(kid) for kid in _children(pid))


def measure(cmd: list[str], env: dict[str, str] | None = None, daemon: int | None = None) -> Sample:
    """Run ``cmd`` under GNU time: wall seconds, CPU seconds (plus the daemon's), peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        before = _daemon_cpu(daemon)
        start = time.perf_counter()
        proc = subprocess.run(
            [GNU_TIME, "-o", out.name, "-f", "%U %S %M", *cmd],
            env=env or ENV,
            capture_output=True,
        )
        seconds = time.perf_counter() - start
        spent = _daemon_cpu(daemon) - before
        if proc.returncode != 0:
            err = (proc.stdout + proc.stderr).decode(errors="replace").strip()
            raise RuntimeError(f"{' '.join(cmd[:8])} ...: exit {proc.returncode}: {err[-600:]}")
        user, sys_, rss_kib = out.read().split()[-3:]
    return Sample(seconds, float(user) + float(sys_) + spent, int(rss_kib) / 1024)


def _median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.seconds for s in samples),
        statistics.median(s.cpu for s in samples),
        max(s.rss_mib for s in samples),
    )


def _sum(samples: list[Sample]) -> Sample:
    return Sample(
        sum(s.seconds for s in samples),
        sum(s.cpu for s in samples),
        max(s.rss_mib for s in samples),
    )


# contexts ------------------------------------------------------------------------


def _write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left > 0:
            chunk = min(left, 8 << 20)
            f.write(os.urandom(chunk))
            left -= chunk


def make_context(ctx: Path) -> None:
    """CTX_FILES random files, CTX_BYTES in all, in 40 directories."""
    per_file = CTX_BYTES // CTX_FILES
    for i in range(CTX_FILES):
        d = ctx / f"dir{i % 40:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file{i:04d}.bin").write_bytes(os.urandom(per_file))


def make_copy_context(ctx: Path) -> int:
    """BIG_FILES incompressible files and SMALL_FILES small text files, COPY_BYTES in all."""
    text = "".join(f"line {n}: the quick brown fox jumps over the lazy dog\n" for n in range(64))
    small = text.encode()
    big_each = max(0, COPY_BYTES - SMALL_FILES * len(small)) // max(1, BIG_FILES)
    (ctx / "big").mkdir(parents=True)
    for i in range(BIG_FILES):
        _write_random(ctx / "big" / f"blob{i:03d}.bin", big_each)
    for i in range(SMALL_FILES):
        d = ctx / "small" / f"d{i // 100:03d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        (d / f"f{i:05d}.txt").write_bytes(small)
    (ctx / "Dockerfile").write_text(COPY_ONLY)
    return BIG_FILES * big_each + SMALL_FILES * len(small)


# tools ---------------------------------------------------------------------------


class Tool(NamedTuple):
    """One builder: how to build a context into a tag, and how it compresses (push)."""

    name: str
    version: str
    build: Callable[[Path, str], list[str]]
    env: dict[str, str] | None = None  # None: the common ENV
    daemon: int | None = None
    compress: Callable[[str], list[list[str]]] = lambda tag: []
    compress_note: str = ""
    cleanup: Callable[[str], None] = lambda tag: None
    #: docker pushes by name: its tags carry the local registry's host
    tag_prefix: str = ""

    def tag(self, tag: str) -> str:
        return self.tag_prefix + tag

    def run(self, ctx: Path, tag: str) -> Sample:
        return measure(self.build(ctx, self.tag(tag)), self.env, self.daemon)

    def build_and_compress(self, ctx: Path, tag: str) -> tuple[Sample, Sample]:
        """(the build alone, the build plus its own compression)."""
        built = self.run(ctx, tag)
        pushes = [measure(cmd, self.env, self.daemon) for cmd in self.compress(self.tag(tag))]
        return built, _sum([built, *pushes])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_registry(work: Path) -> Iterator[str]:
    """A CNCF distribution registry on 127.0.0.1 with its data under ``work``."""
    work.mkdir(parents=True)
    host = f"127.0.0.1:{_free_port()}"
    config = {
        "version": 0.1,
        "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
        "http": {"addr": host},
    }
    (work / "config.yml").write_text(json.dumps(config))
    with open(work / "log", "wb") as log:
        proc = subprocess.Popen(
            [REGISTRY, "serve", str(work / "config.yml")], stdout=log, stderr=log
        )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("docker-registry did not start")
        yield host
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def _version(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True)
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"


def _docker_tools(archive: Path, registry: str) -> tuple[list[Tool], Any]:
    sys.path.insert(0, str(HERE))
    from dockerd import Dockerd

    daemon = Dockerd().start()
    daemon.load(archive)
    server = daemon.version()
    pid = int((daemon.base / "dockerd.pid").read_text())
    tools = []
    for kind in ("docker-legacy", "docker-buildkit"):
        if kind not in PEERS:
            continue
        buildkit = kind == "docker-buildkit"

        def build(ctx: Path, tag: str) -> list[str]:
            # the builder is chosen by DOCKER_BUILDKIT in the tool's environment
            return daemon.command("build", "--network", "host", "-q", "-t", tag, str(ctx))[0]

        def push(tag: str) -> list[list[str]]:
            return [daemon.command("push", "-q", tag)[0]]

        def cleanup(tag: str) -> None:
            subprocess.run(daemon.command("rmi", "-f", tag)[0], env=daemon.env, capture_output=True)
            subprocess.run(
                daemon.command("builder", "prune", "-af")[0], env=daemon.env, capture_output=True
            )

        env = dict(daemon.env)
        env["DOCKER_BUILDKIT"] = "1" if buildkit else "0"
        tools.append(
            Tool(
                name="docker BuildKit" if buildkit else "docker legacy builder",
                version=f"dockerd {server}" + (" (BuildKit 0.8 built in)" if buildkit else ""),
                build=build,
                env=env,
                daemon=pid,
                compress=push,
                compress_note="+ docker push to a local docker-registry (gzip)",
                cleanup=cleanup,
                tag_prefix=f"{registry}/",
            )
        )
    return tools, daemon


def _containers_tool(tool: str, tmp: Path, archive: Path) -> Tool:
    """podman or buildah with scratch storage: overlay where it mounts, else vfs."""
    binary = shutil.which(tool)
    if binary is None:
        raise RuntimeError(f"{tool} is not installed")
    errors = []
    for driver in ("overlay", "vfs"):
        base = [binary, "--root", str(tmp / f"{tool}-{driver}"), "--runroot",
                str(tmp / f"{tool}-{driver}-run"), "--storage-driver", driver]  # fmt: skip
        if tool == "podman":
            base += ["--cgroup-manager", "cgroupfs", "--events-backend", "none"]
        pulled = subprocess.run(
            [*base, "pull", "-q", f"docker-archive:{archive}"], capture_output=True, text=True
        )
        if pulled.returncode != 0:
            errors.append(f"{driver}: {pulled.stderr.strip()[-200:]}")
            continue
        subprocess.run([*base, "tag", pulled.stdout.strip(), "busybox:latest"], check=True)
        break
    else:
        raise RuntimeError(f"{tool} cannot load busybox: {'; '.join(errors)}")
    verb = "build" if tool == "podman" else "bud"

    def build(ctx: Path, tag: str) -> list[str]:
        # crun refuses this host's hybrid cgroup layout: runc
        return [*base, verb, "--layers", "--runtime", "runc", "--network", "host",
                "-q", "-t", tag, str(ctx)]  # fmt: skip

    def push(tag: str) -> list[list[str]]:
        dest = tmp / f"{tool}-oci"
        return [[*base, "push", "-q", "--compression-format", "gzip", tag, f"oci:{dest}:{tag}"]]

    def cleanup(tag: str) -> None:
        subprocess.run([*base, "rmi", "-f", tag], capture_output=True)
        shutil.rmtree(tmp / f"{tool}-oci", ignore_errors=True)

    return Tool(
        name=f"{tool} ({driver}, runc)",
        version=_version([binary, "--version"]),
        build=build,
        compress=push,
        compress_note="+ push to an oci: directory (gzip)",
        cleanup=cleanup,
    )


def _pallet_tool(store: Path) -> Tool:
    def build(ctx: Path, tag: str) -> list[str]:
        return [*PALLET, "--root", str(store), "build", "-q", "-t", tag, str(ctx)]

    return Tool(name="pallet (CLI process)", version=_version([*PALLET, "--version"]), build=build)


# scenarios -----------------------------------------------------------------------


def _row(scenario: str, tool: Tool, sample: Sample, **extra: object) -> dict[str, object]:
    return {
        "name": scenario,
        "tool": tool.name,
        "seconds": round(sample.seconds, 3),
        "cpu_s": round(sample.cpu, 2),
        **extra,
    }


def _compare(rows: list[dict[str, object]], target: str) -> None:
    """Mark pallet's row with its ratio to the fastest peer, peers with theirs to pallet."""
    ours = next((r for r in rows if str(r["tool"]).startswith("pallet")), None)
    peers = [r for r in rows if r is not ours and isinstance(r.get("seconds"), float)]
    if ours is None:
        return
    base = float(ours["seconds"])  # type: ignore[arg-type]
    for r in peers:
        r["x_pallet"] = round(float(r["seconds"]) / base, 2)  # type: ignore[arg-type]
    if peers:
        fastest = min(peers, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
        ours["vs_fastest_peer"] = round(base / float(fastest["seconds"]), 2)  # type: ignore[arg-type]
        ours["target"] = target


def _rebuild_rows(tools: list[Tool], ctx: Path) -> list[dict[str, object]]:
    cold_rows: list[dict[str, object]] = []
    cached_rows: list[dict[str, object]] = []
    changed_rows: list[dict[str, object]] = []
    victims = sorted(ctx.rglob("*.bin"))
    n_changed = 0
    for tool in tools:
        tag = "bench/rebuild:1"
        try:
            cold = tool.run(ctx, tag)
            cached_samples = [tool.run(ctx, tag) for _ in range(ROUNDS)]
            cached = _median(cached_samples)
            changed_samples = []
            for _ in range(ROUNDS):
                victim = victims[n_changed % len(victims)]
                n_changed += 1
                victim.write_bytes(os.urandom(victim.stat().st_size))
                changed_samples.append(tool.run(ctx, tag))
            changed = _median(changed_samples)
        except RuntimeError as exc:
            cold_rows.append({"name": "cold build", "tool": tool.name, "error": str(exc)[-300:]})
            continue
        cold_rows.append(
            _row(f"cold build ({CTX_FILES:,} files, {CTX_BYTES >> 20} MB)", tool, cold)
        )
        # pallet: the first rebuild plans (and records) the fully cached build, the later
        # ones replay its record (docs/build.md, "Build records"); both are shown
        cached_rows.append(
            _row(
                "fully cached rebuild",
                tool,
                cached,
                first_round_s=round(cached_samples[0].seconds, 3),
            )
        )
        changed_rows.append(_row("one context file changed", tool, changed))
    _compare(cached_rows, "≤ 0.5")
    _compare(changed_rows, "≤ 1")
    return cold_rows + cached_rows + changed_rows


def _cold_copy_rows(tools: list[Tool], ctx: Path, tmp: Path, total: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    scenario = (
        f"cold COPY of {total / 2**30:.2f} GiB ({BIG_FILES} big + {SMALL_FILES:,} small files)"
        " to a compressed layer"
    )
    rss = None
    for tool in tools:
        tag = "bench/copy:1"
        os.sync()  # no earlier measurement's dirty pages written back during this one
        try:
            if tool.name.startswith("pallet"):
                # a fresh store: nothing cached, not even the context's file hashes
                store = tmp / "pallet-cold-store"
                sample = measure(
                    [*PALLET, "--root", str(store), "build", "-q", "-t", tag, str(ctx)]
                )
                shutil.rmtree(store, ignore_errors=True)
                rss = sample.rss_mib
                rows.append(_row(scenario, tool, sample, note="gzip layer in the store"))
                continue
            built, sample = tool.build_and_compress(ctx, tag)
            rows.append(
                _row(
                    scenario, tool, sample, build_s=round(built.seconds, 2), note=tool.compress_note
                )
            )
        except RuntimeError as exc:
            rows.append({"name": scenario, "tool": tool.name, "error": str(exc)[-300:]})
        finally:
            tool.cleanup(tool.tag(tag))
    _compare(rows, "≤ 0.5")
    if rss is not None:
        rows.append(
            {
                "name": "peak RSS while building that layer (GNU time %M of the pallet CLI)",
                "tool": "pallet (CLI process)",
                "rss_MiB": round(rss, 1),
                "target": "< 200",
            }
        )
    return rows


def _parallel_rows(tools: list[Tool], tmp: Path) -> list[dict[str, object]]:
    ctx = tmp / "par-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(PARALLEL)
    rows: list[dict[str, object]] = []
    for tool in tools:
        if not (tool.name.startswith("pallet") or tool.name == "docker BuildKit"):
            continue
        cmd = tool.build(ctx, tool.tag("bench/parallel:1"))
        cmd.insert(cmd.index("build") + 1, "--no-cache")
        try:
            sample = _median([measure(cmd, tool.env, tool.daemon) for _ in range(ROUNDS)])
        except RuntimeError as exc:
            rows.append({"name": "three stages", "tool": tool.name, "error": str(exc)[-300:]})
            continue
        rows.append(_row("three independent stages, RUN sleep 2 each", tool, sample,
                         target="< 3 s" if tool.name.startswith("pallet") else ""))  # fmt: skip
    return rows


def _unmount_under(path: Path) -> None:
    """What podman/buildah's overlay storage (or a killed build) left mounted below ``path``."""
    prefix = str(path) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(prefix):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def run() -> list[dict[str, object]]:
    if os.geteuid() != 0:
        return [{"name": "pallet build", "skipped": "needs root (overlay mounts, runc)"}]
    tmp = Path(tempfile.mkdtemp(prefix="pbb-", dir=os.environ.get("BENCH_TMP")))
    ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    daemon = None
    rows: list[dict[str, object]] = []
    try:
        store = tmp / "store"
        subprocess.run([*PALLET, "--root", str(store), "bootstrap", "busybox"], env=ENV,
                       check=True, capture_output=True)  # fmt: skip
        archive = tmp / "busybox.tar"
        subprocess.run([*PALLET, "--root", str(store), "save", "-o", str(archive), "busybox:latest"],
                       env=ENV, check=True, capture_output=True)  # fmt: skip
        tools = [_pallet_tool(store)]
        with local_registry(tmp / "registry") as host:
            if {"docker-legacy", "docker-buildkit"} & set(PEERS):
                try:
                    docker_tools, daemon = _docker_tools(archive, host)
                    tools += docker_tools
                except Exception as exc:  # a peer that cannot run is a row, not a crash
                    rows.append({"name": "docker", "error": str(exc)[-300:]})
            for name in ("podman", "buildah"):
                if name in PEERS:
                    try:
                        tools.append(_containers_tool(name, tmp, archive))
                    except (RuntimeError, subprocess.CalledProcessError) as exc:
                        rows.append({"name": name, "error": str(exc)[-300:]})

            ctx = tmp / "ctx"
            make_context(ctx)
            (ctx / "Dockerfile").write_text(DOCKERFILE)
            rows += _rebuild_rows(tools, ctx)
            rows += _parallel_rows(tools, tmp)
            shutil.rmtree(ctx)

            copy_ctx = tmp / "copy-ctx"
            total = make_copy_context(copy_ctx)
            rows += _cold_copy_rows(tools, copy_ctx, tmp, total)
        rows += [{"name": "version", "tool": t.name, "note": t.version} for t in tools]
        return rows
    finally:
        if daemon is not None:
            daemon.stop()
        _unmount_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
