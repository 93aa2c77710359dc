"""Acting on containers that exist: stop, kill, wait, exec, and the inspect document."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from pallet.errors import Conflict, ContainerError, InvalidArgument, NotFound
from pallet.runtime.container import Containers, _alive, _wait_gone
from pallet.runtime.records import ContainerRecord, now
from pallet.runtime.terminal import raw_terminal
from pallet.runtime.users import container_gids, resolve_user


def _signal_name(text: str) -> str:
    """``TERM``, ``SIGTERM``, ``15`` and ``RTMIN+3`` as the number runc takes; anything
    else is refused before a signal is sent, as docker does."""
    import signal

    value = text.strip().upper().removeprefix("SIG")
    number: int | None = None
    if value.isdigit():
        number = int(value)
    elif value.startswith(("RTMIN", "RTMAX")):
        base = signal.SIGRTMIN if value.startswith("RTMIN") else signal.SIGRTMAX
        offset = value[5:]
        if not offset:
            number = int(base)
        elif offset[0] in "+-" and offset[1:].isdigit():
            number = int(base) + int(offset)
    elif "SIG" + value in signal.Signals.__members__:
        number = int(signal.Signals["SIG" + value])
    if number is None or not 1 <= number <= int(signal.SIGRTMAX):
        raise InvalidArgument(f"Invalid signal: {text}")
    return str(number)


def _running(containers: Containers, record: ContainerRecord) -> bool:
    return containers.true_state(record)[0] == "running"


def _settle(containers: Containers, record: ContainerRecord, timeout: float) -> bool:
    """Wait up to ``timeout`` for the container to exit; True if it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = containers.records.get(record.id)
        if not _running(containers, current) or (current.pid and not _alive(current.pid)):
            return True
        time.sleep(0.02)
    return False


def _mark_exited(containers: Containers, record: ContainerRecord, code: int) -> None:
    """When no monitor is left to record the exit (it was SIGKILLed), record it here."""
    current = containers.records.get(record.id)
    if current.monitor_pid and _alive(current.monitor_pid):
        _wait_gone(current.monitor_pid, 2.0)
        current = containers.records.get(record.id)
    if current.state == "running":
        containers.runtime_for(record).delete(record.id)
        containers.records.set_state(current, state="exited", exit_code=code, finished=now(), pid=0)


def stop(
    containers: Containers, name: str, timeout: float | None = None, signal: str | None = None
) -> ContainerRecord:
    """The image's STOPSIGNAL (else SIGTERM), then SIGKILL after ``timeout`` seconds (10)."""
    record = containers.records.get(name)
    signal_name = _signal_name(signal) if signal else None
    if not _running(containers, record):
        if containers.restart_pending(record):
            return containers.cancel_restart(record)
        return record
    if signal_name is None:
        try:
            signal_name = _signal_name(str(record.config.get("StopSignal") or "SIGTERM"))
        except InvalidArgument:  # an image's unusable STOPSIGNAL: the default
            signal_name = "15"
    record = containers.records.set_state(record, stop_requested=True)
    containers.runtime_for(record).kill(record.id, signal_name)
    if not _settle(containers, record, 10.0 if timeout is None else max(timeout, 0.0)):
        containers.runtime_for(record).kill(record.id, "KILL", all_processes=True)
        _settle(containers, record, 10.0)
    _mark_exited(containers, record, 137)
    return record


def kill(containers: Containers, name: str, signal_text: str = "KILL") -> ContainerRecord:
    record = containers.records.get(name)
    signal_name = _signal_name(signal_text)
    if not _running(containers, record):
        raise Conflict(f"cannot kill container: {name}: container {record.id} is not running")
    if signal_name == "9":
        record = containers.records.set_state(record, stop_requested=True)
    containers.runtime_for(record).kill(record.id, signal_name)
    if signal_name == "9":
        _settle(containers, record, 10.0)
        _mark_exited(containers, record, 137)
    return record


def wait(containers: Containers, name: str) -> int:
    """Block until the container is not running; its exit code."""
    record = containers.records.get(name)
    while True:
        state, code = containers.true_state(record)
        if state != "running" and not (state == "created" and record.monitor_pid
                                        and _alive(record.monitor_pid)):  # fmt: skip
            return code if code is not None else 0
        time.sleep(0.05)
        record = containers.records.get(record.id)


def attach_running(containers: Containers, name: str, stdout: IO[bytes], stderr: IO[bytes]) -> int:
    """``start -a`` of a container that already runs attaches to it, as docker does: its
    output from now on (from the log its detached monitor writes) until it exits; then
    its exit code. Starting it a second time would clobber the running one's state."""
    from pallet.runtime.logs import follow, read_entries

    record = containers.records.get(name)
    log = containers.dir(record.id) / "container.log"
    _, offset = read_entries(log)

    def running() -> bool:
        try:
            return _running(containers, containers.records.get(record.id))
        except NotFound:
            return False

    for entry in follow(log, offset, running):
        out = stderr if entry.stream == "stderr" else stdout
        out.write(entry.data)
        out.flush()
    try:
        return wait(containers, record.id)
    except NotFound:  # removed meanwhile (rm -f, --rm)
        return 137


def exec_in(
    containers: Containers,
    name: str,
    argv: Sequence[str],
    *,
    env: Sequence[str] = (),
    user: str | None = None,
    workdir: str | None = None,
    tty: bool = False,
    interactive: bool = False,
    detach: bool = False,
    stdin: int | IO[Any] | None = None,
) -> int:
    """``runc exec``: the process joins the container's namespaces and cgroup, and takes
    the container's env, user and workdir unless told otherwise. Returns its exit code."""
    record = containers.records.get(name)
    if not _running(containers, record):
        raise Conflict(f"container {record.id} is not running")
    if not argv:
        raise ContainerError("exec needs a command to run")
    cdir = containers.dir(record.id)
    process = _exec_process(cdir, argv, env=env, user=user, workdir=workdir, tty=tty)
    process_file = cdir / f"exec-{os.getpid()}.json"
    process_file.write_text(json.dumps(process))
    pid_file = cdir / f"exec-{os.getpid()}.pid"
    args = ["exec", "--process", str(process_file), "--pid-file", str(pid_file)]
    if detach:
        args.append("--detach")
    log = containers.dir(record.id) / f"exec-{os.getpid()}.log"
    try:
        with raw_terminal(stdin if tty else None, pid_file):
            proc = subprocess.run(
                containers.runtime_for(record).command_with_log(log, *args, record.id),
                stdin=stdin if interactive or tty else subprocess.DEVNULL,
                check=False,
            )
        if proc.returncode != 0 and _exec_failed(log):
            return _exec_code(log)  # runc has printed why on the process's stderr
        return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    finally:
        log.unlink(missing_ok=True)
        process_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)


def _exec_process(
    cdir: Path,
    argv: Sequence[str],
    *,
    env: Sequence[str],
    user: str | None,
    workdir: str | None,
    tty: bool,
) -> dict[str, Any]:
    """The exec'd process as a whole OCI process: the container's own (env, user, cwd,
    capabilities, rlimits...) with what ``exec`` changes. A whole one, because runc's
    ``--user`` keeps the container user's supplementary groups for another user."""
    try:
        base = json.loads((cdir / "bundle" / "config.json").read_text())["process"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ContainerError(f"container bundle in {cdir} is unreadable") from exc
    process: dict[str, Any] = dict(base)
    process["args"] = list(argv)
    process["terminal"] = tty
    process.pop("consoleSize", None)
    if user is not None:
        resolved = resolve_user(cdir / "rootfs", user)
        process["user"] = {
            "uid": resolved.uid,
            "gid": resolved.gid,
            "additionalGids": list(container_gids(resolved)),
        }
    if workdir:
        process["cwd"] = workdir
    merged = {e.partition("=")[0]: e for e in process.get("env") or []}
    for entry in env:
        key, sep, _ = entry.partition("=")
        if sep:
            merged[key] = entry
        elif key in os.environ:  # -e K: the caller's value, if it has one
            merged[key] = f"{key}={os.environ[key]}"
    process["env"] = list(merged.values())
    return process


def _exec_failed(log: Path) -> bool:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    return '"level":"error"' in text.replace(" ", "")


def _exec_code(log: Path) -> int:
    text = log.read_text(errors="replace").lower()
    if "no such file" in text or "not found" in text:
        return 127
    if "permission denied" in text:
        return 126
    return 126


def _iso(ts: float) -> str:
    if not ts:
        return "0001-01-01T00:00:00Z"
    from pallet.runtime.logs import rfc3339nano

    return rfc3339nano(int(ts * 1e9))


def _published(record: ContainerRecord) -> dict[str, list[dict[str, str]]]:
    """docker's ``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp": .., "HostPort": ..}]}``."""
    from pallet.runtime.network import PortMapping

    ports: dict[str, list[dict[str, str]]] = {}
    for text in record.ports:
        m = PortMapping.from_str(text)
        binding = {"HostIp": m.host_ip, "HostPort": str(m.host_port)}
        ports.setdefault(f"{m.container_port}/{m.proto}", []).append(binding)
    return ports


def inspect_document(containers: Containers, record: ContainerRecord) -> dict[str, Any]:
    """``docker inspect`` of a container, the fields people script against."""
    state, code = containers.true_state(record)
    if state == "exited" and containers.restart_pending(record):
        state = "restarting"
    cdir = containers.dir(record.id)
    try:
        spec = json.loads((cdir / "bundle" / "config.json").read_text())
    except (OSError, ValueError):
        spec = {}
    process = spec.get("process", {})
    from pallet.runtime.volumes import Volumes

    volumes = Volumes(containers.store)
    mounts: list[dict[str, Any]] = []
    for m in spec.get("mounts", []):
        if m.get("type") != "bind" or m.get("source", "").startswith(str(cdir)):
            continue
        source = m.get("source", "")
        rw = "ro" not in m.get("options", [])
        vol = next((v for v in record.volumes if source == str(volumes.root / v / "_data")), None)
        entry: dict[str, Any] = {
            "Type": "volume" if vol else "bind",
            "Source": source,
            "Destination": m.get("destination"),
            "Mode": "" if vol else ("rw" if rw else "ro"),
            "RW": rw,
        }
        if vol:
            entry = {"Type": "volume", "Name": vol, **entry, "Driver": "local"}
        mounts.append(entry)
    cfg = record.config
    return {
        "Id": record.id,
        "Created": _iso(record.created),
        "Path": record.argv[0] if record.argv else "",
        "Args": list(record.argv[1:]),
        "State": {
            "Status": state,
            "Running": state == "running",
            "Paused": False,
            "Restarting": state == "restarting",
            "OOMKilled": False,
            "Dead": False,
            "Pid": record.pid if state == "running" else 0,
            "ExitCode": code or 0,
            "Error": "",
            "StartedAt": _iso(record.started),
            "FinishedAt": _iso(record.finished),
        },
        "Image": record.image_id,
        "ResolvConfPath": str(cdir / "resolv.conf"),
        "HostnamePath": str(cdir / "hostname"),
        "HostsPath": str(cdir / "hosts"),
        "LogPath": str(cdir / "container.log"),
        "Name": "/" + record.name,
        "RestartCount": record.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": record.host_config,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "MergedDir": str(cdir / "rootfs"),
                "UpperDir": str(cdir / "upper"),
                "WorkDir": str(cdir / "work"),
            },
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": spec.get("hostname", ""),
            "User": cfg.get("User", ""),
            "Tty": record.tty,
            "OpenStdin": record.interactive,
            "Env": process.get("env", []),
            "Cmd": list(record.argv),
            "Image": record.image,
            "Volumes": cfg.get("Volumes"),
            "WorkingDir": process.get("cwd", ""),
            "Entrypoint": cfg.get("Entrypoint"),
            "Labels": record.labels,
            "StopSignal": cfg.get("StopSignal"),
        },
        "NetworkSettings": {"Ports": _published(record) if state == "running" else {}},
    }
