"""TLS to a registry: CA certificates from certs.d are used to verify it, as Docker does."""

from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("registry_fixtures")
pytest_plugins = ["registry_fixtures"]

from registry_fixtures import (  # noqa: E402
    Registry,
    free_port,
    load_into_store,
    make_image,
    sha256,
    start_registry,
    write_layout,
)

from pallet.errors import TransportError  # noqa: E402
from pallet.store import Store  # noqa: E402
from pallet.transport import registry_upload  # noqa: E402
from pallet.transport.registry_pull import pull  # noqa: E402
from pallet.transport.registry_push import push  # noqa: E402

pytestmark = pytest.mark.peer


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _tls_registry(tmp_path: Path) -> tuple[Registry, x509.Certificate]:
    """A registry serving TLS with a certificate of a fresh CA; returns it and the CA."""
    ca_key, ca = make_ca("pallet test CA")
    key, cert = make_server_cert(ca_key, ca)
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "server.crt").write_bytes(pem(cert))
    (tls / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    reg = start_registry(
        tmp_path / "reg",
        tls={"certificate": str(tls / "server.crt"), "key": str(tls / "server.key")},
        port=free_port(),
    )
    return reg, ca


def test_certs_d_ca_verifies_a_tls_registry(tmp_path: Path, isolated_home: Path) -> None:
    reg, ca = _tls_registry(tmp_path)
    try:
        host = reg.host
        certs_d = isolated_home / ".config" / "pallet" / "certs.d" / host
        certs_d.mkdir(parents=True)
        _, wrong_ca = make_ca("some other CA")
        (certs_d / "ca.crt").write_bytes(pem(wrong_ca))
        with pytest.raises(TransportError, match=host):
            pull(f"{host}/app:v1", tmp_path / "d0")

        (certs_d / "ca.crt").write_bytes(pem(ca))
        image = make_image()
        layout = tmp_path / "layout"
        write_layout(layout, {"img": image})
        name = f"{host}/app:v1"
        load_into_store(tmp_path / "src", layout, "img", name)
        assert push(name, tmp_path / "src").digest == image.digest
        assert pull(name, tmp_path / "dest").digest == image.digest
        # again, with the blocking client alone (the image is in place): same trust
        assert push(name, tmp_path / "src").uploaded == 0
        (certs_d / "ca.crt").write_bytes(pem(wrong_ca))
        with pytest.raises(TransportError, match=host):
            push(name, tmp_path / "src")
    finally:
        reg.stop()


def test_chunked_upload_of_a_store_blob_over_tls(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Store blobs go out with sendfile over plain http; through TLS the same body is read
    # and encrypted instead.
    monkeypatch.setattr(registry_upload, "MONOLITHIC_MAX", 10_000)
    monkeypatch.setattr(registry_upload, "CHUNK_SEEKABLE", 100_000)
    reg, ca = _tls_registry(tmp_path)
    try:
        certs_d = isolated_home / ".config" / "pallet" / "certs.d" / reg.host
        certs_d.mkdir(parents=True)
        (certs_d / "ca.crt").write_bytes(pem(ca))
        image = make_image((1000, 350_000))
        layout = tmp_path / "layout"
        write_layout(layout, {"img": image})
        name = f"{reg.host}/app:v1"
        load_into_store(tmp_path / "src", layout, "img", name)
        assert push(name, tmp_path / "src").digest == image.digest
        assert reg.log_text().count('"PATCH /v2/app/blobs/uploads/') >= 4
        assert pull(name, tmp_path / "dest").digest == image.digest
        stored = Store.open(tmp_path / "dest").read_blob(sha256(image.layers[1]))
        assert stored == image.layers[1]
    finally:
        reg.stop()
