"""Manifest endpoints: GET/HEAD with Accept negotiation, PUT (by tag or digest), DELETE."""

from __future__ import annotations

import json

from aiohttp import web

from pallet.oci.digest import Digest
from pallet.registry.apierrors import ApiError
from pallet.registry.httputil import API_VERSION, Caller, audit, empty
from pallet.registry.manifests import parse_manifest
from pallet.registry.names import is_valid_tag, parse_reference
from pallet.registry.state import CachedManifest, RegistryState
from pallet.registry.storage.metadata import ManifestRecord


def _unknown(name: str, ref: str) -> ApiError:
    return ApiError("MANIFEST_UNKNOWN", f"manifest unknown: {name}:{ref[:200]}")


def _acceptable(accept: str, media_type: str) -> bool:
    if not accept:
        return True
    for item in accept.split(","):
        kind = item.split(";", 1)[0].strip()
        if kind in (media_type, "*/*", "application/*", "application/json"):
            return True
    return False


def _load(state: RegistryState, name: str, ref: str) -> CachedManifest:
    tag, digest = parse_reference(ref)
    record = (
        state.meta.resolve_tag(name, tag)
        if tag is not None
        else state.meta.get_manifest(name, digest)  # type: ignore[arg-type]
    )
    if record is None:
        raise _unknown(name, ref)
    try:
        body = state.blobs.read(record.digest)
    except FileNotFoundError:
        raise _unknown(name, ref) from None
    headers = {
        **API_VERSION,
        "Content-Type": record.media_type,
        "Docker-Content-Digest": record.digest,
        "ETag": f'"{record.digest}"',
    }
    entry = CachedManifest(record.digest, record.media_type, body, headers)
    state.cache.put(name, ref, entry)
    return entry


async def get_manifest(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    entry = state.cache.get(name, ref) or _load(state, name, ref)
    # Clients may send several Accept lines (Go's Header.Add): all of them count.
    accept = ",".join(request.headers.getall("Accept", ()))
    if accept and not _acceptable(accept, entry.media_type):
        raise ApiError(
            "MANIFEST_UNKNOWN",
            f"manifest {name}:{ref} is {entry.media_type}, which the Accept header excludes",
        )
    return web.Response(body=entry.body, headers=entry.headers)


async def _read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError("SIZE_INVALID", f"manifest of {length} bytes exceeds {limit}", status=413)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        if total > limit:
            raise ApiError("SIZE_INVALID", f"manifest exceeds {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def put_manifest(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    tag, ref_digest = parse_reference(ref)
    tags = [tag] if tag is not None else []
    for extra in request.query.getall("tag", []):
        if not is_valid_tag(extra):
            raise ApiError("MANIFEST_INVALID", f"invalid tag {extra[:200]!r}")
        tags.append(extra)
    body = await _read_body(request, state.config.limits.max_manifest_bytes)
    algorithm = ref_digest.algorithm if ref_digest is not None else "sha256"
    digest = Digest.from_bytes(body, algorithm)
    if ref_digest is not None and digest != ref_digest:
        raise ApiError("DIGEST_INVALID", f"manifest body does not match digest {ref_digest}")
    facts = parse_manifest(body, request.headers.get("Content-Type", ""))
    record = ManifestRecord(
        repo=name,
        digest=digest,
        media_type=facts.media_type,
        size=len(body),
        subject=facts.subject,
        artifact_type=facts.artifact_type,
        annotations=json.dumps(facts.annotations) if facts.annotations else "",
    )
    temp = state.blobs.write_bytes(body, digest)
    try:
        missing = state.meta.put_manifest(
            record, facts.blobs, facts.manifests, tags, lambda: state.blobs.install(temp, digest)
        )
    finally:
        temp.unlink(missing_ok=True)
    if missing is not None:
        audit(state, caller, "manifest.push", name, ref, digest, outcome="blob-unknown")
        raise ApiError(
            "MANIFEST_BLOB_UNKNOWN",
            f"manifest references {missing.digests[0]}, unknown to repository {name}",
            detail=[{"digest": d} for d in missing.digests],
        )
    state.cache.invalidate(name)
    state.metrics.inc("manifest_pushes")
    audit(state, caller, "manifest.push", name, ",".join(tags), digest)
    state.notifier.event(
        "push",
        name,
        digest=digest,
        media_type=facts.media_type,
        size=len(body),
        tag=",".join(tags),
        user=caller.user,
        address=caller.address,
    )
    headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
    if facts.subject is not None:
        headers["OCI-Subject"] = facts.subject
    resp = empty(201, headers)
    for t in tags[1:] if tag is not None else tags:
        resp.headers.add("OCI-Tag", t)
    return resp


async def delete_manifest(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    tag, digest = parse_reference(ref)
    if tag is not None:
        removed = state.meta.delete_tag(name, tag)
        if removed is None:
            raise _unknown(name, ref)
        state.cache.invalidate(name)
        audit(state, caller, "tag.delete", name, tag, removed)
        state.notifier.event(
            "delete", name, digest=removed, tag=tag, user=caller.user, address=caller.address
        )
        return empty(202, {})
    assert digest is not None
    tags = state.meta.delete_manifest(name, digest)
    if tags is None:
        raise _unknown(name, ref)
    state.cache.invalidate(name)
    audit(state, caller, "manifest.delete", name, ",".join(tags), digest)
    state.notifier.event("delete", name, digest=digest, user=caller.user, address=caller.address)
    return empty(202, {})
