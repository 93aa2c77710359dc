"""The common ``{{.A.B}}`` / ``{{json .A}}`` subset of docker's ``--format`` templates.

Values print as Go's ``fmt`` prints the decoded JSON docker's templates walk: ``true``,
``[a b]``, ``map[k:v]``, so scripts written against ``docker inspect -f`` read the same text.
"""

from __future__ import annotations

import json
from typing import Any

from pallet.errors import InvalidArgument


def render(doc: dict[str, Any], fmt: str) -> str:
    """``fmt`` with each ``{{.Path}}`` or ``{{json .Path}}`` action replaced by that field
    of ``doc`` and the text between kept: ``'{{.Name}} exited {{.State.ExitCode}}'``."""
    out: list[str] = []
    rest = fmt
    while "{{" in rest:
        before, _, after = rest.partition("{{")
        action, end, rest = after.partition("}}")
        if not end:
            raise InvalidArgument(f"unsupported --format {fmt!r}: unclosed action")
        out += [before, _action(doc, action, fmt)]
    if "}}" in rest:
        raise InvalidArgument(f"unsupported --format {fmt!r}: unopened action")
    out.append(rest)
    return "".join(out)


def render_field(doc: dict[str, Any], fmt: str) -> str:
    """One field of ``doc`` picked by a ``{{.Path}}`` or ``{{json .Path}}`` template (or
    several, with text between: see :func:`render`)."""
    if "{{" not in fmt:
        raise InvalidArgument(f"unsupported --format {fmt!r}")
    return render(doc, fmt.strip())


def _action(doc: dict[str, Any], action: str, fmt: str) -> str:
    expr = action.strip()
    as_json = expr.startswith("json ")
    if as_json:
        expr = expr[5:].strip()
    if not expr.startswith("."):
        raise InvalidArgument(f"unsupported --format {fmt!r}")
    value: Any = doc
    for part in filter(None, expr[1:].split(".")):
        if not isinstance(value, dict) or part not in value:
            raise InvalidArgument(f"template: no field {part!r} in {fmt!r}")
        value = value[part]
    if as_json:
        return json.dumps(value)
    return "" if value is None else go_format(value)


def go_format(value: Any) -> str:
    """``value`` as Go's ``%v`` prints it (maps with their keys sorted, as Go does)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{k}:{go_format(value[k])}" for k in sorted(value))
        return "map[" + " ".join(items) + "]"
    if value is None:
        return "<nil>"
    return str(value)
