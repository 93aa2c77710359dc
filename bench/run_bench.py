"""``pallet run --rm busybox true`` beside ``podman run --rm``, ``docker run --rm`` and
bare ``crun run`` and ``runc run``.

All run the same busybox root filesystem with no network: podman from a scratch
root (vfs, runc, cgroupfs) with the image made by ``podman import`` of the same rootfs
tar; docker against a private dockerd (bench/dockerd.py) with the image from ``docker
import`` of that tar; crun and runc from a prepared bundle, crun run as pallet runs it
(on a hybrid cgroup host: in a mount namespace of its own without the v2 hierarchy). Then 50 pallet containers started
and removed back to back, and the peak RSS of ``pallet run -d`` and of its detached
monitor.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

# the installed command, as users run it (python -m pallet would add runpy's imports)
_COMMAND = Path(sys.executable).with_name("pallet")
PALLET = [str(_COMMAND)] if _COMMAND.exists() else [sys.executable, "-m", "pallet"]
REPEAT = 10


# As installed: bytecode cached (the dev environment may set PYTHONDONTWRITEBYTECODE,
# which makes every pallet start compile its modules again), kept out of the source tree.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _check(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(cmd, capture_output=True, env=ENV, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}...: {proc.stderr.decode()[-400:]}")
    return proc


def _median_seconds(cmd: list[str], repeat: int = REPEAT) -> float:
    _check(cmd)  # warm caches (page cache, .pyc, snapshots)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        _check(cmd)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _bundle(work: Path, rootfs: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from pallet.runtime.spec import SpecOptions, build_spec

    bundle = work / "bundle"
    bundle.mkdir()
    spec = build_spec(SpecOptions(rootfs=str(rootfs), args=["true"], network="none",
                                  env=["PATH=/bin:/usr/bin"]))  # fmt: skip
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def _crun_row(work: Path, bundle: Path, t_pallet: float) -> dict[str, object]:
    """``crun run`` of the bundle with the command line pallet uses on this host."""
    from pallet.errors import ContainerError
    from pallet.runtime.oci_runtime import OCIRuntime, find_runtime

    name = "crun run (prepared bundle)"
    try:
        binary = find_runtime("crun")
    except ContainerError as exc:
        return {"name": name, "skipped": str(exc)}
    runtime = OCIRuntime(binary, work / "crun-state")
    t_crun = _median_seconds(runtime.command("run", "--bundle", str(bundle), "bench-crun"))
    how = "own mount namespace without cgroup v2" if binary.wrapper else "direct"
    return {"name": f"{name}, {how}", "seconds": t_crun,
            "pallet minus crun ms": round((t_pallet - t_crun) * 1000)}  # fmt: skip


def _docker_rows(tar: Path, t_pallet: float) -> list[dict[str, object]]:
    """``docker run --rm --network none`` of the same rootfs, against a private dockerd."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dockerd import DOCKER, Dockerd, DockerdError, docker_version

    try:
        daemon = Dockerd().start()
    except DockerdError as exc:
        return [{"name": "docker run --rm true", "skipped": str(exc)[-300:]}]
    try:
        daemon.docker("import", str(tar), "bench/busybox:1")
        # -H and --config on the command line: _check runs it with the common ENV
        client = [DOCKER, "-H", daemon.host, "--config", daemon.env["DOCKER_CONFIG"]]
        t_docker = _median_seconds([*client, "run", "--rm", "--network", "none",
                                    "bench/busybox:1", "true"])  # fmt: skip
        return [{"name": "docker run --rm true", "seconds": t_docker,
                 "pallet / docker": round(t_pallet / t_docker, 2),
                 "version": f"{docker_version()}; dockerd {daemon.version()}"}]  # fmt: skip
    finally:
        daemon.stop()


def run() -> list[dict[str, object]]:
    from pallet.images.rootfs import make_busybox_rootfs

    work = Path(tempfile.mkdtemp(prefix="pallet-run-bench-", dir="/var/tmp"))
    ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    rows: list[dict[str, object]] = []
    try:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        make_busybox_rootfs(rootfs)
        tar = work / "rootfs.tar"
        with tarfile.open(tar, "w") as out:
            for child in sorted(rootfs.iterdir()):
                out.add(child, arcname=child.name)
        root = work / "pallet-root"
        pallet = [*PALLET, "--root", str(root)]
        _check([*pallet, "import", str(tar), "bench/busybox:1"])
        run_cmd = [*pallet, "run", "--rm", "--network", "none", "bench/busybox:1", "true"]
        t_pallet = _median_seconds(run_cmd)
        rows.append({"name": "pallet run --rm true", "seconds": t_pallet})

        bundle = _bundle(work, rootfs)
        rows.append(_crun_row(work, bundle, t_pallet))
        runc_root = work / "runc-state"
        t_runc = _median_seconds(
            ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), "bench-runc"]
        )
        rows.append({"name": "runc run (prepared bundle)", "seconds": t_runc})

        if shutil.which("podman"):
            pod = ["podman", "--root", str(work / "pod"), "--runroot", str(work / "podrun"),
                   "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager",
                   "cgroupfs", "--events-backend", "none"]  # fmt: skip
            _check([*pod, "import", str(tar), "bench/busybox:1"])
            # podman asks for rlimits above this host's hard limits unless told
            limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
            pod_run = [*pod, "run", "--rm", *limits, "--network", "none"]
            t_pod = _median_seconds([*pod_run, "bench/busybox:1", "true"])
            rows.append({"name": "podman run --rm true", "seconds": t_pod,
                         "pallet / podman": round(t_pallet / t_pod, 2)})  # fmt: skip

        rows += _docker_rows(tar, t_pallet)

        start = time.perf_counter()
        for _ in range(50):
            _check(run_cmd)
        total = time.perf_counter() - start
        rows.append({"name": "50 x pallet run --rm, back to back", "seconds": total,
                     "per container ms": round(total / 50 * 1000)})  # fmt: skip

        # GNU time reports the command's own peak (its child starts from time's small
        # image, not from this process's, whose high-water mark Linux would carry over).
        timed = _check(["/usr/bin/time", "-f", "%M", *pallet, "run", "-d", "--network", "none",
                        "bench/busybox:1", "sleep", "30"])  # fmt: skip
        cid = timed.stdout.decode().strip()
        cli_rss = int(timed.stderr.decode().strip().splitlines()[-1]) / 1024
        inspect = json.loads(_check([*pallet, "inspect", cid]).stdout)[0]
        monitor_rss = 0.0
        for proc_dir in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (proc_dir / "cmdline").read_bytes()
                if b"pallet.runtime.container" in cmdline and cid.encode() in cmdline:
                    status = (proc_dir / "status").read_text()
                    hwm = next(ln for ln in status.splitlines() if ln.startswith("VmHWM"))
                    monitor_rss = int(hwm.split()[1]) / 1024
            except (OSError, StopIteration):
                continue
        rows.append({"name": "pallet run -d peak RSS", "CLI MiB": round(cli_rss, 1),
                     "monitor MiB": round(monitor_rss, 1),
                     "container pid": inspect["State"]["Pid"] > 0})  # fmt: skip
        _check([*pallet, "rm", "-f", cid])
    finally:
        subprocess.run([*PALLET, "--root", str(work / "pallet-root"), "container", "prune", "-f"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
        os.sync()
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
