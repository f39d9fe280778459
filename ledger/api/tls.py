"""TLS for the gRPC port: a certificate and key (LEDGER_TLS_CERT, LEDGER_TLS_KEY), and with a
client CA (LEDGER_TLS_CLIENT_CA) mutual TLS, where only clients holding a certificate that CA
signed may connect at all. Bearer keys then never cross the network in clear.

The files are read and checked when the server starts, so a path that cannot be read or a
file that is not PEM of the right kind stops it with one line naming the setting.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ledger.config import ConfigError, Settings


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{setting}={path}: {error.strerror}") from None


def _certificates(setting: str, path: str) -> bytes:
    data = _read(setting, path)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{setting}={path}: not a PEM certificate") from None
    return data


def _private_key(setting: str, path: str) -> bytes:
    data = _read(setting, path)
    try:
        load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{setting}={path}: not an unencrypted PEM private key") from None
    return data


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The port's credentials: None (plaintext) unless LEDGER_TLS_CERT is set."""
    if not settings.tls_cert:
        return None
    chain = _certificates("LEDGER_TLS_CERT", settings.tls_cert)
    key = _private_key("LEDGER_TLS_KEY", settings.tls_key)
    client_ca = (
        _certificates("LEDGER_TLS_CLIENT_CA", settings.tls_client_ca)
        if settings.tls_client_ca
        else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
