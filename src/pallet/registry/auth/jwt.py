"""The few lines of JWT (RFC 7519) the token service needs: ES256 sign and verify.

Only ES256 is accepted when verifying; the ``alg`` header is checked, never trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class InvalidToken(Exception):
    """A bearer token that is malformed, forged or expired."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise InvalidToken("token is not base64url") from exc


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:32]


def encode(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    header = {"alg": "ES256", "typ": "JWT", "kid": key_id(key.public_key())}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def decode(token: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """Verify the signature and return the claims (expiry is the caller's to check)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("token is not a JWT")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise InvalidToken("token is not JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        raise InvalidToken("token algorithm is not ES256")
    if not isinstance(claims, dict):
        raise InvalidToken("token claims are not an object")
    raw = b64url_decode(parts[2])
    if len(raw) != 64:
        raise InvalidToken("token signature has the wrong length")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public_key.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise InvalidToken("token signature does not verify") from exc
    return claims
