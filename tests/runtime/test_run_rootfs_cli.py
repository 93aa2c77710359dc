"""The writable layer of a container run with --rm is volatile (never synced: it is thrown
away), so removing the container does not wait for the host filesystem to sync; a kept
container's layer is an ordinary one."""

from __future__ import annotations

import pytest

from pallet_cli import Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]

_ROOT_MOUNT = ["busybox", "sh", "-c", "grep ' / / ' /proc/self/mountinfo"]


def test_only_a_removed_containers_layer_is_volatile(pallet: Pallet) -> None:
    thrown_away = pallet("run", "--rm", *_ROOT_MOUNT).stdout
    kept = pallet("run", "--name", "kept", *_ROOT_MOUNT).stdout
    assert " overlay " in thrown_away and " overlay " in kept
    assert "volatile" in thrown_away
    assert "volatile" not in kept
