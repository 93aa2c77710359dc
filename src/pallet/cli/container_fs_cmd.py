"""Container filesystem commands: diff, cp, export, commit, container inspect."""

from __future__ import annotations

import json
import sys
from typing import Any, BinaryIO, cast

import click

from pallet.cli.container_cmd import _containers
from pallet.errors import InvalidArgument, NotFound


@click.command("diff")
@click.argument("name")
@click.pass_context
def diff_cmd(ctx: click.Context, name: str) -> None:
    """Show files added (A), changed (C) and deleted (D) in a container."""
    from pallet.runtime.changes import diff

    containers = _containers(ctx)
    for change in diff(containers, containers.records.get(name)):
        click.echo(str(change))


def _split(arg: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` or a local path (one starting with / or . is always local)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    name, _, path = arg.partition(":")
    return name, path


@click.command("cp")
@click.option("-a", "--archive", is_flag=True, help="Keep the files' uid/gid.")
@click.option("-L", "--follow-link", is_flag=True, help="Follow a symlink given as SRC.")
@click.argument("src")
@click.argument("dest")
@click.pass_context
def cp_cmd(ctx: click.Context, archive: bool, follow_link: bool, src: str, dest: str) -> None:
    """Copy between a container and the host; ``-`` is a tar stream on stdin/stdout.

    Paths are the container's view: volumes and bind mounts included."""
    from pallet.runtime.container_copy import copy_in, copy_out

    (src_ctr, src_path), (dest_ctr, dest_path) = _split(src), _split(dest)
    if (src_ctr is None) == (dest_ctr is None):
        raise InvalidArgument("copying between containers or host paths is not supported: "
                              "exactly one of SRC and DEST must be CONTAINER:PATH")  # fmt: skip
    containers = _containers(ctx)
    if src_ctr is not None:
        record = containers.records.get(src_ctr)
        target: str | BinaryIO = sys.stdout.buffer if dest_path == "-" else dest_path
        copy_out(containers, record, src_path, target, follow_link=follow_link,
                 keep_owner=archive)  # fmt: skip
        sys.stdout.flush()
    else:
        assert dest_ctr is not None
        record = containers.records.get(dest_ctr)
        source: str | BinaryIO = sys.stdin.buffer if src_path == "-" else src_path
        copy_in(containers, record, source, dest_path, keep_owner=archive)


@click.command("export")
@click.option("-o", "--output", default=None, help="Write to a file instead of STDOUT.")
@click.argument("name")
@click.pass_context
def export_cmd(ctx: click.Context, output: str | None, name: str) -> None:
    """Export a container's filesystem as a tar archive."""
    from pallet.runtime.changes import export

    containers = _containers(ctx)
    record = containers.records.get(name)
    if output:
        with open(output, "wb") as out:
            export(containers, record, out)
        return
    if sys.stdout.isatty():
        raise InvalidArgument(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
        )
    export(containers, record, cast(BinaryIO, sys.stdout.buffer))
    sys.stdout.flush()


@click.command("commit")
@click.option("-a", "--author", default="")
@click.option("-c", "--change", "changes", multiple=True)
@click.option("-m", "--message", default="")
@click.option("-p", "--pause", is_flag=True, default=True, help="(accepted; nothing to pause)")
@click.argument("name")
@click.argument("repository", required=False)
@click.pass_context
def commit_cmd(ctx: click.Context, author: str, changes: tuple[str, ...], message: str,
               pause: bool, name: str, repository: str | None) -> None:  # fmt: skip
    """Create a new image from a container's changes."""
    from pallet.runtime.changes import commit

    del pause
    containers = _containers(ctx)
    record = containers.records.get(name)
    image_id = commit(
        containers, record, names=[repository] if repository else [], changes=changes,
        message=message, author=author,
    )  # fmt: skip
    click.echo(image_id)


def container_documents(ctx: click.Context, names: tuple[str, ...]) -> list[dict[str, Any]]:
    from pallet.runtime.control import inspect_document

    containers = _containers(ctx)
    return [inspect_document(containers, containers.records.get(n)) for n in names]


@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx: click.Context, fmt: str | None, names: tuple[str, ...]) -> None:
    """Show low-level information on containers as JSON."""
    from pallet.cli.go_template import render_field

    docs = []
    missing = None
    for name in names:
        try:
            docs.extend(container_documents(ctx, (name,)))
        except NotFound:
            missing = name
    if fmt and fmt != "json":
        for doc in docs:
            click.echo(render_field(doc, fmt))
    else:
        click.echo(json.dumps(docs, indent=4))
    if missing:
        raise NotFound(f"No such container: {missing}")


COMMANDS = (diff_cmd, cp_cmd, export_cmd, commit_cmd)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
    from pallet.cli.container_life_cmd import container_group

    container_group.add_command(inspect_cmd)
