"""``pull``: a registry image into the local store.

The top manifest is resolved (an index to the host's platform, or ``--platform``, or all
of them), every blob the store lacks is downloaded concurrently into the store's ingest
area and verified while it streams, and only then does :func:`copy` put the manifests and
write the tag. Blobs are leased for the whole pull, so gc cannot take them in between; a
failed or interrupted pull removes the blobs it added, leaving the store as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.platform import Platform
from pallet.store import Lease, Store
from pallet.transport.copy import copy
from pallet.transport.registry import RegistrySource, open_source
from pallet.transport.registry_config import RegistriesConfig
from pallet.transport.registry_plan import plan_blobs
from pallet.transport.registry_progress import NoProgress, Progress
from pallet.transport.registry_sources import BlobSources
from pallet.transport.registry_transfer import StreamSlots, run_all, workers_for
from pallet.transport.store import StoreWriter

CHUNK = 4 << 20
DEFAULT_CONCURRENCY = 3


@dataclass(frozen=True)
class PullResult:
    name: str  # the full reference the image is tagged with in the store
    digest: Digest  # of the top manifest (or index) as stored
    downloaded: int  # blobs fetched (the rest were in the store already)
    resumed: int  # downloads resumed after a dropped connection


def pull(
    ref: str,
    root: Path,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    max_concurrent: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    config: RegistriesConfig | None = None,
) -> PullResult:
    progress = progress or NoProgress()
    store = Store.open(root)
    source = open_source(ref, config=config)
    try:
        return _pull(source, store, platform, all_platforms, max_concurrent, progress)
    finally:
        source.close()


def _pull(
    source: RegistrySource,
    store: Store,
    platform: Platform | None,
    all_platforms: bool,
    concurrency: int,
    progress: Progress,
) -> PullResult:
    top = source.get_manifest()
    blobs = plan_blobs(source, top, platform=platform, all_platforms=all_platforms)
    added: list[Digest] = []
    resumes: list[int] = []  # per blob (append is atomic across the workers)
    lease = store.lease([top.digest, *(b.digest for b in blobs)])
    try:
        missing = [b for b in blobs if not store.has_blob(b.digest)]
        for blob in blobs:
            progress.add(blob)
            progress.state(blob, "waiting" if blob in missing else "exists")

        def on_blob(event: str, desc: Descriptor, amount: int) -> None:
            if event == "bytes":
                progress.advance(desc, amount)

        source.on_blob = on_blob

        slots = StreamSlots(concurrency, source.cancel)

        def fetch(desc: Descriptor) -> None:
            with slots.acquire(f"{source.describe()}: blob {desc.digest}") as slot:
                progress.state(desc, "downloading")
                stream = source.remote_blob(desc)
                with closing(stream), store.ingest(desc.digest, desc.size) as w:
                    while chunks := stream.read_chunks(CHUNK):
                        for chunk in chunks:
                            w.write(chunk)
                    resumes.append(stream.resumes)
                    # The fsync in commit waits for the disk: the next blob downloads
                    # meanwhile.
                    slot.release()
                    w.commit()  # verifies digest and size; on failure nothing stays
            added.append(desc.digest)
            progress.state(desc, "verified")

        try:
            run_all(
                missing,
                fetch,
                concurrency=workers_for(missing, concurrency),
                cancel=source.cancel,
            )
            name = str(source.ref)
            writer = StoreWriter(store)
            try:
                written = copy(
                    source, writer.image([name]), platform=platform, all_platforms=all_platforms
                )
                writer.finish()  # the tag, last
            except BaseException:
                writer.abort()
                raise
        except BaseException:
            _undo(store, added, lease)
            raise
    finally:
        lease.release()
    BlobSources(store.root).record(
        source.ref.registry, source.ref.repository, [b.digest for b in blobs]
    )
    return PullResult(name, written.digest, len(added), sum(resumes))


def _undo(store: Store, added: Sequence[Digest], lease: Lease) -> None:
    """Remove the blobs this pull added, unless another operation leased them meanwhile
    (a concurrent pull of the same image that found them already there)."""
    lease.release()
    live = store.leases.live_digests()
    for digest in added:
        if digest not in live:
            store.remove_blob(digest)
