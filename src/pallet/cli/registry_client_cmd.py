"""``pallet pull``, ``pallet push``, ``pallet login``, ``pallet logout``."""

from __future__ import annotations

import sys
from typing import Any

import click

from pallet.cli.click_flags import click_flags
from pallet.cli.context import CliContext
from pallet.cli.flag_tables import DEFAULT_CONCURRENCY, PUSH_FLAGS
from pallet.errors import InvalidArgument
from pallet.oci.platform import Platform
from pallet.transport.registry_credentials import Credentials
from pallet.transport.registry_progress import make_progress
from pallet.transport.registry_ref import ImageRef

# The transfer modules import aiohttp; they are imported by the commands that use them
# so that every other pallet command starts without it.


def _familiar(image: ImageRef) -> str:
    path = image.repository
    if image.registry == "docker.io" and path.startswith("library/") and path.count("/") == 1:
        return path[len("library/") :]
    return path if image.registry == "docker.io" else f"{image.registry}/{path}"


@click.command("pull")
@click.option(
    "--platform", help="Platform to pull from a multi-platform image (os/arch[/variant])."
)
@click.option("-a", "--all-platforms", is_flag=True, help="Pull every platform of an index.")
@click.option(
    "--max-concurrent-downloads",
    type=click.IntRange(1, 32),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Layers downloaded at once.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the image name.")
@click.argument("ref")
@click.pass_obj
def pull_cmd(
    obj: CliContext,
    platform: str | None,
    all_platforms: bool,
    max_concurrent_downloads: int,
    quiet: bool,
    ref: str,
) -> None:
    """Pull an image (by tag or digest) from a registry into the store."""
    from pallet.transport.registry_pull import pull

    image = ImageRef.parse(ref)
    if not quiet:
        click.echo(f"{image.tag or image.digest}: Pulling from {image.repository}")
    progress = make_progress(quiet)
    try:
        result = pull(
            ref,
            obj.store_root,
            platform=Platform.parse(platform) if platform else None,
            all_platforms=all_platforms,
            max_concurrent=max_concurrent_downloads,
            progress=progress,
        )
    finally:
        progress.close()
    if not quiet:
        click.echo(f"Digest: {result.digest}")
        status = "Downloaded newer image" if result.downloaded else "Image is up to date"
        click.echo(f"Status: {status} for {_familiar(image)}:{image.tag or ''}".rstrip(":"))
    click.echo(result.name)


@click.command("push")
@click_flags(PUSH_FLAGS)
@click.argument("ref")
@click.pass_obj
def push_cmd(obj: CliContext, /, **kw: Any) -> None:
    """Push an image (or, with --all-tags, every tag of its repository) to a registry."""
    from pallet.cli.push_exec import push_refs

    push_refs(obj.root, kw)


@click.command("login")
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.argument("registry", required=False)
def login_cmd(
    username: str | None, password: str | None, password_stdin: bool, registry: str | None
) -> None:
    """Log in to a registry (default Docker Hub); credentials go to ~/.docker/config.json."""
    from pallet.transport.registry_login import login, registry_name

    name = registry_name(registry)
    if password is not None and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password is not None:
        click.echo(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True
        )
    if password_stdin:
        if not username:
            raise InvalidArgument("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    if not username:
        if not sys.stdin.isatty():
            raise InvalidArgument("no username: use -u USER (stdin is not a terminal)")
        username = click.prompt("Username")
    if password is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("no password: use --password-stdin (stdin is not a terminal)")
        password = click.prompt("Password", hide_input=True)
    if not password:
        raise InvalidArgument("the password is empty")
    login(name, Credentials(username, password))
    click.echo("Login Succeeded")


@click.command("logout")
@click.argument("registry", required=False)
def logout_cmd(registry: str | None) -> None:
    """Remove the stored credentials of a registry (default Docker Hub)."""
    from pallet.transport.registry_login import logout, registry_name

    name = registry_name(registry)
    if logout(name):
        click.echo(f"Removing login credentials for {name}")
    else:
        click.echo(f"Not logged in to {name}")


def register(group: click.Group) -> None:
    for command in (pull_cmd, push_cmd, login_cmd, logout_cmd):
        group.add_command(command)
