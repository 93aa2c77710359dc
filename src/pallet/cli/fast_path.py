"""``pallet run`` and ``pallet push`` without click: the fast path for the commands whose
start-up users feel.

Importing click costs about as much as starting a small container, so ``main`` first
offers the arguments to :func:`parse`. It understands the forms users type (``--flag``,
``--flag value``, ``--flag=value``, ``-e V``, ``-eV``, clusters such as ``-dit``, ``--``,
and a leading ``--root``) from the same flag tables as the click commands
(``pallet.cli.flag_tables``). Anything else (``--help``, an unknown or malformed flag, a
bad choice or number) returns None and the click command handles it, with its messages.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pallet.cli.flag_tables import PUSH_FLAGS, RUN_FLAGS, Flag, defaults

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import NoReturn

if TYPE_CHECKING:
    from collections.abc import Callable


class _Unhandled(Exception):
    """The arguments need the click command (help, errors, rare forms)."""


class _Command:
    """A command's flags, and how its positional arguments are named."""

    def __init__(self, flags: tuple[Flag, ...], interspersed: bool) -> None:
        self.flags = flags
        self.by_name = {name: flag for flag in flags for name in flag.names}
        # run: flags stop at the image (the rest is the container's command);
        # push: flags may come after its one argument, as click allows
        self.interspersed = interspersed


_COMMANDS = {"run": _Command(RUN_FLAGS, interspersed=False), "push": _Command(PUSH_FLAGS, True)}


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
    if flag.bounds is not None and not flag.bounds[0] <= int(value) <= flag.bounds[1]:
        raise _Unhandled
    if flag.kind == "multi":
        kw[flag.dest] = (*kw[flag.dest], converted)  # type: ignore[misc]
    else:
        kw[flag.dest] = converted


def _parse_args(command: _Command, args: list[str]) -> tuple[dict[str, object], list[str]]:
    """(flag keywords, positional arguments) of one command line."""
    kw = defaults(command.flags)
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional += args[i:]
            break
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            flag = command.by_name.get(name)
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
                flag = command.by_name.get("-" + arg[pos])
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
        positional.append(arg)
        if not command.interspersed:
            positional += args[i:]
            break
    return kw, positional


def _parse_command(name: str, args: list[str]) -> dict[str, object]:
    kw, positional = _parse_args(_COMMANDS[name], args)
    if not positional or positional[0] == "-":
        raise _Unhandled  # no argument (click's usage error), or "-" (rare: click decides)
    if name == "run":
        kw["image"], kw["command"] = positional[0], tuple(positional[1:])
    else:
        if len(positional) != 1:
            raise _Unhandled
        kw["ref"] = positional[0]
    return kw


def split_root(argv: list[str]) -> tuple[Path | None, int] | None:
    """The global ``--root`` options that lead a command line: ``(root or None, index of the
    command)``; None where click must answer (a bad or missing value, a file as root)."""
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
    return root, i


def parse(argv: list[str]) -> tuple[str, Path | None, dict[str, object]] | None:
    """``(command, --root or None, keywords)`` for a ``run`` or ``push`` command line; None
    if click must handle it."""
    split = split_root(argv)
    if split is None:
        return None
    root, i = split
    if i >= len(argv) or argv[i] not in _COMMANDS:
        return None
    try:
        return argv[i], root, _parse_command(argv[i], argv[i + 1 :])
    except _Unhandled:
        return None


def try_fast(argv: list[str], *, hard_exit: bool = False) -> None:
    """Run the command and exit if the fast path understands ``argv``; else return.
    ``hard_exit`` (the console entry point only, never a caller in the same process)
    skips the interpreter's teardown."""
    parsed = parse(argv)
    if parsed is None:
        return
    command, root, kw = parsed

    def action() -> None:
        if command == "run":
            from pallet.cli.run_exec import run_container

            run_container(root, kw)
        else:
            from pallet.cli.push_exec import push_refs

            push_refs(root, kw)

    run_and_exit(action, hard_exit=hard_exit)


def run_and_exit(action: Callable[[], None], *, hard_exit: bool) -> NoReturn:
    """Run a parsed command and exit with its status: ``error: ...`` and the error's exit
    code for a PalletError, 130 for Ctrl-C, as the click commands do."""
    from pallet.errors import PalletError

    code = 0
    try:
        action()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except PalletError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    if hard_exit:
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown (~15 ms of freeing modules, a tenth of a
    short run): everything this command wrote is committed or closed by now; only the
    standard streams may hold buffered bytes, and the dataclass code cache its new entries
    (an atexit hook, which os._exit skips)."""
    from pallet import _dataclass_code

    _dataclass_code.save()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
