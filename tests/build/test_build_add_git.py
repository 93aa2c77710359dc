"""``ADD <git repository> <dest>`` through the real CLI, from a bare repository served
by ``git daemon`` on 127.0.0.1 (BuildKit takes git://, ssh://, http(s)://...git and
user@host:path as repositories; file:// is none of them)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from build_kit import describe, pallet_cli

from pallet.build.git_source import GitRef, parse_git_ref
from pallet.store import Store

MakeContext = Callable[..., Path]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass
class Repo:
    url: str  # git://127.0.0.1:PORT/repo.git
    work: Path  # a clone to commit and push from

    def commit(self, files: dict[str, str], message: str) -> str:
        for rel, text in files.items():
            (self.work / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.work / rel).write_text(text)
        _git("add", "-A", cwd=self.work)
        _git("commit", "-q", "-m", message, cwd=self.work)
        _git("push", "-q", "origin", "HEAD:main", "--tags", cwd=self.work)
        return _git("rev-parse", "HEAD", cwd=self.work)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    if shutil.which("git") is None:
        pytest.skip("LOUD SKIP: the git CLI is not installed")
    base = tmp_path_factory.mktemp("git")
    bare = base / "srv" / "repo.git"
    bare.mkdir(parents=True)
    _git("init", "-q", "--bare", "-b", "main", cwd=bare)
    work = base / "work"
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    _git("remote", "add", "origin", str(bare), cwd=work)
    (work / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(work / "run.sh", 0o755)
    os.symlink("run.sh", work / "link")
    first = Repo("", work)
    first.commit({"README": "one\n", "sub/inner.txt": "inner\n"}, "first")
    _git("tag", "-a", "v1", "-m", "v1", cwd=work)
    first.commit({"README": "two\n"}, "second")
    port = _free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
         f"--port={port}", f"--base-path={base / 'srv'}", str(base / "srv")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or daemon.poll() is not None:
                daemon.kill()
                pytest.fail("git daemon did not start")
            time.sleep(0.05)
    yield Repo(f"git://127.0.0.1:{port}/repo.git", work)
    daemon.terminate()
    daemon.wait(10)


def _build(store: Store, ctx: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return pallet_cli(store.root, "build", "--progress", "plain", *args, str(ctx))


def _export(store: Store, ctx: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    return _build(store, ctx, "-o", f"type=local,dest={dest}")


@pytest.mark.root
@pytest.mark.overlay
@pytest.mark.runtime
@pytest.mark.peer
def test_add_git_work_tree(
    store: Store, repo: Repo, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = make_context(
        {},
        f"FROM scratch\n"
        f"ADD {repo.url} /src\n"
        f"ADD --keep-git-dir=true {repo.url}#v1 /old/\n"
        f"ADD --chown=12:34 {repo.url}#main:sub /sub\n",
    )
    built = _export(store, ctx, tmp_path / "fs")
    assert built.returncode == 0, built.stderr
    fs = tmp_path / "fs"
    # HEAD's work tree, without .git; files root's, modes and symlinks as committed
    assert (fs / "src/README").read_text() == "two\n"
    assert not (fs / "src/.git").exists()
    assert describe(fs / "src/run.sh") == ("file", 0o755, 0, 0)
    assert describe(fs / "src/README")[1:] == (0o644, 0, 0)
    assert os.readlink(fs / "src/link") == "run.sh"
    # a tag (annotated) and --keep-git-dir: the old commit, with its repository
    assert (fs / "old/README").read_text() == "one\n"
    head = _git("rev-parse", "HEAD", cwd=fs / "old")
    assert head == _git("rev-parse", "v1^{commit}", cwd=repo.work)
    # #ref:subdir copies that directory's contents, --chown applies
    assert sorted(os.listdir(fs / "sub")) == ["inner.txt"]
    assert describe(fs / "sub/inner.txt")[2:] == (12, 34)


@pytest.mark.root
@pytest.mark.overlay
@pytest.mark.runtime
@pytest.mark.peer
def test_add_git_cache_follows_the_commit(
    store: Store, repo: Repo, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = make_context({}, f"FROM scratch\nADD {repo.url}#main /src/\n")
    first = _export(store, ctx, tmp_path / "one")
    assert first.returncode == 0, first.stderr
    again = _build(store, ctx)
    assert again.returncode == 0 and "CACHED" in again.stderr, again.stderr
    repo.commit({"README": "three\n"}, "third")  # the branch moves: the step reruns
    moved = _export(store, ctx, tmp_path / "two")
    assert moved.returncode == 0, moved.stderr
    assert "CACHED" not in moved.stderr
    assert (tmp_path / "two/src/README").read_text() == "three\n"


@pytest.mark.root
@pytest.mark.overlay
@pytest.mark.runtime
@pytest.mark.peer
def test_git_source_faults(store: Store, repo: Repo, make_context: MakeContext) -> None:
    nowhere = f"git://127.0.0.1:{_free_port()}/nope.git"
    cases = {
        f"FROM scratch\nADD {nowhere} /x\n": f"cannot reach {nowhere}",
        f"FROM scratch\nADD {repo.url}#no-such-branch /x\n": "no branch, tag or commit",
        f"FROM scratch\nADD {repo.url}#main:missing /x\n": "no directory 'missing'",
        f"FROM scratch\nCOPY {repo.url} /x\n": "COPY cannot read a git repository",
    }
    for dockerfile, message in cases.items():
        built = _build(store, make_context({}, dockerfile))
        assert built.returncode != 0
        last = built.stderr.strip().splitlines()[-1]
        assert last.startswith("error: [stage-0 2/2] ") and message in last, built.stderr
        # the progress shows the failed step too
        errors = [line for line in built.stderr.splitlines() if line.startswith("#2 ERROR: ")]
        assert len(errors) == 1 and message in errors[0], built.stderr


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("https://example.com/foo.git", GitRef("https://example.com/foo.git", None, "")),
        ("https://example.com/foo.git#v1:a/b", GitRef("https://example.com/foo.git", "v1", "a/b")),
        ("git://example.com/foo#main", GitRef("git://example.com/foo", "main", "")),
        ("ssh://git@example.com/foo", GitRef("ssh://git@example.com/foo", None, "")),
        ("git@github.com:moby/buildkit.git", GitRef("git@github.com:moby/buildkit.git", None, "")),
        ("https://example.com/foo", None),  # a file download
        ("https://example.com/foo.git/", None),
        ("file:///srv/repo.git", None),
        ("github.com/moby/buildkit", None),  # looks like a local path: BuildKit agrees
        ("./git@host:x", None),
    ],
)
def test_which_sources_are_git_repositories(source: str, expected: GitRef | None) -> None:
    assert parse_git_ref(source) == expected


def test_messages_hide_passwords() -> None:
    ref = parse_git_ref("https://bob:hunter2@example.com:8443/x.git")
    assert ref is not None and ref.shown() == "https://bob:***@example.com:8443/x.git"
