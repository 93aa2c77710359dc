"""Chain IDs: the identity of a stack of layers (image-spec ``identity`` package).

``ChainID(L0) = DiffID(L0)`` and ``ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " +
DiffID(Ln))``. Snapshots of extracted layers are keyed by chain ID, so two images that share
a base share its snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pallet.errors import OCIError
from pallet.oci.digest import Digest, sha256_hex


def chain_strings(diff_ids: Iterable[str]) -> list[str]:
    """Chain IDs of plain digest strings, unvalidated (the upstream test vectors use
    placeholders such as ``sha256:a``); prefer :func:`chain_ids`."""
    out: list[str] = []
    for diff_id in diff_ids:
        if out:
            text = f"{out[-1]} {diff_id}".encode()
            out.append("sha256:" + sha256_hex(text))
        else:
            out.append(diff_id)
    return out


def chain_ids(diff_ids: Sequence[str]) -> list[Digest]:
    """The chain ID of every prefix of ``diff_ids``: element i identifies layers 0..i."""
    return [Digest(c) for c in chain_strings(Digest(d) for d in diff_ids)]


def chain_id(diff_ids: Sequence[str]) -> Digest:
    """The chain ID of the whole stack; an empty stack has none (``OCIError``)."""
    if not diff_ids:
        raise OCIError("an image without layers has no chain ID")
    return chain_ids(diff_ids)[-1]
