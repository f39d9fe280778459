"""The Python SDK of the ledger's gRPC API.

``Ledger`` (sync) and ``AsyncLedger`` (asyncio) are the clients for applications: every RPC
of every service (``.storefront``, ``.admin``, ``.finance``, ``.report``, ``.audit``), each
call with a default deadline, an idempotency key made per logical write when the request
carries none (and reused by its retries), retries with backoff and jitter on UNAVAILABLE and
ABORTED only, and read-your-writes (reads wait for the last write this client saw answered);
amounts in the currency's unit as ``decimal.Decimal`` where a method takes or gives money by
name (``place_order``, ``pay_order``, ``refund_order``, ``request_withdrawal``,
``balances``). See calls.py for the rules, services.py for the methods.

    with Ledger("127.0.0.1:50051", api_key) as ledger:
        ledger.storefront.pay_order("O7", payment_id="wx-7", amount=Decimal("99.99"),
                                    currency="CNY")

``LedgerClient`` is the bare one (a channel carrying the API key, and the generated stubs:
no deadline, no retry, requests sent exactly as given), for tests and tools that mean to
send every field themselves:

    client = LedgerClient("127.0.0.1:50051", api_key)
    client.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(...))

Over TLS (the server's LEDGER_TLS_CERT), trusting the CA that signed the server's
certificate, and with mutual TLS also presenting a client certificate:

    tls = Tls.from_files(ca="ca.pem", cert="client.pem", key="client-key.pem")
    client = LedgerClient("ledger.example:50051", api_key, tls=tls)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from ledger.clients.async_services import (
    AsyncAdmin,
    AsyncAudit,
    AsyncFinance,
    AsyncReport,
    AsyncStorefront,
)
from ledger.clients.calls import DEFAULT_DEADLINE, Session
from ledger.clients.calls import idempotency_key as idempotency_key  # its home before the SDK grew
from ledger.clients.edge import Balance as Balance
from ledger.clients.edge import Line as Line
from ledger.clients.retry import RetryPolicy
from ledger.clients.services import Admin, Audit, Finance, Report, Storefront

from ledger.v1 import (
    admin_pb2_grpc,
    audit_pb2_grpc,
    finance_pb2_grpc,
    report_pb2_grpc,
    storefront_pb2_grpc,
    tax_pb2_grpc,
)


class _BearerAuth(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor,
                  grpc.UnaryStreamClientInterceptor):
    """Adds the API key to every call: unary, client-streaming (ImportOrders) and
    server-streaming (StreamEvents)."""

    def __init__(self, api_key: str) -> None:
        self._metadata = (("authorization", f"Bearer {api_key}"),)

    def _details(self, client_call_details: Any) -> Any:
        return client_call_details._replace(
            metadata=tuple(client_call_details.metadata or ()) + self._metadata
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


@dataclass(frozen=True)
class Tls:
    """How a client reaches a server over TLS.

    ``ca``: PEM certificates to trust for the server (None: the system's roots); ``cert`` and
    ``key``: this client's certificate chain and private key, for a server that asks for
    them (mutual TLS); ``server_name``: the name to check the server's certificate against
    when it differs from the address's host (e.g. connecting by IP)."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str = ""

    @classmethod
    def from_files(cls, ca: str | Path | None = None, cert: str | Path | None = None,
                   key: str | Path | None = None, server_name: str = "") -> Tls:
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return cls(read(ca), read(cert), read(key), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key,
                                            certificate_chain=self.cert)

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def open_channel(target: str, tls: Tls | None = None) -> grpc.Channel:
    """A channel to ``target``: over TLS when ``tls`` is given, else plaintext."""
    if tls is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, tls.credentials(), options=tls.options())


def open_async_channel(target: str, tls: Tls | None = None) -> grpc.aio.Channel:
    """The asyncio twin of ``open_channel`` (open it inside the running event loop)."""
    if tls is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, tls.credentials(), options=tls.options())


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """The TLS options of every command that talks to a server (each also read from the
    environment variable named in its help)."""
    env = os.environ.get
    parser.add_argument("--tls", action="store_true", default=bool(env("LEDGER_TLS")),
                        help="connect over TLS, trusting the system's CAs (or LEDGER_TLS=1); "
                             "implied by --tls-ca, --tls-cert")
    parser.add_argument("--tls-ca", default=env("LEDGER_TLS_CA", ""),
                        help="PEM file of the CA that signed the server's certificate "
                             "(or LEDGER_TLS_CA)")
    parser.add_argument("--tls-cert", default=env("LEDGER_TLS_CLIENT_CERT", ""),
                        help="this client's PEM certificate, for a server that asks for one "
                             "(mutual TLS; or LEDGER_TLS_CLIENT_CERT)")
    parser.add_argument("--tls-key", default=env("LEDGER_TLS_CLIENT_KEY", ""),
                        help="that certificate's PEM private key (or LEDGER_TLS_CLIENT_KEY)")
    parser.add_argument("--tls-server-name", default=env("LEDGER_TLS_SERVER_NAME", ""),
                        help="the name the server's certificate must carry, when not the "
                             "address's host (or LEDGER_TLS_SERVER_NAME)")


def tls_from_args(args: argparse.Namespace) -> Tls | None:
    """The Tls that add_connection_options's options ask for; None: plaintext."""
    if not (args.tls or args.tls_ca or args.tls_cert):
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.exit("ledger: --tls-cert and --tls-key go together (a client certificate and "
                 "its key)")
    try:
        return Tls.from_files(args.tls_ca or None, args.tls_cert or None,
                              args.tls_key or None, args.tls_server_name)
    except OSError as error:
        print(f"ledger: {error.filename}: {error.strerror}", file=sys.stderr)
        sys.exit(2)


class LedgerClient:
    def __init__(self, target: str, api_key: str, *, tls: Tls | None = None) -> None:
        self._channel = grpc.intercept_channel(open_channel(target, tls), _BearerAuth(api_key))
        self.storefront = storefront_pb2_grpc.StorefrontServiceStub(self._channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        self.report = report_pb2_grpc.ReportServiceStub(self._channel)
        self.finance = finance_pb2_grpc.FinanceServiceStub(self._channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self._channel)
        self.tax = tax_pb2_grpc.TaxServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Ledger:
    """The sync SDK client (see the module's docstring). ``deadline``: seconds a call may
    take, retries included, unless it is given ``timeout=``; ``retry``: how often and how
    long to wait between attempts; ``read_your_writes``: whether reads wait for this
    client's last write. Safe to share between threads."""

    def __init__(self, target: str, api_key: str, *, tls: Tls | None = None,
                 deadline: float = DEFAULT_DEADLINE, retry: RetryPolicy | None = None,
                 read_your_writes: bool = True) -> None:
        self.session = Session(api_key, deadline, retry or RetryPolicy(), read_your_writes)
        self._channel = open_channel(target, tls)
        self.storefront = Storefront(storefront_pb2_grpc.StorefrontServiceStub(self._channel),
                                     self.session)
        self.admin = Admin(admin_pb2_grpc.AdminServiceStub(self._channel), self.session)
        self.finance = Finance(finance_pb2_grpc.FinanceServiceStub(self._channel), self.session)
        self.report = Report(report_pb2_grpc.ReportServiceStub(self._channel), self.session)
        self.audit = Audit(audit_pb2_grpc.AuditServiceStub(self._channel), self.session)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncLedger:
    """The asyncio SDK client: ``Ledger``'s services and rules, each call awaited. Make it
    inside the event loop that uses it (``async with AsyncLedger(...) as ledger:``)."""

    def __init__(self, target: str, api_key: str, *, tls: Tls | None = None,
                 deadline: float = DEFAULT_DEADLINE, retry: RetryPolicy | None = None,
                 read_your_writes: bool = True) -> None:
        self.session = Session(api_key, deadline, retry or RetryPolicy(), read_your_writes)
        self._channel = open_async_channel(target, tls)
        # The generated stubs' types give the asyncio stub for an aio channel.
        self.storefront = AsyncStorefront(
            storefront_pb2_grpc.StorefrontServiceStub(self._channel), self.session)
        self.admin = AsyncAdmin(admin_pb2_grpc.AdminServiceStub(self._channel), self.session)
        self.finance = AsyncFinance(finance_pb2_grpc.FinanceServiceStub(self._channel),
                                    self.session)
        self.report = AsyncReport(report_pb2_grpc.ReportServiceStub(self._channel),
                                  self.session)
        self.audit = AsyncAudit(audit_pb2_grpc.AuditServiceStub(self._channel), self.session)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncLedger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
