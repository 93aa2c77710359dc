"""Where every command module is attached to the ``pallet`` group.

Modules are imported only when one of their commands is used, so ``pallet run`` does not
pay for the registry server's or the builder's imports. ``LAZY`` names the module of each
top-level command; a name not listed there makes every module register (``--help`` does too).
"""

from __future__ import annotations

import importlib

import click

#: every command module, each with a ``register(group)`` function
MODULES = (
    "pallet.cli.images_cmd",  # images, inspect, history, tag, rmi, import, bootstrap, system, image
    "pallet.cli.container_cmd",  # run, create, start, ps, rm, logs
    "pallet.cli.container_life_cmd",  # stop kill restart wait rename exec diff cp export commit
    "pallet.cli.volume_cmd",  # volume
    "pallet.cli.registry_cmd",  # registry
    "pallet.cli.transfer_cmd",  # save, load, copy
    "pallet.cli.registry_client_cmd",  # pull, push, login, logout
    "pallet.cli.build_cmd",  # build, builder
)

LAZY = {
    **dict.fromkeys(
        ("images", "inspect", "history", "tag", "rmi", "import", "bootstrap", "system", "image"),
        "pallet.cli.images_cmd",
    ),
    **dict.fromkeys(
        ("run", "create", "start", "ps", "rm", "logs", "port"), "pallet.cli.container_cmd"
    ),
    **dict.fromkeys(
        (
            *("stop", "kill", "restart", "wait", "rename", "exec", "container", "stats"),
            *("diff", "cp", "export", "commit"),
        ),
        "pallet.cli.container_life_cmd",
    ),
    "volume": "pallet.cli.volume_cmd",
    "registry": "pallet.cli.registry_cmd",
    **dict.fromkeys(("save", "load", "copy"), "pallet.cli.transfer_cmd"),
    **dict.fromkeys(("pull", "push", "login", "logout"), "pallet.cli.registry_client_cmd"),
    **dict.fromkeys(("build", "builder"), "pallet.cli.build_cmd"),
}


def register_module(group: click.Group, module: str) -> None:
    importlib.import_module(module).register(group)


def register(group: click.Group) -> None:
    """Add every command to ``group``."""
    for module in MODULES:
        register_module(group, module)


class LazyGroup(click.Group):
    """A click group that imports a command's module on first use."""

    _all_loaded = False

    def _load_all(self) -> None:
        if not self._all_loaded:
            register(self)
            self._all_loaded = True

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            module = LAZY.get(cmd_name)
            if module is not None:
                register_module(self, module)
            if cmd_name not in self.commands:
                self._load_all()
        return self.commands.get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return sorted(self.commands)
