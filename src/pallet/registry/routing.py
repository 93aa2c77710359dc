"""Turns a ``/v2/...`` path into a route: what is asked for, in which repository.

Repository names contain slashes, so the path is matched from its end: the last
``/manifests/``, ``/blobs/``, ``/tags/list`` or ``/referrers/`` decides the route and
everything before it is the name (validated later against the spec's grammar).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(
    r"(?P<name>.+)/(?:"
    r"(?P<tags>tags/list)"
    r"|manifests/(?P<manifest>[^/]+)"
    r"|blobs/uploads/(?P<upload>[^/]*)"
    r"|blobs/(?P<blob>[^/]+)"
    r"|referrers/(?P<referrers>[^/]+)"
    r")"
)

BASE = "base"
CATALOG = "catalog"
TAGS = "tags"
MANIFEST = "manifest"
BLOB = "blob"
UPLOAD_START = "upload_start"
UPLOAD = "upload"
REFERRERS = "referrers"


@dataclass(frozen=True, slots=True)
class Route:
    kind: str
    name: str = ""
    ref: str = ""


def match(tail: str) -> Route | None:
    """``tail`` is the path after ``/v2/``."""
    if tail == "":
        return Route(BASE)
    if tail == "_catalog":
        return Route(CATALOG)
    m = _PATTERN.fullmatch(tail)
    if m is None:
        return None
    name = m.group("name")
    if m.group("tags") is not None:
        return Route(TAGS, name)
    if (ref := m.group("manifest")) is not None:
        return Route(MANIFEST, name, ref)
    if (ref := m.group("upload")) is not None:
        return Route(UPLOAD, name, ref) if ref else Route(UPLOAD_START, name)
    if (ref := m.group("blob")) is not None:
        return Route(UPLOAD_START, name) if ref == "uploads" else Route(BLOB, name, ref)
    return Route(REFERRERS, name, m.group("referrers"))
