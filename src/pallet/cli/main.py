"""The ``pallet`` entry point.

It imports nothing heavy: ``pallet run`` and ``pallet push`` in their common forms start
through the click-free fast path (``pallet.cli.fast_path``), ``pallet build`` through
``pallet.cli.fast_build``; every other command line goes to the click group in
``pallet.cli.app``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "run" in args[:3] or "push" in args[:3]:
        from pallet.cli.fast_path import try_fast

        try_fast(args, hard_exit=argv is None)
    elif "build" in args[:3]:
        from pallet.cli.fast_build import try_fast_build

        try_fast_build(args, hard_exit=argv is None)
    from pallet.cli.app import main as click_main

    click_main(argv)
