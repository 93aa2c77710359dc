"""Push and pull against a local CNCF distribution registry, pallet side by side with
skopeo: an image of 5 x 200 MB incompressible layers plus a 20,000-file compressible
layer; a no-op push; peak RSS of each client process.

Each measurement gets a fresh registry (so nothing is mounted or skipped by accident)
and a fresh destination. Every measurement is taken BENCH_ROUNDS times (default 3), the
two clients alternating which goes first, and medians are compared (all times are shown).
Run: .venv/bin/python bench/push_pull_bench.py
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# the installed command, as users run it (python -m pallet would add runpy's imports)
_COMMAND = Path(sys.executable).with_name("pallet")
PALLET = [str(_COMMAND)] if _COMMAND.exists() else [sys.executable, "-m", "pallet"]
REGISTRY = "/usr/bin/docker-registry"
BIG_LAYERS = int(os.environ.get("BENCH_BIG_LAYERS", "5"))
BIG_SIZE = int(os.environ.get("BENCH_BIG_MB", "200")) << 20
SMALL_FILES = int(os.environ.get("BENCH_SMALL_FILES", "20000"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    def __init__(self, work: Path) -> None:
        work.mkdir(parents=True)
        self.work = work
        port = _free_port()
        self.host = f"127.0.0.1:{port}"
        cfg = {
            "version": 0.1,
            "log": {"level": "error"},
            "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
            "http": {"addr": self.host},
        }
        (work / "config.yml").write_text(json.dumps(cfg))
        self.log = open(work / "log", "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [REGISTRY, "serve", str(work / "config.yml")], stdout=self.log, stderr=self.log
        )
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = _sha(data)
    (layout / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _big_layer(i: int) -> bytes:
    # gzip (stored-speed) of random bytes: real gzip that neither side can shrink
    from isal import igzip

    return bytes(igzip.compress(os.urandom(BIG_SIZE), compresslevel=0, mtime=0))


def _files_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(SMALL_FILES):
            data = (f"file {i}\n" * 20).encode()
            info = tarfile.TarInfo(f"srv/data/{i // 1000:02d}/f{i:05d}.txt")
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)


def build_layout(layout: Path) -> int:
    """An OCI layout with the benchmark image tagged ``bench``; returns its total size."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    layers = []
    total = 0
    for i in range(BIG_LAYERS):
        data = _big_layer(i)
        total += len(data)
        layers.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                **_write_blob(layout, data),
            }
        )
        del data
    data = _files_layer()
    total += len(data)
    layers.append(
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_write_blob(layout, data)}
    )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                **_write_blob(layout, config),
            },
            "layers": layers,
        }
    ).encode()
    desc = _write_blob(layout, manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **desc,
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return total


def _hwm_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(
    cmd: list[str], env: dict[str, str] | None = None, server: Registry | None = None
) -> tuple[float, float, float, float]:
    """Run ``cmd``; returns (seconds, peak RSS in MiB, its CPU seconds, the CPU seconds
    ``server`` used meanwhile). The peak is the process's own VmHWM, polled while it
    runs (getrusage would report the forking parent's RSS). CPU time (user + system)
    tells more than wall time on a machine shared with other work."""
    os.sync()  # start each measurement without another one's dirty pages to write back
    server_start = _cpu_s(server.proc.pid) if server is not None else 0.0
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env or os.environ.copy()
    )
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
            break
        hwm = _hwm_mib(proc.pid)
        peak = max(peak, hwm or 0.0)
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    server_cpu = _cpu_s(server.proc.pid) - server_start if server is not None else 0.0
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {err[-2000:]}")
    return elapsed, peak, cpu, server_cpu


def _median(values: list[float]) -> float:
    return statistics.median(values)


def run() -> list[dict[str, object]]:
    if not os.access(REGISTRY, os.X_OK) or shutil.which("skopeo") is None:
        return [{"name": "push_pull", "skipped": "docker-registry or skopeo not installed"}]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="pallet-bench-", dir=os.environ.get("BENCH_TMP")) as t:
        tmp = Path(t)
        env = os.environ.copy()
        env["HOME"] = str(tmp / "home")  # no real credentials or config
        env.pop("DOCKER_CONFIG", None)
        env.pop("XDG_CONFIG_HOME", None)
        # An installed pallet has its bytecode compiled; without a cache every command
        # would compile its modules from source again. The cache lives in the scratch
        # directory and is warmed by the set-up commands below, before any timing.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        layout = tmp / "layout"
        total = build_layout(layout)
        mb = total / 2**20
        store = tmp / "store"
        subprocess.run(
            [
                *PALLET,
                "--root",
                str(store),
                "copy",
                "-q",
                f"oci:{layout}:bench",
                "pallet:bench/img:v1",
            ],
            check=True,
            env=env,
        )
        # ... and so are the modules only push and pull import (aiohttp among them)
        warm = (
            "import pallet.cli.registry_client_cmd, pallet.transport.registry_push, "
            "pallet.transport.registry_pull"
        )
        subprocess.run([sys.executable, "-c", warm], check=True, env=env)
        skopeo = ["skopeo", "--insecure-policy"]
        times: dict[str, list[float]] = {}
        rss: dict[str, float] = {}

        def note(key: str, result: tuple[float, float, float, float]) -> None:
            times.setdefault(key, []).append(result[0])
            rss[key] = max(rss.get(key, 0.0), result[1])
            times.setdefault(key + "_cpu", []).append(result[2])
            times.setdefault(key + "_server_cpu", []).append(result[3])

        # The machine may be shared: every measurement is repeated ROUNDS times, pallet
        # and skopeo alternating which goes first, and the medians are compared.
        ref = ""
        for round_no in range(ROUNDS):
            order = ("pallet", "skopeo") if round_no % 2 == 0 else ("skopeo", "pallet")
            reg = None
            for who in order:
                # push: each to a registry of its own, fresh, so nothing is skipped
                target = Registry(tmp / f"reg-{who}-{round_no}")
                dest_ref = f"{target.host}/bench/img:v1"
                if who == "pallet":
                    tag = [*PALLET, "--root", str(store), "copy", "-q", "pallet:bench/img:v1"]
                    subprocess.run([*tag, f"pallet:{dest_ref}"], check=True, env=env)
                    push = [*PALLET, "--root", str(store), "push", "-q", dest_ref]
                    note("p_push", timed(push, env, target))
                    note("p_noop", timed(push, env))
                    times.setdefault("p_noop_inproc", []).append(
                        _noop_in_process(store, dest_ref, env)
                    )
                else:
                    push = [
                        *skopeo,
                        "copy",
                        "-q",
                        "--dest-tls-verify=false",
                        f"oci:{layout}:bench",
                        f"docker://{dest_ref}",
                    ]
                    note("s_push", timed(push, env, target))
                    note("s_noop", timed(push, env))
                if reg is None:
                    reg, ref = target, dest_ref  # the first pushed image is pulled below
                else:
                    target.stop()
            assert reg is not None
            # pull: both from the same registry, into an empty store / layout
            for who in order:
                if who == "pallet":
                    dest = tmp / "pull-store"
                    pull = [*PALLET, "--root", str(dest), "pull", "-q", ref]
                    note("p_pull", timed(pull, env, reg))
                    shutil.rmtree(dest)
                else:
                    out = tmp / "skopeo-out"
                    pull = [
                        *skopeo,
                        "copy",
                        "-q",
                        "--src-tls-verify=false",
                        f"docker://{ref}",
                        f"oci:{out}:bench",
                    ]
                    note("s_pull", timed(pull, env, reg))
                    shutil.rmtree(out)
            reg.stop()

        med = {key: _median(values) for key, values in times.items()}
        for name, p_key, s_key in (
            ("push (cold registry)", "p_push", "s_push"),
            ("pull (empty store)", "p_pull", "s_pull"),
        ):
            rows.append(
                {
                    "name": name,
                    "image_MiB": round(mb),
                    "rounds": ROUNDS,
                    "pallet_s": med[p_key],
                    "skopeo_s": med[s_key],
                    "pallet_MiB_s": mb / med[p_key],
                    "skopeo_MiB_s": mb / med[s_key],
                    "speedup": med[s_key] / med[p_key],
                    "pallet_s_all": times[p_key],
                    "skopeo_s_all": times[s_key],
                    "pallet_rss_MiB": rss[p_key],
                    "skopeo_rss_MiB": rss[s_key],
                    # CPU seconds (user + system), medians: the client's own, and the
                    # registry's while serving it (both share the machine's cores)
                    "pallet_cpu_s": med[p_key + "_cpu"],
                    "skopeo_cpu_s": med[s_key + "_cpu"],
                    "registry_cpu_s_pallet": med[p_key + "_server_cpu"],
                    "registry_cpu_s_skopeo": med[s_key + "_server_cpu"],
                }
            )
        rows.append(
            {
                "name": "no-op push (all blobs present)",
                "pallet_s": med["p_noop_inproc"],
                "pallet_cli_s": med["p_noop"],
                "skopeo_s": med["s_noop"],
                "target_s": 0.3,
            }
        )
    return rows


def _noop_in_process(store: Path, ref: str, env: dict[str, str]) -> float:
    """The no-op push timed inside the process (without interpreter start-up)."""
    code = (
        "import time,sys;from pathlib import Path;"
        "from pallet.transport.registry_push import push;"
        "t=time.perf_counter();push(sys.argv[2], Path(sys.argv[1]));"
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store), ref],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    for row in run():
        print(json.dumps(_rounded(row)))
