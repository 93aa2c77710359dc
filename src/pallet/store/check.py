"""``pallet system check``: re-verify everything the store holds against its digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pallet.errors import PalletError
from pallet.oci.descriptor import ANNOTATION_REF_NAME, Descriptor
from pallet.oci.digest import Digest
from pallet.store.blobs import BlobStore
from pallet.store.reach import mark
from pallet.store.refs import IndexFile
from pallet.store.snapshots import SnapshotStore


@dataclass(frozen=True)
class Problem:
    """One thing wrong: what (a digest, a chain ID or a file) and why."""

    kind: str  # "corrupt-blob", "missing-blob", "corrupt-snapshot", "corrupt-index-entry", ...
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


@dataclass(frozen=True)
class CheckReport:
    blobs_checked: int
    snapshots_checked: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def corrupt(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.kind.startswith("corrupt"))

    @property
    def missing(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.kind.startswith("missing"))


def _blob_hash(blobs: BlobStore, digest: Digest) -> Digest:
    h = hashlib.new(digest.algorithm)
    with blobs.open(digest) as f:
        while block := f.read(1 << 20):
            h.update(block)
    return Digest.from_hasher(h)


def run_check(blobs: BlobStore, index: IndexFile, snapshots: SnapshotStore) -> CheckReport:
    problems: list[Problem] = []
    digests = blobs.iter_digests()
    for digest in digests:
        try:
            actual = _blob_hash(blobs, digest)
        except (OSError, PalletError) as exc:
            problems.append(Problem("corrupt-blob", digest, f"cannot be read: {exc}"))
            continue
        if actual != digest:
            problems.append(Problem("corrupt-blob", digest, f"content hashes to {actual}"))

    entries: list[Descriptor] = []
    try:
        raw_entries = index.read_raw()
    except PalletError as exc:
        problems.append(Problem("corrupt-index", str(index.path), str(exc)))
        raw_entries = []
    for i, raw in enumerate(raw_entries):
        try:
            entries.append(Descriptor.from_json(raw))
        except PalletError as exc:
            problems.append(Problem("corrupt-index-entry", f"{index.path}#{i}", str(exc)))
    corrupt = {p.subject for p in problems}
    seen: set[tuple[str, Digest]] = set()
    for entry in entries:
        image = entry.annotations.get(ANNOTATION_REF_NAME) or entry.digest
        reach = mark(blobs, [entry.digest], snapshots=False)
        for digest in sorted(reach.missing):
            if ("missing", digest) not in seen:
                seen.add(("missing", digest))
                problems.append(Problem("missing-blob", digest, f"needed by image {image}"))
        for digest in sorted(reach.unreadable - corrupt):
            if ("unreadable", digest) not in seen:
                seen.add(("unreadable", digest))
                problems.append(
                    Problem("corrupt-manifest", digest, f"of image {image} is not valid JSON")
                )

    chain_ids = snapshots.chain_ids()
    present = set(chain_ids)
    for chain_id in chain_ids:
        why = snapshots.verify(chain_id)
        if why is not None:
            problems.append(Problem("corrupt-snapshot", chain_id, why))
            continue
        parent = snapshots.info(chain_id).parent
        if parent is not None and parent not in present:
            problems.append(Problem("missing-snapshot", parent, f"parent of snapshot {chain_id}"))
    return CheckReport(len(digests), len(chain_ids), tuple(problems))
