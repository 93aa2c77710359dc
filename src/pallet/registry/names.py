"""The distribution spec's grammar for repository names, tags and references.

Every name and reference is checked here before it reaches storage, so nothing such as
``..``, an absolute path or a NUL byte can ever become part of a file path or a key. The
grammar itself is pallet.oci.reference's.
"""

from __future__ import annotations

from pallet.errors import InvalidDigest, InvalidReference
from pallet.oci.digest import Digest
from pallet.oci.reference import is_valid_tag, parse_repository_name
from pallet.registry.apierrors import ApiError

__all__ = ["check_digest", "check_name", "is_valid_name", "is_valid_tag", "parse_reference"]


def is_valid_name(name: str) -> bool:
    try:
        parse_repository_name(name)
    except InvalidReference:
        return False
    return True


def check_name(name: str) -> str:
    try:
        return parse_repository_name(name)
    except InvalidReference as exc:
        raise ApiError("NAME_INVALID", str(exc)[:400]) from None


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
