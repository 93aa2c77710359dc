"""The ``pallet`` entry point.

It imports nothing heavy: ``pallet run`` in its common forms starts through the click-free
fast path (``pallet.cli.fast_run``); every other command line goes to the click group in
``pallet.cli.app``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "run" in args[:3]:
        from pallet.cli.fast_run import try_run

        try_run(args)
    from pallet.cli.app import main as click_main

    click_main(argv)
