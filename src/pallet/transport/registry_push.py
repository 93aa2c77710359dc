"""``push``: an image (or index) of the local store to a registry.

First a blocking client on the standard library (:mod:`registry_probe`) asks whether
the registry already holds the image: if the tag names this very manifest, nothing is
sent; if the registry holds the manifest under its digest, only the tag is put. Such a
push never imports aiohttp. Otherwise the aiohttp client takes over (with the endpoint
and tokens found): per blob a HEAD; a blob the registry already holds in another
repository (known from earlier pulls and pushes) is mounted; the rest upload
concurrently; then :func:`copy` puts the manifests, children first and the tagged one
last.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from pallet.errors import NotFound, TransportError
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.store import Store
from pallet.transport.base import ManifestBlob
from pallet.transport.registry_config import RegistriesConfig
from pallet.transport.registry_endpoint import ACCEPT_MANIFESTS, reply_error
from pallet.transport.registry_plan import plan_blobs
from pallet.transport.registry_probe import BlockingRegistryHttp, Unsure, connect_blocking
from pallet.transport.registry_progress import NoProgress, Progress
from pallet.transport.registry_ref import ImageRef
from pallet.transport.registry_sources import BlobSources
from pallet.transport.store import StoreSource

if TYPE_CHECKING:
    from pallet.transport.registry import RegistryDestination

#: blobs uploaded at once (docker's default for pushes)
DEFAULT_CONCURRENCY = 5


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


class Found(Enum):
    """What the blocking client learned about the image in the registry."""

    IN_PLACE = "in place"  # the tag names the manifest now: nothing more to do
    ABSENT = "absent"  # the registry does not hold the manifest
    UNKNOWN = "unknown"  # the blocking client could not tell


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
    config = config or RegistriesConfig.load()
    probe = connect_blocking(image.registry, config=config)
    try:
        top = source.get_manifest()
        blobs = plan_blobs(source, top, all_platforms=True)
        for blob in blobs:
            progress.add(blob)
        found = _look(probe, image, top)
        if found is Found.IN_PLACE:
            # The registry accepted this manifest only with everything it references.
            for blob in blobs:
                progress.state(blob, "exists")
            result = PushResult(name, top.digest, len(top.raw), 0, 0)
        else:
            result = _push_blobs(
                source,
                store,
                image,
                top,
                blobs,
                probe,
                found,
                sources,
                config,
                max_concurrent,
                progress,
            )
    finally:
        probe.close()
        source.close()
    sources.record(image.registry, image.repository, [b.digest for b in blobs])
    return result


def _look(probe: BlockingRegistryHttp, image: ImageRef, top: ManifestBlob) -> Found:
    """Ask whether the registry holds ``top``; if it does, make the tag name it."""
    reference = image.tag or str(top.digest)
    path = f"/v2/{image.repository}/manifests/"
    scopes = [f"repository:{image.repository}:pull,push"]
    accept = {"Accept": ACCEPT_MANIFESTS}
    try:
        reply = probe.request("HEAD", path + reference, scopes=scopes, headers=accept)
        if reply.status == 200 and reply.header("Docker-Content-Digest") == top.digest:
            return Found.IN_PLACE
        if reference != top.digest:
            reply = probe.request("HEAD", path + top.digest, scopes=scopes, headers=accept)
        if reply.status != 200:
            return Found.ABSENT
        reply = probe.request(
            "PUT",
            path + reference,
            scopes=scopes,
            headers={"Content-Type": top.media_type},
            body=top.raw,
        )
    except Unsure:
        return Found.UNKNOWN
    if reply.status not in (200, 201):
        sep = "@" if reference.startswith("sha256:") else ":"
        raise reply_error(f"{image.name}{sep}{reference}", reply.status, reply.body)
    return Found.IN_PLACE


def _push_blobs(
    source: StoreSource,
    store: Store,
    image: ImageRef,
    top: ManifestBlob,
    blobs: list[Descriptor],
    probe: BlockingRegistryHttp,
    found: Found,
    sources: BlobSources,
    config: RegistriesConfig,
    concurrency: int,
    progress: Progress,
) -> PushResult:
    from pallet.transport.copy import copy
    from pallet.transport.registry import open_destination

    dest = open_destination(
        str(image),
        config=config,
        mount_sources=lambda d: sources.repositories(image.registry, d),
    )
    try:
        if probe.base is not None:
            dest.http.take_over(probe.base, probe.tls, probe.auth)
        if found is Found.UNKNOWN and dest.has_manifest(top.digest):
            for blob in blobs:
                progress.state(blob, "exists")
            dest.commit(top)
            return PushResult(str(dest.ref), top.digest, len(top.raw), 0, 0)
        counts = _send_blobs(source, store, dest, top, blobs, concurrency, progress)
        written = copy(source, dest, all_platforms=True)
        return PushResult(
            str(dest.ref), written.digest, len(written.raw), counts["pushed"], counts["mounted"]
        )
    finally:
        dest.close()


def _send_blobs(
    source: StoreSource,
    store: Store,
    dest: RegistryDestination,
    top: ManifestBlob,
    blobs: list[Descriptor],
    concurrency: int,
    progress: Progress,
) -> dict[str, int]:
    """Every blob the registry lacks, concurrently; returns how many were pushed and
    mounted."""
    from pallet.transport.registry_transfer import StreamSlots, run_all, workers_for

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

    # Smallest first: they finish at once and free their slots, and the registry's
    # commits of them (each an fsync) come while little of the big ones is written yet.
    order = sorted(blobs, key=lambda d: d.size)
    with store.lease([top.digest]):
        run_all(order, send, concurrency=workers_for(order, concurrency), cancel=cancel)
    return counts
