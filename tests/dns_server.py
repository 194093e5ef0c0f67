"""A DNS server of our own on loopback (dnslib), serving a zone the test writes.

``newsletter doctor`` asks it through ``NEWSLETTER_DNS_RESOLVER``; nothing goes to the
internet's DNS.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dnslib import MX, PTR, QTYPE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers from ``records``: (name, type) → list of values; NXDOMAIN for unknown names."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.asked: list[tuple[str, str]] = []

    def add(self, name: str, kind: str, *values: Any) -> None:
        self.records.setdefault((name.rstrip(".").lower(), kind), []).extend(values)

    def clear(self, name: str, kind: str) -> None:
        self.records.pop((name.rstrip(".").lower(), kind), None)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        kind = QTYPE[request.q.qtype]
        self.asked.append((name, kind))
        for value in self.records.get((name, kind), []):
            rdata = _rdata(kind, value)
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=60))
        if not reply.rr and not any(key[0] == name for key in self.records):
            reply.header.rcode = 3  # NXDOMAIN
        return reply


def _rdata(kind: str, value: Any) -> Any:
    if kind == "TXT":
        strings = value if isinstance(value, list) else [value]
        return TXT([s.encode() for s in strings])
    if kind == "MX":
        return MX(value[1], value[0])
    if kind == "PTR":
        return PTR(value)
    if kind == "A":
        return A(value)
    raise ValueError(kind)


@contextmanager
def dns_server() -> Iterator[tuple[ZoneResolver, str]]:
    """A running server (UDP and TCP on one loopback port); yield its zone and address."""
    zone = ZoneResolver()
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    udp = DNSServer(zone, address="127.0.0.1", port=0, logger=quiet)
    port = udp.server.server_address[1]
    tcp = DNSServer(zone, address="127.0.0.1", port=port, tcp=True, logger=quiet)
    udp.start_thread()
    tcp.start_thread()
    try:
        yield zone, f"127.0.0.1:{port}"
    finally:
        udp.stop()
        tcp.stop()
        udp.server.server_close()
        tcp.server.server_close()
