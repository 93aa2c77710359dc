"""Image references: Docker's own test tables (distribution/reference) as facts."""

from __future__ import annotations

import pytest

from pallet.errors import InvalidReference
from pallet.oci.digest import Digest
from pallet.oci.reference import Reference, is_valid_tag, parse_any, parse_repository_name

DIGEST = "sha256:" + "f" * 64
DIGEST512 = "sha512:" + "f" * 128


@pytest.mark.parametrize(
    ("text", "normalized", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("fooo/bar", "docker.io/fooo/bar:latest", "fooo/bar:latest"),
        ("index.docker.io/fooo/bar", "docker.io/fooo/bar:latest", "fooo/bar:latest"),
        ("library/foo/bar", "docker.io/library/foo/bar:latest", "library/foo/bar:latest"),
        ("store/foo/bar", "docker.io/store/foo/bar:latest", "store/foo/bar:latest"),
        ("other/library", "docker.io/other/library:latest", "other/library:latest"),
        (
            "ubuntu-12.04-base",
            "docker.io/library/ubuntu-12.04-base:latest",
            "ubuntu-12.04-base:latest",
        ),
        ("localhost/foo", "localhost/foo:latest", "localhost/foo:latest"),
        ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
        (
            "127.0.0.1:8000/private/moonbase",
            "127.0.0.1:8000/private/moonbase:latest",
            "127.0.0.1:8000/private/moonbase:latest",
        ),
        (
            "example.com/privatebase",
            "example.com/privatebase:latest",
            "example.com/privatebase:latest",
        ),
        (
            "example.com:8000/private/moonbase",
            "example.com:8000/private/moonbase:latest",
            "example.com:8000/private/moonbase:latest",
        ),
        ("test_com/foo", "docker.io/test_com/foo:latest", "test_com/foo:latest"),
        ("test-com:8080/foo", "test-com:8080/foo:latest", "test-com:8080/foo:latest"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo:latest", "xn--n3h.com:18080/foo:latest"),
        # An upper-case first component can only be a domain.
        ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
        ("FOO/bar", "FOO/bar:latest", "FOO/bar:latest"),
        # A lone name is never a domain, even with a port-like tag.
        ("localhost", "docker.io/library/localhost:latest", "localhost:latest"),
        ("test.com:5000", "docker.io/library/test.com:5000", "test.com:5000"),
        ("192.168.1.1:5000", "docker.io/library/192.168.1.1:5000", "192.168.1.1:5000"),
        (
            "[2001:db8::1]:5000/repo:tag",
            "[2001:db8::1]:5000/repo:tag",
            "[2001:db8::1]:5000/repo:tag",
        ),
        ("[::1]:5000/repo", "[::1]:5000/repo:latest", "[::1]:5000/repo:latest"),
        ("busybox:TAG_5", "docker.io/library/busybox:TAG_5", "busybox:TAG_5"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
        (
            f"busybox:latest@{DIGEST}",
            f"docker.io/library/busybox:latest@{DIGEST}",
            f"busybox:latest@{DIGEST}",
        ),
        (
            f"xn--7o8h.com/myimage:xn--7o8h.com@{DIGEST512}",
            f"xn--7o8h.com/myimage:xn--7o8h.com@{DIGEST512}",
            f"xn--7o8h.com/myimage:xn--7o8h.com@{DIGEST512}",
        ),
        (
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest",
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest",
        ),
    ],
)
def test_normalization(text: str, normalized: str, familiar: str) -> None:
    ref = Reference.parse(text)
    assert str(ref) == normalized
    assert ref.familiar() == familiar
    # Normalizing is idempotent from either form.
    assert str(Reference.parse(normalized)) == normalized
    assert str(Reference.parse(familiar)) == normalized


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("test.com/repo:tag", "test.com", "repo", "tag", None),
        ("test:5000/repo", "test:5000", "repo", None, None),
        ("test:5000/repo:tag", "test:5000", "repo", "tag", None),
        (f"test:5000/repo@{DIGEST}", "test:5000", "repo", None, DIGEST),
        (f"test:5000/repo:tag@{DIGEST}", "test:5000", "repo", "tag", DIGEST),
        (
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "sub-dom1.foo.com",
            "bar/baz/quux",
            "some-long-tag",
            None,
        ),
        (
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "b.gcr.io",
            "test.example.com/my-app",
            "test.example.com",
            None,
        ),
        ("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", None),
        ("192.168.1.1/repo", "192.168.1.1", "repo", None, None),
        ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", None),
        ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", None),
        ("docker/migrator", "docker.io", "docker/migrator", None, None),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar", None, None),
        ("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", None),
    ],
)
def test_components(text: str, domain: str, path: str, tag: str | None, digest: str | None) -> None:
    ref = Reference.parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.repository == f"{domain}/{path}"


VALID = [
    "docker/docker",
    "library/debian",
    "debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian",
    "192.168.0.1",
    "192.168.0.1:80",
    "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "Docker/docker",
    "DOCKER/docker",
    "docker-rules/docker",
    "docker---rules/docker",
    "doc/docker",
    "d/docker",
    "jess/t",
    "dock__er/docker",
    # The whole normalized name may be 255 characters; the tag does not count.
    "localhost/" + "a/" * 122 + "a:tag-puts-this-over-max",
]


@pytest.mark.parametrize("text", VALID)
def test_valid(text: str) -> None:
    Reference.parse(text)


INVALID = [
    ("", "at least one component"),
    ("https://github.com/docker/docker", "invalid reference format"),
    ("docker/Docker", "repository name (docker/Docker) must be lowercase"),
    ("-docker", "invalid reference format"),
    ("-docker/docker", "invalid reference format"),
    ("-docker.io/docker/docker", "invalid reference format"),
    ("docker///docker", "invalid reference format"),
    ("docker.io/docker/Docker", "repository name (docker/Docker) must be lowercase"),
    ("docker.io/docker///docker", "invalid reference format"),
    ("[fc00::1]", "invalid reference format"),
    ("[fc00::1]:5000", "invalid reference format"),
    ("fc00::1:5000/debian", "invalid reference format"),
    ("[fe80::1%eth0]:5000/debian", "invalid reference format"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid reference format"),
    ("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "64-byte hexadecimal"),
    ("docker-/docker", "invalid reference format"),
    ("-docker-/docker", "invalid reference format"),
    ("____/____", "invalid reference format"),
    ("_docker/_docker", "invalid reference format"),
    ("dock..er/docker", "invalid reference format"),
    ("dock_.er/docker", "invalid reference format"),
    ("dock-.er/docker", "invalid reference format"),
    ("docker/", "invalid reference format"),
    ("this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker", "255"),
    ("a/" * 128 + "a:tag", "255"),
    ("localhost/" + "a/" * 123 + "a:tag", "255"),
    # docker.io/ counts too: this path alone would fit.
    ("a/" * 126 + "a", "255"),
    (":justtag", "invalid reference format"),
    (f"@{DIGEST}", "invalid reference format"),
    ("repo@sha256:" + "f" * 34, "invalid sha256 digest"),
    ("validname@invaliddigest:" + "f" * 64, "unsupported digest algorithm"),
    ("Uppercase:tag", "repository name (library/Uppercase) must be lowercase"),
    ("Busybox", "repository name (library/Busybox) must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "must be lowercase"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("[fe80::1%@invalidzone]:5000/repo", "invalid reference format"),
    ("busybox:-tag", "invalid tag '-tag'"),
    ("busybox:" + "t" * 129, "invalid tag"),
    ("busybox:tag with space", "whitespace"),
    ("busybox@sha256:" + "F" * 64, "invalid sha256 digest"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message.replace("(", r"\(").replace(")", r"\)")):
        Reference.parse(text)


def test_tag_and_digest_both_kept() -> None:
    ref = Reference.parse(f"busybox:1.36@{DIGEST}")
    assert ref.tag == "1.36" and ref.digest == DIGEST
    # Docker pulls by digest when both are given.
    assert ref.manifest_reference == DIGEST


def test_name_only_defaults() -> None:
    ref = Reference.parse("busybox")
    assert ref.tag is None and ref.name_only
    assert ref.effective_tag == "latest"
    assert ref.manifest_reference == "latest"
    assert ref.normalized() == Reference.parse("busybox:latest")
    pinned = Reference.parse(f"busybox@{DIGEST}")
    assert pinned.effective_tag is None and str(pinned).endswith(f"busybox@{DIGEST}")


def test_with_tag_and_digest() -> None:
    ref = Reference.parse("localhost:5000/a/b:t")
    assert str(ref.with_tag("v2")) == "localhost:5000/a/b:v2"
    assert str(ref.with_digest(DIGEST)) == f"localhost:5000/a/b:t@{DIGEST}"
    assert str(ref.with_digest(DIGEST).with_tag("x")) == f"localhost:5000/a/b:x@{DIGEST}"
    assert str(ref.with_digest(DIGEST).without_tag()) == f"localhost:5000/a/b@{DIGEST}"
    with pytest.raises(InvalidReference, match="invalid tag"):
        ref.with_tag("-foo")
    with pytest.raises(InvalidReference):
        ref.with_digest("foo")


def test_registry_host() -> None:
    assert Reference.parse("busybox").registry_host == "registry-1.docker.io"
    assert Reference.parse("localhost:5000/a").registry_host == "localhost:5000"
    assert Reference.parse("Foo/bar").familiar_name() == "Foo/bar"


def test_direct_construction_is_validated() -> None:
    with pytest.raises(InvalidReference):
        Reference("docker.io", "Library/busybox")
    with pytest.raises(InvalidReference):
        Reference("bad host", "busybox")
    with pytest.raises(InvalidReference):
        Reference("docker.io", "library/busybox", tag=".x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c",
            Digest("sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"),
        ),
        (
            "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c",
            Digest("sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"),
        ),
        (
            "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
            Reference(
                "docker.io",
                "library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
            ),
        ),
        ("dbcc1", Reference("docker.io", "library/dbcc1")),
        ("redis:latest", Reference("docker.io", "library/redis", "latest")),
    ],
)
def test_parse_any(text: str, expected: object) -> None:
    assert parse_any(text) == expected


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("latest", True),
        ("v1.0-rc_1", True),
        ("_under", True),
        ("UPPER", True),
        ("t" * 128, True),
        ("t" * 129, False),
        (".hidden", False),
        ("-dash", False),
        ("", False),
        ("a/b", False),
        ("é", False),
    ],
)
def test_is_valid_tag(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid


@pytest.mark.parametrize(
    "name", ["library/busybox", "a", "a/b/c", "foo.bar_baz__qux---quux", "0/1"]
)
def test_repository_name_valid(name: str) -> None:
    assert parse_repository_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Library/busybox",
        "a//b",
        "a/",
        "/a",
        "a_-b",
        "a..b",
        "docker.io/library/busybox:latest",
        "x" * 256,
        "a b",
    ],
)
def test_repository_name_invalid(name: str) -> None:
    with pytest.raises(InvalidReference, match="invalid repository name"):
        parse_repository_name(name)


def test_familiar_form_ambiguity_matches_docker() -> None:
    # Docker shortens docker.io/a.b/c to a.b/c, which then reads as registry a.b.
    ref = Reference.parse("docker.io/a.b/c")
    assert ref.familiar() == "a.b/c:latest"
    assert Reference.parse(ref.familiar()).domain == "a.b"


def test_dotted_first_component_must_be_a_valid_host() -> None:
    with pytest.raises(InvalidReference, match=r"invalid registry host '0\.0__0'"):
        Reference.parse("0.0__0/0")
