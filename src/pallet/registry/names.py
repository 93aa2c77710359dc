"""The distribution spec's grammar for repository names, tags and references.

Every name and reference is checked here before it reaches storage, so nothing such as
``..``, an absolute path or a NUL byte can ever become part of a file path or a key.
"""

from __future__ import annotations

import re

from pallet.errors import InvalidDigest
from pallet.oci.digest import Digest
from pallet.registry.apierrors import ApiError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
MAX_NAME_LENGTH = 255


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def check_name(name: str) -> str:
    if not is_valid_name(name):
        raise ApiError("NAME_INVALID", f"invalid repository name {name[:300]!r}")
    return name


def check_digest(text: str) -> Digest:
    try:
        return Digest(text)
    except InvalidDigest as exc:
        raise ApiError("DIGEST_INVALID", str(exc)) from None


def parse_reference(text: str) -> tuple[str | None, Digest | None]:
    """A manifest reference: ``(tag, None)`` or ``(None, digest)``."""
    if ":" in text:
        return None, check_digest(text)
    if not is_valid_tag(text):
        raise ApiError("MANIFEST_INVALID", f"invalid tag {text[:200]!r}", status=400)
    return text, None
