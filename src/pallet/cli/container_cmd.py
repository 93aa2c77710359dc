"""Container commands: run, create, start, ps, rm, logs."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import TYPE_CHECKING, Any, cast

import click

from pallet.cli import run_exec
from pallet.cli.click_flags import click_flags
from pallet.cli.context import CliContext
from pallet.cli.flag_tables import CREATE_FLAGS, RUN_FLAGS
from pallet.cli.go_template import render
from pallet.cli.run_exec import open_containers, run_container
from pallet.cli.table import echo_table
from pallet.errors import InvalidArgument, PalletError
from pallet.images.humanize import human_duration

if TYPE_CHECKING:
    from pallet.runtime.container import Containers


def _containers(ctx: click.Context) -> Containers:
    return open_containers(cast(CliContext, ctx.obj).root)


@click.command("run", context_settings={"allow_interspersed_args": False})
@click_flags(RUN_FLAGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """Create and run a new container from an image."""
    run_container(cast(CliContext, ctx.obj).root, kw)


@click.command("create", context_settings={"allow_interspersed_args": False})
@click_flags(CREATE_FLAGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def create_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """Create a new container without starting it."""
    _, record = run_exec.create(cast(CliContext, ctx.obj).root, kw, True)
    click.echo(record.id)


@click.command("start")
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach the container's STDIN.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def start_cmd(ctx: click.Context, attach: bool, interactive: bool, names: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    containers = _containers(ctx)
    if attach or interactive:
        if len(names) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        record = containers.records.get(names[0])
        if containers.true_state(record)[0] == "running":
            from pallet.runtime.control import attach_running

            sys.exit(attach_running(containers, record.id, sys.stdout.buffer, sys.stderr.buffer))
        run_exec.attach(containers, record, interactive)
        return
    failed = []
    for name in names:
        try:
            record = containers.records.get(name)
            if containers.true_state(record)[0] != "running":
                containers.start_detached(record)
            click.echo(name)
        except PalletError as exc:
            click.echo(f"error: {exc}", err=True)
            failed.append(name)
    if failed:
        raise PalletError(f"failed to start containers: {', '.join(failed)}")


def _status(state: str, code: int | None, record_time: float) -> str:
    if state == "running":
        return f"Up {human_duration(time.time() - record_time)}"
    if state == "created":
        return "Created"
    if state == "restarting":  # exited, its monitor about to start it again
        return f"Restarting ({code if code is not None else 255}) {human_duration(time.time() - record_time)} ago"
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
        if state == "exited" and containers.restart_pending(record):
            state = "restarting"
        if not show_all and state not in ("running", "restarting") and "status" not in wanted:
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

    if fmt is not None and fmt.startswith("table"):
        raise InvalidArgument(f"unsupported --format {fmt!r}: a table format (use a template)")
    if fmt is not None:
        for record, state, code in rows:
            row = {
                "ID": record.id if no_trunc else record.id[:12],
                "Image": record.image,
                "Command": command(record.argv),
                "CreatedAt": time.strftime(
                    "%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(record.created)
                ),
                "Names": record.name,
                "State": state,
                "Ports": ", ".join(record.ports) if state == "running" else "",
                "Status": _status(
                    state,
                    code,
                    record.started if state == "running" else (record.finished or record.created),
                ),
            }
            # docker's --format: json, or a template over these fields ({{.Names}}...)
            click.echo(json.dumps(row, sort_keys=True) if fmt == "json" else render(row, fmt))
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
            ", ".join(record.ports) if state == "running" else "",
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
    containers = _containers(ctx)
    errors = []
    for name in names:
        try:
            containers.remove(name, force=force, volumes=volumes)
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
@click.option("--tail", "-n", default="all")
@click.option("-t", "--timestamps", is_flag=True)
@click.option("--since", default=None)
@click.option("--until", default=None)
@click.pass_context
def logs_cmd(ctx: click.Context, name: str, follow: bool, tail: str, timestamps: bool,
             since: str | None, until: str | None) -> None:  # fmt: skip
    """Fetch the output of a container (stdout and stderr kept apart)."""
    from pallet.runtime.logs import LogEntry, parse_since, read_entries
    from pallet.runtime.logs import follow as follow_log

    if tail != "all" and not tail.isdigit():
        raise InvalidArgument(f"invalid --tail value {tail!r}")
    after = parse_since(since) if since else None
    before = parse_since(until) if until else None
    containers = _containers(ctx)
    record = containers.records.get(name)
    log = containers.dir(record.id) / "container.log"
    entries, offset = read_entries(log)

    def show(entry: LogEntry) -> None:
        if after is not None and entry.epoch < after:
            return
        if before is not None and entry.epoch > before:
            return
        out = sys.stderr.buffer if entry.stream == "stderr" else sys.stdout.buffer
        if timestamps:
            out.write(entry.time.encode() + b" ")
        out.write(entry.data)
        out.flush()

    if tail != "all":
        entries = entries[-int(tail) :] if int(tail) else []
    for entry in entries:
        show(entry)
    if not follow:
        return

    def running() -> bool:
        with contextlib.suppress(PalletError):
            return containers.true_state(containers.records.get(record.id))[0] == "running"
        return False

    for entry in follow_log(log, offset, running):
        show(entry)


@click.command("port")
@click.argument("name")
@click.argument("port", required=False)
@click.pass_context
def port_cmd(ctx: click.Context, name: str, port: str | None) -> None:
    """List the container's published ports, or the host address of one."""
    from pallet.runtime.network import PortMapping

    containers = _containers(ctx)
    record = containers.records.get(name)
    wanted = port if port is None or "/" in port else f"{port}/tcp"
    found = False
    for text in record.ports:
        m = PortMapping.from_str(text)
        key = f"{m.container_port}/{m.proto}"
        if wanted is None:
            click.echo(f"{key} -> {m.host_ip}:{m.host_port}")
        elif key == wanted:
            click.echo(f"{m.host_ip}:{m.host_port}")
            found = True
    if wanted is not None and not found:
        raise PalletError(f"No public port '{wanted}' published for {name}")


COMMANDS = (run_cmd, create_cmd, start_cmd, ps_cmd, rm_cmd, logs_cmd, port_cmd)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
