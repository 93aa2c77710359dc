"""``pallet save``, ``pallet load`` and ``pallet copy``: thin wrappers of transport.copy."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pallet.cli.context import CliContext
from pallet.errors import InvalidArgument
from pallet.oci.descriptor import Descriptor
from pallet.oci.platform import Platform
from pallet.transport.copy import copy
from pallet.transport.names import familiar_name, open_destination, open_source, parse_spec
from pallet.transport.oci_archive import ArchiveIndex
from pallet.transport.store import load_archive, save_images

_FORMATS = {"docker-archive": "docker-archive", "oci": "oci-archive", "oci-archive": "oci-archive"}


@click.command("save")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: stdout, unless it is a terminal).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(_FORMATS)),
    default="docker-archive",
    show_default=True,
    help="docker-archive (docker load, podman load) or oci (an OCI archive).",
)
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def save_cmd(obj: CliContext, output: Path | None, fmt: str, refs: tuple[str, ...]) -> None:
    """Save one or more images to a tar archive."""
    if output is None and sys.stdout.isatty():
        raise InvalidArgument(
            "refusing to write an archive to a terminal: use -o FILE or redirect stdout"
        )
    save_images(obj.store_root, refs, output, _FORMATS[fmt])


@click.command("load")
@click.option(
    "-i",
    "--input",
    "input_",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read from this file (default: stdin). gzip and zstd archives are accepted.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.option(
    "--compress-level",
    type=int,
    help="gzip level (0-3) for layers the archive holds uncompressed, as docker save writes.",
)
@click.pass_obj
def load_cmd(obj: CliContext, input_: Path | None, quiet: bool, compress_level: int | None) -> None:
    """Load images from a docker-archive (docker save, podman save) or an OCI archive."""
    if input_ is None:
        if sys.stdin.isatty():
            raise InvalidArgument("no archive on stdin: use -i FILE or redirect stdin")
        archive = ArchiveIndex.from_stream(sys.stdin.buffer, "stdin")
    else:
        archive = ArchiveIndex.open_path(input_)
    try:
        loaded = load_archive(obj.store_root, archive, compression_level=compress_level)
    finally:
        archive.close()
    if quiet:
        return
    for image in loaded:
        for name in image.names:
            click.echo(f"Loaded image: {familiar_name(name)}")
        if not image.names:
            click.echo(f"Loaded image ID: {image.image_id}")


@click.command("copy")
@click.option("--all", "all_platforms", is_flag=True, help="Copy every platform of an index.")
@click.option(
    "--dest-compress-format",
    type=click.Choice(["gzip", "zstd"]),
    help="Recompress layers that are not in this format.",
)
@click.option("--dest-compress-level", type=int, help="Compression level for recompressed layers.")
@click.option("--platform", help="Platform to pick from an index (os/arch[/variant]).")
@click.option("-q", "--quiet", is_flag=True, help="Do not report each blob.")
@click.argument("src")
@click.argument("dst")
@click.pass_obj
def copy_cmd(
    obj: CliContext,
    all_platforms: bool,
    dest_compress_format: str | None,
    dest_compress_level: int | None,
    platform: str | None,
    quiet: bool,
    src: str,
    dst: str,
) -> None:
    """Copy an image from SRC to DST.

    \b
    Names, as skopeo's: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF],
    docker-archive:FILE[:REF], pallet:REF (the local store).
    """
    src_spec, dst_spec = parse_spec(src), parse_spec(dst)
    wanted = Platform.parse(platform) if platform else None

    def report(event: str, desc: Descriptor) -> None:
        if event != "done":
            verb = "Copying" if event == "copy" else "Skipping (present)"
            click.echo(f"{verb} blob {desc.digest}", err=True)

    source = open_source(src_spec, obj.store_root)
    try:
        destination = open_destination(dst_spec, obj.store_root)
        try:
            top = copy(
                source,
                destination,
                all_platforms=all_platforms,
                platform=wanted,
                dest_compression=dest_compress_format,
                compression_level=dest_compress_level,
                progress=None if quiet else report,
            )
        finally:
            destination.close()
    finally:
        source.close()
    if not quiet:
        click.echo(f"Wrote manifest {top.digest}", err=True)


def register(group: click.Group) -> None:
    for command in (save_cmd, load_cmd, copy_cmd):
        group.add_command(command)
