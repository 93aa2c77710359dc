"""``pallet build`` and ``pallet builder prune``."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from pallet.cli.context import CliContext
from pallet.errors import InvalidArgument

if TYPE_CHECKING:
    from pallet.build.cache_io import CacheSpec
    from pallet.build.ssh_forward import SshAgent


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not key:
            raise InvalidArgument(f"{flag} {value!r}: expected KEY=VALUE")
        if not eq:
            import os

            # docker: ``--build-arg NAME`` takes the value from the environment
            env = os.environ.get(key)
            if env is None:
                continue
            val = env
        out[key] = val
    return out


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command("build")
@click.argument("context", type=click.Path(path_type=Path))
@click.option("-f", "--file", "dockerfile", help="Dockerfile path (- for stdin).")
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image (repeatable).")
@click.option("--build-arg", "build_args", multiple=True, help="KEY=VALUE build argument.")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE image label.")
@click.option("--target", help="Build this stage (default: the last).")
@click.option("--platform", help="Target platform (only the host's is supported).")
@click.option("--no-cache", is_flag=True, help="Run every step.")
@click.option("--no-cache-filter", "no_cache_filter", multiple=True, help="Stage not to cache.")
@click.option("--pull", is_flag=True, help="Always pull base images.")
@click.option("--secret", "secrets", multiple=True, help="id=ID,src=FILE (or env=VAR).")
@click.option("--ssh", "ssh", multiple=True, help="default or ID=SOCKET: an ssh-agent to forward.")
@click.option(
    "--allow", "allow", multiple=True, help="Entitlement: security.insecure, network.host."
)
@click.option("--cache-from", "cache_from", multiple=True, help="type=local,src=DIR")
@click.option("--cache-to", "cache_to", multiple=True, help="type=local,dest=DIR")
@click.option("--compression", type=click.Choice(["gzip", "zstd"]), default="gzip")
@click.option("--compression-level", type=int, default=None)
@click.option("--reproducible", is_flag=True, help="Fixed timestamps (SOURCE_DATE_EPOCH or 0).")
@click.option("-o", "--output", "outputs", multiple=True, help="type=oci|docker|local,dest=PATH")
@click.option("--push", is_flag=True, help="Push every -t name to its registry after the build.")
@click.option("--iidfile", type=click.Path(path_type=Path), help="Write the image ID here.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "quiet"]), default="auto")
@click.pass_obj
def build_cmd(
    obj: CliContext,
    context: Path,
    dockerfile: str | None,
    tags: tuple[str, ...],
    build_args: tuple[str, ...],
    labels: tuple[str, ...],
    target: str | None,
    platform: str | None,
    no_cache: bool,
    no_cache_filter: tuple[str, ...],
    pull: bool,
    secrets: tuple[str, ...],
    ssh: tuple[str, ...],
    allow: tuple[str, ...],
    cache_from: tuple[str, ...],
    cache_to: tuple[str, ...],
    compression: str,
    compression_level: int | None,
    reproducible: bool,
    outputs: tuple[str, ...],
    push: bool,
    iidfile: Path | None,
    quiet: bool,
    progress: str,
) -> None:
    """Build an image from a Dockerfile and a context directory."""
    from pallet.build import BuildOptions, Output, Progress, Secret, build
    from pallet.build.options import parse_entitlements
    from pallet.build.rootfs import private_mount_namespace
    from pallet.store import Store

    # Mounts made from here on die with this process, even on SIGKILL.
    private_mount_namespace()
    signal.signal(signal.SIGTERM, _interrupt)
    text = sys.stdin.read() if dockerfile == "-" else None
    options = BuildOptions(
        context=context,
        dockerfile=Path(dockerfile) if dockerfile and dockerfile != "-" else None,
        dockerfile_text=text,
        tags=tags,
        build_args=_pairs(build_args, "--build-arg"),
        labels=_pairs(labels, "--label"),
        target=target,
        platform=platform,
        no_cache=no_cache,
        no_cache_filter=no_cache_filter,
        pull=pull,
        secrets=tuple(Secret.parse(s) for s in secrets),
        ssh=_ssh_agents(ssh),
        allow=parse_entitlements(allow),
        cache_from=_cache_specs(cache_from, "--cache-from"),
        cache_to=_cache_specs(cache_to, "--cache-to"),
        compression=compression,
        compression_level=compression_level,
        reproducible=reproducible,
        outputs=tuple(Output.parse(o) for o in outputs),
        iidfile=iidfile,
        push=push,
    )
    if quiet or progress == "quiet":
        mode = "quiet"
    elif progress == "tty" or (progress == "auto" and sys.stderr.isatty()):
        mode = "tty"
    else:
        mode = "plain"
    store = Store.open(obj.store_root)
    # the live view ends (final summary, cursor back) however the build ends
    with Progress(mode, sys.stderr) as shown:
        result = build(store, options, shown)
    if result.unused_build_args:
        names = " ".join(result.unused_build_args)
        click.echo(f"[Warning] One or more build-args [{names}] were not consumed", err=True)
    for pushed in result.pushed:
        if mode != "quiet":
            click.echo(f"pushed {pushed}", err=True)
    click.echo(str(result.image_id))


@click.group("builder")
def builder_group() -> None:
    """Manage the build cache."""


@builder_group.command("prune")
@click.pass_obj
def builder_prune(obj: CliContext) -> None:
    """Forget the build cache; its layers go at the next gc unless images use them."""
    from pallet.build.cache import BuildCache
    from pallet.store import Store

    store = Store.open(obj.store_root)
    count = BuildCache(store).prune()
    report = store.gc()
    click.echo(
        f"removed {count} cache entries; freed {report.freed_bytes} bytes "
        f"({len(report.removed_blobs)} blobs)"
    )


def register(group: click.Group) -> None:
    group.add_command(build_cmd)
    group.add_command(builder_group)


def _ssh_agents(specs: tuple[str, ...]) -> tuple[SshAgent, ...]:
    if not specs:
        return ()  # the forwarding module is imported only when asked for
    from pallet.build.ssh_forward import SshAgent

    return tuple(SshAgent.parse(s) for s in specs)


def _cache_specs(specs: tuple[str, ...], flag: str) -> tuple[CacheSpec, ...]:
    if not specs:
        return ()
    from pallet.build.cache_io import CacheSpec

    return tuple(CacheSpec.parse(c, flag) for c in specs)
