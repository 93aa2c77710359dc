"""The click-free parser of ``pallet build`` must read every command line exactly as the
click command does, and hand everything it does not understand to click."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from pallet.cli.build_cmd import build_cmd
from pallet.cli.fast_build import parse

AGREE = [
    ["."],
    ["-q", "-t", "rb:1", "/tmp/ctx"],
    ["-t", "a:1", "--tag=b:2", "-tc:3", "ctx"],
    ["ctx", "-t", "after:1", "--no-cache"],  # click takes flags after the context too
    ["-f", "Dockerfile.dev", "--file=-", "ctx"],  # the last one wins
    ["--build-arg", "A=1", "--build-arg=B", "--label", "l=v", "--target", "final", "ctx"],
    ["--platform", "linux/amd64", "--pull", "--no-cache-filter", "base", "ctx"],
    ["--secret", "id=s,src=f", "--ssh", "default", "--allow", "security.insecure", "ctx"],
    ["--cache-from", "type=local,src=d", "--cache-to=type=local,dest=e", "ctx"],
    ["--compression", "zstd", "--compression-level", "3", "--reproducible", "ctx"],
    ["-o", "type=oci,dest=x.tar", "--output=type=local,dest=out", "--push", "-t", "r/i", "c"],
    ["--iidfile", "id.txt", "--progress", "plain", "ctx"],
    ["-qt", "clustered:1", "ctx"],
    ["--progress=quiet", "--", "-ctx-with-dash"],
]

TO_CLICK = [
    ["--help"],
    [],  # no context
    ["a", "b"],  # two
    ["--bogus", "ctx"],
    ["--compression", "lz4", "ctx"],
    ["--compression-level", "high", "ctx"],
    ["--progress", "fancy", "ctx"],
    ["--no-cache=yes", "ctx"],
    ["-x", "ctx"],
    ["-t"],
]


def _click_params(args: list[str]) -> dict[str, object]:
    return dict(build_cmd.make_context("build", list(args)).params)


@pytest.mark.parametrize("args", AGREE, ids=" ".join)
def test_fast_build_parser_agrees_with_click(args: list[str]) -> None:
    parsed = parse(["build", *args])
    assert parsed is not None, "the fast path should handle this command line"
    root, kw = parsed
    assert root is None
    assert kw == _click_params(args)


@pytest.mark.parametrize("args", TO_CLICK, ids=lambda a: " ".join(a) or "(none)")
def test_lines_the_fast_build_parser_refuses_go_to_click(args: list[str]) -> None:
    assert parse(["build", *args]) is None
    with pytest.raises((click.UsageError, click.exceptions.Exit)):
        build_cmd.make_context("build", list(args))


def test_root_and_other_commands(tmp_path: Path) -> None:
    assert parse(["--root", str(tmp_path), "build", "ctx"]) == (
        tmp_path,
        _click_params(["ctx"]),
    )
    assert parse([f"--root={tmp_path}", "build", "-q", "ctx"]) is not None
    (tmp_path / "file").write_text("")
    assert parse(["--root", str(tmp_path / "file"), "build", "ctx"]) is None
    assert parse(["--debug", "build", "ctx"]) is None  # tracebacks: click's path
    assert parse(["builder", "prune"]) is None
    assert parse(["build", "-"]) is None  # context from stdin: click's path
