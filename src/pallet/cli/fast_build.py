"""``pallet build`` without click: a rebuild that finds everything cached takes less time
than importing click, so ``main`` offers a build command line here first.

The parser is the fast path's (``pallet.cli.fast_path``) over ``build``'s own flag table
(``pallet.cli.build_flags``, which the click command reads too). Anything it does not
understand (``--help``, an unknown or malformed flag, a bad choice or number, no context
or more than one) returns None and the click command handles it, with its messages.
"""

from __future__ import annotations

from pathlib import Path

from pallet.cli.build_flags import BUILD_FLAGS
from pallet.cli.fast_path import _Command, _parse_args, _Unhandled, run_and_exit, split_root

_BUILD = _Command(BUILD_FLAGS, interspersed=True)  # click lets flags follow the context


def parse(argv: list[str]) -> tuple[Path | None, dict[str, object]] | None:
    """``(--root or None, keywords)`` for a ``build`` command line; None if click must
    handle it."""
    split = split_root(argv)
    if split is None:
        return None
    root, i = split
    if i >= len(argv) or argv[i] != "build":
        return None
    try:
        kw, positional = _parse_args(_BUILD, argv[i + 1 :])
    except _Unhandled:
        return None
    if len(positional) != 1 or positional[0] in ("", "-"):
        return None  # click's usage errors, and the rare "-"
    kw["context"] = Path(positional[0])
    return root, kw


def try_fast_build(argv: list[str], *, hard_exit: bool = False) -> None:
    """Build and exit if the fast path understands ``argv``; else return. ``hard_exit``
    (the console entry point only) skips the interpreter's teardown."""
    parsed = parse(argv)
    if parsed is None:
        return
    from pallet.cli.build_exec import run_build

    root, kw = parsed
    run_and_exit(lambda: run_build(root, kw), hard_exit=hard_exit)
