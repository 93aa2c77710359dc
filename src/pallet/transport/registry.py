"""``docker://REF``: a registry speaking the OCI Distribution Spec (v1.1) or Docker's
Registry HTTP API V2, as a copy source and destination.

Manifests are fetched with every manifest media type accepted, bounded to 4 MiB, and
checked against the digest asked for (or the one the registry announces). Blobs stream
(see :mod:`registry_blobs`, :mod:`registry_upload`); pushing defers manifests to
``commit`` so they go children first and the tagged one last.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, closing
from typing import BinaryIO

from pallet.errors import DigestMismatch, ManifestUnknown, TransportError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.transport.base import ManifestBlob
from pallet.transport.registry_blobs import RemoteBlob
from pallet.transport.registry_config import RegistriesConfig, api_host
from pallet.transport.registry_credentials import Credentials, DockerConfig, credentials_loader
from pallet.transport.registry_endpoint import ACCEPT_MANIFESTS
from pallet.transport.registry_http import RegistryHttp
from pallet.transport.registry_ref import ImageRef
from pallet.transport.registry_upload import BlobUpload

MAX_MANIFEST_SIZE = 4 << 20

#: ``on_blob(event, descriptor, amount)``: events "bytes" (amount = byte count),
#: "exists", "mounted", "pushed", "verified"
BlobEvents = Callable[[str, Descriptor, int], None]


def connect(
    registry: str,
    *,
    config: RegistriesConfig | None = None,
    credentials: Credentials | None = None,
    docker_config: DockerConfig | None = None,
) -> RegistryHttp:
    """An HTTP client for ``registry`` (a reference's domain) with the user's credentials."""
    config = config or RegistriesConfig.load()
    load = credentials_loader(registry, credentials=credentials, docker_config=docker_config)
    return RegistryHttp(registry, config=config, credentials=load, endpoint=api_host(registry))


def _mirror_clients(ref: ImageRef, config: RegistriesConfig) -> list[RegistryHttp]:
    store = DockerConfig()
    out = []
    for mirror in config.mirrors_of(ref.registry):

        def load(host: str = mirror.host) -> Credentials:
            return store.get(host)

        out.append(RegistryHttp(mirror.host, config=config, credentials=load, scheme=mirror.scheme))
    return out


def sniff_manifest_type(raw: bytes, what: str) -> str:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TransportError(f"{what}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise TransportError(f"{what}: not a JSON object")
    media_type = doc.get("mediaType")
    if isinstance(media_type, str) and media_type:
        return media_type
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST


class RegistryRepo:
    """One repository of one registry endpoint: the requests the transports make."""

    def __init__(self, http: RegistryHttp, repository: str) -> None:
        self.http = http
        self.repository = repository
        self.pull_scope = [f"repository:{repository}:pull"]
        self.push_scope = [f"repository:{repository}:pull,push"]

    def describe(self, reference: str = "") -> str:
        sep = "@" if reference.startswith("sha256:") else ":"
        return f"{self.http.registry}/{self.repository}" + (sep + reference if reference else "")

    async def get_manifest(self, reference: str) -> ManifestBlob:
        what = self.describe(reference)
        reply = await self.http.reply(
            "GET",
            f"/v2/{self.repository}/manifests/{reference}",
            scopes=self.pull_scope,
            headers={"Accept": ACCEPT_MANIFESTS},
            limit=MAX_MANIFEST_SIZE,
        )
        if reply.status == 404:
            raise ManifestUnknown(f"{what}: manifest unknown")
        if reply.status != 200:
            raise self.http.error(what, reply)
        length = reply.header("Content-Length")
        if len(reply.body) > MAX_MANIFEST_SIZE or (
            length and length.isdigit() and int(length) > MAX_MANIFEST_SIZE
        ):
            raise TransportError(f"{what}: manifest larger than {MAX_MANIFEST_SIZE} bytes refused")
        raw = reply.body
        got = Digest.from_bytes(raw)
        want = reference if reference.startswith("sha") else reply.header("Docker-Content-Digest")
        if want and want.startswith("sha256:") and got != want:
            raise DigestMismatch(f"{what}: manifest content hashes to {got}, expected {want}")
        content_type = (reply.header("Content-Type") or "").split(";", 1)[0].strip()
        if not (mt.is_manifest(content_type) or mt.is_index(content_type)):
            content_type = sniff_manifest_type(raw, what)
        return ManifestBlob(raw, content_type)

    async def has_manifest(self, digest: Digest) -> bool:
        reply = await self.http.reply(
            "HEAD",
            f"/v2/{self.repository}/manifests/{digest}",
            scopes=self.push_scope,
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        return reply.status == 200

    async def put_manifest(self, manifest: ManifestBlob, reference: str) -> Digest:
        what = self.describe(reference)
        reply = await self.http.reply(
            "PUT",
            f"/v2/{self.repository}/manifests/{reference}",
            scopes=self.push_scope,
            headers={"Content-Type": manifest.media_type},
            body=manifest.raw,
        )
        if reply.status not in (200, 201):
            raise self.http.error(what, reply)
        return manifest.digest

    async def has_blob(self, digest: Digest, scopes: Sequence[str]) -> bool:
        reply = await self.http.reply(
            "HEAD", f"/v2/{self.repository}/blobs/{digest}", scopes=scopes
        )
        if reply.status == 200:
            return True
        if reply.status == 404:
            return False
        raise self.http.error(self.describe() + f": blob {digest}", reply)

    async def tags(self) -> list[str]:
        reply = await self.http.reply(
            "GET", f"/v2/{self.repository}/tags/list", scopes=self.pull_scope, limit=16 << 20
        )
        if reply.status != 200:
            raise self.http.error(self.describe(), reply)
        try:
            tags = json.loads(reply.body).get("tags") or []
        except (ValueError, AttributeError):
            raise TransportError(f"{self.describe()}: malformed tag list") from None
        return [t for t in tags if isinstance(t, str)]


class RegistrySource:
    """An image in a registry; docker.io pulls try the configured mirrors first."""

    def __init__(
        self,
        ref: ImageRef,
        http: RegistryHttp,
        *,
        mirrors: Sequence[RegistryHttp] = (),
        cancel: threading.Event | None = None,
    ) -> None:
        self.ref = ref
        self.repo = RegistryRepo(http, ref.repository)
        self._candidates = [*mirrors, http]
        self._resolved = False
        self._manifests: dict[Digest, ManifestBlob] = {}
        self.cancel = cancel or threading.Event()
        #: called with ("bytes", desc, n) as blob bytes arrive
        self.on_blob: BlobEvents | None = None

    @property
    def http(self) -> RegistryHttp:
        return self.repo.http

    def describe(self) -> str:
        return f"docker://{self.ref}"

    def get_manifest(self, digest: Digest | None = None) -> ManifestBlob:
        if digest is not None and digest in self._manifests:
            return self._manifests[digest]
        if digest is None and not self._resolved:
            blob = self._resolve_top()
        else:
            blob = self.http.runner.run(self.repo.get_manifest(str(digest or self.ref.reference)))
        self._manifests[blob.digest] = blob
        return blob

    def _resolve_top(self) -> ManifestBlob:
        last: TransportError | None = None
        for http in self._candidates:
            repo = RegistryRepo(http, self.ref.repository)
            try:
                blob = http.runner.run(repo.get_manifest(self.ref.reference))
            except TransportError as exc:
                if http is self._candidates[-1]:
                    raise
                last = exc  # a mirror that fails is skipped; the registry itself decides
                continue
            self.repo = repo
            self._resolved = True
            return blob
        raise last or TransportError(f"{self.describe()}: no endpoint")

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        return closing(self.remote_blob(desc).as_stream())

    def remote_blob(self, desc: Descriptor) -> RemoteBlob:
        """The blob as a stream that can also hand out the received pieces uncopied
        (:meth:`RemoteBlob.read_chunks`); the caller closes it."""
        on_blob = self.on_blob

        def count(n: int) -> None:
            if on_blob is not None:
                on_blob("bytes", desc, n)

        return RemoteBlob(self.http, self.repo.repository, desc, on_bytes=count, cancel=self.cancel)

    def close(self) -> None:
        for http in self._candidates:
            http.close()


class RegistryDestination:
    """A repository to push to; ``commit`` puts the manifests, the tagged one last."""

    def __init__(
        self,
        ref: ImageRef,
        http: RegistryHttp,
        *,
        mount_sources: Callable[[Digest], Sequence[str]] | None = None,
    ) -> None:
        self.ref = ref
        self.repo = RegistryRepo(http, ref.repository)
        self._known: set[Digest] = set()
        self._pending: list[ManifestBlob] = []
        self._mount_sources = mount_sources
        self.on_blob: BlobEvents | None = None
        self._lock = threading.Lock()

    @property
    def http(self) -> RegistryHttp:
        return self.repo.http

    def describe(self) -> str:
        return f"docker://{self.ref}"

    def _note(self, event: str, desc: Descriptor, amount: int = 0) -> None:
        if self.on_blob is not None:
            self.on_blob(event, desc, amount)

    def has_blob(self, desc: Descriptor) -> bool:
        if desc.digest in self._known:
            return True
        if self.http.runner.run(self.repo.has_blob(desc.digest, self.repo.push_scope)):
            with self._lock:
                self._known.add(desc.digest)
            return True
        return False

    def has_manifest(self, digest: Digest) -> bool:
        return bool(self.http.runner.run(self.repo.has_manifest(digest)))

    def put_blob(
        self,
        desc: Descriptor,
        stream: BinaryIO,
        *,
        on_streamed: Callable[[], None] | None = None,
    ) -> None:
        """Upload ``desc``; ``on_streamed`` is called (on the event loop) once its bytes
        are sent, while the registry still verifies and stores them."""
        sources = self._mount_sources(desc.digest) if self._mount_sources else ()

        def count(n: int) -> None:
            self._note("bytes", desc, n)

        upload = BlobUpload(
            self.http,
            self.repo.repository,
            desc,
            stream,
            on_bytes=count,
            on_streamed=on_streamed,
        )
        outcome = self.http.runner.run(upload.run(sources))
        with self._lock:
            self._known.add(desc.digest)
        self._note(outcome, desc)

    def put_manifest(self, manifest: ManifestBlob) -> None:
        self._pending.append(manifest)

    def commit(self, top: ManifestBlob) -> None:
        run = self.http.runner.run
        for manifest in self._pending:
            if manifest.digest == top.digest:
                continue
            if not run(self.repo.has_manifest(manifest.digest)):
                run(self.repo.put_manifest(manifest, manifest.digest))
        run(self.repo.put_manifest(top, self.ref.tag or str(top.digest)))
        self._pending.clear()

    def close(self) -> None:
        self.http.close()


def open_source(ref: str, *, config: RegistriesConfig | None = None) -> RegistrySource:
    """``docker://REF`` as a copy source."""
    image = ImageRef.parse(ref)
    config = config or RegistriesConfig.load()
    return RegistrySource(
        image, connect(image.registry, config=config), mirrors=_mirror_clients(image, config)
    )


def open_destination(
    ref: str,
    *,
    config: RegistriesConfig | None = None,
    mount_sources: Callable[[Digest], Sequence[str]] | None = None,
) -> RegistryDestination:
    """``docker://REF`` as a copy destination."""
    image = ImageRef.parse(ref)
    return RegistryDestination(
        image, connect(image.registry, config=config), mount_sources=mount_sources
    )
