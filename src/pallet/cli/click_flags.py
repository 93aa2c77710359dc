"""click options made from a flag table (``pallet.cli.flag_tables``), so the click
commands and the click-free fast path read the same flags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pallet.cli.flag_tables import Flag


def _type(flag: Flag) -> Any:
    if flag.choices:
        return click.Choice(flag.choices)
    if flag.bounds is not None:
        return click.IntRange(*flag.bounds)
    return flag.convert


def click_flags(flags: tuple[Flag, ...]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A decorator adding ``flags`` to a click command."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        for flag in reversed(flags):
            if flag.kind == "flag":
                option = click.option(*flag.names, flag.dest, is_flag=True, help=flag.help)
            else:
                option = click.option(
                    *flag.names,
                    flag.dest,
                    multiple=flag.kind == "multi",
                    default=None if flag.kind == "multi" else flag.default,
                    type=_type(flag),
                    show_default=flag.kind == "value" and flag.default is not None,
                    help=flag.help,
                )
            fn = option(fn)
        return fn

    return decorate
