"""Where every command module is attached to the ``pallet`` group."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add every command to ``group``. New command modules are listed here."""
    from pallet.cli import (
        images_cmd,
    )  # images, inspect, history, tag, rmi, import, bootstrap, system

    images_cmd.register(group)
    from pallet.cli import container_cmd  # run, ps, rm, logs

    container_cmd.register(group)
    from pallet.cli.registry_cmd import registry

    group.add_command(registry)
    from pallet.cli import transfer_cmd  # save, load, copy

    transfer_cmd.register(group)
    from pallet.cli import registry_client_cmd  # pull, push, login, logout

    registry_client_cmd.register(group)
    from pallet.cli import build_cmd  # build, builder prune

    build_cmd.register(group)
