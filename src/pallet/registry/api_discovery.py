"""Listing endpoints: tags, the catalog (both paginated with n/last and Link) and referrers."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from aiohttp import web

from pallet.oci import mediatypes as mt
from pallet.registry.apierrors import ApiError
from pallet.registry.httputil import API_VERSION, Caller, page_params
from pallet.registry.names import check_digest
from pallet.registry.state import RegistryState


def _json(
    doc: Any, headers: dict[str, str] | None = None, content_type: str = "application/json"
) -> web.Response:
    return web.Response(
        body=json.dumps(doc).encode(),
        headers={**API_VERSION, "Content-Type": content_type, **(headers or {})},
    )


def _link(path: str, n: int, last: str) -> dict[str, str]:
    return {"Link": f'<{path}?n={n}&last={quote(last, safe="")}>; rel="next"'}


async def list_tags(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    n, last = page_params(request)
    if not state.meta.repo_exists(name):
        raise ApiError("NAME_UNKNOWN", f"repository name not known to registry: {name}")
    tags = state.meta.list_tags(name, last, n + 1) if n else []
    headers = {}
    if len(tags) > n:
        tags = tags[:n]
        headers = _link(f"/v2/{name}/tags/list", n, tags[-1])
    return _json({"name": name, "tags": tags}, headers)


async def catalog(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    n, last = page_params(request)
    acl, user, open_ = state.auth.acl, caller.identity.user, state.auth.open
    repos: list[str] = []
    cursor = last
    while n and len(repos) <= n:
        batch = state.meta.list_repositories(cursor, n + 1)
        if not batch:
            break
        # Only repositories the caller could pull from are listed.
        repos.extend(r for r in batch if open_ or acl.allows(user, r, "pull"))
        cursor = batch[-1]
        if len(batch) <= n:
            break
    headers = {}
    if len(repos) > n:
        repos = repos[:n]
        headers = _link("/v2/_catalog", n, repos[-1])
    return _json({"repositories": repos}, headers)


async def referrers(
    state: RegistryState, request: web.Request, name: str, ref: str, caller: Caller
) -> web.StreamResponse:
    subject = check_digest(ref)
    wanted = request.query.get("artifactType")
    manifests = []
    for record in state.meta.referrers(name, subject):
        if wanted is not None and record.artifact_type != wanted:
            continue
        entry: dict[str, Any] = {
            "mediaType": record.media_type,
            "digest": record.digest,
            "size": record.size,
        }
        if record.artifact_type:
            entry["artifactType"] = record.artifact_type
        if record.annotations:
            entry["annotations"] = json.loads(record.annotations)
        manifests.append(entry)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
    headers = {"OCI-Filters-Applied": "artifactType"} if wanted is not None else {}
    return _json(doc, headers, mt.OCI_INDEX)
