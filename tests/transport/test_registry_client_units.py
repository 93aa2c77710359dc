"""The registry client's parsers and local state, without a registry: auth challenges,
registries.toml, config.json credentials, mount hints, progress lines."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from pallet.errors import InvalidArgument, TransportError
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.transport.registry_auth import parse_challenge, token_error_message
from pallet.transport.registry_config import RegistriesConfig, api_host
from pallet.transport.registry_credentials import Credentials, DockerConfig
from pallet.transport.registry_login import registry_name
from pallet.transport.registry_progress import LineProgress, NoProgress, make_progress
from pallet.transport.registry_sources import BlobSources


def test_bearer_challenge_with_quoted_commas() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg.example",'
        'scope="repository:a/b:pull,push",error="insufficient_scope"'
    )
    assert challenge is not None
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example/token"
    assert challenge.service == "reg.example"
    assert challenge.params["scope"] == "repository:a/b:pull,push"


def test_basic_challenge_and_garbage() -> None:
    challenge = parse_challenge('Basic realm="Registry Realm"')
    assert challenge is not None and challenge.scheme == "basic"
    assert parse_challenge("") is None


def test_error_messages_come_from_the_registry_body() -> None:
    body = json.dumps({"errors": [{"code": "DENIED", "message": "requested access denied"}]})
    assert token_error_message(body.encode()) == "denied: requested access denied"
    assert token_error_message(b'{"details": "incorrect username or password"}') == (
        "incorrect username or password"
    )
    assert token_error_message(b"<html>oops</html>") == "<html>oops</html>"


def test_registries_toml_insecure_and_mirrors(tmp_path: Path) -> None:
    (tmp_path / "registries.toml").write_text(
        'insecure = ["lan.example:5000"]\n[mirrors]\n"docker.io" = ["https://m.example", "m2:5001"]\n'
    )
    config = RegistriesConfig.load(tmp_path)
    assert config.allows_http("lan.example:5000")
    assert config.allows_http("localhost:5000") and config.allows_http("127.0.0.1:1234")
    assert not config.allows_http("registry.example.com")
    mirrors = config.mirrors_of("docker.io")
    assert [(m.host, m.scheme) for m in mirrors] == [("m.example", "https"), ("m2:5001", None)]
    assert config.mirrors_of("quay.io") == ()
    assert api_host("docker.io") == "registry-1.docker.io"


@pytest.mark.parametrize(
    "text",
    ['insecure = "not-a-list"', "[mirrors]\nx = 3", "this is not toml", '[mirrors]\nx = ["a/b"]'],
)
def test_malformed_registries_toml_names_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "registries.toml").write_text(text)
    with pytest.raises(InvalidArgument, match=r"registries\.toml"):
        RegistriesConfig.load(tmp_path)


def test_config_json_auths_by_url_key_and_docker_hub(tmp_path: Path) -> None:
    path = tmp_path / "config.json"

    def auth(user: str, pw: str) -> str:
        return base64.b64encode(f"{user}:{pw}".encode()).decode()

    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": auth("hub", "pw1")},
                    "https://reg.example:5000/v2/": {"auth": auth("me", "pw:with:colons")},
                },
                "other": {"kept": True},
            }
        )
    )
    config = DockerConfig(path)
    assert config.get("docker.io") == Credentials("hub", "pw1")
    assert config.get("reg.example:5000") == Credentials("me", "pw:with:colons")
    assert not config.get("unknown.example")

    config.store("new.example", Credentials("u", "p"))
    doc = json.loads(path.read_text())
    assert doc["other"] == {"kept": True}
    assert base64.b64decode(doc["auths"]["new.example"]["auth"]) == b"u:p"
    assert config.erase("new.example") and not config.erase("new.example")


def test_credentials_never_show_secrets_in_repr() -> None:
    text = repr(Credentials("user", "hunter2", "tok-secret"))
    assert "hunter2" not in text and "tok-secret" not in text and "user" in text


def test_malformed_config_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(TransportError, match=r"config\.json"):
        DockerConfig(path).get("docker.io")


def test_missing_credential_helper_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credHelpers": {"reg.example": "does-not-exist-xyz"}}))
    with pytest.raises(TransportError, match="docker-credential-does-not-exist-xyz"):
        DockerConfig(path).get("reg.example")


def test_login_argument_forms() -> None:
    assert registry_name(None) == "docker.io"
    assert registry_name("https://index.docker.io/v1/") == "docker.io"
    assert registry_name("https://Reg.Example:5000/v2/") == "reg.example:5000"


def test_mount_hints_are_per_registry(tmp_path: Path) -> None:
    digest = Digest.from_bytes(b"layer")
    sources = BlobSources(tmp_path)
    assert sources.repositories("r1", digest) == []
    sources.record("r1", "team/a", [digest])
    sources.record("r1", "team/b", [digest])
    sources.record("r2", "other", [digest])
    assert sorted(sources.repositories("r1", digest)) == ["team/a", "team/b"]
    assert sources.repositories("r2", digest) == ["other"]


def test_plain_progress_prints_one_line_per_state() -> None:
    out = io.StringIO()
    progress = LineProgress(out)
    desc = Descriptor("application/octet-stream", Digest.from_bytes(b"x"), 1)
    progress.state(desc, "waiting")
    progress.state(desc, "downloading")
    progress.state(desc, "verified")
    assert out.getvalue().splitlines() == [
        f"{desc.digest.short()}: Downloading",
        f"{desc.digest.short()}: Verified",
    ]
    assert isinstance(make_progress(True), NoProgress)
    assert isinstance(make_progress(False, io.StringIO()), LineProgress)
