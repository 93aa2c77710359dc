"""Chain IDs: the identity of a stack of layers, which names a snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from pallet.oci.digest import Digest


def chain_ids_of(diff_ids: Sequence[Digest]) -> list[Digest]:
    """ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))."""
    out: list[Digest] = []
    for diff_id in diff_ids:
        if not out:
            out.append(Digest(diff_id))
        else:
            out.append(Digest.from_bytes(f"{out[-1]} {diff_id}".encode()))
    return out
