"""Transport names parse as skopeo's do: the path ends at the first colon."""

from __future__ import annotations

import pytest

from pallet.errors import InvalidArgument
from pallet.transport.names import TransportSpec, parse_spec


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("docker://busybox", TransportSpec("docker", ref="busybox")),
        (
            "docker://localhost:5000/a/b:1@sha256:" + "a" * 64,
            TransportSpec("docker", ref="localhost:5000/a/b:1@sha256:" + "a" * 64),
        ),
        ("oci:/tmp/dir", TransportSpec("oci", "/tmp/dir")),
        ("oci:dir:mytag", TransportSpec("oci", "dir", "mytag")),
        ("oci:dir:", TransportSpec("oci", "dir")),
        (
            "oci-archive:x.tar:docker.io/library/busybox:latest",
            TransportSpec("oci-archive", "x.tar", "docker.io/library/busybox:latest"),
        ),
        ("docker-archive:x.tar", TransportSpec("docker-archive", "x.tar")),
        ("docker-archive:x.tar:@1", TransportSpec("docker-archive", "x.tar", "@1")),
        ("docker-archive:x.tar:busybox:1", TransportSpec("docker-archive", "x.tar", "busybox:1")),
        ("pallet:busybox:latest", TransportSpec("pallet", ref="busybox:latest")),
    ],
)
def test_parse_spec(text: str, spec: TransportSpec) -> None:
    assert parse_spec(text) == spec


@pytest.mark.parametrize(
    "text",
    ["busybox", "docker:busybox", "docker://", "oci:", "oci::tag", "pallet:", "ftp:x", "Oci:x"],
)
def test_parse_spec_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid image name"):
        parse_spec(text)


@pytest.mark.parametrize(
    "text", ["oci:dir:tag", "oci-archive:a.tar", "docker-archive:a.tar:x:1", "docker://a/b:c"]
)
def test_spec_round_trips_through_str(text: str) -> None:
    assert str(parse_spec(text)) == text
