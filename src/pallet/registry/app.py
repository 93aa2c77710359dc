"""The aiohttp application: one dispatcher for ``/v2/``, plus token, health and metrics.

The dispatcher parses the route itself (names contain slashes), authenticates, checks
the ACL for the route's action, and turns every :class:`ApiError` into the spec's JSON
error body. Anything unexpected becomes a 500 with a logged traceback, never a leak.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from pallet.registry import api_blobs, api_discovery, api_manifests
from pallet.registry import routing as r
from pallet.registry.apierrors import ApiError
from pallet.registry.auth.authn import ANONYMOUS, Identity
from pallet.registry.httputil import API_VERSION, Caller, audit, read_only_refusal
from pallet.registry.names import check_name
from pallet.registry.state import RegistryState

log = logging.getLogger("pallet.registry")

Handler = Callable[[RegistryState, web.Request, str, str, Caller], Awaitable[web.StreamResponse]]

# (route kind, method) -> (handler, action the caller needs on the repository)
_TABLE: dict[tuple[str, str], tuple[Handler, str]] = {
    (r.MANIFEST, "GET"): (api_manifests.get_manifest, "pull"),
    (r.MANIFEST, "HEAD"): (api_manifests.get_manifest, "pull"),
    (r.MANIFEST, "PUT"): (api_manifests.put_manifest, "push"),
    (r.MANIFEST, "DELETE"): (api_manifests.delete_manifest, "delete"),
    (r.BLOB, "GET"): (api_blobs.get_blob, "pull"),
    (r.BLOB, "HEAD"): (api_blobs.get_blob, "pull"),
    (r.BLOB, "DELETE"): (api_blobs.delete_blob, "delete"),
    (r.UPLOAD_START, "POST"): (api_blobs.start_upload, "push"),
    (r.UPLOAD, "GET"): (api_blobs.upload_status, "push"),
    (r.UPLOAD, "PATCH"): (api_blobs.patch_upload, "push"),
    (r.UPLOAD, "PUT"): (api_blobs.put_upload, "push"),
    (r.UPLOAD, "DELETE"): (api_blobs.cancel_upload, "push"),
    (r.TAGS, "GET"): (api_discovery.list_tags, "pull"),
    (r.REFERRERS, "GET"): (api_discovery.referrers, "pull"),
}
_WRITES = {"push", "delete"}


def error_response(err: ApiError) -> web.Response:
    headers = {**API_VERSION, **err.headers, "Content-Type": "application/json"}
    return web.Response(status=err.status, body=err.body(), headers=headers)


class Dispatcher:
    def __init__(self, state: RegistryState) -> None:
        self.state = state

    async def _identify(self, request: web.Request) -> Identity:
        auth = self.state.auth
        if auth.open:
            return ANONYMOUS
        identity = await auth.identify(request.headers.get("Authorization", ""))
        if identity is None:
            raise auth.unauthorized(request.scheme, request.host, None)
        return identity

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        state = self.state
        label = "unknown"
        status = 500
        caller = Caller(ANONYMOUS, request.remote or "")
        route: r.Route | None = None
        try:
            route = r.match(request.match_info["tail"])
            if route is None:
                raise ApiError("NOT_FOUND", f"no such endpoint {request.path[:200]!r}")
            label = route.kind
            method = request.method
            caller = Caller(await self._identify(request), caller.address)
            if route.kind == r.BASE:
                if method not in ("GET", "HEAD"):
                    raise ApiError("UNSUPPORTED", f"{method} not allowed on /v2/")
                if caller.identity is ANONYMOUS and not state.auth.open:
                    raise state.auth.unauthorized(request.scheme, request.host, None)
                resp: web.StreamResponse = web.json_response({}, headers=API_VERSION)
            elif route.kind == r.CATALOG:
                if method != "GET":
                    raise ApiError("UNSUPPORTED", f"{method} not allowed on the catalog")
                resp = await api_discovery.catalog(state, request, "", "", caller)
            else:
                entry = _TABLE.get((route.kind, method))
                if entry is None:
                    raise ApiError("UNSUPPORTED", f"{method} not allowed on {route.kind}")
                handler, action = entry
                name = check_name(route.name)
                if action in _WRITES and state.config.read_only:
                    raise read_only_refusal()
                state.auth.authorize(caller.identity, name, (action,), request.scheme, request.host)
                resp = await handler(state, request, name, route.ref, caller)
            status = resp.status
            return resp
        except ApiError as err:
            status = err.status
            if status in (401, 403):
                state.metrics.inc("denied_requests")
                audit(
                    state,
                    caller,
                    f"{request.method} {label}",
                    route.name[:300] if route else "",
                    route.ref[:300] if route else "",
                    outcome="denied" if status == 403 else "unauthorized",
                )
            return error_response(err)
        except (ConnectionResetError, asyncio.CancelledError):
            status = 499
            raise
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path[:200])
            return error_response(ApiError("UNKNOWN", "internal server error"))
        finally:
            state.metrics.observe(request.method, label, status, time.perf_counter() - started)


async def token_endpoint(request: web.Request) -> web.StreamResponse:
    state: RegistryState = request.app[STATE_KEY]
    auth = state.auth
    if auth.mode != "token":
        return error_response(ApiError("NOT_FOUND", "no token service (auth.mode is not token)"))
    user: str | None = None
    scopes = request.query.getall("scope", [])
    header = request.headers.get("Authorization", "")
    if request.method == "POST":
        form = await request.post()
        if form.get("grant_type") == "password":
            header = ""
            ok = await asyncio.to_thread(
                auth.htpasswd.verify, str(form.get("username", "")), str(form.get("password", ""))
            )
            if not ok:
                return _token_denied(state, request, str(form.get("username", "")))
            user = str(form.get("username"))
        scopes += [s for s in str(form.get("scope", "")).split(" ") if s]
    if header:
        user = await auth.check_basic(header)
        if user is None:
            return _token_denied(state, request, "")
    # Docker sends several scopes space-separated in one parameter.
    flat = [part for scope in scopes for part in scope.split(" ") if part]
    return web.json_response(auth.issue_token(user, flat))


def _token_denied(state: RegistryState, request: web.Request, user: str) -> web.Response:
    state.metrics.inc("denied_requests")
    audit(
        state,
        Caller(Identity(user or None), request.remote or ""),
        "token",
        "",
        outcome="unauthorized",
    )
    err = ApiError(
        "UNAUTHORIZED",
        "invalid username or password",
        headers={"WWW-Authenticate": f'Basic realm="{state.config.auth.realm}"'},
    )
    return error_response(err)


async def health(request: web.Request) -> web.StreamResponse:
    state: RegistryState = request.app[STATE_KEY]
    problems = []
    try:
        state.meta.data_version()
    except Exception as exc:  # a health check reports, it does not raise
        problems.append(f"metadata: {exc}")
    if not state.config.read_only and not os.access(state.config.data, os.W_OK):
        problems.append(f"data directory {state.config.data} is not writable")
    body = {"status": "ok" if not problems else "unhealthy", "problems": problems}
    return web.json_response(body, status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.StreamResponse:
    state: RegistryState = request.app[STATE_KEY]
    return web.Response(text=state.metrics.render(), content_type="text/plain", charset="utf-8")


STATE_KEY: web.AppKey[RegistryState] = web.AppKey("registry_state", RegistryState)


def build_app(state: RegistryState) -> web.Application:
    app = web.Application(client_max_size=state.config.limits.max_manifest_bytes + 65536)
    app[STATE_KEY] = state
    dispatcher = Dispatcher(state)
    app.router.add_route("*", "/v2", _redirect_base)
    app.router.add_route("*", "/v2/{tail:.*}", dispatcher.handle)
    app.router.add_route("GET", "/token", token_endpoint)
    app.router.add_route("POST", "/token", token_endpoint)
    app.router.add_get("/healthz", health)
    app.router.add_get("/metrics", metrics)

    async def on_startup(app: web.Application) -> None:
        await state.notifier.start()

    async def on_cleanup(app: web.Application) -> None:
        await state.notifier.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def _redirect_base(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/v2/")
