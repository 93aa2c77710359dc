"""Blob endpoints: GET/HEAD with Range (served with sendfile), DELETE, and uploads."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from aiohttp import web

from pallet.oci.digest import Digest
from pallet.registry.apierrors import ApiError
from pallet.registry.httputil import API_VERSION, Caller, audit, empty
from pallet.registry.names import check_digest, check_name
from pallet.registry.state import RegistryState

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def _blob_unknown(digest: str) -> ApiError:
    return ApiError("BLOB_UNKNOWN", f"blob unknown to registry: {digest}")


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) asked for, None for the whole blob; 416 if unsatisfiable."""
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        return None  # several ranges or another unit: serve the whole blob
    first, last = m.groups()
    unsatisfiable = ApiError(
        "RANGE_INVALID",
        f"range {header[:60]!r} not satisfiable for {size} bytes",
        status=416,
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not first:
        if not last or int(last) == 0 or size == 0:
            raise unsatisfiable
        return max(size - int(last), 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start > end or start >= size:
        raise unsatisfiable
    return start, min(end, size - 1)


async def get_blob(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    digest = check_digest(ref)
    head = request.method == "HEAD"
    # A HEAD usually precedes a manifest push that relies on the blob: refresh its GC
    # grace period (not in read-only mode, where nothing is written).
    size = state.meta.blob_size(name, digest, touch=head and not state.config.read_only)
    if size is None:
        raise _blob_unknown(digest)
    headers = {
        **API_VERSION,
        "Docker-Content-Digest": digest,
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
    }
    if head:
        headers["Content-Length"] = str(size)
        return web.Response(status=200, headers=headers)
    rng = _byte_range(request.headers["Range"], size) if "Range" in request.headers else None
    try:
        fh = open(state.blobs.path(digest), "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise _blob_unknown(digest) from None
    try:
        offset, count, status = 0, size, 200
        if rng is not None:
            offset, count, status = rng[0], rng[1] - rng[0] + 1, 206
            headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = count
        await resp.prepare(request)
        if count:
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("client went away")
            await asyncio.get_running_loop().sendfile(transport, fh, offset, count)
        await resp.write_eof()
        state.metrics.inc("blob_bytes_sent", count)
        return resp
    finally:
        fh.close()


async def delete_blob(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    digest = check_digest(ref)
    if not state.meta.unlink_blob(name, digest):
        raise _blob_unknown(digest)
    audit(state, caller, "blob.delete", name, digest=digest)
    state.notifier.event("delete", name, digest=digest, user=caller.user, address=caller.address)
    return empty(202, {"Docker-Content-Digest": digest})


def _body(request: web.Request) -> AsyncIterator[bytes]:
    return request.content.iter_any()


def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def _committed(
    state: RegistryState, caller: Caller, name: str, digest: Digest, size: int
) -> web.Response:
    state.metrics.inc("blob_uploads")
    state.metrics.inc("blob_bytes_received", size)
    audit(state, caller, "blob.push", name, digest=digest)
    return empty(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})


def _mount(
    state: RegistryState, caller: Caller, name: str, digest: Digest, source: str | None
) -> bool:
    """Link ``digest`` into ``name`` if the caller can read it where it lives."""
    acl, user = state.auth.acl, caller.identity.user
    if source is not None:
        candidates = [source] if state.meta.blob_size(source, digest) is not None else []
    else:
        candidates = state.meta.repos_with_blob(digest)
    for repo in candidates:
        # The caller must be able to pull from the source: never leak a blob across repos.
        readable = state.auth.open or acl.allows(user, repo, "pull")
        if readable and state.meta.link_blob(name, digest) is not None:
            audit(state, caller, "blob.mount", name, reference=repo, digest=digest)
            return True
    return False


async def start_upload(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    query = request.query
    if "mount" in query:
        digest = check_digest(query["mount"])
        source = query.get("from")
        if source is not None:
            source = check_name(source)
        if _mount(state, caller, name, digest, source):
            return empty(
                201,
                {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest},
            )
        # Not mountable: fall back to an ordinary upload session, as the spec says.
    elif "digest" in query:
        digest = check_digest(query["digest"])
        _check_length(state, request)
        size = await state.uploads.receive(name, digest, _body(request))
        return _committed(state, caller, name, digest, size)
    upload_id = state.uploads.create(name)
    return empty(202, _upload_headers(name, upload_id, 0))


def _check_length(state: RegistryState, request: web.Request) -> None:
    limit = state.config.limits.max_blob_bytes
    length = request.content_length
    if limit and length is not None and length > limit:
        raise ApiError(
            "SIZE_INVALID", f"blob of {length} bytes exceeds the limit of {limit}", status=413
        )


def _content_range(request: web.Request) -> tuple[int, int] | None:
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    m = _CONTENT_RANGE.fullmatch(header.strip())
    if m is None or int(m.group(1)) > int(m.group(2)):
        raise ApiError("BLOB_UPLOAD_INVALID", f"invalid Content-Range {header[:60]!r}", status=416)
    return int(m.group(1)), int(m.group(2))


async def patch_upload(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    _check_length(state, request)
    crange = _content_range(request)
    start, expected = (None, None) if crange is None else (crange[0], crange[1] - crange[0] + 1)
    if expected is not None and request.content_length not in (None, expected):
        raise ApiError(
            "BLOB_UPLOAD_INVALID", "Content-Length does not match Content-Range", status=416
        )

    def out_of_order(size: int) -> ApiError:
        return ApiError(
            "BLOB_UPLOAD_INVALID",
            f"chunk starts at {start}, upload is at {size}",
            status=416,
            headers=_upload_headers(name, ref, size),
        )

    size = await state.uploads.append(name, ref, _body(request), start, expected, out_of_order)
    return empty(202, _upload_headers(name, ref, size))


async def put_upload(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    if "digest" not in request.query:
        raise ApiError("DIGEST_INVALID", "missing digest query parameter")
    digest = check_digest(request.query["digest"])
    _check_length(state, request)
    stream = None
    if request.body_exists:
        crange = _content_range(request)
        if crange is not None:
            current = await state.uploads.size(name, ref)
            if crange[0] != current:
                raise ApiError(
                    "BLOB_UPLOAD_INVALID",
                    f"final chunk starts at {crange[0]}, upload is at {current}",
                    status=416,
                    headers=_upload_headers(name, ref, current),
                )
        stream = _body(request)
    size = await state.uploads.finish(name, ref, digest, stream)
    return _committed(state, caller, name, digest, size)


async def upload_status(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    size = await state.uploads.size(name, ref)
    return empty(204, _upload_headers(name, ref, size))


async def cancel_upload(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    await state.uploads.cancel(name, ref)
    return empty(204, {})
