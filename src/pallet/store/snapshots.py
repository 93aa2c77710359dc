"""Snapshots: each layer extracted once, in overlay form, under the chain ID it tops.

``snapshots/<chain-id-hex>/fs`` is the tree (whiteouts as 0:0 character devices, opaque
directories marked with the ``trusted.overlay.opaque`` xattr), ready to be an overlay
lowerdir; ``meta.json`` beside it records the diff ID, the parent chain ID and how
``check`` can tell later whether the tree changed: a digest of an extracted tree, or,
for a tree pallet committed itself (a build step's upper dir), nothing more than the
diff ID: the layer writer is deterministic, so re-tarring the tree as the commit did
(overlay form, mtimes clamped to the recorded SOURCE_DATE_EPOCH) gives the diff ID back
unless the tree changed. That spares the commit a second read of every file.

A snapshot is built in a private ``snapshots/.tmp-*`` directory (locked while its
builder lives) and renamed to its final name only when complete, so a half-extracted
layer is never visible; gc removes the leftovers of crashed builders.

Snapshots are a cache derived from blobs (which are fsynced), so they are published
without flushing anything to disk: a flush of thousands of new files is a sync of the
whole filesystem, everybody's dirty data with ours. ``meta.json`` records instead the
boot that wrote the tree (``/proc/sys/kernel/random/boot_id``). A process killed in the
same boot loses nothing (the page cache survives it), so a snapshot of this boot is used
as it is. One left unflushed by an earlier boot may have lost files or data when the
machine went down: it is verified before its first use (as ``check`` does), marked
durable if it passes (what a new boot reads back is on disk) and removed, to be
extracted again from its blob, if it does not.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from pallet.errors import DigestMismatch, NotFound, PalletError, StoreError
from pallet.oci.chainid import chain_ids as compute_chain_ids
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.store import apply, overlay
from pallet.store.blobs import BlobStore
from pallet.store.fsutil import atomic_write, fsync_dir, remove_tree
from pallet.store.locks import is_in_use, lock_fd
from pallet.store.treehash import tree_digest

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

SNAPSHOTS_DIR = "snapshots"
META_FILE = "meta.json"
FS_DIR = "fs"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"

_boot_id: str | None = None


def boot_id() -> str:
    """This boot's ID, read once per process; "" where the kernel does not say."""
    global _boot_id
    if _boot_id is None:
        try:
            with open(BOOT_ID_FILE, encoding="ascii") as f:
                _boot_id = f.read().strip()
        except (OSError, ValueError):
            _boot_id = ""
    return _boot_id


def _libc() -> Any:
    import ctypes  # only when syncing: keeps short commands' start-up light

    return ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class LayerOrigin:
    """How a committed tree was written as its layer (``commit_layer(overlay=True)``)."""

    #: the SOURCE_DATE_EPOCH that clamped its mtimes, if any
    source_date_epoch: int | None = None


@dataclass(frozen=True)
class SnapshotInfo:
    chain_id: Digest
    diff_id: Digest
    parent: Digest | None
    #: digest of the extracted tree (see pallet.store.treehash), for check; None for a
    #: tree committed as its layer (``committed``), which check re-tars instead
    tree_digest: Digest | None
    committed: LayerOrigin | None = None
    #: the boot that wrote the tree without flushing it to disk; None once it is on disk
    unflushed_boot: str | None = None

    def trusted(self) -> bool:
        """Whether the tree can be used unverified: on disk, or written in this boot."""
        return self.unflushed_boot is None or self.unflushed_boot == boot_id()

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "chainId": self.chain_id,
            "diffId": self.diff_id,
            "parent": self.parent,
        }
        if self.committed is not None:
            doc["committed"] = {"sourceDateEpoch": self.committed.source_date_epoch}
        else:
            doc["treeDigest"] = self.tree_digest
        if self.unflushed_boot is not None:
            doc["unflushedBoot"] = self.unflushed_boot
        return doc

    @classmethod
    def from_json(cls, doc: object, where: str) -> SnapshotInfo:
        try:
            if not isinstance(doc, dict):
                raise TypeError
            parent = doc.get("parent")
            committed = doc.get("committed")
            origin = None
            if committed is not None:
                epoch = committed["sourceDateEpoch"]
                if epoch is not None and (type(epoch) is not int or epoch < 0):
                    raise TypeError
                origin = LayerOrigin(epoch)
            boot = doc.get("unflushedBoot")
            if boot is not None and (type(boot) is not str or not boot):
                raise TypeError
            return cls(
                Digest(doc["chainId"]),
                Digest(doc["diffId"]),
                Digest(parent) if parent else None,
                None if origin is not None else Digest(doc["treeDigest"]),
                origin,
                boot,
            )
        except (KeyError, TypeError, PalletError):
            raise StoreError(f"{where} is malformed") from None


def _sync_filesystem(path: Path) -> None:
    """Flush the whole filesystem once, instead of an fsync per extracted file."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc().syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _committed_diff_id(fs: Path, origin: LayerOrigin) -> Digest:
    """The diff ID of ``fs`` written again as ``commit_layer`` wrote it."""
    import hashlib

    from pallet.layer.writer import TarSink, write_tar

    class _Hashing(TarSink):
        def __init__(self) -> None:
            self.hasher = hashlib.sha256()

        def write(self, data: bytes | bytearray | memoryview, /) -> None:
            self.hasher.update(data)

    sink = _Hashing()
    write_tar(fs, sink, overlay=True, source_date_epoch=origin.source_date_epoch)
    return Digest.from_hasher(sink.hasher)


def _check_diff_id(layer: Descriptor, actual: Digest, expected: Digest) -> None:
    if actual != expected:
        raise DigestMismatch(
            f"layer {layer.digest} unpacks to {actual}, but the image config says {expected}"
        )


class SnapshotStore:
    def __init__(
        self, root: Path, blobs: BlobStore, guard: Callable[[], AbstractContextManager[None]]
    ) -> None:
        self.dir = root / SNAPSHOTS_DIR
        self._blobs = blobs
        self._guard = guard
        #: snapshots this process found usable (read once: a snapshot never changes)
        self._settled: set[Digest] = set()

    # -- lookup ---------------------------------------------------------------------

    def _dir(self, chain_id: Digest) -> Path:
        d = Digest(chain_id)
        name = d.encoded if d.algorithm == "sha256" else f"{d.algorithm}-{d.encoded}"
        return self.dir / name

    def has(self, chain_id: Digest) -> bool:
        return (self._dir(chain_id) / META_FILE).is_file()

    def path(self, chain_id: Digest) -> Path:
        """The snapshot's tree: the directory to use as an overlay lowerdir. A name
        only, unchecked: a reader first gets the snapshot through :meth:`ensure` or
        :meth:`mount_lowerdirs`, which verify one an earlier boot left unflushed."""
        return self._dir(chain_id) / FS_DIR

    def info(self, chain_id: Digest) -> SnapshotInfo:
        meta = self._dir(chain_id) / META_FILE
        try:
            doc = json.loads(meta.read_bytes())
        except FileNotFoundError:
            raise NotFound(f"snapshot {chain_id} is not in the store") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{meta} cannot be read: {exc}") from None
        return SnapshotInfo.from_json(doc, str(meta))

    def _usable(self, chain_id: Digest) -> bool:
        """Whether the snapshot is there and fit to use. One an earlier boot left
        unflushed is verified first (see the module's docstring): marked durable if it
        passes, removed if not (it is then as good as missing)."""
        if chain_id in self._settled:
            return True
        try:
            trusted = self.info(chain_id).trusted()
        except NotFound:
            return False
        except StoreError:
            trusted = False  # e.g. a meta.json whose data did not reach the disk
        if trusted or self._settle(chain_id):
            self._settled.add(chain_id)
            return True
        return False

    def _settle(self, chain_id: Digest) -> bool:
        """Verify a snapshot of an earlier boot, one process at a time; remove it if bad."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if self.info(chain_id).trusted():
                    return True  # another process settled it while we waited
            except NotFound:
                return False
            except StoreError:
                pass
            if self.verify(chain_id) is None:  # which marks it durable
                return True
            try:
                self.remove(chain_id)
            except OSError as exc:
                raise StoreError(
                    f"snapshot {chain_id} is damaged and cannot be removed: {exc.strerror}"
                ) from exc
            return False
        finally:
            os.close(fd)

    def _write_info(self, chain_id: Digest, info: SnapshotInfo) -> None:
        data = json.dumps(info.to_json(), indent=2).encode()
        atomic_write(self._dir(chain_id) / META_FILE, data)

    def chain_ids(self) -> list[Digest]:
        """Chain IDs of every complete snapshot."""
        out: list[Digest] = []
        if not self.dir.is_dir():
            return out
        for entry in sorted(self.dir.iterdir()):
            if entry.name.startswith("."):
                continue
            alg, _, hexpart = entry.name.rpartition("-")
            try:
                out.append(Digest(f"{alg or 'sha256'}:{hexpart}"))
            except PalletError:
                continue
        return out

    # -- creation -------------------------------------------------------------------

    @contextmanager
    def workspace(self) -> Iterator[Path]:
        """A private directory under ``snapshots/``, locked against gc, removed on exit
        unless it was published; build steps write a new layer's tree in it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{TMP_PREFIX}{os.urandom(8).hex()}"
        with self._guard():
            path.mkdir(0o700)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            lock_fd(fd)
        try:
            (path / FS_DIR).mkdir(0o755)
            yield path
        finally:
            try:
                if path.exists():
                    remove_tree(path)
            finally:
                os.close(fd)

    def _publish(self, ready: Sequence[tuple[Path, SnapshotInfo]]) -> None:
        """Give finished workspaces their final names, bottom layer first, unflushed:
        their ``meta.json`` names this boot. Where the boot cannot be told, one syncfs
        makes every file durable before any snapshot becomes visible, as before."""
        if not ready:
            return
        boot = boot_id()
        for work, info in ready:
            info = replace(info, unflushed_boot=boot or None)
            (work / META_FILE).write_text(json.dumps(info.to_json(), indent=2))
        if not boot:
            _sync_filesystem(self.dir)
        with self._guard():
            for work, info in ready:
                final = self._dir(info.chain_id)
                try:
                    os.rename(work, final)
                except OSError as exc:
                    if not final.is_dir():
                        raise StoreError(f"snapshot {info.chain_id}: {exc.strerror}") from exc
                    # Another process published the same snapshot first: keep theirs.
            if not boot:
                fsync_dir(self.dir)

    def adopt(
        self,
        work: Path,
        diff_id: Digest,
        parent: Digest | None,
        committed: LayerOrigin | None = None,
    ) -> Digest:
        """Publish a :meth:`workspace` whose ``fs`` holds a layer's tree in overlay form
        (e.g. a build step's upper dir, with its overlay workdir beside ``fs`` in the
        workspace); returns its chain ID. No copy: a rename.

        ``committed`` says the caller made ``diff_id`` by writing this very tree with
        ``commit_layer(overlay=True)``: check then verifies the tree against the diff ID
        and no tree digest is computed now."""
        diff_id = Digest(diff_id)
        for entry in work.iterdir():
            if entry.name != FS_DIR:  # e.g. the overlay workdir a build step used
                remove_tree(entry)
        chain_id = compute_chain_ids([parent, diff_id])[1] if parent else diff_id
        tree = None if committed is not None else tree_digest(work / FS_DIR)
        info = SnapshotInfo(chain_id, diff_id, parent, tree, committed)
        self._publish([(work, info)])
        return chain_id

    def _extract(
        self,
        work: Path,
        layer: Descriptor,
        diff_id: Digest,
        chain_id: Digest,
        parent: Digest | None,
    ) -> SnapshotInfo:
        from pallet.layer.compression import open_decompressed
        from pallet.layer.extract import extract_layer

        with self._blobs.open(layer.digest) as raw, open_decompressed(raw) as tar:
            result = extract_layer(tar, work / FS_DIR, whiteouts="overlay")
        _check_diff_id(layer, result.diff_id, diff_id)
        return SnapshotInfo(chain_id, diff_id, parent, tree_digest(work / FS_DIR))

    def ensure(self, layers: Sequence[Descriptor], diff_ids: Sequence[Digest]) -> list[Path]:
        """Extract whichever of an image's layers have no snapshot yet; return the
        lowerdirs of the whole image, bottom layer first.

        The caller holds a lease on the image so gc leaves the snapshots alone. Layers
        below one that fails to extract are still published.
        """
        if len(layers) != len(diff_ids):
            raise StoreError(
                f"image has {len(layers)} layers but its config lists {len(diff_ids)} diff IDs"
            )
        chain = compute_chain_ids(list(diff_ids))
        with ExitStack() as stack:
            ready: list[tuple[Path, SnapshotInfo]] = []
            try:
                parent: Digest | None = None
                for layer, diff_id, chain_id in zip(layers, diff_ids, chain, strict=True):
                    if not self._usable(chain_id):
                        work = stack.enter_context(self.workspace())
                        info = self._extract(work, layer, Digest(diff_id), chain_id, parent)
                        ready.append((work, info))
                    parent = chain_id
            finally:
                self._publish(ready)
        return [self.path(c) for c in chain]

    # -- use ------------------------------------------------------------------------

    def mount_lowerdirs(self, chain_ids: Sequence[Digest]) -> list[Path]:
        """The trees of ``chain_ids`` (bottom first), each checked to exist (and, if an
        earlier boot left it unflushed, verified: :meth:`ensure` first extracts anew
        what fails)."""
        out = []
        for chain_id in chain_ids:
            if not self._usable(chain_id):
                raise NotFound(f"snapshot {chain_id} is not in the store")
            out.append(self.path(chain_id))
        return out

    def mount(
        self,
        chain_ids: Sequence[Digest],
        target: Path,
        *,
        upperdir: Path | None = None,
        workdir: Path | None = None,
    ) -> None:
        """Mount the stack on ``target`` with overlayfs (read-only without an upperdir)."""
        overlay.mount_overlay(
            self.mount_lowerdirs(chain_ids), target, upperdir=upperdir, workdir=workdir
        )

    def materialize(self, chain_ids: Sequence[Digest], dest: Path) -> None:
        """Copy the stack flattened into ``dest``: the fallback where overlay is missing."""
        apply.materialize(self.mount_lowerdirs(chain_ids), dest)

    def materialize_layers(
        self, layers: Sequence[Descriptor], diff_ids: Sequence[Digest], dest: Path
    ) -> None:
        """Unpack an image's layer blobs one over the other into ``dest``, whiteouts
        applied (deleting), each verified against its diff ID: the fallback without
        snapshots at all (no root: overlay-form whiteouts need it)."""
        if len(layers) != len(diff_ids):
            raise StoreError(
                f"image has {len(layers)} layers but its config lists {len(diff_ids)} diff IDs"
            )
        dest.mkdir(parents=True, exist_ok=True)
        if any(dest.iterdir()):
            raise StoreError(f"{dest}: not empty; cannot unpack an image into it")
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            from pallet.layer.compression import open_decompressed
            from pallet.layer.extract import extract_layer

            with self._blobs.open(layer.digest) as raw, open_decompressed(raw) as tar:
                result = extract_layer(tar, dest, whiteouts="apply")
            _check_diff_id(layer, result.diff_id, Digest(diff_id))

    # -- maintenance ----------------------------------------------------------------

    def verify(self, chain_id: Digest) -> str | None:
        """What is wrong with a snapshot, or None if its tree is as extracted. One that
        an earlier boot left unflushed and that passes is marked durable."""
        try:
            info = self.info(chain_id)
        except PalletError as exc:
            return str(exc)
        if info.chain_id != chain_id:
            return f"snapshot {chain_id} records chain ID {info.chain_id}"
        fs = self.path(chain_id)
        if not fs.is_dir():
            return f"snapshot {chain_id} has no tree ({fs})"
        if info.committed is not None:
            try:
                actual = _committed_diff_id(fs, info.committed)
            except (OSError, PalletError) as exc:
                return f"snapshot {chain_id} cannot be read: {exc}"
            if actual != info.diff_id:
                return f"snapshot {chain_id} was modified since it was committed"
        else:
            try:
                actual = tree_digest(fs)
            except OSError as exc:
                return f"snapshot {chain_id} cannot be read: {exc}"
            if actual != info.tree_digest:
                return f"snapshot {chain_id} was modified since it was extracted"
        if not info.trusted():  # read back in a later boot: it is on disk
            with suppress(OSError):  # else it is verified again next time
                self._write_info(chain_id, replace(info, unflushed_boot=None))
        return None

    def remove(self, chain_id: Digest) -> None:
        """Delete a snapshot: renamed aside first, so it vanishes at once, even on a crash."""
        self._settled.discard(chain_id)
        final = self._dir(chain_id)
        trash = self.dir / f"{TRASH_PREFIX}{os.urandom(8).hex()}"
        try:
            os.rename(final, trash)
        except FileNotFoundError:
            return
        remove_tree(trash)

    def leftovers(self) -> list[Path]:
        """Temp dirs of crashed builders and trash of interrupted removals."""
        out: list[Path] = []
        if not self.dir.is_dir():
            return out
        for entry in sorted(self.dir.iterdir()):
            if entry.name.startswith(TRASH_PREFIX) or (
                entry.name.startswith(TMP_PREFIX) and not is_in_use(entry)
            ):
                out.append(entry)
        return out
