"""The ``ledger`` command: serve, demo, keys, health."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from ledger.api.auth import ADMIN, ROLES, STOREFRONT, KeyConfigError, KeyRing, add_key_to_file
from ledger.config import ConfigError, Settings
from ledger.logs import configure_logging


def serve(settings: Settings) -> int:
    """Serves until SIGINT/SIGTERM, then drains in-flight calls and queued writes."""
    from ledger.api.server import LedgerServer

    keys = KeyRing.load(file=settings.api_keys_file, inline=settings.api_keys_json)

    async def run() -> None:
        server = LedgerServer(settings, keys)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(run())
    return 0


def demo(settings: Settings, keep_serving: bool) -> int:
    """Starts the server on SQLite, plays DOMAIN.md's worked example and some random traffic
    through it as a storefront would, and prints what the ledger recorded."""
    from clients.sdk import LedgerClient
    from clients.simulator import random_traffic, worked_example
    from ledger.api.auth import ApiKey, hash_key, new_key
    from ledger.api.server import LedgerServer, ServerThread

    platform = f"demo-{int(time.time())}"
    shop_key, admin_key = new_key(), new_key()
    keys = KeyRing([ApiKey("demo-shop", STOREFRONT, platform, hash_key(shop_key)),
                    ApiKey("demo-admin", ADMIN, platform, hash_key(admin_key))])
    settings = Settings(**{**settings.__dict__, "listen": "127.0.0.1:0"}) if not keep_serving \
        else settings
    with ServerThread(LedgerServer(settings, keys)) as running:
        print(f"ledger serving on {running.target}, events in {settings.database_url}")
        with LedgerClient(running.target, shop_key) as shop:
            paid, after_first, after_second = worked_example(shop)
            print("\nWorked example (DOMAIN.md), order O1: 3 × 33.33 CNY through Carol")
            print(f"  plan v{paid.plan_version}, upline chain {list(paid.upline_chain)}")
            for p in paid.payment_postings:
                print(f"  paid      {p.account:26} {p.bucket:8} {p.amount:>7} {p.currency}")
            for order in (after_first, after_second):
                refund = order.refunds[-1]
                for p in refund.postings:
                    print(f"  {refund.refund_id:9} {p.account:26} {p.bucket:8} {p.amount:>7}")
            left = {s.account: s.amount - s.reversed for s in after_second.shares}
            print(f"  left after both refunds: {left}")
            stats = random_traffic(shop, orders=40, prefix="sim-")
            print(f"\nSimulated storefront: {stats.resellers} resellers, {stats.orders} orders, "
                  f"{stats.paid} paid, {stats.refunds} refunds, GMV {stats.gmv / 100:.2f} CNY, "
                  f"refunded {stats.refunded / 100:.2f} CNY; postings sum to "
                  f"{sum(p.amount for p in stats.postings)}")
        if keep_serving:
            print(f"\nStorefront key: {shop_key}\nAdmin key:      {admin_key}\n"
                  "Serving until Ctrl-C.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


def health(address: str, timeout: float) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError as error:
            print(f"unhealthy: {error.code().name}", file=sys.stderr)
            return 1
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the gRPC server (configured by LEDGER_* variables)")
    d = sub.add_parser("demo", help="run the server and play a storefront through it")
    d.add_argument("--keep-serving", action="store_true",
                   help="keep serving on LEDGER_LISTEN afterwards, printing the demo keys")
    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    add = ksub.add_parser("add", help="create a key; its hash goes in the file, the key is "
                                      "printed once")
    add.add_argument("--name", required=True, help="storefront id or operator name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--platform", required=True, help="the tenant the key acts for")
    add.add_argument("--file", default="ledger-keys.json", type=Path)
    h = sub.add_parser("health", help="exit 0 when a server answers SERVING")
    h.add_argument("--address", default="127.0.0.1:50051")
    h.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        if args.command == "serve":
            return serve(settings)
        if args.command == "demo":
            if settings.database_url == Settings().database_url:
                settings = Settings(**{**settings.__dict__,
                                       "database_url": "sqlite:///ledger-data/demo.sqlite3"})
            return demo(settings, args.keep_serving)
        if args.command == "keys":
            key = add_key_to_file(args.file, name=args.name, role=args.role,
                                  platform=args.platform)
            print(json.dumps({"name": args.name, "role": args.role, "platform": args.platform,
                              "key": key, "file": str(args.file)}))
            return 0
        return health(args.address, args.timeout)
    except (ConfigError, KeyConfigError) as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2



if __name__ == "__main__":
    sys.exit(main())
