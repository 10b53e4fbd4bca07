"""TLS through the egress policy's address pinning: the storage SDKs connect to a checked address,
yet the server still sees the name (SNI, Host) and its certificate is checked against the name.

A real HTTPS server on 127.0.0.1 with a certificate for ``storage.test`` from a test CA; the name
resolves to loopback (the test's stand-in for DNS).
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config.egress import egress_http_client
from connectors.azure_blob import egress_requests_session
from tests.connectors.storage_support import resolve_to_loopback

NAME = "storage.test"


def _certificate(
    subject: str, key: Any, issuer: x509.Name, issuer_key: Any, *, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A test CA, and server certificates it signed for storage.test and for another name."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Railyard test CA")])
    ca = _certificate("Railyard test CA", ca_key, ca_name, ca_key, ca=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in (NAME, "other.test"):
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate(name, key, ca_name, ca_key, ca=False)
        (folder / f"{name}.pem").write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return {
        "ca": folder / "ca.pem",
        NAME: folder / f"{NAME}.pem",
        "other": folder / "other.test.pem",
    }


@dataclass
class Seen:
    port: int = 0
    server_names: list[str | None] = field(default_factory=list)
    hosts: list[str | None] = field(default_factory=list)


@contextlib.contextmanager
def https_server(certificate: Path) -> Iterator[Seen]:
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.hosts.append(self.headers.get("Host"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate)
    context.sni_callback = lambda _socket, name, _context: seen.server_names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    seen.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def storage_test_resolves_to_loopback(monkeypatch):
    resolve_to_loopback(monkeypatch, ".test")


def test_the_azure_session_pins_the_address_and_keeps_the_name_for_tls(
    pki, storage_test_resolves_to_loopback
):
    with https_server(pki[NAME]) as seen, egress_requests_session() as session:
        response = session.get(f"https://{NAME}:{seen.port}/", verify=str(pki["ca"]), timeout=5)

    assert response.status_code == 200
    assert seen.server_names == [NAME]
    assert seen.hosts == [f"{NAME}:{seen.port}"]


def test_the_azure_session_refuses_a_certificate_for_another_name(
    pki, storage_test_resolves_to_loopback
):
    with (
        https_server(pki["other"]) as seen,
        egress_requests_session() as session,
        pytest.raises(requests.exceptions.SSLError),
    ):
        session.get(f"https://{NAME}:{seen.port}/", verify=str(pki["ca"]), timeout=5)


def test_the_s3_client_pins_the_address_and_keeps_the_name_for_tls(
    pki, storage_test_resolves_to_loopback
):
    trust = ssl.create_default_context(cafile=str(pki["ca"]))
    with https_server(pki[NAME]) as seen, egress_http_client(verify=trust) as client:
        response = client.get(f"https://{NAME}:{seen.port}/")

    assert response.status_code == 200
    assert seen.server_names == [NAME]
    assert seen.hosts == [f"{NAME}:{seen.port}"]


def test_the_s3_client_refuses_a_certificate_for_another_name(
    pki, storage_test_resolves_to_loopback
):
    trust = ssl.create_default_context(cafile=str(pki["ca"]))
    with (
        https_server(pki["other"]) as seen,
        egress_http_client(verify=trust) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"https://{NAME}:{seen.port}/")
