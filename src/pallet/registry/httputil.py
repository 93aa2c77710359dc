"""Small helpers shared by the API handlers: headers, query parameters, audit context."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from pallet.registry.apierrors import ApiError
from pallet.registry.audit import AuditEvent
from pallet.registry.auth.authn import Identity
from pallet.registry.state import RegistryState

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
MAX_PAGE = 10000


@dataclass(frozen=True, slots=True)
class Caller:
    identity: Identity
    address: str

    @property
    def user(self) -> str:
        return self.identity.user or ""


def audit(
    state: RegistryState,
    caller: Caller,
    action: str,
    repo: str,
    reference: str = "",
    digest: str = "",
    outcome: str = "ok",
) -> None:
    state.audit.record(
        AuditEvent(
            user=caller.user,
            address=caller.address,
            action=action,
            repository=repo,
            reference=reference,
            digest=digest,
            outcome=outcome,
        )
    )


def empty(status: int, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, headers={**API_VERSION, "Content-Length": "0", **headers})


def page_params(request: web.Request) -> tuple[int, str]:
    """``n`` and ``last`` of a paginated list; ``n`` is capped at MAX_PAGE."""
    raw_n = request.query.get("n")
    n = MAX_PAGE
    if raw_n is not None:
        if not raw_n.isdigit() or len(raw_n) > 9:
            raise ApiError("PAGINATION_NUMBER_INVALID", f"invalid page size n={raw_n[:20]!r}")
        n = min(int(raw_n), MAX_PAGE)
    return n, request.query.get("last", "")


def read_only_refusal() -> ApiError:
    return ApiError("UNSUPPORTED", "the registry is in read-only mode", status=405)
