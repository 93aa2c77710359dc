"""``push``: an image (or index) of the local store to a registry.

If the registry already holds the manifest (by digest), only the tag is put. Otherwise
per blob a HEAD; a blob the registry already holds in another repository (known from
earlier pulls and pushes) is mounted; the rest upload concurrently; then :func:`copy`
puts the manifests, children first and the tagged one last.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import NotFound, TransportError
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.store import Store
from pallet.transport.copy import copy
from pallet.transport.registry import RegistryDestination, open_destination
from pallet.transport.registry_config import RegistriesConfig
from pallet.transport.registry_plan import plan_blobs
from pallet.transport.registry_progress import NoProgress, Progress
from pallet.transport.registry_ref import ImageRef
from pallet.transport.registry_sources import BlobSources
from pallet.transport.registry_transfer import StreamSlots, run_all, workers_for
from pallet.transport.store import StoreSource

DEFAULT_CONCURRENCY = 3


@dataclass(frozen=True)
class PushResult:
    name: str  # the full reference pushed
    digest: Digest  # of the manifest (or index) as the registry holds it
    size: int  # of that manifest, as docker push prints it
    uploaded: int
    mounted: int


def tags_to_push(root: Path, ref: str, all_tags: bool) -> list[str]:
    """The full references to push: ``ref`` itself, or every tag of its repository."""
    image = ImageRef.parse(ref)
    if not all_tags:
        return [str(image)]
    store = Store.open(root)
    prefix = image.name + ":"
    names = sorted(
        name
        for name in (e.name for e in store.images())
        if name and name.startswith(prefix) and "/" not in name[len(prefix) :]
    )
    if not names:
        raise NotFound(f"no tags of {image.name} in the store")
    return names


def push(
    ref: str,
    root: Path,
    *,
    max_concurrent: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    config: RegistriesConfig | None = None,
) -> PushResult:
    progress = progress or NoProgress()
    image = ImageRef.parse(ref)
    store = Store.open(root)
    sources = BlobSources(store.root)
    name = str(image)
    source = StoreSource(store, store.resolve(name), f"pallet:{name}", name)
    dest = open_destination(
        name,
        config=config,
        mount_sources=lambda d: sources.repositories(image.registry, d),
    )
    try:
        return _push(source, store, dest, sources, max_concurrent, progress)
    finally:
        dest.close()
        source.close()


def _push(
    source: StoreSource,
    store: Store,
    dest: RegistryDestination,
    sources: BlobSources,
    concurrency: int,
    progress: Progress,
) -> PushResult:
    top = source.get_manifest()
    blobs = plan_blobs(source, top, all_platforms=True)
    counts = {"pushed": 0, "mounted": 0}
    lock = threading.Lock()

    def on_blob(event: str, desc: Descriptor, amount: int) -> None:
        if event == "bytes":
            progress.advance(desc, amount)
        elif event in counts:
            with lock:
                counts[event] += 1
            progress.state(desc, event)

    dest.on_blob = on_blob
    for blob in blobs:
        progress.add(blob)

    cancel = threading.Event()
    slots = StreamSlots(concurrency, cancel)

    def send(desc: Descriptor) -> None:
        with slots.acquire(f"{dest.describe()}: blob {desc.digest}") as slot:
            if dest.has_blob(desc):
                progress.state(desc, "exists")
                return
            if not store.has_blob(desc.digest):
                raise TransportError(f"{source.describe()}: blob {desc.digest} is not in the store")
            progress.state(desc, "uploading")
            with store.open_blob(desc.digest) as stream:
                # The final PUT waits while the registry verifies and fsyncs the blob:
                # the next one streams meanwhile.
                dest.put_blob(desc, stream, on_streamed=slot.release)

    if dest.has_manifest(top.digest):
        # The registry holds this very manifest, and it accepted it only with everything
        # it references: no blob needs a look, only the tag is (re)set.
        for blob in blobs:
            progress.state(blob, "exists")
        dest.commit(top)
        written = top
    else:
        with store.lease([top.digest]):
            run_all(blobs, send, concurrency=workers_for(blobs, concurrency), cancel=cancel)
            written = copy(source, dest, all_platforms=True)
    sources.record(dest.ref.registry, dest.ref.repository, [b.digest for b in blobs])
    return PushResult(
        str(dest.ref), written.digest, len(written.raw), counts["pushed"], counts["mounted"]
    )
