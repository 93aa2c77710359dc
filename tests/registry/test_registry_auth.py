"""Authentication and authorization: htpasswd Basic, Docker token auth, ACLs, TLS."""

from __future__ import annotations

import base64
import datetime
import json
import os
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pallet.registry.auth import jwt
from pallet.registry.auth.htpasswd import Htpasswd
from pallet.registry.config import AccessRule, AuthConfig, TLSConfig

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
RULES = (
    AccessRule(subjects=("group:admins",), repositories=("*",), actions=("pull", "push", "delete")),
    AccessRule(subjects=("bob",), repositories=("bob/*",), actions=("pull", "push")),
    AccessRule(subjects=("*",), repositories=("public/*",), actions=("pull",)),
)


def basic(user: str, password: str | None = None) -> str:
    raw = f"{user}:{password if password is not None else USERS[user]}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def htpasswd_file(tmp_path_factory):
    # bcrypt is slow on purpose: hash the users once for the whole module.
    path = tmp_path_factory.mktemp("users") / "htpasswd"
    store = Htpasswd(path)
    for user, password in USERS.items():
        store.set(user, password)
    return path


def _auth(mode, htpasswd_file, **extra):
    return AuthConfig(
        mode=mode, htpasswd=htpasswd_file, groups={"admins": ("alice",)}, access=RULES, **extra
    )


@pytest.fixture
def basic_registry(make_registry, htpasswd_file):
    return make_registry(auth=_auth("htpasswd", htpasswd_file))


@pytest.fixture
def token_registry(make_registry, htpasswd_file):
    return make_registry(auth=_auth("token", htpasswd_file))


def test_basic_challenge_and_credentials(basic_registry, make_client):
    anon = make_client(basic_registry.url)
    r = anon.request("GET", "/v2/")
    assert r.status == 401
    assert r.error_codes == ["UNAUTHORIZED"]
    assert r.header("WWW-Authenticate").startswith('Basic realm="pallet-registry"')
    assert (
        make_client(basic_registry.url, auth=basic("alice", "wrong")).request("GET", "/v2/").status
        == 401
    )
    assert (
        make_client(basic_registry.url, auth=basic("nobody", "x")).request("GET", "/v2/").status
        == 401
    )
    assert make_client(basic_registry.url, auth=basic("alice")).request("GET", "/v2/").status == 200


def test_acl_grants_and_default_deny(basic_registry, make_client):
    alice = make_client(basic_registry.url, auth=basic("alice"))
    bob = make_client(basic_registry.url, auth=basic("bob"))
    carol = make_client(basic_registry.url, auth=basic("carol"))
    digest = bob.push_image("bob/app", "v1", [b"bob's layer"])
    assert alice.request("GET", "/v2/bob/app/manifests/v1").status == 200
    # bob may not delete in his namespace, nor touch anyone else's
    r = bob.request("DELETE", f"/v2/bob/app/manifests/{digest}")
    assert r.status == 403 and r.error_codes == ["DENIED"]
    r = bob.request("POST", "/v2/alice/app/blobs/uploads/")
    assert r.status == 403
    # carol has no rule for bob/*: default deny
    assert carol.request("GET", "/v2/bob/app/manifests/v1").status == 403
    alice.push_image("public/base", "v1", [b"public"])
    assert carol.request("GET", "/v2/public/base/manifests/v1").status == 200
    assert carol.request("POST", "/v2/public/base/blobs/uploads/").status == 403
    anon = make_client(basic_registry.url)
    r = anon.request("GET", "/v2/public/base/manifests/v1")
    assert r.status == 401 and "Basic" in r.header("WWW-Authenticate")
    assert alice.request("DELETE", f"/v2/bob/app/manifests/{digest}").status == 202


def test_catalog_lists_only_readable_repositories(basic_registry, make_client):
    alice = make_client(basic_registry.url, auth=basic("alice"))
    for repo in ("bob/app", "public/base", "secret/stuff"):
        alice.push_image(repo, "v1", [repo.encode()])
    carol = make_client(basic_registry.url, auth=basic("carol"))
    assert carol.request("GET", "/v2/_catalog").json()["repositories"] == ["public/base"]
    bob = make_client(basic_registry.url, auth=basic("bob"))
    assert bob.request("GET", "/v2/_catalog").json()["repositories"] == ["bob/app", "public/base"]


def test_cross_repo_mount_never_leaks_an_unreadable_blob(basic_registry, make_client):
    alice = make_client(basic_registry.url, auth=basic("alice"))
    secret = alice.push_blob("secret/stuff", b"top secret layer")
    bob = make_client(basic_registry.url, auth=basic("bob"))
    for query in (f"mount={secret}&from=secret/stuff", f"mount={secret}"):
        r = bob.request("POST", f"/v2/bob/app/blobs/uploads/?{query}")
        assert r.status == 202  # an upload session, not the blob
        assert bob.request("GET", f"/v2/bob/app/blobs/{secret}").status == 404
    public = alice.push_blob("public/base", b"public layer")
    r = bob.request("POST", f"/v2/bob/app/blobs/uploads/?mount={public}&from=public/base")
    assert r.status == 201
    assert bob.request("GET", f"/v2/bob/app/blobs/{public}").status == 200


def test_anonymous_pull(make_registry, make_client, htpasswd_file):
    reg = make_registry(auth=_auth("htpasswd", htpasswd_file, anonymous_pull=True))
    make_client(reg.url, auth=basic("alice")).push_image("any/repo", "v1", [b"x"])
    anon = make_client(reg.url)
    assert anon.request("GET", "/v2/any/repo/manifests/v1").status == 200
    r = anon.request("POST", "/v2/any/repo/blobs/uploads/")
    assert r.status == 401 and r.header("WWW-Authenticate").startswith("Basic")


def test_denied_requests_are_audited(basic_registry, make_client):
    make_client(basic_registry.url, auth=basic("bob")).request("POST", "/v2/alice/x/blobs/uploads/")
    make_client(basic_registry.url).request("GET", "/v2/bob/x/tags/list")
    lines = [json.loads(x) for x in basic_registry.config.audit_path.read_text().splitlines()]
    denied = [e for e in lines if e["outcome"] in ("denied", "unauthorized")]
    assert {"user": "bob", "repository": "alice/x", "outcome": "denied"}.items() <= denied[
        0
    ].items()
    assert {"user": "", "repository": "bob/x", "outcome": "unauthorized"}.items() <= denied[
        1
    ].items()
    for entry in lines:
        assert set(entry) >= {
            "time",
            "user",
            "address",
            "action",
            "repository",
            "reference",
            "digest",
            "outcome",
        }
        assert entry["address"] == "127.0.0.1"


def _token(client, scope: str, auth: str | None) -> tuple[int, dict]:
    headers = {"Authorization": auth} if auth else {}
    r = client.request("GET", f"/token?service=pallet-registry&scope={scope}", headers=headers)
    return r.status, (r.json() if r.status == 200 else {})


def test_token_flow(token_registry, make_client):
    anon = make_client(token_registry.url)
    r = anon.request("GET", "/v2/")
    assert r.status == 401
    challenge = r.header("WWW-Authenticate")
    assert challenge.startswith("Bearer ")
    assert f'realm="{token_registry.url}/token"' in challenge
    assert 'service="pallet-registry"' in challenge
    status, body = _token(anon, "repository:bob/app:pull,push", basic("bob"))
    assert status == 200 and body["token"] == body["access_token"] and body["expires_in"] > 0
    bob = make_client(token_registry.url, auth="Bearer " + body["token"])
    assert bob.request("GET", "/v2/").status == 200
    bob.push_image("bob/app", "v1", [b"layer"])
    # the token is for bob/app only: another repository needs another token
    r = bob.request("GET", "/v2/public/thing/tags/list")
    assert r.status == 401
    assert 'scope="repository:public/thing:pull"' in r.header("WWW-Authenticate")
    assert 'error="insufficient_scope"' in r.header("WWW-Authenticate")
    # asking for more than the ACL allows grants only what it allows
    status, body = _token(anon, "repository:bob/app:pull,push,delete", basic("bob"))
    claims = json.loads(jwt.b64url_decode(body["token"].split(".")[1]))
    assert claims["access"] == [
        {"type": "repository", "name": "bob/app", "actions": ["pull", "push"]}
    ]
    status, _ = _token(anon, "repository:bob/app:pull", basic("bob", "wrong"))
    assert status == 401


def test_forged_expired_and_garbage_tokens_are_refused(token_registry, make_client):
    anon = make_client(token_registry.url)
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {
        "iss": "pallet-registry",
        "sub": "alice",
        "aud": "pallet-registry",
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "access": [{"type": "repository", "name": "x/y", "actions": ["pull"]}],
    }
    forged = jwt.encode(claims, key)
    real_key = serialization.load_pem_private_key(
        token_registry.config.token_key_path.read_bytes(), None
    )
    expired = jwt.encode({**claims, "exp": now - 10}, real_key)  # type: ignore[arg-type]
    good = jwt.encode(claims, real_key)  # type: ignore[arg-type]
    header, payload, sig = good.split(".")
    none_alg = jwt.b64url(b'{"alg":"none"}') + "." + payload + "."
    for token in (forged, expired, none_alg, "garbage", header + "." + payload + "." + sig[:-4]):
        r = anon.request("GET", "/v2/x/y/tags/list", headers={"Authorization": f"Bearer {token}"})
        assert r.status == 401, token
    r = anon.request("GET", "/v2/x/y/tags/list", headers={"Authorization": f"Bearer {good}"})
    assert r.status == 404  # authorized; the repository just does not exist


def test_token_post_password_grant(token_registry, make_client):
    anon = make_client(token_registry.url)
    body = b"grant_type=password&username=alice&password=alice-pw&service=pallet-registry&scope=repository:a/b:pull"
    r = anon.request("POST", "/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200 and r.json()["access_token"]
    bad = body.replace(b"alice-pw", b"nope")
    r = anon.request("POST", "/token", bad, {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 401


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls(make_registry, make_client, tmp_path):
    cert, key = _self_signed(tmp_path)
    reg = make_registry(tls=TLSConfig(cert=cert, key=key))
    assert reg.url.startswith("https://")
    client = make_client(reg.url)
    layer = os.urandom(300_000)
    digest = client.push_image("tls/repo", "v1", [layer])
    got = client.request("GET", "/v2/tls/repo/manifests/v1")
    assert got.header("Docker-Content-Digest") == digest
    # blob bodies over TLS cannot use sendfile: the fallback must send the same bytes
    assert client.request("GET", f"/v2/tls/repo/blobs/{client.sha256(layer)}").body == layer
    ranged = client.request(
        "GET", f"/v2/tls/repo/blobs/{client.sha256(layer)}", headers={"Range": "bytes=10-19"}
    )
    assert ranged.status == 206 and ranged.body == layer[10:20]


def test_user_cli_add_list_rm(tmp_path, cli):
    data = tmp_path / "data"

    def run(*args, input=""):
        return cli("registry", "user", *args, "--data", str(data), input=input)

    assert run("add", "dave", "--password-stdin", input="s3cret\n").returncode == 0
    assert run("add", "erin", "--password-stdin", input="pw2\n").returncode == 0
    assert run("list").stdout.split() == ["dave", "erin"]
    store = Htpasswd(data / "htpasswd")
    assert store.verify("dave", "s3cret") and not store.verify("dave", "wrong")
    assert (data / "htpasswd").read_text().split(":", 1)[1].startswith("$2")
    assert oct((data / "htpasswd").stat().st_mode & 0o777) == "0o600"
    assert run("rm", "dave").returncode == 0
    assert run("list").stdout.split() == ["erin"]
    out = run("rm", "dave")
    assert out.returncode != 0 and out.stderr.startswith("error: no user 'dave'")
    out = run("add", "bad:name", "--password-stdin", input="x\n")
    assert out.returncode != 0 and "invalid user name" in out.stderr


def test_anonymous_token_in_token_mode(make_registry, make_client, htpasswd_file):
    reg = make_registry(auth=_auth("token", htpasswd_file, anonymous_pull=True))
    status, body = _token(make_client(reg.url), "repository:bob/app:pull", basic("bob"))
    make_client(reg.url, auth="Bearer " + body["token"]).request("GET", "/v2/")
    bob_push = make_client(reg.url, auth=basic("bob"))
    bob_push.push_image("bob/app", "v1", [b"public by config"])
    anon = make_client(reg.url)
    # docker asks for a token without credentials when challenged on a pull
    status, body = _token(anon, "repository:bob/app:pull,push", None)
    assert status == 200
    claims = json.loads(jwt.b64url_decode(body["token"].split(".")[1]))
    assert claims["sub"] == ""
    assert claims["access"][0]["actions"] == ["pull"]
    reader = make_client(reg.url, auth="Bearer " + body["token"])
    assert reader.request("GET", "/v2/bob/app/manifests/v1").status == 200
    r = reader.request("POST", "/v2/bob/app/blobs/uploads/")
    assert r.status == 401 and 'error="insufficient_scope"' not in r.header("WWW-Authenticate")
