"""What ``pallet run`` and ``pallet create`` do once their flags are parsed, free of click
so the fast path (``pallet.cli.fast_path``) and the click commands share it."""

from __future__ import annotations

import sys
from pathlib import Path

from pallet.errors import ContainerError, InvalidArgument, PalletError
from pallet.paths import default_root

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from pallet.runtime.container import Containers, RunOptions
    from pallet.runtime.records import ContainerRecord


def open_containers(root: Path | None) -> Containers:
    from pallet.runtime.container import Containers
    from pallet.store.store import Store

    try:
        return Containers(Store.open(root if root is not None else default_root()))
    except PalletError as exc:
        raise ContainerError(str(exc)) from exc


def parse_memory(text: str | None) -> int | None:
    if not text:
        return None
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    value = text.strip().lower()
    mult = units.get(value[-1])
    number = value[:-1] if mult else value
    if not number.isdigit():
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(number) * (mult or 1)


def read_env_file(path: str) -> list[str]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"{path}: {exc.strerror}") from exc
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def parse_security_opts(opts: tuple[str, ...]) -> tuple[bool, bool]:
    """``--security-opt`` values as docker reads them: (no-new-privileges, seccomp on)."""
    no_new_privileges, seccomp = False, True
    for opt in opts:
        key, _, value = opt.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges" and value in ("", "true", "false"):
            no_new_privileges = value != "false"
        elif key == "seccomp" and value == "unconfined":
            seccomp = False
        elif key == "seccomp":
            raise InvalidArgument(
                f"--security-opt {opt!r}: only docker's default seccomp profile or "
                "'unconfined' are supported"
            )
        else:
            raise InvalidArgument(f"unsupported --security-opt {opt!r}")
    return no_new_privileges, seccomp


def make_options(kw: dict[str, Any], detach: bool) -> RunOptions:
    from pallet.runtime.container import RunOptions
    from pallet.runtime.spec import NetworkMode, Resources

    all_env = tuple(e for f in kw["env_files"] for e in read_env_file(f)) + tuple(kw["env"])
    no_new_privileges, seccomp = parse_security_opts(kw["security_opts"])
    network: NetworkMode = "private"
    if kw["network"] in ("host", "none"):
        network = kw["network"]
    return RunOptions(
        image=kw["image"],
        command=tuple(kw["command"]),
        entrypoint=kw["entrypoint"],
        env=all_env,
        user=kw["user"],
        workdir=kw["workdir"],
        hostname=kw["hostname"],
        name=kw["name"],
        auto_remove=kw["auto_remove"],
        network=network,
        read_only=kw["read_only"],
        binds=tuple(kw["volumes"]),
        mounts=tuple(kw["mounts"]),
        tmpfs=tuple(kw["tmpfs"]),
        cap_add=tuple(kw["cap_add"]),
        cap_drop=tuple(kw["cap_drop"]),
        privileged=kw["privileged"],
        no_new_privileges=no_new_privileges,
        seccomp=seccomp,
        resources=Resources(
            memory=parse_memory(kw["memory"]), cpus=kw["cpus"], pids=kw["pids_limit"]
        ),
        add_hosts=tuple(kw["add_hosts"]),
        dns=tuple(kw["dns"]),
        labels=tuple((lbl.partition("=")[0], lbl.partition("=")[2]) for lbl in kw["labels"]),
        # detached (run -d, create): the monitor keeps the pty and logs its output
        tty=kw["tty"] and (detach or sys.stdin.isatty()),
        interactive=kw["interactive"],
        restart=kw["restart"],
        init=kw["init"],
        publish=tuple(kw["publish"]),
        userns=kw["userns"],
        uidmaps=tuple(kw["uidmaps"]),
        gidmaps=tuple(kw["gidmaps"]),
    )


def create(
    root: Path | None, kw: dict[str, Any], detach: bool
) -> tuple[Containers, ContainerRecord]:
    try:
        opts = make_options(kw, detach)
        containers = open_containers(root)
        return containers, containers.create(opts)
    except PalletError as exc:
        # docker's exit code for failures of the engine itself
        raise ContainerError(
            str(exc), exc.exit_code if isinstance(exc, ContainerError) else 125
        ) from exc


def attach(containers: Containers, record: ContainerRecord, interactive: bool) -> None:
    """Run the container in this process (the monitor) with our stdio; exit with its code."""
    from pallet.runtime.spawn import DEVNULL

    stdin = sys.stdin if interactive or record.tty else DEVNULL
    try:
        if record.auto_remove:
            # its log would go with it, unread: the container writes to our streams itself
            code = containers.run_monitored(
                record, stdin=stdin, stdout=sys.stdout.buffer, stderr=sys.stderr.buffer
            )
        else:
            code = _run_logged(containers, record, stdin)
    finally:
        if record.auto_remove:
            containers.remove(record.id, force=True, volumes=True)
    sys.stdout.flush()
    sys.exit(code)


def _run_logged(containers: Containers, record: ContainerRecord, stdin: Any) -> int:
    """Run with the container's stdout and stderr kept in its log (``pallet logs`` shows
    them later, as docker's does) and passed on to ours as they come, each to its own."""
    import os

    from pallet.runtime.logs import LogWriter
    from pallet.runtime.terminal import raw_terminal

    sys.stdout.flush()
    sys.stderr.flush()
    writer = LogWriter(containers.dir(record.id) / "container.log")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    writer.pump(out_r, "stdout", echo=sys.stdout.fileno())
    writer.pump(err_r, "stderr", echo=sys.stderr.fileno())
    # -t: our terminal stays raw until the last of the output is through; restored before,
    # its line discipline would add a CR to the lines still in the pipe (as it may to those
    # arriving once the runtime, exiting, has put back the mode it found: on screen, alike)
    with raw_terminal(sys.stdin if record.tty and sys.stdin.isatty() else None):
        try:
            return containers.run_monitored(record, stdin=stdin, stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
            writer.close()  # the pipes end with the container's last process


def run_container(root: Path | None, kw: dict[str, Any]) -> None:
    """``pallet run``: create, then run attached (exits with the container's code) or
    start detached and print the ID."""
    detach = bool(kw.pop("detach", False))
    containers, record = create(root, kw, detach)
    if detach:
        try:
            containers.start_detached(record)
        except PalletError:
            if record.auto_remove:
                containers.remove(record.id, force=True, volumes=True)
            raise
        print(record.id, flush=True)
        return
    attach(containers, record, kw["interactive"])
