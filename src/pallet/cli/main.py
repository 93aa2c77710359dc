"""The ``pallet`` entry point.

It imports nothing heavy: ``pallet run`` and ``pallet push`` in their common forms start
through the click-free fast path (``pallet.cli.fast_path``), ``pallet build`` through
``pallet.cli.fast_build``; every other command line goes to the click group in
``pallet.cli.app``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    import gc

    # Start-up allocates ~100k long-lived objects (modules, classes, functions): with the
    # default threshold of 700 the collector runs ~200 times over them for nothing, 4% of
    # a short command. Garbage cycles are still collected, in larger batches.
    gc.set_threshold(50_000)
    args = sys.argv[1:] if argv is None else argv
    if "run" in args[:3] or "push" in args[:3]:
        from pallet.cli.fast_path import try_fast

        try_fast(args, hard_exit=argv is None)
    elif "build" in args[:3]:
        from pallet.cli.fast_build import try_fast_build

        try_fast_build(args, hard_exit=argv is None)
    from pallet.cli.app import main as click_main

    click_main(argv)
