"""``pallet run`` without click: the fast path for the command whose start-up users feel.

Importing click costs about as much as starting a small container, so ``main`` first
offers the arguments to :func:`parse`. It understands the forms docker users type
(``--flag``, ``--flag value``, ``--flag=value``, ``-e V``, ``-eV``, clusters such as
``-dit``, ``--``, and a leading ``--root``) from the same flag table as the click command.
Anything else (``--help``, an unknown or malformed flag, a bad choice or number) returns
None and the click command handles it, with click's messages.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

from pallet.cli.run_flags import RUN_FLAGS, Flag, defaults

_BY_NAME: dict[str, Flag] = {name: flag for flag in RUN_FLAGS for name in flag.names}


class _Unhandled(Exception):
    """The arguments need the click command (help, errors, rare forms)."""


def _store(kw: dict[str, object], flag: Flag, value: str | None) -> None:
    if flag.kind == "flag":
        if value is not None:
            raise _Unhandled  # "--rm=x": click's error
        kw[flag.dest] = True
        return
    if value is None:
        raise _Unhandled
    converted: object = value
    if flag.convert is not str:
        try:
            converted = flag.convert(value)
        except ValueError:
            raise _Unhandled from None
    if flag.choices and value not in flag.choices:
        raise _Unhandled
    if flag.kind == "multi":
        kw[flag.dest] = (*kw[flag.dest], converted)  # type: ignore[misc]
    else:
        kw[flag.dest] = converted


def _parse_run(args: list[str]) -> dict[str, object]:
    kw = defaults(RUN_FLAGS)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            flag = _BY_NAME.get(name)
            if flag is None:
                raise _Unhandled
            if eq:
                _store(kw, flag, inline)
            elif flag.kind == "flag":
                _store(kw, flag, None)
            else:
                _store(kw, flag, args[i] if i < len(args) else None)
                i += 1
            continue
        if arg.startswith("-") and arg != "-":
            for pos in range(1, len(arg)):
                flag = _BY_NAME.get("-" + arg[pos])
                if flag is None:
                    raise _Unhandled
                if flag.kind == "flag":
                    _store(kw, flag, None)
                    continue
                rest = arg[pos + 1 :]
                if rest:
                    _store(kw, flag, rest)
                else:
                    _store(kw, flag, args[i] if i < len(args) else None)
                    i += 1
                break
            continue
        i -= 1
        break
    if i >= len(args) or args[i] == "-":
        raise _Unhandled  # no image: click's usage error
    kw["image"] = args[i]
    kw["command"] = tuple(args[i + 1 :])
    return kw


def parse(argv: list[str]) -> tuple[Path | None, dict[str, object]] | None:
    """``(--root or None, run keywords)`` for a ``run`` command line; None if click must
    handle it."""
    root: Path | None = None
    i = 0
    while i < len(argv) and argv[i].startswith("--root"):
        if argv[i] == "--root" and i + 1 < len(argv):
            root, i = Path(argv[i + 1]), i + 2
        elif argv[i].startswith("--root="):
            root, i = Path(argv[i][len("--root=") :]), i + 1
        else:
            return None
        if os.path.isfile(root):
            return None  # click's "is a file" error
    if i >= len(argv) or argv[i] != "run":
        return None
    try:
        return root, _parse_run(argv[i + 1 :])
    except _Unhandled:
        return None


def try_run(argv: list[str]) -> None:
    """Run the container and exit if the fast path understands ``argv``; else return."""
    parsed = parse(argv)
    if parsed is None:
        return
    from pallet.errors import PalletError

    root, kw = parsed
    code = 0
    try:
        from pallet.cli.run_exec import run_container

        run_container(root, kw)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except PalletError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown (~15 ms of freeing modules, a tenth of a
    short run): everything this command wrote is committed or closed by now; only the
    standard streams may hold buffered bytes."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
