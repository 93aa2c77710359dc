"""COPY and ADD into a step's root filesystem, with BuildKit's rules.

Sources are matched first (:func:`match_sources`), so the cache key can be computed
from their content before anything is written. Then :func:`execute_copy` writes into the
merged overlay mount of the step: overlayfs copies the parents of new entries up into
the fresh upper dir with the metadata they have below, so the layer holds what
BuildKit's differ emits. What goes below a directory the copy created is written
straight into the upper dir (nothing of the layers below can show there).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from pallet.build.fsops import (
    CopyOptions,
    Owner,
    TreeCopier,
    make_dirs,
    parse_chmod,
    resolve_chown,
    secure_join,
)
from pallet.build.git_source import parse_git_ref
from pallet.build.sources import SourceTree, clean, missing_source
from pallet.dockerfile.ignore import PatternMatcher
from pallet.dockerfile.plan import CopyStep, Step
from pallet.errors import BuildError
from pallet.oci.digest import Digest

if TYPE_CHECKING:
    import tarfile  # ADD's archives only: imported where they are opened

_URL_PREFIXES = ("http://", "https://")
_MAX_DOWNLOAD = 8 << 30


def is_url(source: str) -> bool:
    """A file to download (a git repository's URL is not one: see ``git_source``)."""
    return source.startswith(_URL_PREFIXES) and parse_git_ref(source) is None


def is_remote(source: str) -> bool:
    """Read from the network, not from the source tree."""
    return is_url(source) or parse_git_ref(source) is not None


@dataclass(frozen=True)
class Match:
    source: str  # as written in the Dockerfile
    path: str  # relative path in the tree (symlink of the top entry resolved)
    parents_rel: str  # destination-relative path kept by --parents
    #: the name it gets in a destination directory: the matched entry's own name, even
    #: when it is a symlink whose target is copied (BuildKit names it after the source)
    name: str = ""


@dataclass(frozen=True)
class Download:
    url: str
    path: Path
    name: str
    digest: Digest
    mtime: float | None


def _glob_chars(text: str) -> bool:
    return any(c in text for c in "*?[")


def match_sources(copy: CopyStep, tree: SourceTree, where: str) -> list[Match]:
    """The tree paths COPY/ADD reads, with a clear error for a missing source."""
    matches: list[Match] = []
    for source in copy.sources:
        if is_remote(source):
            continue
        pivot = ""
        if copy.parents and "/./" in f"/{source}":
            pivot = clean(f"/{source}".split("/./", 1)[0])
        if _glob_chars(source):
            found = tree.glob(source)
            if not found:
                raise BuildError(f"{where}: no source files were specified by {source!r}")
        else:
            rel = clean(source)
            if tree.stat(rel) is None:
                raise missing_source(tree, source, where)
            found = [rel]
        for rel in found:
            real = tree.resolve(rel)
            if tree.stat(real) is None:
                raise missing_source(tree, source, where)
            kept = rel[len(pivot) :].lstrip("/") if pivot and rel.startswith(pivot) else rel
            matches.append(Match(source, real, kept, posixpath.basename(rel)))
    return matches


def download(url: str, dest_dir: Path, checksum: str | None, where: str) -> Download:
    """Fetch an ADD URL into ``dest_dir``, verifying ``--checksum`` if given."""
    import urllib.error  # here: http.client, ssl and email cost every build otherwise
    import urllib.parse
    import urllib.request
    from email.utils import parsedate_to_datetime

    parsed = urllib.parse.urlsplit(url)
    name = posixpath.basename(parsed.path.rstrip("/")) or "index.html"
    target = dest_dir / f"download-{len(list(dest_dir.iterdir()))}"
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(target, "wb") as out:
            size = 0
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                if size > _MAX_DOWNLOAD:
                    raise BuildError(f"{where}: {url}: larger than {_MAX_DOWNLOAD} bytes")
                h.update(chunk)
                out.write(chunk)
            modified = resp.headers.get("Last-Modified")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BuildError(f"{where}: cannot download {url}: {reason}") from None
    digest = Digest("sha256:" + h.hexdigest())
    if checksum is not None and checksum != digest:
        raise BuildError(f"{where}: {url}: checksum mismatch: expected {checksum}, got {digest}")
    mtime = None
    if modified:
        try:
            mtime = parsedate_to_datetime(modified).timestamp()
        except (TypeError, ValueError):
            mtime = None
    return Download(url, target, name, digest, mtime)


def check_copy(copy: CopyStep, where: str) -> None:
    """What can be refused before the build starts (Docker's documented rules)."""
    dest_dir = copy.dest.endswith("/") or copy.dest.endswith("/.") or copy.dest in (".", "")
    if len(copy.sources) + len(copy.inline) > 1 and not dest_dir:
        raise BuildError(
            f"{where}: when using {'ADD' if copy.add else 'COPY'} with more than one source "
            "file, the destination must be a directory and end with a /"
        )
    if copy.chmod:
        parse_chmod(copy.chmod)
    if copy.checksum is not None and not all(is_url(s) for s in copy.sources):
        raise BuildError(f"{where}: --checksum is only supported for URL sources")


def resolve_dest(step: Step, copy: CopyStep) -> tuple[str, bool]:
    """The absolute destination and whether it names a directory (trailing slash)."""
    dest = copy.dest
    if not dest.startswith("/"):
        dest = posixpath.join(step.config.working_dir or "/", dest)
    is_dir = dest.endswith("/") or dest.endswith("/.") or copy.dest in (".", "")
    return posixpath.normpath(dest) if dest != "/" else "/", is_dir


def _decompressed(head: bytes, raw: BinaryIO) -> BinaryIO | None:
    """``raw`` decompressed by what its magic bytes say, or None if not compressed."""
    import bz2
    import gzip
    import lzma

    import zstandard

    if head.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw))
    if head.startswith(b"BZh"):
        return cast(BinaryIO, bz2.BZ2File(raw))
    if head.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.LZMAFile(raw))
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(raw))
    return None


def _open_archive(path: Path) -> tarfile.TarFile | None:
    """A tar reader if ``path`` is a (possibly compressed) tar archive, else None."""
    import tarfile

    import zstandard

    with open(path, "rb") as f:
        head = f.read(512)
    raw = open(path, "rb")  # noqa: SIM115  (closed by _extract or below)
    try:
        stream = _decompressed(head, raw)
        if stream is None:
            if not (len(head) >= 262 and head[257:262] == b"ustar"):
                raw.close()
                return None
            stream = raw
        try:
            return tarfile.open(fileobj=stream, mode="r|")
        except (tarfile.TarError, OSError, EOFError, zstandard.ZstdError):
            raw.close()
            return None
    except BaseException:
        raw.close()
        raise


def _extract(tf: tarfile.TarFile, dest: Path, where: str, source: str) -> None:
    import tarfile

    import zstandard

    def keep_modes(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        # the "tar" filter refuses absolute names, ``..`` and links leading out of dest;
        # it also clears setuid and group/other write bits, which Docker keeps
        checked = tarfile.tar_filter(member, path)
        return checked.replace(mode=member.mode, deep=False)

    try:
        # numeric owners: names would be looked up in the host's /etc/passwd
        tf.extractall(dest, filter=keep_modes, numeric_owner=True)
    except (tarfile.TarError, OSError, EOFError, zstandard.ZstdError) as exc:
        raise BuildError(f"{where}: cannot extract {source}: {exc}") from None
    finally:
        tf.close()
        if tf.fileobj is not None:
            tf.fileobj.close()


@dataclass(frozen=True)
class CopyContext:
    where: str  # "COPY a b" for error messages
    tree: SourceTree
    from_context: bool
    downloads: tuple[Download, ...]
    mtime_ns: int  # for heredoc files
    #: work trees of ADD's git sources, copied like a directory's contents
    checkouts: tuple[Path, ...] = ()


def execute_copy(
    step: Step,
    copy: CopyStep,
    matches: list[Match],
    root: Path,
    cx: CopyContext,
    accounts: Path | None = None,
    upper: Path | None = None,
) -> None:
    """Perform COPY/ADD into the mounted root filesystem ``root`` (``--chown`` names
    resolve in ``accounts``, default ``root``: the image below, for ``--link``).
    ``upper``, the mount's upper dir, lets the contents of the directories the copy
    creates go straight into it (see :class:`TreeCopier`)."""
    dest, dest_dir = resolve_dest(step, copy)
    owner = resolve_chown(accounts or root, copy.chown) if copy.chown else None
    chmod = parse_chmod(copy.chmod) if copy.chmod else None
    file_owner = owner if owner is not None else (Owner(0, 0) if cx.from_context else None)
    direct = (root, upper) if upper is not None else None
    copier = TreeCopier(CopyOptions(owner=file_owner, chmod=chmod), direct)
    count = len(matches) + len(copy.inline) + len(cx.downloads) + len(cx.checkouts)
    if count > 1 or copy.parents:
        dest_dir = True
    target = secure_join(root, dest)
    if not dest_dir and os.path.isdir(target):
        dest_dir = True
    if dest_dir:
        make_dirs(root, dest, owner)
    else:
        make_dirs(root, posixpath.dirname(dest), owner)
    excludes = PatternMatcher(copy.excludes) if copy.excludes else None

    for match in matches:
        st = cx.tree.stat(match.path)
        assert st is not None
        if stat.S_ISDIR(st.st_mode):
            sub = posixpath.join(dest, match.parents_rel) if copy.parents else dest
            _copy_dir(cx.tree, match.path, root, sub, owner, copier, excludes)
            continue
        name = match.name or posixpath.basename(match.path)
        if excludes is not None and excludes.matches(match.parents_rel or name):
            continue
        if copy.add and cx.from_context and copy.unpack is not False and stat.S_ISREG(st.st_mode):
            tf = _open_archive(cx.tree.path(match.path))
            if tf is not None:
                # an archive unpacks into the destination, slash or not (Docker's rule)
                out = make_dirs(root, dest, owner)
                _extract(tf, out, cx.where, match.source)
                continue
        if copy.parents:
            rel_parent = posixpath.dirname(match.parents_rel)
            parent = make_dirs(root, posixpath.join(dest, rel_parent), owner)
            copier.copy(cx.tree.path(match.path), st, parent / name)
        elif dest_dir:
            copier.copy(cx.tree.path(match.path), st, target / name)
        else:
            copier.copy(cx.tree.path(match.path), st, secure_join(root, dest, follow_last=False))

    for inline in copy.inline:
        path = target / inline.name if dest_dir else secure_join(root, dest, follow_last=False)
        copier.write_file(path, inline.data.encode(), 0o644, cx.mtime_ns)

    for dl in cx.downloads:
        path = target / dl.name if dest_dir else secure_join(root, dest, follow_last=False)
        mtime = int(dl.mtime * 1e9) if dl.mtime is not None else cx.mtime_ns
        copier.write_file(path, dl.path, 0o600, mtime)
    copier.finish()

    if cx.checkouts:
        # a repository's files are root's unless --chown says otherwise (BuildKit)
        git_copier = TreeCopier(CopyOptions(owner=owner or Owner(0, 0), chmod=chmod), direct)
        for tree in cx.checkouts:
            _copy_dir(SourceTree(tree), "", root, dest, owner, git_copier, excludes)
        git_copier.finish()


def _copy_dir(
    tree: SourceTree,
    src: str,
    root: Path,
    dest: str,
    owner: Owner | None,
    copier: TreeCopier,
    excludes: PatternMatcher | None,
) -> None:
    """Copy the contents of directory ``src`` into ``dest``. A missing ``dest`` is made
    like any missing parent (0755, the --chown owner or root): BuildKit copies the
    directory's contents, never its own metadata (moby/buildkit#1941)."""
    target = secure_join(root, dest)
    if not os.path.lexists(target):
        make_dirs(root, dest, owner)
    elif not os.path.isdir(target):
        raise BuildError(f"cannot copy directory {src or '.'} to {dest}: a file is in the way")
    prefix = len(src) + 1 if src else 0
    skipped: list[str] = []
    base, into = f"{tree.root}/", f"{target}/"  # strings: pathlib costs more than a copy
    for rel, entry in tree.walk(src):
        if rel == src:
            continue
        inner = rel[prefix:]
        if any(inner.startswith(s + "/") for s in skipped):
            continue
        if excludes is not None and excludes.matches(inner):
            if stat.S_ISDIR(entry.st_mode):
                skipped.append(inner)
            continue
        copier.copy(base + rel, entry, into + inner)
