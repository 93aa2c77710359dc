"""``-v`` and ``--mount`` specifications read as docker reads them (no root needed)."""

from __future__ import annotations

import pytest

from pallet.errors import InvalidArgument
from pallet.runtime.mounts import MountRequest, parse_mount, parse_volume


def test_volume_specs() -> None:
    assert parse_volume("/data") == MountRequest("volume", "/data")
    # a second part made only of modes: an anonymous volume with those modes
    assert parse_volume("/data:ro") == MountRequest("volume", "/data", readonly=True)
    assert parse_volume("/data:rw") == MountRequest("volume", "/data")
    assert parse_volume("name:/data:ro") == MountRequest("volume", "/data", "name", True)
    assert parse_volume("/host/./dir:/data") == MountRequest("bind", "/data", "/host/dir")
    for bad in ("/data:relative", "name:/data:rx", "a:b:c:d", "bad name!:/x", "/x:/../y"):
        with pytest.raises(InvalidArgument, match="invalid"):
            parse_volume(bad)


def test_mount_volume_nocopy() -> None:
    seeded = parse_mount("type=volume,source=vol,target=/data")
    assert seeded == MountRequest("volume", "/data", "vol") and seeded.seed
    for spec in ("type=volume,source=vol,target=/data,volume-nocopy",
                 "type=volume,src=vol,dst=/data,volume-nocopy=true"):  # fmt: skip
        assert parse_mount(spec) == MountRequest("volume", "/data", "vol", seed=False)
    with pytest.raises(InvalidArgument, match="unexpected key 'bogus'"):
        parse_mount("type=volume,target=/data,bogus=1")
