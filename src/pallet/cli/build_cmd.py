"""``pallet build`` and ``pallet builder prune``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pallet.cli.build_flags import BUILD_FLAGS
from pallet.cli.click_flags import click_flags
from pallet.cli.context import CliContext


@click.command("build")
@click.argument("context", type=click.Path(path_type=Path))
@click_flags(BUILD_FLAGS)
@click.pass_obj
def build_cmd(obj: CliContext, /, **kw: Any) -> None:
    """Build an image from a Dockerfile and a context directory."""
    from pallet.cli.build_exec import run_build

    run_build(obj.root, kw)


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
