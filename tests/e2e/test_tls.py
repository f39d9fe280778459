"""TLS and mutual TLS on the gRPC port, with a CA of the test's own making (cryptography):
a client that does not trust the CA, or (mutual TLS) holds no certificate the client CA
signed, is refused; one that does is served, the SDK and the CLI alike."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ledger.clients.sdk import LedgerClient, Tls, open_channel

from ledger.api.server import LedgerServer, ServerThread
from ledger.api.tls import server_credentials
from ledger.config import ConfigError, Settings
from ledger.v1 import storefront_pb2
from tests.conftest import Clock, Keys
from tests.helpers import refused

LEDGER = str(Path(sys.executable).parent / "ledger")
NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class Issued:
    cert: Path
    key: Path


class Authority:
    """A certificate authority: a key and a self-signed certificate, in ``folder``."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.name = subject
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5))
            .not_valid_after(NOW + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = folder / f"{name}.pem"
        self.pem.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5))
            .not_valid_after(NOW + datetime.timedelta(days=1))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.folder / f"{name}.pem", self.folder / f"{name}-key.pem")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued


@dataclass
class Pki:
    ca: Authority
    stranger_ca: Authority  # a CA the server knows nothing of
    server: Issued
    client: Issued
    stranger_client: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = Authority(tmp_path, "ledger-test-ca")
    stranger = Authority(tmp_path, "stranger-ca")
    return Pki(
        ca,
        stranger,
        ca.issue("server", server=True),
        ca.issue("client", server=False),
        stranger.issue("stranger-client", server=False),
    )


def served(tmp_path: Path, **tls: str) -> Iterator[tuple[str, Keys]]:
    keys = Keys()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
        listen="127.0.0.1:0",
        audit_key_file=str(tmp_path / "audit.pem"),
        **tls,
    )
    with ServerThread(LedgerServer(settings, keys.ring(), clock=Clock())) as thread:
        yield thread.target, keys


@pytest.fixture
def tls_server(tmp_path: Path, pki: Pki) -> Iterator[tuple[str, Keys]]:
    yield from served(tmp_path, tls_cert=str(pki.server.cert), tls_key=str(pki.server.key))


@pytest.fixture
def mtls_server(tmp_path: Path, pki: Pki) -> Iterator[tuple[str, Keys]]:
    yield from served(
        tmp_path,
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
        tls_client_ca=str(pki.ca.pem),
    )


def answers(target: str, key: str, tls: Tls | None) -> grpc.StatusCode:
    """The status of a call: NOT_FOUND means it reached the ledger (no such order)."""
    with LedgerClient(target, key, tls=tls) as client:
        try:
            client.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1"), timeout=10)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[attr-defined,no-any-return]
    return grpc.StatusCode.OK


def test_a_client_trusting_the_ca_is_served_and_others_are_refused(
    tls_server: tuple[str, Keys], pki: Pki
) -> None:
    target, keys = tls_server
    assert answers(target, keys.shop_a, Tls.from_files(ca=pki.ca.pem)) == grpc.StatusCode.NOT_FOUND
    assert (
        refused(
            lambda: LedgerClient(
                target, keys.shop_a, tls=Tls.from_files(ca=pki.ca.pem)
            ).storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1"))
        ).reason
        == "NOT_FOUND"
    )
    # Without the CA (the system's roots), with another CA, or in plaintext: no call at all.
    assert answers(target, keys.shop_a, Tls()) == grpc.StatusCode.UNAVAILABLE
    assert (
        answers(target, keys.shop_a, Tls.from_files(ca=pki.stranger_ca.pem))
        == grpc.StatusCode.UNAVAILABLE
    )
    assert answers(target, keys.shop_a, None) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_a_client_without_a_certificate_the_client_ca_signed(
    mtls_server: tuple[str, Keys], pki: Pki
) -> None:
    target, keys = mtls_server
    with_cert = Tls.from_files(ca=pki.ca.pem, cert=pki.client.cert, key=pki.client.key)
    assert answers(target, keys.shop_a, with_cert) == grpc.StatusCode.NOT_FOUND
    without_cert = Tls.from_files(ca=pki.ca.pem)
    assert answers(target, keys.shop_a, without_cert) == grpc.StatusCode.UNAVAILABLE
    strangers = Tls.from_files(
        ca=pki.ca.pem, cert=pki.stranger_client.cert, key=pki.stranger_client.key
    )
    assert answers(target, keys.shop_a, strangers) == grpc.StatusCode.UNAVAILABLE


def health(target: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LEDGER, "health", "--address", target, *options],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_connects_with_the_ca_and_a_client_certificate(
    mtls_server: tuple[str, Keys], pki: Pki
) -> None:
    target, _ = mtls_server
    ok = health(
        target,
        "--tls-ca",
        str(pki.ca.pem),
        "--tls-cert",
        str(pki.client.cert),
        "--tls-key",
        str(pki.client.key),
    )
    assert (ok.returncode, ok.stdout.strip()) == (0, "SERVING"), ok.stderr
    no_cert = health(target, "--tls-ca", str(pki.ca.pem))
    assert no_cert.returncode == 1 and "UNAVAILABLE" in no_cert.stderr
    plaintext = health(target)
    assert plaintext.returncode == 1 and "UNAVAILABLE" in plaintext.stderr


def test_a_name_override_checks_the_certificate_against_that_name(
    tls_server: tuple[str, Keys], pki: Pki
) -> None:
    target, _ = tls_server
    for name, expected in (
        ("localhost", health_pb2.HealthCheckResponse.SERVING),
        ("ledger.elsewhere.example", None),
    ):
        with open_channel(target, Tls.from_files(ca=pki.ca.pem, server_name=name)) as channel:
            try:
                status = (
                    health_pb2_grpc.HealthStub(channel)
                    .Check(health_pb2.HealthCheckRequest(), timeout=10)
                    .status
                )
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
                status = None
        assert status == expected, name


def test_tls_settings_are_checked_before_serving(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ConfigError, match="LEDGER_TLS_CERT and LEDGER_TLS_KEY go together"):
        Settings.from_env({"LEDGER_TLS_CERT": str(pki.server.cert)})
    with pytest.raises(ConfigError, match="LEDGER_TLS_CLIENT_CA needs LEDGER_TLS_CERT"):
        Settings.from_env({"LEDGER_TLS_CLIENT_CA": str(pki.ca.pem)})
    missing = Settings(tls_cert=str(tmp_path / "nope.pem"), tls_key=str(pki.server.key))
    with pytest.raises(ConfigError, match=r"LEDGER_TLS_CERT=.*nope.pem: No such file"):
        server_credentials(missing)
    swapped = Settings(tls_cert=str(pki.server.key), tls_key=str(pki.server.cert))
    with pytest.raises(ConfigError, match=r"LEDGER_TLS_CERT=.*not a PEM certificate"):
        server_credentials(swapped)
    wrong_key = Settings(tls_cert=str(pki.server.cert), tls_key=str(pki.server.cert))
    with pytest.raises(ConfigError, match=r"LEDGER_TLS_KEY=.*not an unencrypted PEM private"):
        server_credentials(wrong_key)
    assert server_credentials(Settings()) is None
