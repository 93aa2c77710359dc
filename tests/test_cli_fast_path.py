"""The click-free parser of ``pallet run`` and ``pallet push`` must read every command line
exactly as the click commands do, and hand everything it does not understand to click."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from pallet.cli.container_cmd import run_cmd
from pallet.cli.fast_path import parse
from pallet.cli.registry_client_cmd import push_cmd
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
    command, root, kw = parsed
    assert (command, root) == ("run", None)
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
        "run",
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


PUSH_AGREE = [
    ["localhost:5000/a:1"],
    ["-q", "localhost:5000/a:1"],
    ["localhost:5000/a:1", "-q"],  # click lets push's flags follow its argument
    ["-aq", "localhost:5000/a"],
    ["--all-tags", "--max-concurrent-uploads", "8", "localhost:5000/a"],
    ["--max-concurrent-uploads=1", "--quiet", "--", "localhost:5000/a:1"],
]
PUSH_TO_CLICK = [
    [],
    ["a", "b"],
    ["--max-concurrent-uploads", "0", "a"],  # out of click's IntRange(1, 32)
    ["--max-concurrent-uploads", "33", "a"],
    ["--max-concurrent-uploads", "x", "a"],
    ["--bogus", "a"],
]


@pytest.mark.parametrize("args", PUSH_AGREE, ids=" ".join)
def test_fast_push_parser_agrees_with_click(args: list[str]) -> None:
    parsed = parse(["push", *args])
    assert parsed is not None
    command, root, kw = parsed
    assert (command, root) == ("push", None)
    assert kw == dict(push_cmd.make_context("push", list(args)).params)


@pytest.mark.parametrize("args", PUSH_TO_CLICK, ids=" ".join)
def test_push_lines_the_fast_parser_refuses_are_click_errors(args: list[str]) -> None:
    assert parse(["push", *args]) is None
    with pytest.raises(click.UsageError):
        push_cmd.make_context("push", list(args))


def test_cli_push_fast_path_errors(tmp_path) -> None:
    """Through the real entry point: the fast path's error is one line and exit 1, as the
    click command's was; a bad flag still gets click's message, in docker's form."""
    pallet = Pallet(tmp_path / "root")
    missing = pallet("push", "-q", "127.0.0.1:9/nosuch:1", check=False)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        "error: no image named '127.0.0.1:9/nosuch:1' in the store"
    ]
    bad = pallet("push", "--max-concurrent-uploads", "0", "x", check=False)
    assert bad.returncode == 125
    assert bad.stderr.splitlines()[0].startswith(
        "error: Invalid value for '--max-concurrent-uploads'"
    )


def test_which_finds_what_shutil_which_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pallet.paths.which (kept free of shutil's imports) agrees with shutil.which."""
    import shutil

    from pallet.paths import which

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "tool").write_text("#!/bin/sh\n")  # not executable: skipped
    (second / "tool").write_text("#!/bin/sh\n")
    (second / "tool").chmod(0o755)
    (first / "dir-not-file").mkdir()
    monkeypatch.setenv("PATH", f"{first}:{second}")
    for name in ("tool", "dir-not-file", "missing", str(second / "tool"), str(first / "tool")):
        assert which(name) == shutil.which(name), name
    assert which("tool") == str(second / "tool")
