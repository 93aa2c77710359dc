"""Container commands: run, ps, rm, logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from pallet.cli.context import CliContext
from pallet.cli.table import echo_table
from pallet.errors import ContainerError, InvalidArgument, PalletError
from pallet.images.humanize import human_duration
from pallet.runtime.spec import Resources
from pallet.store import Store

if TYPE_CHECKING:
    from pallet.runtime.container import Containers


def _containers(ctx: click.Context) -> Containers:
    from pallet.runtime.container import Containers

    try:
        store = Store.open(cast(CliContext, ctx.obj).store_root)
        return Containers(store)
    except PalletError as exc:
        raise ContainerError(str(exc)) from exc


def _memory(text: str | None) -> int | None:
    if not text:
        return None
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    value = text.strip().lower()
    mult = units.get(value[-1])
    number = value[:-1] if mult else value
    if not number.isdigit():
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(number) * (mult or 1)


def _env_file(path: str) -> list[str]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"{path}: {exc.strerror}") from exc
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@click.command("run", context_settings={"allow_interspersed_args": False})
@click.option(
    "-d", "--detach", is_flag=True, help="Run in the background and print the container ID."
)
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("--rm", "auto_remove", is_flag=True, help="Remove the container when it exits.")
@click.option("--name", default=None)
@click.option("-e", "--env", "env", multiple=True)
@click.option("--env-file", "env_files", multiple=True)
@click.option("-u", "--user", default=None)
@click.option("-w", "--workdir", default=None)
@click.option("-h", "--hostname", default=None)
@click.option("--entrypoint", default=None)
@click.option(
    "--network",
    "--net",
    "network",
    type=click.Choice(["none", "host", "private"]),
    default="private",
)
@click.option("--read-only", is_flag=True)
@click.option("-v", "--volume", "volumes", multiple=True)
@click.option("--tmpfs", multiple=True)
@click.option("--cap-add", multiple=True)
@click.option("--cap-drop", multiple=True)
@click.option("--privileged", is_flag=True)
@click.option("--security-opt", "security_opts", multiple=True)
@click.option("-m", "--memory", default=None)
@click.option("--cpus", type=float, default=None)
@click.option("--pids-limit", type=int, default=None)
@click.option("--add-host", "add_hosts", multiple=True)
@click.option("--dns", multiple=True)
@click.option("-l", "--label", "labels", multiple=True)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_cmd(ctx: click.Context, detach: bool, interactive: bool, auto_remove: bool, name: str | None, env: tuple[str, ...],
            env_files: tuple[str, ...], user: str | None, workdir: str | None, hostname: str | None,
            entrypoint: str | None, network: str, read_only: bool, volumes: tuple[str, ...],
            tmpfs: tuple[str, ...], cap_add: tuple[str, ...], cap_drop: tuple[str, ...],
            privileged: bool, security_opts: tuple[str, ...], memory: str | None, cpus: float | None,
            pids_limit: int | None, add_hosts: tuple[str, ...], dns: tuple[str, ...],
            labels: tuple[str, ...], image: str, command: tuple[str, ...]) -> None:  # fmt: skip
    """Create and run a new container from an image."""
    from pallet.runtime.container import RunOptions

    try:
        all_env = tuple(e for f in env_files for e in _env_file(f)) + env
        for opt in security_opts:
            if opt not in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
                raise InvalidArgument(f"unsupported --security-opt {opt!r}")
        opts = RunOptions(
            image=image,
            command=command,
            entrypoint=entrypoint,
            env=all_env,
            user=user,
            workdir=workdir,
            hostname=hostname,
            name=name,
            auto_remove=auto_remove,
            network=network,  # type: ignore[arg-type]
            read_only=read_only,
            binds=volumes,
            tmpfs=tmpfs,
            cap_add=cap_add,
            cap_drop=cap_drop,
            privileged=privileged,
            no_new_privileges=bool(security_opts),
            resources=Resources(memory=_memory(memory), cpus=cpus, pids=pids_limit),
            add_hosts=add_hosts,
            dns=dns,
            labels=tuple((lbl.partition("=")[0], lbl.partition("=")[2]) for lbl in labels),
        )
        containers = _containers(ctx)
        record = containers.create(opts)
    except PalletError as exc:
        # docker's exit code for failures of the engine itself
        raise ContainerError(
            str(exc), getattr(exc, "exit_code", 125) if isinstance(exc, ContainerError) else 125
        ) from exc
    cdir = containers.dir(record.id)
    log = cdir / "container.log"
    if detach:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pallet.runtime.container",
                str(containers.store.root),
                record.id,
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        click.echo(record.id)
        return
    try:
        code = containers.run_monitored(
            record,
            stdin=sys.stdin if interactive else subprocess.DEVNULL,
            stdout=sys.stdout.buffer,
            stderr=sys.stderr.buffer,
        )
    finally:
        if auto_remove:
            containers.remove(record.id, force=True)
    sys.stdout.flush()
    sys.exit(code)


def _status(state: str, code: int | None, record_time: float) -> str:
    if state == "running":
        return f"Up {human_duration(time.time() - record_time)}"
    if state == "created":
        return "Created"
    return f"Exited ({code if code is not None else 255}) {human_duration(time.time() - record_time)} ago"


@click.command("ps")
@click.option("-a", "--all", "show_all", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option("--no-trunc", is_flag=True)
@click.option("-f", "--filter", "filters", multiple=True)
@click.option("--format", "fmt", default=None)
@click.pass_context
def ps_cmd(
    ctx: click.Context,
    show_all: bool,
    quiet: bool,
    no_trunc: bool,
    filters: tuple[str, ...],
    fmt: str | None,
) -> None:
    """List containers."""
    containers = _containers(ctx)
    wanted: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep or key not in ("status", "name", "ancestor", "id"):
            raise InvalidArgument(f"invalid filter {f!r}")
        wanted.setdefault(key, []).append(value)
    rows = []
    for record in containers.records.all():
        state, code = containers.true_state(record)
        if not show_all and state != "running" and "status" not in wanted:
            continue
        status_word = "exited" if state == "exited" else state
        if "status" in wanted and status_word not in wanted["status"]:
            continue
        if "name" in wanted and not any(n in record.name for n in wanted["name"]):
            continue
        if "ancestor" in wanted and not any(
            a in (record.image, record.image_id) or record.image_id.split(":")[1].startswith(a)
            for a in wanted["ancestor"]
        ):
            continue
        if "id" in wanted and not any(record.id.startswith(i) for i in wanted["id"]):
            continue
        rows.append((record, state, code))
    if quiet:
        for record, _, _ in rows:
            click.echo(record.id if no_trunc else record.id[:12])
        return

    def command(record_argv: tuple[str, ...]) -> str:
        text = " ".join(record_argv)
        return (
            json.dumps(text)
            if no_trunc
            else json.dumps(text if len(text) <= 20 else text[:19] + "…", ensure_ascii=False)
        )

    if fmt == "json":
        for record, state, code in rows:
            click.echo(
                json.dumps(
                    {
                        "ID": record.id if no_trunc else record.id[:12],
                        "Image": record.image,
                        "Command": command(record.argv),
                        "CreatedAt": time.strftime(
                            "%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(record.created)
                        ),
                        "Names": record.name,
                        "State": state,
                        "Status": _status(
                            state,
                            code,
                            record.started
                            if state == "running"
                            else (record.finished or record.created),
                        ),
                    },
                    sort_keys=True,
                )
            )
        return
    table = [
        [
            record.id if no_trunc else record.id[:12],
            record.image,
            command(record.argv),
            human_duration(time.time() - record.created) + " ago",
            _status(
                state,
                code,
                record.started if state == "running" else (record.finished or record.created),
            ),
            "",
            record.name,
        ]
        for record, state, code in rows
    ]
    echo_table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], table)


@click.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container.")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes too.")
@click.pass_context
def rm_cmd(ctx: click.Context, names: tuple[str, ...], force: bool, volumes: bool) -> None:
    """Remove one or more containers."""
    del volumes  # no anonymous volumes yet
    containers = _containers(ctx)
    errors = []
    for name in names:
        try:
            containers.remove(name, force=force)
            click.echo(name)
        except PalletError as exc:
            errors.append(str(exc))
    if errors:
        for message in errors[:-1]:
            click.echo(f"error: {message}", err=True)
        raise PalletError(errors[-1])


@click.command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True)
@click.option("--tail", default="all")
@click.pass_context
def logs_cmd(ctx: click.Context, name: str, follow: bool, tail: str) -> None:
    """Fetch the output of a detached container."""
    containers = _containers(ctx)
    record = containers.records.get(name)
    log = containers.dir(record.id) / "container.log"
    out = sys.stdout.buffer
    data = log.read_bytes() if log.exists() else b""
    if tail != "all":
        if not tail.isdigit():
            raise InvalidArgument(f"invalid --tail value {tail!r}")
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-int(tail) :]) if int(tail) else b""
    out.write(data)
    out.flush()
    if not follow:
        return
    offset = log.stat().st_size if log.exists() else 0
    while True:
        if log.exists() and log.stat().st_size > offset:
            with open(log, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            out.write(chunk)
            out.flush()
            continue
        state, _ = containers.true_state(containers.records.get(record.id))
        if state != "running":
            return
        time.sleep(0.1)


def register(group: click.Group) -> None:
    for command in (run_cmd, ps_cmd, rm_cmd, logs_cmd):
        group.add_command(command)
