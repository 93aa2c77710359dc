"""A private dockerd for benchmarks and tests, never the machine's own.

``Dockerd().start()`` runs ``dockerd --bridge=none --iptables=false`` with its data root,
exec root, pid file, socket and config under one fresh directory in /tmp (short: the
exec root holds containerd's sockets, whose paths must stay under 108 bytes), waits
until ``docker info`` answers, and gives the environment that points the docker CLI at
it (DOCKER_HOST, and a DOCKER_CONFIG of its own so no real credentials are read).
``stop()`` sends SIGTERM, waits, unmounts whatever is left mounted under the directory
and removes it. No image ever comes from Docker Hub: ``import_busybox`` makes one from
Debian's busybox-static, ``load`` takes a ``pallet save`` archive.

tests/docker_daemon.py wraps this in a pytest fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

#: Debian's client: the newer /usr/local/bin/docker needs buildx for BuildKit builds
DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
# what the docker CLI must not pick up from the caller
_CALLER_DOCKER_VARS = ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_HOST")


class DockerdError(RuntimeError):
    """The private dockerd could not start, or a docker command failed."""


def _die_with_parent() -> list[str]:
    """A prefix that makes the daemon get SIGTERM when its parent dies, so a killed test
    or bench run leaves no daemon behind (setpriv execs it: no Python runs after fork)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


def _mounts_under(base: Path) -> list[str]:
    """Mount points below ``base`` (deepest first), from /proc/self/mountinfo."""
    prefix = str(base) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        # mount points escape space, tab, newline and backslash as octal
        point = fields[4].encode().decode("unicode_escape")
        if point.startswith(prefix) or point == str(base):
            points.append(point)
    return sorted(points, key=len, reverse=True)


class Dockerd:
    """One private dockerd; ``start()`` then ``docker(...)``, finally ``stop()``."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="dk", dir="/tmp"))
        self.socket = self.base / "sock"
        self.host = f"unix://{self.socket}"
        self.log_path = self.base / "dockerd.log"
        self.env = {k: v for k, v in os.environ.items() if k not in _CALLER_DOCKER_VARS}
        self.env["DOCKER_HOST"] = self.host
        self.env["DOCKER_CONFIG"] = str(self.base / "client")
        self._proc: subprocess.Popen[bytes] | None = None

    # lifecycle -------------------------------------------------------------------

    def start(self) -> Dockerd:
        if os.geteuid() != 0:
            self._cleanup()
            raise DockerdError("dockerd needs root")
        if not os.access(DOCKERD, os.X_OK):
            self._cleanup()
            raise DockerdError(f"{DOCKERD} not found (apt-get install docker.io)")
        (self.base / "client").mkdir()
        config = self.base / "daemon.json"
        config.write_text("{}\n")  # not /etc/docker/daemon.json, whatever it holds
        cmd = [
            *_die_with_parent(),
            DOCKERD,
            "--config-file",
            str(config),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--data-root",
            str(self.base / "data"),
            "--exec-root",
            str(self.base / "x"),
            # its own containerd namespaces: if a system containerd runs (dockerd then
            # uses it), several private daemons still share nothing
            "--containerd-namespace",
            self.base.name,
            "--containerd-plugins-namespace",
            f"{self.base.name}-plugins",
            "--pidfile",
            str(self.base / "dockerd.pid"),
            "-H",
            self.host,
        ]
        with open(self.log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._proc = proc
        try:
            problem = self._wait_ready(proc)
        except BaseException:  # a timed-out `docker info`, Ctrl-C: no daemon left behind
            self.stop()
            raise
        if problem:
            self.stop()
            raise DockerdError(problem)
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> str:
        """Wait until ``docker info`` answers: "" then, else what went wrong."""
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"dockerd exited with status {proc.returncode}: {self.log_tail()}"
            if self.socket.exists():
                info = subprocess.run(
                    [DOCKER, "info", "--format", "{{.ServerVersion}}"],
                    env=self.env,
                    capture_output=True,
                    timeout=30,
                )
                if info.returncode == 0:
                    return ""
            time.sleep(0.1)
        return f"dockerd did not answer within {_START_TIMEOUT:.0f} s: {self.log_tail()}"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        for point in _mounts_under(self.base):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Dockerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    # the docker CLI --------------------------------------------------------------

    def command(self, *args: str, buildkit: bool | None = None) -> tuple[list[str], dict[str, str]]:
        """argv and environment for ``docker ARGS`` against this daemon."""
        env = dict(self.env)
        if buildkit is not None:
            env["DOCKER_BUILDKIT"] = "1" if buildkit else "0"
        return [DOCKER, *args], env

    def docker(
        self,
        *args: str,
        buildkit: bool | None = None,
        input: bytes | None = None,
        timeout: float = 600,
    ) -> str:
        """Run ``docker ARGS``; its stdout, or DockerdError with its output."""
        argv, env = self.command(*args, buildkit=buildkit)
        proc = subprocess.run(argv, env=env, input=input, capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).decode(errors="replace").strip()
            raise DockerdError(f"docker {' '.join(args)}: exit {proc.returncode}: {out[-3000:]}")
        return proc.stdout.decode(errors="replace")

    def version(self) -> str:
        return self.docker("version", "--format", "{{.Server.Version}}").strip()

    def load(self, archive: Path) -> str:
        """``docker load`` of a docker-archive (``pallet save`` writes one)."""
        return self.docker("load", "-i", str(archive)).strip()

    def import_busybox(self, tag: str = "busybox:latest") -> str:
        """A busybox image from Debian's busybox-static (``docker import`` of the rootfs
        pallet bootstraps from, with the same PATH and CMD); returns its image ID."""
        from pallet.images.rootfs import DEFAULT_PATH_ENV, make_busybox_rootfs

        work = Path(tempfile.mkdtemp(prefix="busybox-", dir=self.base))
        try:
            rootfs = work / "rootfs"
            rootfs.mkdir()
            make_busybox_rootfs(rootfs)
            archive = work / "rootfs.tar"
            with tarfile.open(archive, "w") as tar:
                for child in sorted(rootfs.iterdir()):
                    tar.add(child, arcname=child.name)
            return self.docker(
                "import",
                "--change",
                f"ENV {DEFAULT_PATH_ENV}",
                "--change",
                json.dumps(["sh"]).join(("CMD ", "")),
                str(archive),
                tag,
            ).strip()
        finally:
            shutil.rmtree(work, ignore_errors=True)


def docker_version() -> str:
    """The client's version line (``Docker version 20.10.24+dfsg1, build ...``)."""
    out = subprocess.run([DOCKER, "--version"], capture_output=True, text=True)
    return out.stdout.strip()
