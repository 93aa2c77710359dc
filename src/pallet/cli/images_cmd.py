"""Image commands: images, inspect, history, tag, rmi, image prune, import, bootstrap, system."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO, cast

import click

from pallet.cli.context import CliContext
from pallet.cli.go_template import render_field
from pallet.cli.table import echo_table, ellipsis
from pallet.errors import InvalidArgument, NotFound, PalletError
from pallet.images import describe
from pallet.images.humanize import human_size, parse_timestamp, since
from pallet.images.lookup import LocalImage, all_images, find_image
from pallet.images.remove import image_filter, prune_images, remove_images
from pallet.oci.reference import Reference
from pallet.store import Store


def open_store(ctx: click.Context) -> Store:
    obj = cast(CliContext, ctx.obj)
    return Store.open(obj.store_root)


def _filters(values: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"bad format of filter (expected name=value): {value!r}")
        out.setdefault(key.strip().lower(), []).append(val)
    return out


def _reference_matches(pattern: str, repository: str, tag: str) -> bool:
    """docker's ``images REPOSITORY[:TAG]`` and ``reference=`` filter (shell globs)."""
    from fnmatch import fnmatchcase

    repo_pat, _, tag_pat = (
        pattern.partition(":") if "/" not in pattern.rpartition(":")[2] else (pattern, "", "")
    )
    if not fnmatchcase(repository, repo_pat):
        try:
            full = Reference.parse(repository).repository
        except PalletError:
            return False
        if not fnmatchcase(full, repo_pat):
            return False
    return not tag_pat or fnmatchcase(tag, tag_pat)


@click.command("images")
@click.argument("reference", required=False)
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all images.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    help="Filter output (reference=, dangling=, label=, until=).",
)
@click.option("--format", "fmt", default=None, help="'json' for one JSON object per line.")
@click.pass_context
def images_cmd(
    ctx: click.Context,
    reference: str | None,
    show_all: bool,
    quiet: bool,
    digests: bool,
    no_trunc: bool,
    filters: tuple[str, ...],
    fmt: str | None,
) -> None:
    """List images."""
    del show_all  # pallet keeps no intermediate images: -a shows the same list
    store = open_store(ctx)
    parsed = _filters(filters)
    references = parsed.pop("reference", [])
    if reference:
        references.append(reference)
    keep = image_filter(parsed)
    images = sorted(all_images(store), key=lambda im: im.config.created or "", reverse=True)
    rows = [
        row
        for image in images
        if keep(image)
        for row in describe.image_rows(image)
        if not references or any(_reference_matches(p, row.repository, row.tag) for p in references)
    ]

    def image_id(image: LocalImage) -> str:
        return str(image.id) if no_trunc else image.id.short()

    if quiet:
        seen: list[str] = []
        for row in rows:
            ident = image_id(row.image)
            if ident not in seen:
                seen.append(ident)
        for ident in seen:
            click.echo(ident)
        return
    if fmt == "json":
        for row in rows:
            click.echo(
                json.dumps(
                    {
                        "Containers": "N/A",
                        "CreatedAt": describe.created_at(row.image),
                        "CreatedSince": since(parse_timestamp(row.image.config.created)),
                        "Digest": row.digest,
                        "ID": image_id(row.image),
                        "Repository": row.repository,
                        "SharedSize": "N/A",
                        "Size": human_size(row.image.size),
                        "Tag": row.tag,
                        "UniqueSize": "N/A",
                        "VirtualSize": human_size(row.image.size),
                    },
                    sort_keys=True,
                )
            )
        return
    if fmt is not None:
        raise InvalidArgument(f"unsupported --format {fmt!r} (only 'json')")
    headers = (
        ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    )
    table = []
    for row in rows:
        cells = [row.repository, row.tag]
        if digests:
            cells.append(row.digest)
        cells += [
            image_id(row.image),
            since(parse_timestamp(row.image.config.created)),
            human_size(row.image.size),
        ]
        table.append(cells)
    echo_table(headers, table)


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="'json' (default) or a {{.Field}} path.")
@click.pass_context
def inspect_cmd(ctx: click.Context, names: tuple[str, ...], fmt: str | None) -> None:
    """Show low-level information on images as JSON."""
    store = open_store(ctx)
    docs: list[dict[str, Any]] = []
    missing: list[str] = []
    for name in names:
        try:
            docs.append(describe.inspect_document(find_image(store, name)))
        except NotFound:
            # docker inspect falls back to containers
            from pallet.cli.container_fs_cmd import container_documents

            try:
                docs.extend(container_documents(ctx, (name,)))
            except NotFound:
                missing.append(name)
    if fmt and fmt != "json":
        for doc in docs:
            click.echo(render_field(doc, fmt))
    else:
        click.echo(json.dumps(docs, indent=4))
    if missing:
        raise NotFound(f"No such image: {missing[0]}")


@click.command("history")
@click.argument("name")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("-H", "--human/--no-human", default=True, help="Human readable sizes and dates.")
@click.pass_context
def history_cmd(ctx: click.Context, name: str, no_trunc: bool, quiet: bool, human: bool) -> None:
    """Show the history of an image."""
    image = find_image(open_store(ctx), name)
    rows = describe.history_rows(image)

    def ident(value: str) -> str:
        return value if no_trunc or value == "<missing>" else value.split(":", 1)[-1][:12]

    if quiet:
        for row in rows:
            click.echo(ident(row.image_id))
        return
    table = []
    for row in rows:
        created_by = row.created_by.replace("\t", " ")
        table.append(
            [
                ident(row.image_id),
                since(parse_timestamp(row.created)) if human else (row.created or ""),
                created_by if no_trunc else ellipsis(created_by, 45),
                human_size(row.size) if human else str(row.size),
                row.comment,
            ]
        )
    echo_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], table)


@click.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag_cmd(ctx: click.Context, source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    from pallet.images.tagging import tag_image

    tag_image(open_store(ctx), source, target)


@click.command("rmi")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.pass_context
def rmi_cmd(ctx: click.Context, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more images."""
    events, errors = remove_images(open_store(ctx), names, force=force)
    for event in events:
        click.echo(str(event))
    if errors:
        for message in errors[:-1]:
            click.echo(f"error: {message}", err=True)
        raise PalletError(errors[-1])


@click.command("prune")
@click.option(
    "-a",
    "--all",
    "all_images_too",
    is_flag=True,
    help="Remove all unused images, not just dangling ones.",
)
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. until=24h).")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def prune_cmd(
    ctx: click.Context, all_images_too: bool, filters: tuple[str, ...], force: bool
) -> None:
    """Remove unused images."""
    if not force:
        warning = (
            "WARNING! This will remove all images without at least one container associated to them."
            if all_images_too
            else "WARNING! This will remove all dangling images."
        )
        click.echo(warning)
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    events, freed = prune_images(
        open_store(ctx), all_images_too=all_images_too, filters=_filters(filters)
    )
    if events:
        click.echo("Deleted Images:")
        for event in events:
            click.echo(f"{event.action.lower()}: {event.subject}")
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(freed)}")


@click.command("import")
@click.argument("source")
@click.argument("reference", required=False)
@click.option(
    "-c",
    "--change",
    "changes",
    multiple=True,
    help="Apply Dockerfile instruction to the created image.",
)
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.option(
    "--compression", type=click.Choice(["gzip", "zstd"]), default="gzip", show_default=True
)
@click.pass_context
def import_cmd(
    ctx: click.Context,
    source: str,
    reference: str | None,
    changes: tuple[str, ...],
    message: str,
    compression: str,
) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    from pallet.images.importer import import_rootfs, validate_names

    names = [reference] if reference else []
    validate_names(names)
    store = open_store(ctx)
    with contextlib.ExitStack() as stack:
        stream: BinaryIO = sys.stdin.buffer
        if source != "-":
            if "://" in source:
                raise InvalidArgument(f"importing from a URL is not supported: {source}")
            try:
                stream = stack.enter_context(open(source, "rb"))
            except OSError as exc:
                raise InvalidArgument(f"{source}: {exc.strerror}") from exc
        desc = import_rootfs(
            store,
            stream,
            source_name=source,
            names=names,
            message=message,
            changes=changes,
            compression=compression,
        )
    click.echo(str(find_image(store, str(desc.digest)).id))


@click.group("bootstrap")
def bootstrap_group() -> None:
    """Make base images on this machine, without a registry."""


@bootstrap_group.command("busybox")
@click.argument("reference", default="busybox:latest")
@click.pass_context
def bootstrap_busybox_cmd(ctx: click.Context, reference: str) -> None:
    """An image from the host's busybox-static, with /etc/passwd and /etc/group."""
    from pallet.images.bootstrap import bootstrap_busybox

    Reference.parse(reference)
    store = open_store(ctx)
    desc = bootstrap_busybox(store, reference)
    click.echo(f"{Reference.parse(reference).familiar()} {find_image(store, str(desc.digest)).id}")


@bootstrap_group.command("debian")
@click.argument("suite")
@click.argument("reference", required=False)
@click.option("--mirror", default=None, help="Debian mirror URL for debootstrap.")
@click.pass_context
def bootstrap_debian_cmd(
    ctx: click.Context, suite: str, reference: str | None, mirror: str | None
) -> None:
    """An image from `debootstrap --variant=minbase SUITE`."""
    from pallet.images.bootstrap import bootstrap_debian

    if reference:
        Reference.parse(reference)
    store = open_store(ctx)
    desc = bootstrap_debian(store, suite, reference, mirror)
    click.echo(str(find_image(store, str(desc.digest)).id))


@click.group("system")
def system_group() -> None:
    """Manage the store."""


@system_group.command("check")
@click.pass_context
def system_check_cmd(ctx: click.Context) -> None:
    """Verify every blob and snapshot against its digest."""
    report = open_store(ctx).check()
    for problem in report.problems:
        click.echo(str(problem))
    click.echo(
        f"checked {report.blobs_checked} blobs and {report.snapshots_checked} snapshots: "
        + ("ok" if report.ok else f"{len(report.problems)} problem(s)")
    )
    if not report.ok:
        raise PalletError(
            f"store {cast(CliContext, ctx.obj).store_root} has {len(report.corrupt)} corrupt and "
            f"{len(report.missing)} missing item(s)"
        )


@system_group.command("df")
@click.pass_context
def system_df_cmd(ctx: click.Context) -> None:
    """Show disk usage."""
    store = open_store(ctx)
    images = all_images(store)
    blobs: dict[str, int] = {}
    for image in images:
        blobs[image.manifest.config.digest] = image.manifest.config.size
        for layer in image.manifest.layers:
            blobs[layer.digest] = layer.size
    total = sum(blobs.values())
    pct = "(100%)" if total else ""
    echo_table(
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        [
            [
                "Images",
                str(len(images)),
                "0",
                human_size(total),
                f"{human_size(total)} {pct}".strip(),
            ],
            ["Containers", "0", "0", "0B", "0B"],
            ["Local Volumes", "0", "0", "0B", "0B"],
            ["Build Cache", "0", "0", "0B", "0B"],
        ],
    )


@system_group.command("gc")
@click.option("--dry-run", is_flag=True)
@click.pass_context
def system_gc_cmd(ctx: click.Context, dry_run: bool) -> None:
    """Remove blobs and snapshots no image or operation in flight refers to."""
    report = open_store(ctx).gc(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {len(report.removed_blobs)} blobs, {len(report.removed_snapshots)} snapshots, "
        f"{len(report.removed_leftovers)} leftovers; {human_size(report.freed_bytes)}"
    )


@click.group("image")
def image_group() -> None:
    """Manage images."""


def register(group: click.Group) -> None:
    for command in (images_cmd, inspect_cmd, history_cmd, tag_cmd, rmi_cmd, import_cmd):
        group.add_command(command)
    group.add_command(bootstrap_group)
    group.add_command(system_group)
    image_group.add_command(images_cmd, "ls")
    image_group.add_command(inspect_cmd, "inspect")
    image_group.add_command(history_cmd, "history")
    image_group.add_command(tag_cmd, "tag")
    image_group.add_command(rmi_cmd, "rm")
    image_group.add_command(prune_cmd, "prune")
    image_group.add_command(import_cmd, "import")
    group.add_command(image_group)
