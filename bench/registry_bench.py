"""pallet's registry vs the CNCF registry (distribution), side by side in one run.

Measures, for each server on 127.0.0.1 with its storage in a temp dir:
- blob push throughput (4 concurrent monolithic uploads of 64 MiB, POST + PUT);
- blob pull throughput (wrk, 4 connections, a 64 MiB blob; aiohttp if wrk is missing);
- manifest GET requests/s with 64 concurrent connections, p50/p99 latency;
- peak RSS of the server process during the load.

Each metric is measured in 3 rounds alternating the two servers; the best round counts.

Usage: .venv/bin/python bench/registry_bench.py
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

BLOB_MIB = 64
PUSH_STREAMS = 4
DURATION = 5
CONNECTIONS = 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _PeakRSS:
    """Samples a process's RSS every 50 ms on a thread; ``peak`` is the maximum seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, _rss_mib(self.pid))
            except OSError:
                return
            time.sleep(0.05)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_pallet(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    config = workdir / "pallet.toml"
    config.write_text(
        f'addr = "127.0.0.1:{port}"\ndata = "{workdir / "pallet-data"}"\naccess_log = false\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "registry", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    return proc, url


def start_distribution(workdir: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not os.path.exists(binary):
        return None
    port = _free_port()
    config = workdir / "distribution.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'distribution-data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    return proc, url


async def _upload(
    session: aiohttp.ClientSession, url: str, repo: str, data: bytes, digest: str
) -> str:
    async with session.post(f"{url}/v2/{repo}/blobs/uploads/") as resp:
        assert resp.status == 202, resp.status
        location = urljoin(url, resp.headers["Location"])
    sep = "&" if "?" in location else "?"
    async with session.put(
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    ) as resp:
        assert resp.status == 201, (resp.status, await resp.text())
    return digest


async def _push_blobs(url: str, blobs: list[bytes]) -> tuple[float, list[str]]:
    # Digests first: the client's own hashing is not part of the server's throughput.
    digests = ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs]
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _upload(session, url, "bench/blobs", b, d)
                for b, d in zip(blobs, digests, strict=True)
            )
        )
        return time.perf_counter() - started, digests


async def _push_image(
    url: str, config_digest: str, config_size: int, layer: str, size: int
) -> None:
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer,
                    "size": size,
                }
            ],
        }
    ).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{url}/v2/bench/blobs/manifests/v1",
            data=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        ) as resp,
    ):
        assert resp.status == 201, (resp.status, await resp.text())


def _wrk(url: str, connections: int, headers: dict[str, str]) -> dict[str, float] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    args = [wrk, "-t2", f"-c{connections}", f"-d{DURATION}s", "--latency"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    units = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
    result: dict[str, float] = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["rps"] = float(m.group(1))
    if m := re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out):
        scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[m.group(2)]
        result["mib_s"] = float(m.group(1)) * scale
    for pct in ("50", "99"):
        if m := re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out):
            result[f"p{pct}_ms"] = float(m.group(1)) * units[m.group(2)]
    return result


async def _aiohttp_load(url: str, connections: int, headers: dict[str, str]) -> dict[str, float]:
    """Fallback load generator when wrk is not installed."""
    latencies: list[float] = []
    transferred = 0
    deadline = time.perf_counter() + DURATION
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal transferred
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.get(url, headers=headers) as resp:
                    async for chunk in resp.content.iter_any():
                        transferred += len(chunk)
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "mib_s": transferred / elapsed / 2**20,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
    }


def _load(url: str, connections: int, headers: dict[str, str]) -> dict[str, float]:
    return _wrk(url, connections, headers) or asyncio.run(_aiohttp_load(url, connections, headers))


ROUNDS = 3


def _best(results: list[dict[str, float]], key: str) -> dict[str, float]:
    return max(results, key=lambda r: r.get(key, 0.0))


def measure_all(servers: dict[str, tuple[subprocess.Popen[bytes], str]]) -> list[dict[str, object]]:
    """Every metric in ROUNDS rounds, alternating servers; the best round counts.

    The machine is shared: alternating and keeping the best of each side makes one
    side's bad luck with background load less likely to decide the comparison.
    """
    blobs = [os.urandom(BLOB_MIB * 2**20) for _ in range(PUSH_STREAMS)]
    config = b'{"architecture":"amd64","os":"linux"}'
    monitors = {name: _PeakRSS(proc.pid) for name, (proc, _) in servers.items()}
    for monitor in monitors.values():
        monitor.__enter__()
    push: dict[str, list[float]] = {name: [] for name in servers}
    pull: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    manifest: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    digests: dict[str, str] = {}
    try:
        for _ in range(ROUNDS):
            for name, (_, url) in servers.items():
                elapsed, pushed = asyncio.run(_push_blobs(url, blobs))
                push[name].append(PUSH_STREAMS * BLOB_MIB / elapsed)
                digests[name] = pushed[0]
        for name, (_, url) in servers.items():
            config_digest = asyncio.run(_push_blobs(url, [config]))[1][0]
            asyncio.run(_push_image(url, config_digest, len(config), digests[name], len(blobs[0])))
        del blobs
        for _ in range(ROUNDS):
            for name, (_, url) in servers.items():
                pull[name].append(_load(f"{url}/v2/bench/blobs/blobs/{digests[name]}", 4, {}))
                manifest[name].append(
                    _load(
                        f"{url}/v2/bench/blobs/manifests/v1",
                        CONNECTIONS,
                        {"Accept": OCI_MANIFEST},
                    )
                )
    finally:
        for monitor in monitors.values():
            monitor.__exit__()
    rows: list[dict[str, object]] = []
    for name in servers:
        best_manifest = _best(manifest[name], "rps")
        rows.append(
            {
                "name": name,
                "blob_push_MiB_s": round(max(push[name]), 1),
                "blob_pull_MiB_s": round(_best(pull[name], "mib_s").get("mib_s", 0.0), 1),
                "manifest_get_rps": round(best_manifest["rps"]),
                "manifest_p50_ms": round(best_manifest.get("p50_ms", 0.0), 2),
                "manifest_p99_ms": round(best_manifest.get("p99_ms", 0.0), 2),
                "peak_rss_MiB": round(monitors[name].peak, 1),
                "load_generator": "wrk" if shutil.which("wrk") else "aiohttp",
            }
        )
    return rows


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as tmp:
        work = Path(tmp)
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {"pallet": start_pallet(work)}
        try:
            peer = start_distribution(work)
            if peer is None:
                rows.append({"name": "distribution", "skipped": "docker-registry not installed"})
            else:
                servers["distribution"] = peer
            rows = measure_all(servers) + rows
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(10)
    by_name = {str(r["name"]): r for r in rows}
    if "blob_push_MiB_s" in by_name.get("distribution", {}) and "pallet" in by_name:
        ours, theirs = by_name["pallet"], by_name["distribution"]
        ratio: dict[str, object] = {"name": "pallet / distribution"}
        for key in ("blob_push_MiB_s", "blob_pull_MiB_s", "manifest_get_rps"):
            ratio[key] = round(float(ours[key]) / max(float(theirs[key]), 1e-9), 2)  # type: ignore[arg-type]
        rows.append(ratio)
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
