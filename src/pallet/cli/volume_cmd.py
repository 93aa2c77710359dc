"""``pallet volume create|ls|inspect|rm|prune``."""

from __future__ import annotations

import json
import sys
from typing import cast

import click

from pallet.cli.context import CliContext
from pallet.cli.table import echo_table
from pallet.errors import PalletError
from pallet.store import Store


def _volumes(ctx: click.Context) -> tuple[Store, object]:
    from pallet.runtime.volumes import Volumes

    store = Store.open(cast(CliContext, ctx.obj).store_root)
    return store, Volumes(store)


def _users(store: Store) -> dict[str, str]:
    """Volume name -> the first container that mounts it."""
    from pallet.runtime.records import ContainerRecords

    users: dict[str, str] = {}
    for record in ContainerRecords(store).all():
        for name in record.volumes:
            users.setdefault(name, record.id)
    return users


@click.group("volume")
def volume_group() -> None:
    """Manage volumes."""


@volume_group.command("create")
@click.option("-l", "--label", "labels", multiple=True)
@click.option("-d", "--driver", default="local")
@click.argument("name", required=False)
@click.pass_context
def create_cmd(ctx: click.Context, labels: tuple[str, ...], driver: str, name: str | None) -> None:
    """Create a volume."""
    from pallet.runtime.volumes import Volumes

    if driver != "local":
        raise PalletError(f"volume driver {driver!r} is not supported (only local)")
    _, vols = _volumes(ctx)
    label_map = {lbl.partition("=")[0]: lbl.partition("=")[2] for lbl in labels}
    volume, _ = cast(Volumes, vols).create(name, label_map)
    click.echo(volume.name)


@volume_group.command("ls")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--format", "fmt", default=None)
@click.pass_context
def ls_cmd(ctx: click.Context, quiet: bool, fmt: str | None) -> None:
    """List volumes."""
    from pallet.runtime.volumes import Volumes

    _, vols = _volumes(ctx)
    volumes = cast(Volumes, vols).all()
    if quiet:
        for v in volumes:
            click.echo(v.name)
    elif fmt == "json":
        for v in volumes:
            click.echo(json.dumps({"Driver": "local", "Name": v.name,
                                   "Mountpoint": str(v.mountpoint)}))  # fmt: skip
    else:
        echo_table(["DRIVER", "VOLUME NAME"], [["local", v.name] for v in volumes])


@volume_group.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Show volumes as JSON."""
    from pallet.runtime.volumes import Volumes

    _, vols = _volumes(ctx)
    click.echo(json.dumps([cast(Volumes, vols).get(n).inspect() for n in names], indent=4))


@volume_group.command("rm")
@click.option("-f", "--force", is_flag=True)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx: click.Context, force: bool, names: tuple[str, ...]) -> None:
    """Remove volumes (refused while a container uses one)."""
    from pallet.runtime.volumes import Volumes

    store, vols = _volumes(ctx)
    users = _users(store)
    errors = []
    for name in names:
        try:
            cast(Volumes, vols).remove(name, users.get(name))
            click.echo(name)
        except PalletError as exc:
            if not (force and "no such volume" in str(exc)):
                errors.append(str(exc))
    if errors:
        for message in errors[:-1]:
            click.echo(f"error: {message}", err=True)
        raise PalletError(errors[-1])


@volume_group.command("prune")
@click.option("-a", "--all", "prune_all", is_flag=True, help="Named volumes too.")
@click.option("-f", "--force", is_flag=True)
@click.pass_context
def prune_cmd(ctx: click.Context, prune_all: bool, force: bool) -> None:
    """Remove unused anonymous volumes (all unused ones with -a)."""
    from pallet.runtime.volumes import Volumes

    if not force and sys.stdin.isatty():
        click.confirm("WARNING! This will remove volumes not used by any container.\n"
                      "Are you sure you want to continue?", abort=True)  # fmt: skip
    store, vols = _volumes(ctx)
    users = _users(store)
    removed = []
    for volume in cast(Volumes, vols).all():
        if volume.name not in users and (prune_all or volume.anonymous):
            cast(Volumes, vols).remove(volume.name)
            removed.append(volume.name)
    if removed:
        click.echo("Deleted Volumes:")
        for name in removed:
            click.echo(name)
        click.echo("")
    click.echo("Total reclaimed space: 0B")


def register(group: click.Group) -> None:
    group.add_command(volume_group)
