"""Assembles the gRPC server: the ledger's services, health, reflection, and the writer thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from ledger import metrics
from ledger.adapters.append_only import require_guards
from ledger.adapters.audit_store import AuditLog
from ledger.adapters.identity_vault import VaultError, VaultFile
from ledger.api.audit import AuditService
from ledger.api.auth import KeyRing
from ledger.api.finance import FinanceService
from ledger.api.health import HealthWatch
from ledger.api.listen import server_options
from ledger.api.payees import PayeeViews
from ledger.api.reports import ReportService
from ledger.api.requests import add_service
from ledger.api.servicers import AdminService, StorefrontService
from ledger.api.tax import TaxService
from ledger.api.tls import server_credentials
from ledger.application.audit_check import check_history
from ledger.application.audit_trail import AuditTrail, load_or_create_signer
from ledger.application.closing import Closing
from ledger.application.group_commit import GroupCommitter
from ledger.application.ledger_app import LedgerApplication, utc_now
from ledger.application.settlement import Settlement
from ledger.application.steps import background_steps
from ledger.audit.signing import KeyFileError, Signer
from ledger.bootstrap import build_application
from ledger.config import ConfigError, Settings, redact
from ledger.metrics import MetricsEndpoint
from ledger.outages import Outage
from ledger.projections.clock import Calendar
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner
from ledger.v1 import admin_pb2, audit_pb2, finance_pb2, report_pb2, storefront_pb2, tax_pb2

log = structlog.get_logger(__name__)

SERVICES = (
    storefront_pb2.DESCRIPTOR.services_by_name["StorefrontService"],
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
    report_pb2.DESCRIPTOR.services_by_name["ReportService"],
    finance_pb2.DESCRIPTOR.services_by_name["FinanceService"],
    audit_pb2.DESCRIPTOR.services_by_name["AuditService"],
    tax_pb2.DESCRIPTOR.services_by_name["TaxService"],
)
SERVICE_NAMES = tuple(service.full_name for service in SERVICES)
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]


class PositionWatcher:
    """Where the read models are, for a server whose projections run in another process:
    polled from the database in a thread so that waiting reads never block the event loop."""

    def __init__(self, models: ReadModels, interval: float = 0.05) -> None:
        self.models = models
        self.interval = interval
        self.position = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="position-watch", daemon=True)
        self.outage = Outage("reading the read models' position", logger=log,
                             operation="position")

    def start(self) -> None:
        self.models.ensure_tables()  # the projection process may not have started yet
        self.position = self.models.processed_position()
        self._thread.start()

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                self.position = self.models.processed_position()
            except Exception as error:  # a lost database, logged once per outage
                wait = max(self.interval, self.outage.failed(error))
                continue
            self.outage.succeeded()
            wait = self.interval

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def vault_file(path: str) -> VaultFile:
    try:
        return VaultFile(path)
    except (VaultError, OSError) as error:
        raise ConfigError(f"LEDGER_IDENTITY_KEYS_FILE={path}: {error}") from None


def signer(path: str) -> Signer:
    try:
        return load_or_create_signer(Path(path))
    except KeyFileError as error:
        raise ConfigError(f"LEDGER_AUDIT_KEY_FILE={path}: {error}") from None


class LedgerServer:
    """One stateless server process: any number of them can share one PostgreSQL store."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyRing,
        *,
        clock: Callable[[], datetime] = utc_now,
        app: LedgerApplication | None = None,
        share_port: bool = False,
        serve_metrics: bool = True,
    ) -> None:
        self.settings = settings
        self.share_port = share_port  # one of several worker processes (see listen.py)
        # With LEDGER_METRICS_LISTEN, whether this process answers scrapes: a worker's
        # metrics are served by its first process (metrics.py).
        self.serve_metrics = serve_metrics and bool(settings.metrics_listen)
        self.metrics: MetricsEndpoint | None = None
        # While set, calls that end well are not logged one by one (the demo's own calls).
        self.quiet = False
        self.metrics_port = 0
        self.app = app or build_application(settings.database_url, clock,
                                            timezone=settings.timezone,
                                            cache_size=settings.aggregate_cache)
        try:
            require_guards(self.app)  # never serve a history that can be rewritten
            self.audit = AuditTrail(AuditLog(self.app), signer(settings.audit_key_file))
            self.vault = vault_file(settings.identity_keys_file)
            checked = check_history(self.audit.log, self.audit.keys())  # nor a rewritten one
        except ConfigError:
            if app is None:
                self.app.close()
            raise
        log.info("history checked against its signed heads", platforms=checked.platforms,
                 entries=checked.entries, heads=checked.heads_verified)
        self.calendar = Calendar(settings.timezone)
        self.runner: ProjectionRunner | None = None
        self.watcher: PositionWatcher | None = None
        self.models = ReadModels(settings.database_url, self.calendar)
        if settings.projections == "inline":
            self.runner = ProjectionRunner(self.app, settings.database_url, calendar=self.calendar,
                                           memory_limit=settings.projection_cache,
                                           batch_size=settings.projection_batch)
        else:
            self.watcher = PositionWatcher(self.models)
        self.writer = GroupCommitter(
            self.app, max_batch=settings.batch_max, max_wait=settings.batch_wait_ms / 1000,
            on_commit=self.runner.wake if self.runner else None,
        )
        self.keys = keys
        # The server's own chores, run as the application's use cases with no call behind
        # them: finishing closes a stopped server left half done, and scheduled settlement.
        self.chores = background_steps(self.app, self.writer, self.processed_position)
        self.closing = Closing(self.app, self.models, self.audit)
        self.settlement = Settlement(self.app, self.models)
        self.port = 0
        self._scheduled: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Starts serving; returns the bound port (useful when listening on port 0)."""
        # Created here, not in __init__: an aio server belongs to the loop that runs it.
        self.server = grpc.aio.server(options=server_options(self.share_port))
        # Bound before anything starts, so that a refused address leaves nothing running.
        credentials = server_credentials(self.settings)
        try:
            self.port = (self.server.add_secure_port(self.settings.listen, credentials)
                         if credentials is not None
                         else self.server.add_insecure_port(self.settings.listen))
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise ConfigError(f"LEDGER_LISTEN={self.settings.listen}: cannot listen there "
                              "(in use, or not an address of this host)")
        if self.settings.metrics_listen:
            metrics.on = True
        if self.serve_metrics:
            endpoint = MetricsEndpoint(self.settings.metrics_listen, self.models.payouts_in_flight)
            try:
                self.metrics_port = endpoint.start()
            except OSError as error:
                raise ConfigError(f"LEDGER_METRICS_LISTEN={self.settings.metrics_listen}: "
                                  f"cannot listen there ({error.strerror})") from None
            self.metrics = endpoint
        self.health = health.aio.HealthServicer()
        if self.runner is not None:
            self.runner.start()
        if self.watcher is not None:
            self.watcher.start()
        self.writer.start()
        self.audit.publish_key()
        self.health_watch = HealthWatch(
            self.health, ("", *SERVICE_NAMES), self.probe,
            interval=self.settings.health_interval, max_stall=self.settings.health_max_stall)
        parts = (self.app, self.writer, self.keys, self.models, self.processed_position)
        gate = {"store_down": self.health_watch.store_down, "audit": self.audit,
                "payees": PayeeViews(self.app, self.vault)}
        servicers = (StorefrontService(*parts, **gate), AdminService(*parts, **gate),
                     ReportService(*parts, **gate),
                     FinanceService(*parts, **gate, reconciliation_required=(
                         self.settings.reconciliation_required)),
                     AuditService(*parts, **gate), TaxService(*parts, **gate), self.health,
                     reflection.aio.ReflectionServicer(
                         (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)))
        for service, servicer in zip((*SERVICES, HEALTH, REFLECTION), servicers, strict=True):
            add_service(self.server, service, servicer, lambda: self.quiet)  # see requests.py
        self._scheduled = asyncio.create_task(self._on_schedule())
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._watching = asyncio.create_task(self.health_watch.run())
        if not len(self.keys):
            log.warning("no API keys configured: every call will be UNAUTHENTICATED; "
                        "create one with `ledger keys add` and set LEDGER_API_KEYS_FILE")
        log.info("ledger serving", listen=self.settings.listen, port=self.port,
                 tls="mutual" if self.settings.tls_client_ca
                 else "on" if self.settings.tls_cert else "off",
                 metrics=self.settings.metrics_listen or None,
                 store=redact(self.settings.database_url), keys=len(self.keys))
        return self.port

    def probe(self) -> tuple[int, int]:
        """The log's head and where the read models stand, both read from the store (for
        the health check: it fails while the store cannot be reached)."""
        self.app.check_connections()  # replaces dead pooled connections before calls meet them
        processed = self.models.processed_position()
        head = self.app.log_position()
        metrics.positions(head, processed)
        return head, processed

    def processed_position(self) -> int:
        """How far the read models have applied the log, as this server knows it."""
        if self.runner is not None:
            return self.runner.position
        assert self.watcher is not None
        return self.watcher.position

    async def _on_schedule(self) -> None:
        """At start, finishes the closes a stopped server left half done; then, every
        LEDGER_SETTLEMENT_INTERVAL seconds (0: never), settles due orders platform by platform
        and finishes such closes again. Harmless on several servers at once: an order is
        settled once and a day closed once, whoever gets there."""
        chores = [self.finish_closings]
        while True:
            for chore in chores:
                try:
                    await chore()
                except Exception:
                    log.exception("scheduled work failed; will retry", work=chore.__name__)
            if self.settings.settlement_interval <= 0:
                return
            await asyncio.sleep(self.settings.settlement_interval)
            chores = [self.settle_due, self.finish_closings]

    async def finish_closings(self) -> int:
        return len(await self.closing.finish(self.chores, self.keys.platforms()))

    async def settle_due(self) -> int:
        return await self.settlement.settle_due(self.chores)

    async def stop(self, grace: float = 2.0) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
        if self._watching is not None:
            self._watching.cancel()
            await self.health_watch.close()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        self.writer.stop()
        if self.runner is not None:
            self.runner.stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self.metrics is not None:
            self.metrics.stop()
        self.models.close()
        self.app.close()
        log.info("ledger stopped")

    async def wait(self) -> None:
        await self.server.wait_for_termination()


class ServerThread:
    """Runs a LedgerServer on its own event loop in a background thread.

    For the demo and the tests, which drive the server with ordinary blocking clients.
    """

    def __init__(self, server: LedgerServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc", daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=30)
        return self

    @property
    def target(self) -> str:
        host = self.server.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.server.port}"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0.5), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
