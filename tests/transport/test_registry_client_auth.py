"""Authentication against real registries: htpasswd Basic auth and Docker token auth
(a token server of the tests issuing JWTs the distribution registry verifies)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("registry_fixtures")
pytest_plugins = ["registry_fixtures"]

from registry_fixtures import (  # noqa: E402
    PASSWORD,
    USER,
    Image,
    Registry,
    TokenServer,
    load_into_store,
    make_image,
    sha256,
    write_layout,
)

from pallet.errors import AuthenticationError  # noqa: E402
from pallet.transport.registry_pull import pull  # noqa: E402
from pallet.transport.registry_push import push  # noqa: E402

pytestmark = pytest.mark.peer


def seed_store(tmp_path: Path, name: str, image: Image) -> Path:
    layout = tmp_path / "layout"
    write_layout(layout, {"img": image})
    root = tmp_path / "src-store"
    load_into_store(root, layout, "img", name)
    return root


def write_docker_config(home: Path, registry: str, user: str, password: str) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path = home / ".docker" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {registry: {"auth": auth}}}))


def test_basic_auth_without_credentials_is_unauthorized(
    tmp_path: Path, basic_registry: Registry
) -> None:
    name = f"{basic_registry.host}/app:v1"
    root = seed_store(tmp_path, name, make_image())
    with pytest.raises(AuthenticationError, match="unauthorized"):
        push(name, root)


def test_basic_auth_wrong_password_is_unauthorized_with_registry_message(
    tmp_path: Path, basic_registry: Registry, isolated_home: Path
) -> None:
    write_docker_config(isolated_home, basic_registry.host, USER, "wrong")
    name = f"{basic_registry.host}/app:v1"
    root = seed_store(tmp_path, name, make_image())
    with pytest.raises(AuthenticationError) as info:
        push(name, root)
    assert "unauthorized" in str(info.value)
    assert "wrong" not in str(info.value)  # never the password


def test_basic_auth_with_config_json_credentials(
    tmp_path: Path, basic_registry: Registry, isolated_home: Path
) -> None:
    write_docker_config(isolated_home, basic_registry.host, USER, PASSWORD)
    image = make_image()
    name = f"{basic_registry.host}/app:v1"
    assert push(name, seed_store(tmp_path, name, image)).digest == image.digest
    assert pull(name, tmp_path / "dest").digest == image.digest


def test_token_auth_anonymous_pull_and_authenticated_push(
    tmp_path: Path, token_registry: tuple[Registry, TokenServer], isolated_home: Path
) -> None:
    registry, tokens = token_registry
    image = make_image((1000, 2000, 3000))
    name = f"{registry.host}/team/app:v1"
    root = seed_store(tmp_path, name, image)
    with pytest.raises(AuthenticationError):
        push(name, root)  # anonymous tokens only grant pull
    write_docker_config(isolated_home, registry.host, USER, PASSWORD)
    tokens.requests.clear()
    assert push(name, root).digest == image.digest
    # One token serves every blob and the manifest of one repository (reuse per scope).
    assert len(tokens.requests) < len(image.blobs)
    assert all(r["authorization"] for r in tokens.requests)

    (isolated_home / ".docker" / "config.json").unlink()
    tokens.requests.clear()
    assert pull(name, tmp_path / "dest").digest == image.digest
    assert tokens.requests and not any(r["authorization"] for r in tokens.requests)


def test_push_of_an_image_in_place_authenticates_as_any_push(
    tmp_path: Path, token_registry: tuple[Registry, TokenServer], isolated_home: Path
) -> None:
    registry, tokens = token_registry
    image = make_image()
    name = f"{registry.host}/app:v1"
    root = seed_store(tmp_path, name, image)
    write_docker_config(isolated_home, registry.host, USER, PASSWORD)
    push(name, root)
    tokens.requests.clear()

    again = push(name, root)

    assert (again.uploaded, again.digest) == (0, image.digest)
    assert tokens.requests and all(r["authorization"] for r in tokens.requests)
    write_docker_config(isolated_home, registry.host, USER, "nope")
    with pytest.raises(AuthenticationError, match="incorrect username or password") as info:
        push(name, root)
    assert "nope" not in str(info.value)


def test_token_auth_wrong_password_names_the_token_servers_reason(
    tmp_path: Path, token_registry: tuple[Registry, TokenServer], isolated_home: Path
) -> None:
    registry, _ = token_registry
    write_docker_config(isolated_home, registry.host, USER, "nope")
    with pytest.raises(AuthenticationError, match="incorrect username or password"):
        pull(f"{registry.host}/app:v1", tmp_path / "dest")


def test_token_auth_with_identity_token_uses_the_refresh_grant(
    tmp_path: Path, token_registry: tuple[Registry, TokenServer], isolated_home: Path
) -> None:
    registry, tokens = token_registry
    tokens.refresh_tokens["refresh-abc"] = USER
    path = isolated_home / ".docker" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"auths": {registry.host: {"identitytoken": "refresh-abc"}}}))
    image = make_image()
    name = f"{registry.host}/app:v1"
    assert push(name, seed_store(tmp_path, name, image)).digest == image.digest
    grants = [r["form"].get("grant_type") for r in tokens.requests]
    assert grants and all(g == ["refresh_token"] for g in grants)
    assert sha256(image.manifest) == image.digest
