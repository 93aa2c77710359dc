"""Content digests (``algorithm:encoded``), validated strictly as the OCI image spec says."""

from __future__ import annotations

import re

from pallet.errors import DigestMismatch, InvalidDigest

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

_ENCODED = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
#: Up to this size (configs, manifests, chain IDs) sha256 needs no OpenSSL: see sha256_hex
_SMALL = 256 << 10
#: Algorithms pallet can verify. Others (``sha256+b64u``, ``multihash+base58``...) are legal
#: grammar in the image spec but refused, as go-digest refuses them: content that cannot be
#: verified must not be trusted.
SUPPORTED_ALGORITHMS = frozenset(_ENCODED)
# Grammar of the spec; registered algorithms are checked more tightly above.
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


class Digest(str):
    """A validated digest string such as ``sha256:e3b0...``.

    A ``str`` subclass so it drops into JSON and paths unchanged; constructing one
    validates it, so a ``Digest`` in hand is always well formed.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        if isinstance(value, Digest):
            return value
        if not isinstance(value, str) or not _GRAMMAR.fullmatch(value):
            raise InvalidDigest(f"invalid digest {value!r}")
        algorithm, encoded = value.split(":", 1)
        pattern = _ENCODED.get(algorithm)
        if pattern is None:
            raise InvalidDigest(f"unsupported digest algorithm {algorithm!r} in {value!r}")
        if not pattern.fullmatch(encoded):
            raise InvalidDigest(
                f"invalid {algorithm} digest {value!r}: expected "
                f"{_HEX_LENGTH[algorithm]} lowercase hex characters"
            )
        return super().__new__(cls, value)

    @property
    def algorithm(self) -> str:
        return self.split(":", 1)[0]

    @property
    def encoded(self) -> str:
        return self.split(":", 1)[1]

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        if algorithm == "sha256" and len(data) <= _SMALL:
            return cls("sha256:" + sha256_hex(data))
        h = new_hasher(algorithm)
        h.update(data)
        return cls(f"{algorithm}:{h.hexdigest()}")

    @classmethod
    def from_hasher(cls, hasher: Any) -> Digest:
        """Digest of a finished ``hashlib`` object (sha256 or sha512)."""
        return cls(f"{hasher.name}:{hasher.hexdigest()}")

    def hasher(self) -> Any:
        """A fresh hashlib object of this digest's algorithm."""
        return new_hasher(self.algorithm)

    def verify(self, data: bytes) -> None:
        """Raise ``DigestMismatch`` unless ``data`` hashes to this digest."""
        actual = Digest.from_bytes(data, self.algorithm)
        if actual != self:
            raise DigestMismatch(f"content does not match {self} (got {actual})")

    def short(self, length: int = 12) -> str:
        """The encoded part cut to ``length`` characters, as Docker shows IDs."""
        return self.encoded[:length]


def new_hasher(algorithm: str = "sha256") -> Any:
    if algorithm not in _ENCODED:
        raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
    import hashlib  # here, not at the top: it loads OpenSSL, 4 ms of a short command

    return hashlib.new(algorithm)


def small_sha256() -> Any:
    """A sha256 hasher for small inputs (a config, a manifest, a chain ID, a listing of
    names), without loading OpenSSL for it (4 ms of a short command): the interpreter's
    built-in sha256 is slower per byte but costs nothing to import."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # CPython 3.12+
        except ImportError:
            from hashlib import sha256
    return sha256()


def sha256_hex(data: bytes) -> str:
    """sha256 of a small input, hex (see :func:`small_sha256`)."""
    h = small_sha256()
    h.update(data)
    return str(h.hexdigest())


def is_digest(value: str) -> bool:
    try:
        Digest(value)
    except InvalidDigest:
        return False
    return True
