"""``pallet pull/push/login/logout`` end to end, credential helpers, mirrors, and skopeo
interop, against real registries on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
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
    run_skopeo,
    sha256,
    write_layout,
)

from pallet.cli.main import main  # noqa: E402
from pallet.store import Store  # noqa: E402

pytestmark = pytest.mark.peer


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def seed(tmp_path: Path, root: Path, images: dict[str, Image]) -> None:
    for i, (name, image) in enumerate(images.items()):
        layout = tmp_path / f"layout-{i}"
        write_layout(layout, {"img": image})
        load_into_store(root, layout, "img", name)


def docker_config(home: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((home / ".docker" / "config.json").read_text())
    return doc


def test_pull_and_push_commands_print_the_digest(
    tmp_path: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = make_image()
    name = f"{registry.host}/team/app:v1"
    src = tmp_path / "src"
    seed(tmp_path, src, {name: image})
    code, out, err = run(capsys, monkeypatch, "--root", str(src), "push", name)
    assert code == 0, err
    assert f"v1: digest: {image.digest} size: {len(image.manifest)}" in out

    dest = tmp_path / "dest"
    code, out, err = run(capsys, monkeypatch, "--root", str(dest), "pull", name)
    assert code == 0, err
    assert f"Digest: {image.digest}" in out
    assert out.strip().splitlines()[-1] == name
    code, out, _ = run(capsys, monkeypatch, "--root", str(dest), "pull", "-q", name)
    assert (code, out) == (0, name + "\n")


def test_pull_unknown_tag_fails_with_manifest_unknown(
    tmp_path: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run(
        capsys, monkeypatch, "--root", str(tmp_path / "s"), "pull", f"{registry.host}/no:such"
    )
    assert code != 0
    assert err.startswith("error: ") and "manifest unknown" in err


def test_push_all_tags(
    tmp_path: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one, two = make_image(), make_image()
    repo = f"{registry.host}/app"
    src = tmp_path / "src"
    seed(tmp_path, src, {f"{repo}:one": one, f"{repo}:two": two})
    code, out, err = run(capsys, monkeypatch, "--root", str(src), "push", "--all-tags", repo)
    assert code == 0, err
    assert f"one: digest: {one.digest}" in out and f"two: digest: {two.digest}" in out


def test_login_checks_stores_and_logout_removes(
    tmp_path: Path,
    basic_registry: Registry,
    isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = basic_registry.host
    code, out, err = run(
        capsys, monkeypatch, "login", "-u", USER, "--password-stdin", host, stdin="wrong\n"
    )
    assert code != 0 and "unauthorized" in err
    assert "wrong" not in out + err
    assert not (isolated_home / ".docker" / "config.json").exists()

    code, out, err = run(
        capsys, monkeypatch, "login", "-u", USER, "--password-stdin", host, stdin=PASSWORD + "\n"
    )
    assert code == 0, err
    assert "Login Succeeded" in out and PASSWORD not in out + err
    auths = docker_config(isolated_home)["auths"]
    assert isinstance(auths, dict)
    assert base64.b64decode(auths[host]["auth"]).decode() == f"{USER}:{PASSWORD}"
    mode = (isolated_home / ".docker" / "config.json").stat().st_mode
    assert not mode & (stat.S_IRGRP | stat.S_IROTH)

    image = make_image()
    name = f"{host}/app:v1"
    seed(tmp_path, tmp_path / "src", {name: image})
    code, _, err = run(capsys, monkeypatch, "--root", str(tmp_path / "src"), "push", "-q", name)
    assert code == 0, err

    code, out, _ = run(capsys, monkeypatch, "logout", host)
    assert code == 0 and "Removing login credentials" in out
    assert host not in docker_config(isolated_home).get("auths", {})  # type: ignore[operator]
    code, _, err = run(capsys, monkeypatch, "--root", str(tmp_path / "d"), "pull", name)
    assert code != 0 and "unauthorized" in err


def test_login_with_token_auth_stores_the_refresh_token(
    tmp_path: Path,
    token_registry: tuple[Registry, TokenServer],
    isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, tokens = token_registry
    code, _, err = run(capsys, monkeypatch, "login", "-u", USER, "-p", PASSWORD, registry.host)
    assert code == 0, err
    assert "insecure" in err  # the warning about -p
    entry = docker_config(isolated_home)["auths"][registry.host]  # type: ignore[index]
    assert entry["identitytoken"] in tokens.refresh_tokens
    assert PASSWORD not in json.dumps(entry)

    image = make_image()
    name = f"{registry.host}/app:v1"
    seed(tmp_path, tmp_path / "src", {name: image})
    tokens.requests.clear()
    code, _, err = run(capsys, monkeypatch, "--root", str(tmp_path / "src"), "push", "-q", name)
    assert code == 0, err
    assert all(r["form"].get("grant_type") == ["refresh_token"] for r in tokens.requests)


HELPER = """#!{python}
import json, sys
path = {store!r}
try:
    data = json.load(open(path))
except FileNotFoundError:
    data = {{}}
action = sys.argv[1]
if action == "store":
    doc = json.load(sys.stdin)
    data[doc["ServerURL"]] = [doc["Username"], doc["Secret"]]
elif action == "get":
    server = sys.stdin.read().strip()
    if server not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    user, secret = data[server]
    print(json.dumps({{"ServerURL": server, "Username": user, "Secret": secret}}))
elif action == "erase":
    server = sys.stdin.read().strip()
    if server not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    del data[server]
json.dump(data, open(path, "w"))
"""


def test_credentials_through_a_credential_helper(
    tmp_path: Path,
    basic_registry: Registry,
    isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-pallettest"
    store = tmp_path / "helper-store.json"
    helper.write_text(HELPER.format(python=sys.executable, store=str(store)))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    (isolated_home / ".docker").mkdir()
    (isolated_home / ".docker" / "config.json").write_text(json.dumps({"credsStore": "pallettest"}))

    host = basic_registry.host
    code, _, err = run(
        capsys, monkeypatch, "login", "-u", USER, "--password-stdin", host, stdin=PASSWORD
    )
    assert code == 0, err
    assert json.loads(store.read_text()) == {host: [USER, PASSWORD]}
    assert "auths" not in docker_config(isolated_home)

    image = make_image()
    name = f"{host}/app:v1"
    seed(tmp_path, tmp_path / "src", {name: image})
    code, _, err = run(capsys, monkeypatch, "--root", str(tmp_path / "src"), "push", "-q", name)
    assert code == 0, err

    code, out, _ = run(capsys, monkeypatch, "logout", host)
    assert code == 0 and "Removing" in out
    assert json.loads(store.read_text()) == {}


def test_docker_io_pulls_go_to_the_mirror(
    tmp_path: Path,
    registry: Registry,
    isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = make_image()
    seed_name = f"{registry.host}/library/tiny:v1"
    seed(tmp_path, tmp_path / "src", {seed_name: image})
    code, _, err = run(
        capsys, monkeypatch, "--root", str(tmp_path / "src"), "push", "-q", seed_name
    )
    assert code == 0, err
    config = isolated_home / ".config" / "pallet"
    config.mkdir(parents=True)
    (config / "registries.toml").write_text(
        f'[mirrors]\n"docker.io" = ["http://{registry.host}"]\n'
    )
    dest = tmp_path / "dest"
    code, out, err = run(capsys, monkeypatch, "--root", str(dest), "pull", "tiny:v1")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "docker.io/library/tiny:v1"
    assert Store.open(dest).resolve("docker.io/library/tiny:v1").digest == image.digest


def test_pull_what_skopeo_pushed_and_skopeo_pulls_what_pallet_pushed(
    tmp_path: Path, registry: Registry
) -> None:
    from pallet.transport.registry_pull import pull
    from pallet.transport.registry_push import push

    image = make_image()
    layout = tmp_path / "layout"
    write_layout(layout, {"img": image})
    digest_file = tmp_path / "skopeo-digest"
    run_skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--digestfile",
        str(digest_file),
        f"oci:{layout}:img",
        f"docker://{registry.host}/sk:v1",
    )
    dest = tmp_path / "dest"
    pushed = digest_file.read_text().strip()
    assert pull(f"{registry.host}/sk:v1", dest).digest == pushed
    store = Store.open(dest)
    manifest = json.loads(store.read_blob(pushed))
    for desc in (manifest["config"], *manifest["layers"]):
        data = store.read_blob(desc["digest"])
        assert len(data) == desc["size"] and sha256(data) == desc["digest"]
    assert [d["digest"] for d in manifest["layers"]] == [sha256(b) for b in image.layers]

    other = make_image()
    name = f"{registry.host}/pl:v1"
    seed(tmp_path, tmp_path / "src", {name: other})
    push(name, tmp_path / "src")
    out = tmp_path / "out"
    run_skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{out}:x")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == other.digest
    for blob in other.blobs:
        assert (out / "blobs" / "sha256" / sha256(blob)[7:]).read_bytes() == blob


def test_copy_between_a_layout_and_a_registry(
    tmp_path: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pallet.transport import registry_upload

    # a blob over the monolithic limit takes the buffered chunked path (copy's streams
    # cannot seek)
    monkeypatch.setattr(registry_upload, "MONOLITHIC_MAX", 10_000)
    monkeypatch.setattr(registry_upload, "CHUNK_BUFFERED", 100_000)
    image = make_image((1000, 250_000))
    layout = tmp_path / "layout"
    write_layout(layout, {"img": image})
    ref = f"{registry.host}/copied:v1"
    root = str(tmp_path / "store")
    code, _, err = run(
        capsys, monkeypatch, "--root", root, "copy", "-q", f"oci:{layout}:img", f"docker://{ref}"
    )
    assert code == 0, err
    out = tmp_path / "out"
    code, _, err = run(
        capsys, monkeypatch, "--root", root, "copy", "-q", f"docker://{ref}", f"oci:{out}:back"
    )
    assert code == 0, err
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    for blob in image.blobs:
        assert (out / "blobs" / "sha256" / sha256(blob)[7:]).read_bytes() == blob
