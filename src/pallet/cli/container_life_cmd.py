"""Container commands acting on existing containers: stop, kill, restart, wait, rename,
exec, container prune, and the ``pallet container ...`` group."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from pallet.cli.container_cmd import _containers
from pallet.errors import PalletError

if TYPE_CHECKING:
    from pallet.runtime.records import ContainerRecord


def _each(names: Sequence[str], action: Callable[[str], object], echo: bool = True) -> None:
    """Apply ``action`` to every name as docker does: go on after an error, fail at the end."""
    errors = []
    for name in names:
        try:
            action(name)
            if echo:
                click.echo(name)
        except PalletError as exc:
            errors.append(str(exc))
    if errors:
        for message in errors[:-1]:
            click.echo(f"error: {message}", err=True)
        raise PalletError(errors[-1])


@click.command("stop")
@click.option("-t", "--time", "--timeout", "timeout", type=int, default=None,
              help="Seconds to wait before killing (default 10).")  # fmt: skip
@click.option("-s", "--signal", "signal_name", default=None)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def stop_cmd(
    ctx: click.Context, timeout: int | None, signal_name: str | None, names: tuple[str, ...]
) -> None:
    """Stop containers: STOPSIGNAL (SIGTERM), then SIGKILL after the timeout."""
    from pallet.runtime.control import stop

    containers = _containers(ctx)
    _each(names, lambda n: stop(containers, n, timeout, signal_name))


@click.command("kill")
@click.option("-s", "--signal", "signal_name", default="KILL")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def kill_cmd(ctx: click.Context, signal_name: str, names: tuple[str, ...]) -> None:
    """Send a signal (SIGKILL by default) to running containers."""
    from pallet.runtime.control import kill

    containers = _containers(ctx)
    _each(names, lambda n: kill(containers, n, signal_name))


@click.command("restart")
@click.option("-t", "--time", "--timeout", "timeout", type=int, default=None)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def restart_cmd(ctx: click.Context, timeout: int | None, names: tuple[str, ...]) -> None:
    """Stop then start containers."""
    from pallet.runtime.control import stop

    containers = _containers(ctx)

    def restart(name: str) -> None:
        stop(containers, name, timeout)
        containers.start_detached(containers.records.get(name))

    _each(names, restart)


@click.command("wait")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def wait_cmd(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Block until containers stop, then print their exit codes."""
    from pallet.runtime.control import wait

    containers = _containers(ctx)
    _each(names, lambda n: click.echo(wait(containers, n)), echo=False)


@click.command("rename")
@click.argument("old")
@click.argument("new")
@click.pass_context
def rename_cmd(ctx: click.Context, old: str, new: str) -> None:
    """Rename a container."""
    from pallet.runtime.container import _valid_name

    if not _valid_name(new):
        raise PalletError(
            f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    _containers(ctx).records.rename(old, new)


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True)
@click.option("-t", "--tty", is_flag=True)
@click.option("-d", "--detach", is_flag=True)
@click.option("-e", "--env", "env", multiple=True)
@click.option("-u", "--user", default=None)
@click.option("-w", "--workdir", default=None)
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_cmd(ctx: click.Context, interactive: bool, tty: bool, detach: bool,
             env: tuple[str, ...], user: str | None, workdir: str | None, name: str,
             command: tuple[str, ...]) -> None:  # fmt: skip
    """Run a command in a running container."""
    from pallet.runtime.control import exec_in

    containers = _containers(ctx)
    code = exec_in(
        containers, name, command, env=env, user=user, workdir=workdir,
        tty=tty and not detach and sys.stdin.isatty(), interactive=interactive,
        detach=detach, stdin=sys.stdin,
    )  # fmt: skip
    sys.exit(code)


@click.command("attach")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.argument("name")
@click.pass_context
def attach_cmd(ctx: click.Context, no_stdin: bool, name: str) -> None:
    """Attach to a running container's terminal (-t; detach with Ctrl-P Ctrl-Q) or output."""
    import os

    from pallet.runtime.attach import attach_terminal, socket_path
    from pallet.runtime.control import attach_running, wait

    containers = _containers(ctx)
    record = containers.records.get(name)
    if containers.true_state(record)[0] != "running":
        raise PalletError("You cannot attach to a stopped container, start it first")
    if not record.tty:
        sys.exit(attach_running(containers, record.id, sys.stdout.buffer, sys.stderr.buffer))
    path = socket_path(containers.runtime.state_root, record.id)
    with open(os.devnull, "rb") if no_stdin else sys.stdin.buffer as stdin:
        if not attach_terminal(path, stdin, sys.stdout.buffer):
            click.echo("read escape sequence", err=True)
            return
    sys.exit(wait(containers, record.id))


@click.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def prune_cmd(ctx: click.Context, force: bool) -> None:
    """Remove all stopped containers."""
    if not force and sys.stdin.isatty():
        click.confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
            abort=True,
        )
    containers = _containers(ctx)
    removed = []
    for record in containers.records.all():
        if containers.true_state(record)[0] != "running":
            containers.remove(record.id)
            removed.append(record.id)
    if removed:
        click.echo("Deleted Containers:")
        for cid in removed:
            click.echo(cid)
        click.echo("")
    click.echo("Total reclaimed space: 0B")


@click.command("stats")
@click.option("-a", "--all", "show_all", is_flag=True)
@click.option("--no-stream", is_flag=True, help="One sample, then exit.")
@click.option("--format", "fmt", default=None)
@click.argument("names", nargs=-1)
@click.pass_context
def stats_cmd(ctx: click.Context, show_all: bool, no_stream: bool, fmt: str | None,
              names: tuple[str, ...]) -> None:  # fmt: skip
    """Live CPU, memory and pids use of containers (from their cgroups)."""
    import contextlib
    import json
    import time

    from pallet.cli.table import echo_table
    from pallet.runtime.stats import Sample, binary_size, cpu_percent, decimal_size, sample

    containers = _containers(ctx)
    records = [containers.records.get(n) for n in names] if names else containers.records.all()

    def read(record: ContainerRecord) -> Sample:
        pid = record.pid
        with contextlib.suppress(PalletError):  # a restarted container has a new pid
            pid = containers.records.get(record.id).pid
        return sample(record.id, pid, own_network=record.network != "host")

    while True:
        live = [r for r in records if show_all or containers.true_state(r)[0] == "running"]
        before = {r.id: read(r) for r in live}
        time.sleep(0.5)
        rows = []
        for r in live:
            after = read(r)
            mem, limit = after.memory, after.memory_limit
            rows.append({
                "Container": r.id[:12], "ID": r.id[:12], "Name": r.name,
                "CPUPerc": f"{cpu_percent(before[r.id], after):.2f}%",
                "MemUsage": f"{binary_size(mem)} / {binary_size(limit)}",
                "MemPerc": f"{100.0 * mem / limit if limit else 0.0:.2f}%",
                "NetIO": f"{decimal_size(after.net_rx)} / {decimal_size(after.net_tx)}",
                "BlockIO": f"{decimal_size(after.block_read)} / {decimal_size(after.block_write)}",
                "PIDs": str(after.pids),
            })  # fmt: skip
        if fmt == "json":
            for row in rows:
                click.echo(json.dumps(row))
        else:
            headers = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                       "NET I/O", "BLOCK I/O", "PIDS"]  # fmt: skip
            keys = ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"]
            if not no_stream:
                click.echo("\x1b[2J\x1b[H", nl=False)
            echo_table(headers, [[row[k] for k in keys] for row in rows])
        if no_stream:
            return


@click.group("container")
def container_group() -> None:
    """Manage containers."""


def register(group: click.Group) -> None:
    from pallet.cli import container_cmd, container_fs_cmd

    commands = (stop_cmd, kill_cmd, restart_cmd, wait_cmd, rename_cmd, exec_cmd, stats_cmd,
                attach_cmd)  # fmt: skip
    for command in commands:
        group.add_command(command)
    for command in (*commands, *container_fs_cmd.COMMANDS, *container_cmd.COMMANDS):
        container_group.add_command(command)
    container_group.add_command(container_cmd.ps_cmd, "ls")
    container_group.add_command(prune_cmd)
    group.add_command(container_group)
    container_fs_cmd.register(group)
