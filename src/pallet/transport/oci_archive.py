"""OCI archives (``oci-archive:FILE[:REF]``): an OCI image layout in one tar file.

Reading never unpacks the archive: one pass over the tar headers records where each
member's bytes are (:class:`ArchiveIndex`), then blobs are read by offset. A compressed
or non-seekable input (``load`` from a pipe, ``docker save | gzip``) is first spooled,
decompressed, to a temporary file. The same index reads docker-archives.

Writing streams: ``oci-layout`` first, each blob as it arrives, ``index.json`` last. The
output goes to a temporary file renamed over the target only when the archive is
complete, so a failed or interrupted save leaves no partial file behind.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Generic, TypeVar, cast

from pallet.errors import LayerError, NotFound, TransportError
from pallet.layer.compression import detect, open_decompressed
from pallet.oci.descriptor import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor
from pallet.oci.digest import Digest, new_hasher
from pallet.transport.base import ManifestBlob
from pallet.transport.copy import VerifyingReader
from pallet.transport.layout import (
    INDEX_FILE,
    LAYOUT_JSON,
    OCI_LAYOUT_FILE,
    LayoutSource,
    blob_name,
    index_json,
)

_MAX_LINK_HOPS = 16
#: an archive listing more members than this is refused (the index is kept in memory)
MAX_MEMBERS = 1_000_000


@dataclass(frozen=True)
class TarMember:
    name: str
    offset: int
    size: int
    linkname: str = ""
    symlink: bool = False
    hardlink: bool = False


def _clean(name: str) -> str:
    """A member name in canonical form (``./a//b`` -> ``a/b``)."""
    return posixpath.normpath("/" + name).lstrip("/")


class ArchiveIndex:
    """The regular files of a tar archive, located once and then read by offset."""

    def __init__(self, fd: int, label: str, spool: IO[bytes] | None = None) -> None:
        self._fd = fd
        self.label = label
        self._spool = spool  # an anonymous spool file owns ``fd``
        self.members: dict[str, TarMember] = {}
        try:
            self._scan()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open_path(cls, path: Path) -> ArchiveIndex:
        """Index the archive at ``path``: read in place if it is a plain tar in a regular
        file, else (compressed, or a pipe such as ``<(...)``) spooled first."""
        try:
            f = path.open("rb")
            regular = stat.S_ISREG(os.fstat(f.fileno()).st_mode)
        except OSError as exc:
            raise TransportError(f"{path}: {exc.strerror}") from exc
        with f:
            if not regular:
                return cls.from_stream(cast(BinaryIO, f), str(path))
            compressed = detect(f.read(4)) != "none"
            f.seek(0)
            if compressed:
                return cls.from_stream(cast(BinaryIO, f), str(path))
            return cls(os.dup(f.fileno()), str(path))

    @classmethod
    def from_stream(cls, stream: BinaryIO, label: str) -> ArchiveIndex:
        """Index an archive read from a stream (a pipe), spooled to a temporary file."""
        spool = tempfile.TemporaryFile()  # noqa: SIM115 (owned by the index)
        try:
            source = open_decompressed(stream)
            try:
                shutil.copyfileobj(source, spool, 1 << 20)
            except LayerError as exc:
                raise TransportError(f"{label}: cannot decompress archive: {exc}") from None
            spool.flush()
            return cls(spool.fileno(), label, spool)
        except BaseException:
            spool.close()
            raise

    def _scan(self) -> None:
        try:
            size = os.fstat(self._fd).st_size
            os.lseek(self._fd, 0, os.SEEK_SET)
            with (
                os.fdopen(os.dup(self._fd), "rb") as f,
                tarfile.open(fileobj=f, mode="r:") as tar,
            ):
                for info in tar:
                    self._add(info, size)
        except tarfile.TarError as exc:
            raise TransportError(f"{self.label}: not a valid tar archive: {exc}") from None
        except OSError as exc:
            raise TransportError(f"{self.label}: {exc.strerror or exc}") from None
        if not self.members:
            raise TransportError(f"{self.label}: empty or not a tar archive")

    def _add(self, info: tarfile.TarInfo, archive_size: int) -> None:
        if len(self.members) >= MAX_MEMBERS:
            raise TransportError(f"{self.label}: more than {MAX_MEMBERS} members")
        name = _clean(info.name)
        if info.isfile():
            if info.offset_data + info.size > archive_size:
                raise TransportError(f"{self.label}: truncated archive (member {info.name})")
            self.members[name] = TarMember(name, info.offset_data, info.size)
        elif info.issym():
            self.members[name] = TarMember(name, 0, 0, info.linkname, symlink=True)
        elif info.islnk():
            self.members[name] = TarMember(name, 0, 0, _clean(info.linkname), hardlink=True)

    def describe(self) -> str:
        return self.label

    def resolve(self, name: str) -> TarMember:
        """The regular file ``name`` refers to, following links inside the archive."""
        wanted = _clean(name)
        current = wanted
        for _ in range(_MAX_LINK_HOPS):
            member = self.members.get(current)
            if member is None:
                raise NotFound(f"{self.label}: no member {wanted}")
            if member.hardlink:
                current = member.linkname
            elif member.symlink:
                target = posixpath.join(posixpath.dirname(current), member.linkname)
                if member.linkname.startswith("/") or posixpath.normpath(target).startswith(".."):
                    raise TransportError(f"{self.label}: member {wanted} links outside the archive")
                current = _clean(target)
            else:
                return member
        raise TransportError(f"{self.label}: member {wanted} is a link loop")

    def exists(self, name: str) -> bool:
        try:
            self.resolve(name)
        except (NotFound, TransportError):
            return False
        return True

    def size(self, name: str) -> int:
        return self.resolve(name).size

    def open(self, name: str) -> AbstractContextManager[BinaryIO]:
        member = self.resolve(name)
        reader = _MemberReader(self._fd, member.offset, member.size, self.label, member.name)
        return cast(AbstractContextManager[BinaryIO], io.BufferedReader(reader, 1 << 20))

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        elif self._fd >= 0:
            os.close(self._fd)
        self._fd = -1


class _MemberReader(io.RawIOBase):
    """The bytes of one tar member, read by offset (``pread``), so any number of members
    can be open at once over the archive's one file descriptor."""

    def __init__(self, fd: int, offset: int, size: int, label: str, name: str) -> None:
        self._fd = fd
        self._pos = offset
        self._end = offset + size
        self._what = f"{label}: member {name}"

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self._end - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._pos)
        if not data:
            raise TransportError(f"{self._what} is truncated")
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)


class ArchiveOutput:
    """Where an archive is written: a temporary file next to ``path`` renamed over it by
    :meth:`finish` (through a symlink, onto the file it names), or stdout (``path``
    None); :meth:`abort` removes the partial file. A path that is not a regular file
    (``/dev/stdout``, a FIFO) is written directly: it cannot be replaced or removed.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._tmp: Path | None = None
        self._target: Path | None = None
        try:
            if path is None:
                self.stream: BinaryIO = sys.stdout.buffer
            elif path.exists() and not path.is_file():
                self.stream = path.open("wb")
            else:
                self._target = Path(os.path.realpath(path))
                fd, tmp = tempfile.mkstemp(dir=self._target.parent, prefix=f".{self._target.name}.")
                self._tmp = Path(tmp)
                self.stream = os.fdopen(fd, "wb")
        except OSError as exc:
            raise TransportError(f"{path}: cannot write: {exc.strerror}") from exc

    def finish(self) -> None:
        try:
            self.stream.flush()
            if self._tmp is None or self._target is None:
                if self.path is not None:
                    self.stream.close()
                return
            os.fsync(self.stream.fileno())
            self.stream.close()
            os.chmod(self._tmp, 0o644 & ~_umask())
            os.replace(self._tmp, self._target)
        except BrokenPipeError:
            raise  # the reader went away: the CLI exits quietly, as coreutils do
        except OSError as exc:
            self.abort()
            raise TransportError(f"{self.path or 'stdout'}: cannot write: {exc.strerror}") from exc
        self._tmp = None

    def abort(self) -> None:
        if self.path is not None:
            self.stream.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class TarWriter:
    """A deterministic tar stream (fixed owner, mode and mtime), members as they come.

    Headers are written by hand (``TarInfo.tobuf``) rather than through ``tarfile``'s
    stream mode, so an aborted archive has no buffered tail left to flush.
    """

    def __init__(self, out: BinaryIO, label: str) -> None:
        self._out = out
        self._label = label
        self._dirs: set[str] = set()

    def _write(self, data: bytes) -> None:
        try:
            self._out.write(data)
        except BrokenPipeError:
            raise
        except OSError as exc:  # a full disk, a closed terminal: one line, not a traceback
            raise TransportError(f"{self._label}: cannot write: {exc.strerror}") from exc

    @staticmethod
    def _header_bytes(name: str, size: int, directory: bool = False, gnu: bool = False) -> bytes:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 0
        info.mode = 0o755 if directory else 0o644
        info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        info.uname = info.gname = ""
        if gnu:
            return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def _header(self, name: str, size: int = 0, directory: bool = False) -> None:
        self._write(self._header_bytes(name, size, directory))

    def _parents(self, name: str) -> None:
        parent = posixpath.dirname(name)
        if parent and parent not in self._dirs:
            self._parents(parent)
            self._dirs.add(parent)
            self._header(parent + "/", directory=True)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_stream(name, len(data), cast(BinaryIO, io.BytesIO(data)))

    def add_stream(self, name: str, size: int, stream: BinaryIO) -> None:
        """Add ``size`` bytes read from ``stream`` as member ``name``."""
        self._parents(name)
        self._member(name, size, stream)

    def _member(self, name: str, size: int, stream: BinaryIO, gnu: bool = False) -> None:
        self._write(self._header_bytes(name, size, gnu=gnu))
        left = size
        while left:
            chunk = stream.read(min(left, 1 << 20))
            if not chunk:
                raise TransportError(f"{name}: stream ended {left} bytes early")
            self._write(chunk)
            left -= len(chunk)
        self._write(b"\0" * (-size % tarfile.BLOCKSIZE))

    def add_unsized(
        self,
        name_for: Callable[[Digest], str],
        stream: IO[bytes],
        keep: Callable[[Digest], bool],
    ) -> tuple[Digest, int]:
        """Add a member whose size and name (``name_for(sha256 of the bytes)``) are known
        only once ``stream`` ends; returns that digest and the size. ``keep(digest)``
        False drops the member (the archive already holds those bytes).

        On a seekable output the bytes go straight in and the header is rewritten after
        (a GNU header: one block whatever the size, so it can be patched in place);
        otherwise they are spooled to a temporary file first.
        """
        hasher = new_hasher("sha256")
        placeholder = name_for(Digest("sha256:" + "0" * 64))
        if not self._seekable():
            with tempfile.TemporaryFile() as spool:
                size = _hash_copy(stream, hasher, spool.write)
                digest = Digest.from_hasher(hasher)
                if keep(digest):
                    spool.seek(0)
                    # the same bytes as the seekable path writes
                    self._member(name_for(digest), size, cast(BinaryIO, spool), gnu=True)
            return digest, size
        start = self._out.tell()
        self._write(self._header_bytes(placeholder, 0, gnu=True))
        size = _hash_copy(stream, hasher, self._write)
        digest = Digest.from_hasher(hasher)
        if not keep(digest):
            self._out.seek(start)
            self._out.truncate()
            return digest, size
        end = self._out.tell()
        self._out.seek(start)
        self._write(self._header_bytes(name_for(digest), size, gnu=True))
        self._out.seek(end)
        self._write(b"\0" * (-size % tarfile.BLOCKSIZE))
        return digest, size

    def _seekable(self) -> bool:
        try:
            return self._out.seekable()
        except (AttributeError, OSError, ValueError):
            return False

    def close(self) -> None:
        self._write(b"\0" * (2 * tarfile.BLOCKSIZE))


def _hash_copy(stream: IO[bytes], hasher: Any, write: Callable[[bytes], Any]) -> int:
    size = 0
    while chunk := stream.read(1 << 20):
        hasher.update(chunk)
        write(chunk)
        size += len(chunk)
    return size


class ArchiveWriter:
    """What the OCI and docker archive writers share: a tar streamed into an
    :class:`ArchiveOutput`, each blob written once and verified as it goes in."""

    def __init__(self, transport: str, path: Path | None) -> None:
        self.label = f"{transport}:{path if path is not None else '-'}"
        self._out = ArchiveOutput(path)
        self._tar = TarWriter(self._out.stream, self.label)
        self._written: set[str] = set()

    def has(self, desc: Descriptor) -> bool:
        return str(desc.digest) in self._written

    def _add_verified(self, name: str, desc: Descriptor, stream: BinaryIO) -> None:
        """Add blob ``desc`` as member ``name``, failing on bytes that are not its own."""
        reader = VerifyingReader(stream, desc)
        self._tar.add_stream(name, desc.size, reader.as_stream())
        reader.finish()
        self._written.add(str(desc.digest))

    def _last_members(self) -> None:
        """Write what closes the archive's contents (its index of images)."""

    def finish(self) -> None:
        """Complete the archive and put it in place."""
        self._last_members()
        self._tar.close()
        self._out.finish()

    def abort(self) -> None:
        self._out.abort()


_Writer = TypeVar("_Writer", bound=ArchiveWriter)


class FinishedByCommit(Generic[_Writer]):
    """For a destination that is a whole one-image archive: committing the image
    completes the archive, closing it uncommitted removes the partial file."""

    writer: _Writer
    _done = False

    def _finish(self) -> None:
        self.writer.finish()
        self._done = True

    def close(self) -> None:
        if not self._done:
            self.writer.abort()


class OciArchiveWriter(ArchiveWriter):
    """Writes an OCI archive holding any number of images (``save --format oci A B``)."""

    def __init__(self, path: Path | None) -> None:
        super().__init__("oci-archive", path)
        self._entries: list[dict[str, Any]] = []
        self._tar.add_bytes(OCI_LAYOUT_FILE, LAYOUT_JSON)

    def image(self, ref: str | None, image_name: str | None = None) -> OciArchiveDestination:
        """A destination for one image, listed in ``index.json`` as ``ref``.

        ``image_name`` (a full reference) is also recorded as containerd's image name,
        which ``docker load`` and ``nerdctl load`` use to tag the image.
        """
        return OciArchiveDestination(self, ref, image_name)

    def put(self, desc: Descriptor, stream: BinaryIO) -> None:
        if not self.has(desc):
            self._add_verified(blob_name(desc.digest), desc, stream)

    def add_entry(self, desc: Descriptor) -> None:
        self._entries.append(desc.to_json())

    def _last_members(self) -> None:
        self._tar.add_bytes(INDEX_FILE, index_json(self._entries))


class OciArchiveDestination:
    """One image going into an :class:`OciArchiveWriter`."""

    #: ``put_blob`` checks size and digest itself (copy need not hash the bytes again)
    verifies_blobs = True

    def __init__(
        self, writer: OciArchiveWriter, ref: str | None, image_name: str | None = None
    ) -> None:
        self.writer = writer
        self.ref = ref
        self.image_name = image_name

    def describe(self) -> str:
        return self.writer.label + (f":{self.ref}" if self.ref else "")

    def has_blob(self, desc: Descriptor) -> bool:
        return self.writer.has(desc)

    def put_blob(self, desc: Descriptor, stream: BinaryIO) -> None:
        self.writer.put(desc, stream)

    def put_manifest(self, manifest: ManifestBlob) -> None:
        self.writer.put(manifest.descriptor(), cast(BinaryIO, io.BytesIO(manifest.raw)))

    def commit(self, top: ManifestBlob) -> None:
        annotations = {}
        if self.ref:
            annotations[ANNOTATION_REF_NAME] = self.ref
        if self.image_name:
            annotations[ANNOTATION_IMAGE_NAME] = self.image_name
        self.writer.add_entry(top.descriptor().with_annotations(annotations))

    def close(self) -> None:
        pass


class SingleImageArchive(FinishedByCommit[OciArchiveWriter], OciArchiveDestination):
    """``oci-archive:FILE[:REF]`` as a copy destination: the archive is complete when the
    image is committed, and removed if it never is."""

    def commit(self, top: ManifestBlob) -> None:
        super().commit(top)
        self._finish()


def open_oci_archive_source(path: Path, ref: str | None) -> LayoutSource:
    """The image ``ref`` names in the OCI archive at ``path`` (or its only image)."""
    index = ArchiveIndex.open_path(path)
    label = f"oci-archive:{path}" + (f":{ref}" if ref else "")
    return _ArchiveLayoutSource.open(index, ref, label)


class _ArchiveLayoutSource(LayoutSource):
    def close(self) -> None:
        files = self.files
        if isinstance(files, ArchiveIndex):
            files.close()
