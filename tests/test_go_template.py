"""docker's --format subset prints values as Go's fmt does, so scripts parse the same text."""

from __future__ import annotations

import pytest

from pallet.cli.go_template import render_field
from pallet.errors import InvalidArgument

DOC = {
    "State": {"Running": False, "Pid": 0, "Status": "exited"},
    "Config": {"Cmd": ["sh", "-c", "echo hi"], "Labels": {"b": "2", "a": "1"}, "Entrypoint": None},
}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("{{.State.Running}}", "false"),
        ("{{.State.Pid}}", "0"),
        ("{{ .State.Status }}", "exited"),
        ("{{.Config.Cmd}}", "[sh -c echo hi]"),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),
        ("{{.Config.Entrypoint}}", ""),
        ("{{json .Config.Cmd}}", '["sh", "-c", "echo hi"]'),
        ("{{json .State.Running}}", "false"),
        ("{{.State.Status}} {{.State.Pid}}", "exited 0"),
        ("pid={{.State.Pid}}, cmd={{json .Config.Cmd}}.", 'pid=0, cmd=["sh", "-c", "echo hi"].'),
    ],
)
def test_fields_print_as_go_prints_them(fmt: str, expected: str) -> None:
    assert render_field(DOC, fmt) == expected


@pytest.mark.parametrize(
    "fmt",
    [
        "{{.State.Nope}}",
        "State",
        "{{range .State}}",
        "{{.Config.Cmd.x}}",
        "{{.State.Pid}} {{.State",
        "{{.State.Pid}} }}",
    ],
)
def test_bad_templates_name_the_template(fmt: str) -> None:
    with pytest.raises(InvalidArgument, match=r"format|template"):
        render_field(DOC, fmt)
