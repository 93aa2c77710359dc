"""Image references, parsed and normalized exactly as Docker does.

The grammar is distribution/reference's (``name[:tag][@digest]``, a name being an
optional ``domain[:port]/`` then lower-case path components) and normalization follows
its ``ParseNormalizedNamed``: a first component is a domain only if it is ``localhost``,
contains ``.`` or ``:``, or has upper-case letters; otherwise the image is on Docker Hub
(``docker.io``), where a one-component path gets ``library/``; ``index.docker.io`` is
Docker Hub too. So ``busybox`` is ``docker.io/library/busybox:latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pallet.errors import InvalidDigest, InvalidReference
from pallet.oci.digest import Digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
#: Where Docker Hub's registry API actually lives.
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"

# re.ASCII: Go's \w is [0-9A-Za-z_], Python's would take any Unicode letter. Compiled on
# first use: building them is 3 ms, and the common names (``busybox``, ``app:1.2``,
# ``user/app``) are checked without them (_simple_path, _simple_tag).
_PATTERNS = {
    "reference": rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?",
    "anchored_name": rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})",
    "domain": _DOMAIN_AND_PORT,
    "remote_name": _REMOTE_NAME,
    "tag": _TAG,
    "digest": _DIGEST,
}
_compiled: dict[str, re.Pattern[str]] = {}
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TAG_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_TAG_REST = _TAG_FIRST | {".", "-"}
_HEX = frozenset("0123456789abcdef")
# No valid reference comes near this; bounding the input keeps the regexes cheap.
_MAX_INPUT = 1024


def _rx(name: str) -> re.Pattern[str]:
    pattern = _compiled.get(name)
    if pattern is None:
        pattern = _compiled[name] = re.compile(_PATTERNS[name], re.ASCII)
    return pattern


def _simple_component(part: str) -> bool:
    """One path component as the grammar has it: runs of [a-z0-9] joined by '.', '_',
    '__' or any number of '-' (the _PATH_COMPONENT pattern, without building it)."""
    n = len(part)
    if n == 0 or part[0] not in _ALNUM or part[-1] not in _ALNUM:
        return False
    i = 0
    while i < n:
        ch = part[i]
        if ch in _ALNUM:
            i += 1
            continue
        if ch == ".":
            i += 1
        elif ch == "_":
            i += 2 if part.startswith("__", i) else 1
        elif ch == "-":
            while i < n and part[i] == "-":
                i += 1
        else:
            return False
        if i >= n or part[i] not in _ALNUM:
            return False
    return True


def _simple_path(path: str) -> bool:
    return all(_simple_component(part) for part in path.split("/"))


def _is_identifier(text: str) -> bool:
    """A 64-hex image ID, which Docker refuses as a repository name."""
    return len(text) == 64 and all(c in _HEX for c in text)


def is_valid_tag(text: str) -> bool:
    """True for a valid tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``)."""
    return (
        isinstance(text, str)
        and 0 < len(text) <= 128
        and text[0] in _TAG_FIRST
        and all(c in _TAG_REST for c in text)
    )


def parse_repository_name(text: str) -> str:
    """Validate a bare repository name as a registry receives it (``library/busybox``):
    the distribution spec's ``<name>`` grammar, at most 255 characters. Returns it."""
    if not isinstance(text, str) or not text:
        raise InvalidReference("invalid repository name: it is empty")
    if len(text) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(
            f"invalid repository name {text[:40]!r}...: longer than "
            f"{NAME_TOTAL_LENGTH_MAX} characters"
        )
    if not _simple_path(text):
        hint = " (must be lowercase)" if text.lower() != text else ""
        raise InvalidReference(
            f"invalid repository name {text!r}{hint}: expected lowercase components "
            "[a-z0-9] joined by '.', '_', '__' or '-', separated by '/'"
        )
    return text


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Docker's splitDockerDomain: (domain, remainder-with-tag-and-digest)."""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        domain, remainder = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _why_invalid(text: str) -> str:
    """A human reason for a string the reference grammar refused."""
    if any(c.isspace() for c in text):
        return "it contains whitespace"
    if "://" in text:
        return "a reference has no URL scheme"
    name, at, digest = text.partition("@")
    if at and not _rx("digest").fullmatch(digest):
        return f"invalid digest {digest!r}"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        tag = last.split(":", 1)[1]
        name = name[: len(name) - len(tag) - 1]
        if not is_valid_tag(tag):
            return f"invalid tag {tag!r}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
    if not name:
        return "the repository name is empty"
    return (
        f"invalid repository name {name!r}: expected lowercase components [a-z0-9] "
        "joined by '.', '_', '__' or '-', after an optional registry host[:port]/"
    )


@dataclass(frozen=True)
class Reference:
    """A normalized image reference. ``tag`` is None when none was written; ``str()``
    then shows ``:latest`` unless a digest pins the image (Docker's TagNameOnly)."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        if self.domain != DEFAULT_DOMAIN and not _rx("domain").fullmatch(self.domain):
            raise InvalidReference(f"invalid registry host {self.domain!r}")
        if not _simple_path(self.path):
            raise InvalidReference(f"invalid repository path {self.path!r}")
        if len(self.repository) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidReference(
                "invalid reference format: repository name must not be more than "
                f"{NAME_TOTAL_LENGTH_MAX} characters"
            )
        if self.tag is not None and not is_valid_tag(self.tag):
            raise InvalidReference(f"invalid tag {self.tag!r}")
        if self.digest is not None:
            try:
                object.__setattr__(self, "digest", Digest(self.digest))
            except InvalidDigest as exc:
                raise InvalidReference(f"invalid reference format: {exc}") from None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalize ``text`` exactly as ``docker pull``/``docker tag`` do."""
        if not isinstance(text, str):
            raise InvalidReference(f"invalid reference {text!r}: not a string")
        if not text:
            raise InvalidReference(
                "invalid reference format: repository name must have at least one component"
            )
        if len(text) > _MAX_INPUT:
            raise InvalidReference(f"invalid reference format: {text[:40]!r}... is too long")
        if _is_identifier(text):
            raise InvalidReference(
                f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
            )
        domain, remainder = _split_docker_domain(text)
        remote = remainder.split(":", 1)[0]
        if remote.lower() != remote:
            raise InvalidReference(
                f"invalid reference format: repository name ({remote}) must be lowercase"
            )
        if domain == DEFAULT_DOMAIN and "@" not in remainder:
            # the common case, checked without the regexes: name[:tag] on Docker Hub
            path, colon, tag = remainder.partition(":")
            if _simple_path(path) and (not colon or is_valid_tag(tag)):
                if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
                    raise InvalidReference(
                        f"invalid reference format: {text[:40]!r}...: repository name must "
                        f"not be more than {NAME_TOTAL_LENGTH_MAX} characters"
                    )
                return cls(domain, path, tag or None, None)
        full = f"{domain}/{remainder}"
        match = _rx("reference").fullmatch(full)
        if match is None:
            if _rx("reference").fullmatch(full.lower()) is not None:
                raise InvalidReference(
                    f"invalid reference format: {text!r}: repository name must be lowercase"
                )
            raise InvalidReference(f"invalid reference format: {text!r}: {_why_invalid(text)}")
        name, tag, digest = match.group(1), match.group(2), match.group(3)
        if len(name) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidReference(
                f"invalid reference format: {text[:40]!r}...: repository name must not be "
                f"more than {NAME_TOTAL_LENGTH_MAX} characters"
            )
        name_match = _rx("anchored_name").fullmatch(name)
        if name_match is None or name_match.group(1) is None:
            # "a.b_c/d": split off as a domain (it has a '.') that the domain grammar then
            # refuses. Docker would keep it as a domain-less name; pallet refuses it.
            raise InvalidReference(
                f"invalid reference format: {text!r}: invalid registry host {domain!r}"
            )
        parsed_digest: Digest | None = None
        if digest:
            try:
                parsed_digest = Digest(digest)
            except InvalidDigest as exc:
                raise InvalidReference(f"invalid reference format: {text!r}: {exc}") from None
        return cls(name_match.group(1), name_match.group(2), tag or None, parsed_digest)

    # -- views -------------------------------------------------------------------------

    @property
    def repository(self) -> str:
        """``domain/path`` (``docker.io/library/busybox``): the name without tag or digest."""
        return f"{self.domain}/{self.path}"

    name = repository

    @property
    def name_only(self) -> bool:
        """True when neither a tag nor a digest was given."""
        return self.tag is None and self.digest is None

    @property
    def effective_tag(self) -> str | None:
        """The tag meant: the one given, ``latest`` for a bare name, None for ``name@digest``."""
        return DEFAULT_TAG if self.name_only else self.tag

    @property
    def manifest_reference(self) -> str:
        """What to ask a registry for: the digest if pinned (Docker pulls by digest when
        both are given), else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.effective_tag or DEFAULT_TAG

    @property
    def registry_host(self) -> str:
        """The host serving the registry API (Docker Hub's is not ``docker.io``)."""
        return DOCKER_HUB_REGISTRY if self.domain == DEFAULT_DOMAIN else self.domain

    def _suffix(self) -> str:
        tag = self.effective_tag
        out = f":{tag}" if tag else ""
        return out + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.repository + self._suffix()

    def familiar_name(self) -> str:
        """Docker's short repository name: ``busybox``, ``user/app``, ``localhost:5000/a/b``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        if self.path.startswith(OFFICIAL_REPO_PREFIX):
            rest = self.path[len(OFFICIAL_REPO_PREFIX) :]
            if "/" not in rest:
                return rest
        return self.path

    def familiar(self) -> str:
        """Docker's short form with tag/digest: ``busybox:latest``, ``localhost:5000/a/b:t``."""
        return self.familiar_name() + self._suffix()

    # -- changes -----------------------------------------------------------------------

    def with_tag(self, tag: str) -> Reference:
        """The same repository (and digest, if any) with ``tag``."""
        if not is_valid_tag(tag):
            raise InvalidReference(
                f"invalid tag {tag!r}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
            )
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: str) -> Reference:
        """The same repository (and tag, if any) pinned to ``digest``."""
        try:
            return Reference(self.domain, self.path, self.tag, Digest(digest))
        except InvalidDigest as exc:
            raise InvalidReference(str(exc)) from None

    def without_tag(self) -> Reference:
        return Reference(self.domain, self.path, None, self.digest)

    def without_digest(self) -> Reference:
        return Reference(self.domain, self.path, self.tag, None)

    def normalized(self) -> Reference:
        """With ``latest`` written out for a bare name (so equal images compare equal)."""
        return Reference(self.domain, self.path, self.effective_tag, self.digest)


def parse_any(text: str) -> Reference | Digest:
    """An image ID (64 hex digits, or ``sha256:...``) as a Digest, else a Reference
    (Docker's ParseAnyReference)."""
    if isinstance(text, str) and _is_identifier(text):
        return Digest("sha256:" + text)
    try:
        return Digest(text)
    except InvalidDigest:
        pass
    return Reference.parse(text)
