"""The click-free ``pallet run`` parser must read every command line exactly as the click
command does, and hand everything it does not understand to click."""

from __future__ import annotations

import click
import pytest

from pallet.cli.container_cmd import run_cmd
from pallet.cli.fast_run import parse
from pallet_cli import Pallet

AGREE = [
    ["busybox"],
    ["busybox", "true"],
    ["--rm", "busybox", "sh", "-c", "echo hi"],
    ["-d", "--name", "web", "busybox", "httpd", "-f"],
    ["-dit", "busybox"],
    ["-it", "--rm", "-e", "A=1", "-eB=2", "--env=C=3", "-e", "D", "busybox", "env"],
    ["-v", "/a:/b:ro", "--volume=/c:/d", "-vnamed:/e", "--mount", "type=tmpfs,dst=/t", "x"],
    ["--network", "none", "--net=host", "busybox"],
    ["--cpus", "1.5", "--pids-limit=20", "-m", "64m", "--memory=1g", "busybox"],
    ["-u", "1000:1000", "-w", "/tmp", "-h", "box", "--entrypoint", "", "busybox", "-x"],
    ["--cap-add", "NET_ADMIN", "--cap-drop=ALL", "--privileged", "--read-only", "busybox"],
    ["--security-opt", "no-new-privileges", "--init", "--restart", "on-failure:3", "busybox"],
    ["-p", "8080:80", "-p127.0.0.1:1:2/udp", "--add-host", "h:1.2.3.4", "--dns", "9.9.9.9", "i"],
    ["-l", "a=b", "--label", "c", "--tmpfs", "/run", "--env-file", "f", "busybox"],
    ["--name", "--", "busybox"],  # a value may look like an option
    ["--rm", "--", "busybox", "--rm"],  # after "--" and after the image: the command
    ["busybox", "-d", "--name", "x"],  # flags after the image belong to the command
    ["-ewith=equals=signs", "busybox"],
    ["-i", "-t", "-d", "img@sha256:" + "a" * 64],
]

TO_CLICK = [
    ["--help"],
    ["--rm"],  # no image
    ["--bogus", "busybox"],
    ["--network", "bogus", "busybox"],
    ["--cpus", "lots", "busybox"],
    ["--pids-limit", "1.5", "busybox"],
    ["--rm=yes", "busybox"],
    ["-x", "busybox"],
    ["--name"],
]


def _click_params(args: list[str]) -> dict[str, object]:
    ctx = run_cmd.make_context("run", list(args))
    return dict(ctx.params)


@pytest.mark.parametrize("args", AGREE, ids=" ".join)
def test_fast_parser_agrees_with_click(args: list[str]) -> None:
    parsed = parse(["run", *args])
    assert parsed is not None, "the fast path should handle this command line"
    root, kw = parsed
    assert root is None
    assert kw == _click_params(args)


@pytest.mark.parametrize("args", TO_CLICK, ids=" ".join)
def test_what_the_fast_parser_refuses_click_handles(args: list[str]) -> None:
    assert parse(["run", *args]) is None
    if args == ["--help"]:
        return
    with pytest.raises(click.UsageError):
        _click_params(args)


def test_an_image_named_dash_goes_to_click() -> None:
    # rare enough to leave to click, which takes it as the image name
    assert parse(["run", "-", "true"]) is None
    assert _click_params(["-", "true"])["image"] == "-"


def test_global_root_before_run(tmp_path) -> None:
    assert parse(["--root", str(tmp_path), "run", "busybox"]) == (
        tmp_path,
        _click_params(["busybox"]),
    )
    assert parse([f"--root={tmp_path}", "run", "-d", "busybox"]) is not None
    (tmp_path / "file").write_text("")
    assert parse(["--root", str(tmp_path / "file"), "run", "busybox"]) is None
    assert parse(["--debug", "run", "busybox"]) is None
    assert parse(["ps"]) is None


def test_cli_run_through_both_paths_behaves_the_same(tmp_path) -> None:
    """Bad input through the real entry point: the fast path's errors read as click's
    path's do (one line, exit 125), and click's own usage errors still come out."""
    pallet = Pallet(tmp_path / "root")
    missing = pallet("run", "--rm", "nosuchimage", check=False)
    assert missing.returncode == 125
    assert missing.stderr.strip().splitlines() == ["error: No such image: nosuchimage:latest"]
    bad = pallet("run", "--network", "bogus", "nosuchimage", check=False)
    assert bad.returncode == 125  # docker's code for a bad flag
    assert bad.stderr.splitlines() == [
        "error: Invalid value for '--network' / '--net': 'bogus' is not one of 'none', "
        "'host', 'private', 'bridge', 'default'.",
        "See 'pallet run --help'.",
    ]
    helped = pallet("run", "--help")
    assert "--publish" in helped.stdout and "Usage: pallet run" in helped.stdout
