"""The ``pallet`` click group: global options, error rendering, and the command groups."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pallet.cli.commands import LazyGroup
from pallet.cli.context import CliContext
from pallet.errors import PalletError


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Store root (default: $PALLET_ROOT, /var/lib/pallet as root, else ~/.local/share/pallet).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="pallet")
@click.pass_context
def cli(ctx: click.Context, root: Path | None, debug: bool) -> None:
    """Docker images end to end, daemonless."""
    ctx.obj = CliContext(root=root, debug=debug)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="pallet", standalone_mode=False)
    except PalletError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # a bare group: its help, as before
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        # docker's form for a bad flag or argument: the fault on one line, where to read
        # more, and 125 (the CLI's own failure), not click's usage block and 2
        command = exc.ctx.command_path if exc.ctx is not None else "pallet"
        click.echo(f"error: {exc.format_message()}", err=True)
        click.echo(f"See '{command} --help'.", err=True)
        sys.exit(125)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # Output piped into `head` and closed: quiet exit, as coreutils do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
