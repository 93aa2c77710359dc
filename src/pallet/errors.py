"""The one exception hierarchy of pallet.

This module is a leaf: it imports nothing of pallet, so every layer (oci included) may
use it. ``str(error)`` is the single line the CLI prints after ``error: ``; it names what
is at fault (the file, the reference, the digest).
"""

from __future__ import annotations


class PalletError(Exception):
    """Base of every error pallet raises on purpose."""

    #: process exit status the CLI uses for this error
    exit_code: int = 1


class InvalidArgument(PalletError):
    """A user-supplied value (flag, spec, path) is malformed."""


class OCIError(PalletError):
    """Malformed OCI data: digests, descriptors, manifests, configs, references."""


class InvalidDigest(OCIError):
    pass


class InvalidReference(OCIError):
    pass


class DigestMismatch(OCIError):
    """Bytes did not hash to the digest they were announced with."""


class LayerError(PalletError):
    """A layer tar is malformed or hostile, or cannot be written."""


class UnsafeLayer(LayerError):
    """A tar member tries to escape the extraction root or is otherwise hostile."""


class StoreError(PalletError):
    """The local store cannot do what was asked."""


class NotFound(StoreError):
    """A blob, image, snapshot or reference is not in the store."""


class Conflict(StoreError):
    """The request conflicts with what the store holds (e.g. image in use)."""


class TransportError(PalletError):
    """Moving images to or from registries, layouts and archives failed."""


class BuildError(PalletError):
    """A build step failed."""


class ContainerError(PalletError):
    """Running or managing a container failed (docker's 125, or 126/127 for a command
    that cannot be invoked or is not found)."""

    exit_code = 125

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class RegistryError(PalletError):
    """The registry server cannot do what was asked (configuration, storage)."""


class AuthenticationError(TransportError):
    """A registry or its token server refused the credentials (or their absence)."""


class ManifestUnknown(TransportError):
    """A registry does not know the tag or digest asked for."""
