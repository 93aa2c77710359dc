"""``ADD <git repository> <dest>``: which sources are git repositories (BuildKit's
``gitutil.ParseGitRef`` rules), resolving a ref to a commit and checking it out.

A source is a git repository when it is

- ``git://...`` or ``ssh://...``;
- ``http(s)://...`` whose path ends in ``.git`` (any other URL is a file download);
- scp-like ``user@host:path`` (``git@github.com:moby/buildkit.git``).

``#REF:SUBDIR`` after it picks a branch, tag or commit and a directory inside the
repository. No other scheme (``file://``, ``ext::``) is a git source, for submodules
either: ``GIT_ALLOW_PROTOCOL`` keeps the git CLI to these transports.

The ref is resolved with ``git ls-remote`` first, so the step's cache key is the commit
and a cached step never clones. The clone is shallow when the server allows it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from pallet.build.fsops import secure_join
from pallet.errors import BuildError

_SCHEMES = ("git://", "ssh://", "http://", "https://")
# user@host:path, as sshutil.ParseSCPStyleURL (no "//" after the colon: that is a URL)
_SCP = re.compile(r"^(?P<user>[\w.-]+)@(?P<host>[\w.-]+):(?P<path>(?!//).+)$")
_HEX = re.compile(r"^[0-9a-f]{7,64}$")
_TIMEOUT = 600
#: transports the git CLI may use, for the repository and its submodules
_PROTOCOLS = "git:ssh:http:https"


@dataclass(frozen=True)
class GitRef:
    remote: str  # what git clones, without the fragment
    ref: str | None  # branch, tag or commit; None: the remote's HEAD
    subdir: str  # "" for the whole work tree

    def shown(self) -> str:
        """The remote with any password left out, for messages."""
        parts = urllib.parse.urlsplit(self.remote)
        if parts.password is None:
            return self.remote
        netloc = f"{parts.username}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def parse_git_ref(source: str) -> GitRef | None:
    """The repository ``source`` names, or None if it is not a git source."""
    lowered = source.lower()
    if lowered.startswith(_SCHEMES):
        remote, _, fragment = source.partition("#")
        if lowered.startswith(("http://", "https://")):
            path = urllib.parse.urlsplit(remote).path
            if not path.endswith(".git"):
                return None
    elif _SCP.match(source.partition("#")[0]):
        remote, _, fragment = source.partition("#")
    else:
        return None
    ref, _, subdir = fragment.partition(":")
    return GitRef(remote, ref or None, subdir.strip("/"))


def _git_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key in ("PATH", "HOME", "SSH_AUTH_SOCK", "LANG", "http_proxy", "https_proxy")
        or key in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "no_proxy")
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",  # never wait for a password on the terminal
        GIT_ALLOW_PROTOCOL=_PROTOCOLS,
        GIT_SSH_COMMAND="ssh -o BatchMode=yes",
        GIT_CONFIG_NOSYSTEM="1",
    )
    return env


def _git(args: list[str], where: str, what: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=_git_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            umask=0o022,  # checked-out modes must not depend on the caller's umask
        )
    except FileNotFoundError:
        raise BuildError(f"{where}: ADD of a git repository needs the git CLI") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{where}: {what}: git took longer than {_TIMEOUT} s") from None
    if done.returncode != 0:
        # git's first lines say what failed; the rest are hints and advice
        lines = [
            line.strip().removeprefix("fatal: ").removeprefix("error: ")
            for line in done.stderr.splitlines()
            if line.strip() and not line.startswith("hint:")
        ]
        reason = " ".join(lines[:2]) if lines else f"git exit {done.returncode}"
        raise BuildError(f"{where}: {what}: {reason}")
    return done.stdout


def resolve_commit(ref: GitRef, where: str) -> str:
    """The commit ``ref`` names on the remote (``git ls-remote``); a ref no branch or
    tag matches is taken as a commit ID."""
    wanted = ref.ref or "HEAD"
    out = _git(["ls-remote", "--", ref.remote], where, f"cannot reach {ref.shown()}")
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    candidates = (
        [wanted]
        if wanted == "HEAD" or wanted.startswith("refs/")
        else [f"refs/tags/{wanted}", f"refs/heads/{wanted}"]
    )
    for name in candidates:
        for key in (f"{name}^{{}}", name):  # an annotated tag: the commit it points at
            if key in refs:
                return refs[key]
    if _HEX.match(wanted):
        return wanted
    raise BuildError(f"{where}: {ref.shown()}: no branch, tag or commit {wanted!r}")


def checkout(ref: GitRef, commit: str, scratch: Path, keep_git_dir: bool, where: str) -> Path:
    """Check ``commit`` of ``ref`` out under ``scratch``; the tree ADD copies (the
    subdirectory when the fragment names one), ``.git`` only with ``keep_git_dir``."""
    work = scratch / f"git-{commit[:16]}-{len(list(scratch.iterdir()))}"
    work.mkdir()
    what = f"cannot fetch {commit} from {ref.shown()}"
    _git(["init", "-q"], where, what, work)
    _git(["remote", "add", "origin", ref.remote], where, what, work)
    try:
        _git(["fetch", "-q", "--depth=1", "--no-tags", "origin", commit], where, what, work)
    except BuildError:
        # a server that refuses to send a commit by ID: fetch everything, then pick it
        _git(["fetch", "-q", "--tags", "origin"], where, what, work)
    _git(["checkout", "-q", "--detach", commit], where, what, work)
    if (work / ".gitmodules").exists():
        _git(["submodule", "update", "-q", "--init", "--recursive", "--depth=1"], where, what, work)
    if not keep_git_dir:
        shutil.rmtree(work / ".git")
        for module in work.rglob(".git"):  # submodules keep a .git file each
            if module.is_dir() and not module.is_symlink():
                shutil.rmtree(module)
            else:
                module.unlink()
    if not ref.subdir:
        return work
    tree = secure_join(work, ref.subdir)
    if not tree.is_dir():
        raise BuildError(f"{where}: {ref.shown()}: no directory {ref.subdir!r} at {commit}")
    return tree
