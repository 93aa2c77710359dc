"""Pieces of the builder that need no root: path resolution, --chmod, --chown, flags."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pallet.build.fsops import Owner, parse_chmod, resolve_chown, secure_join
from pallet.build.options import Output, Secret
from pallet.build.sources import SourceTree, clean
from pallet.errors import BuildError, InvalidArgument


def test_secure_join_keeps_symlinks_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")  # absolute: resolved against root, not the host
    os.symlink("../../../..", root / "etc" / "up")
    assert secure_join(root, "/abs/passwd") == root / "etc" / "passwd"
    assert secure_join(root, "etc/up/x") == root / "x"
    assert secure_join(root, "../../x") == root / "x"
    assert secure_join(root, "/abs", follow_last=False) == root / "abs"


def test_secure_join_refuses_symlink_loops(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(BuildError, match="too many levels"):
        secure_join(tmp_path, "a/x")


@pytest.mark.parametrize(
    ("spec", "mode", "is_dir", "expected"),
    [
        ("0755", 0o600, False, 0o755),
        ("755", 0o600, True, 0o755),
        ("u+x", 0o644, False, 0o744),
        ("go-rwx", 0o777, False, 0o700),
        ("a+X", 0o644, True, 0o755),
        ("a+X", 0o644, False, 0o644),
        ("a+X", 0o744, False, 0o755),
        ("u=rw,g=r,o=", 0o777, False, 0o640),
        ("+t", 0o777, True, 0o1777),
        ("u+s", 0o755, False, 0o4755),
    ],
)
def test_chmod_octal_and_symbolic(spec: str, mode: int, is_dir: bool, expected: int) -> None:
    assert parse_chmod(spec)(mode, is_dir) == expected


def test_chmod_rejects_garbage() -> None:
    with pytest.raises(BuildError, match="--chmod=u\\+q"):
        parse_chmod("u+q")


def test_chown_names_numbers_and_defaults(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:2000::/app:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nstaff:x:50:\n")
    assert resolve_chown(tmp_path, "app") == Owner(1000, 1000)
    assert resolve_chown(tmp_path, "app:staff") == Owner(1000, 50)
    assert resolve_chown(tmp_path, "7:8") == Owner(7, 8)
    assert resolve_chown(tmp_path, "7") == Owner(7, 7)
    with pytest.raises(BuildError, match="'ghost'"):
        resolve_chown(tmp_path, "ghost")
    with pytest.raises(BuildError, match="group 'nogroup'"):
        resolve_chown(tmp_path, "app:nogroup")


def test_output_and_secret_flags(tmp_path: Path) -> None:
    assert Output.parse("type=oci,dest=/tmp/x.tar") == Output("oci", Path("/tmp/x.tar"))
    assert Output.parse("type=image") == Output("image", None)
    assert Output.parse("outdir") == Output("local", Path("outdir"))
    with pytest.raises(InvalidArgument, match="needs dest"):
        Output.parse("type=docker")
    with pytest.raises(InvalidArgument, match="unknown output type"):
        Output.parse("type=registry,dest=x")
    assert Secret.parse("id=tok,src=/run/t") == Secret("tok", Path("/run/t"), None)
    assert Secret.parse("id=TOKEN") == Secret("TOKEN", None, "TOKEN")
    with pytest.raises(InvalidArgument, match="unknown option"):
        Secret.parse("id=a,colour=red")


def test_source_paths_and_globs(tmp_path: Path) -> None:
    for rel in ("a.txt", "b.txt", "c.md", "sub/d.txt", "sub/deeper/e.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    tree = SourceTree(tmp_path)
    assert clean("/../x/./y/") == "x/y"
    assert tree.glob("*.txt") == ["a.txt", "b.txt"]  # * does not cross /
    assert tree.glob("sub/*.txt") == ["sub/d.txt"]
    assert tree.glob("*/d.txt") == ["sub/d.txt"]
    assert tree.glob("[^a].txt") == ["b.txt"]
    # the content digest ignores mtimes and follows contents
    before = tree.content_digest(["sub"])
    os.utime(tmp_path / "sub" / "d.txt", (1, 1))
    assert tree.content_digest(["sub"]) == before
    (tmp_path / "sub" / "d.txt").write_text("changed")
    assert tree.content_digest(["sub"]) != before


def test_progress_plain_tty_and_quiet() -> None:
    import io

    from pallet.build.progress import Progress

    for mode in ("plain", "tty", "quiet"):
        out = io.StringIO()
        p = Progress(mode, out)
        n = p.vertex("[stage-0 2/2] RUN echo hi")
        p.log(n, "hi")
        p.cached(n)
        text = out.getvalue()
        if mode == "quiet":
            assert text == ""
            continue
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()
        assert plain[0] == "#1 [stage-0 2/2] RUN echo hi"
        assert re.fullmatch(r"#1 \d+\.\d{3} hi", plain[1])
        assert plain[2] == "#1 CACHED"
        assert ("\x1b[" in text) == (mode == "tty")


def test_a_later_source_replaces_what_an_earlier_one_copied_into_a_new_directory(
    tmp_path: Path,
) -> None:
    """COPY a/ b/ /dest/: both trees land in directories the copy itself created; the
    second source's entries replace the first's, whatever their types."""
    from pallet.build.fsops import CopyOptions, TreeCopier

    for tree, files in {"a": {"d/x": "from a", "d/y/inner": "a dir"}, "b": {"d/x": "from b",
                        "d/y": "b file"}}.items():  # fmt: skip
        for rel, text in files.items():
            (tmp_path / tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / tree / rel).write_text(text)
    dest = tmp_path / "dest"
    dest.mkdir()
    copier = TreeCopier(CopyOptions(owner=Owner(os.getuid(), os.getgid())))
    for tree in ("a", "b"):
        src = SourceTree(tmp_path / tree)
        for rel, st in src.walk(""):
            if rel:
                copier.copy(str(src.path(rel)), st, f"{dest}/{rel}")
    copier.finish()
    assert (dest / "d" / "x").read_text() == "from b"
    assert (dest / "d" / "y").read_text() == "b file"
