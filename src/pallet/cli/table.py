"""Plain tables laid out like docker's (Go tabwriter: minwidth 10, padding 3)."""

from __future__ import annotations

from collections.abc import Sequence

import click


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], *, min_width: int = 10) -> str:
    columns = list(zip(*([headers, *rows]), strict=True)) if rows else [(h,) for h in headers]
    widths = [max(min_width, *(len(cell) + 3 for cell in col)) for col in columns]
    lines = []
    for row in [headers, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append(("".join(cells) + row[-1]).rstrip())
    return "\n".join(lines)


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    click.echo(render(headers, rows))


def ellipsis(text: str, width: int) -> str:
    """Cut to ``width`` characters with a trailing ``…``, as docker's CLI does."""
    return text if len(text) <= width else text[: width - 1] + "…"
