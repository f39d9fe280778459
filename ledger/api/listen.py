"""The address a server listens on: refused at once when another process already holds it.

grpc sets SO_REUSEPORT on its listening sockets by default, so a second ``ledger serve`` on
a port already served bound beside the first without a word, and the kernel split the
connections between them (two servers over two stores answered one address). A server now
listens without SO_REUSEPORT, so nothing can bind beside it, unless it is one of several
worker processes (LEDGER_WORKERS): those share their port on purpose. Their first process
checks the port is free, with a plain socket that would fail beside any listener, before it
starts them; the workers it starts then bind it together, and the first process last.
"""

from __future__ import annotations

import errno
import socket

from ledger.config import ConfigError


def server_options(share_port: bool) -> list[tuple[str, int]]:
    """grpc options: SO_REUSEPORT only for the processes of one server that share a port."""
    return [("grpc.so_reuseport", int(share_port))]


def host_and_port(listen: str) -> tuple[str, int] | None:
    """(host, port) of a host:port address; None for grpc's unix: addresses."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return None
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def check_free(listen: str) -> None:
    """Raises ConfigError when a socket is listening on ``listen`` (LEDGER_LISTEN) already,
    or the address cannot be listened on at all. A port of 0 (any free one) always is."""
    address = host_and_port(listen)
    if address is None or address[1] == 0:
        return
    host, port = address
    try:
        candidates = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                        flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"LEDGER_LISTEN={listen}: cannot resolve {host!r} "
                          f"({error.strerror})") from None
    failures = []
    for family, kind, proto, _, sockaddr in candidates:
        try:
            with socket.socket(family, kind, proto) as probe:
                # A closed server's connections in TIME_WAIT do not hold the port; a
                # listener does.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:  # as grpc binds [::]: IPv4 too
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                probe.bind(sockaddr)
        except OSError as error:  # also a family this host does not have (IPv6 off)
            if error.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"LEDGER_LISTEN={listen}: the port is already in use by another "
                    f"process (another ledger serve, or another program)") from None
            failures.append(error)
    if failures and len(failures) == len(candidates):
        raise ConfigError(f"LEDGER_LISTEN={listen}: cannot listen there "
                          f"({failures[0].strerror})")
