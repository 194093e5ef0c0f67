"""Helpers for the send's tests: an audience on two lists, an issue to them, SMTP servers
with faults, Redis connections of a test's own (their fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from flask import Flask
from sqlalchemy import select

from newsletter.audience.models import (
    MailingList,
    Subscriber,
    SubscriberStatus,
    SubscriptionStatus,
)
from newsletter.broker import is_embedded
from newsletter.content.models import Issue
from newsletter.delivery.models import Delivery
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.helpers import free_port
from tests.smtp import CapturedMessage, CapturingHandler


def deliveries_by_email(issue_id: int) -> dict[str, Delivery]:
    """The issue's delivery rows by recipient address, as the workers committed them."""
    db.session.commit()
    db.session.expire_all()
    rows = db.session.execute(
        select(Subscriber.email, Delivery)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.issue_id == issue_id)
    ).all()
    return {email: delivery for email, delivery in rows}


@dataclass
class Audience:
    """Two target lists and who is on them, by what they should get."""

    news: MailingList
    events: MailingList
    other: MailingList
    recipients: list[Subscriber]
    not_recipients: list[Subscriber]
    #: the recipients' addresses, sorted (plain strings: they outlive the session)
    emails: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)


def make_audience() -> Audience:
    """Recipients: confirmed on news, on events, or on both (once!). Not recipients:
    unconfirmed, unsubscribed, blocklisted, or only on a list the issue is not for."""
    news, events, other = make_list("news"), make_list("events"), make_list("other")
    recipients = [
        make_subscriber("ada@example.com", lists=(news,), name="Ada"),
        make_subscriber("bo@example.com", lists=(events,), name="Bo"),
        make_subscriber("cy@example.com", lists=(news, events), name="Cy"),
        make_subscriber("di@example.com", lists=(news,), name=""),
    ]
    not_recipients = [
        make_subscriber("unconfirmed@example.com", lists=(news,),
                        status=SubscriptionStatus.UNCONFIRMED),
        make_subscriber("gone@example.com", lists=(news, events),
                        status=SubscriptionStatus.UNSUBSCRIBED),
        make_subscriber("bounced@example.com", lists=(news,)),
        make_subscriber("elsewhere@example.com", lists=(other,)),
    ]
    not_recipients[2].status = SubscriberStatus.BLOCKLISTED  # a hard bounce, long ago
    db.session.commit()
    return Audience(
        news, events, other, recipients, not_recipients,
        emails=sorted(s.email for s in recipients), others=sorted(s.email for s in not_recipients),
    )


def make_sendable_issue(*lists: MailingList, subject: str = "This week") -> Issue:
    """A draft issue with one statement, to ``lists``."""
    return make_issue((make_statement(title="On the election"),), tuple(lists), subject=subject)


@dataclass
class FaultyHandler(CapturingHandler):
    """The capturing handler, plus faults and a record of what the relay saw.

    Faults: ``flaky`` addresses get a 4xx at RCPT on their first ``failures`` tries, and
    ``flaky_data`` ones a 4xx after their message was sent (end of DATA); once ``hold_after``
    messages are in, every MAIL waits (and ``held`` is set) until ``release`` — to stop a
    worker at a known point with nothing unrecorded; once ``stall_after`` messages are in,
    each further message is kept (it counts as received) but its reply to DATA waits for
    ``release``: the sender cannot know it was taken, the one window in which a crash
    causes a duplicate; with ``hold_until_senders`` set, every MAIL waits until that many of
    the ``watch_pids`` have opened a connection (so each of them surely sends a share).

    Record: ``tried_at`` (monotonic times of each RCPT per address), the open connections,
    and, for the processes in ``watch_pids``, which process sent each message.
    """

    flaky: dict[str, int] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)
    flaky_data: dict[str, int] = field(default_factory=dict)
    data_tries: dict[str, int] = field(default_factory=dict)
    flaky_reply: str = "451 4.3.2 please try again later"
    flaky_data_reply: str = "452 4.3.1 insufficient system storage"
    hold_after: int | None = None
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    stall_after: int | None = None
    #: connections whose message was kept and whose DATA reply is waiting now
    stalled: int = 0
    #: recipients of the messages kept while stalled (their sender never got the answer)
    stalled_recipients: list[str] = field(default_factory=list)
    tried_at: dict[str, list[float]] = field(default_factory=dict)
    #: peer (host, port) of each open connection
    open_connections: set[tuple[str, int]] = field(default_factory=set)
    #: connections opened so far (the controller's own start-up probe included)
    opened: int = 0
    server_port: int = 0
    transports: dict[tuple[str, int], asyncio.BaseTransport] = field(default_factory=dict)
    watch_pids: list[int] = field(default_factory=list)
    pid_of_peer: dict[tuple[str, int], int | None] = field(default_factory=dict)
    #: the pid (from ``watch_pids``) that sent each message in ``messages``, in order
    sender_pids: list[int | None] = field(default_factory=list)
    hold_until_senders: int | None = None

    def connection_made(self, peer: tuple[str, int], transport: asyncio.BaseTransport) -> None:
        # The client waits for our greeting: its socket surely exists, so look it up now.
        owner = None
        if self.watch_pids:
            owner = socket_owner(peer[1], self.server_port, self.watch_pids)
        with self.lock:
            self.opened += 1
            self.open_connections.add(peer)
            self.transports[peer] = transport
            self.pid_of_peer[peer] = owner

    def _senders_seen(self) -> int:
        with self.lock:
            return len({pid for pid in self.pid_of_peer.values() if pid is not None})

    def connection_lost(self, peer: tuple[str, int]) -> None:
        with self.lock:
            self.open_connections.discard(peer)
            self.transports.pop(peer, None)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        if self.hold_after is not None and len(self.messages) >= self.hold_after:
            self.held.set()
            while not self.released.is_set():
                await asyncio.sleep(0.02)
        while self.hold_until_senders and self._senders_seen() < self.hold_until_senders:
            await asyncio.sleep(0.02)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        key = address.lower()
        with self.lock:
            self.tries[key] = self.tries.get(key, 0) + 1
            self.tried_at.setdefault(key, []).append(time.monotonic())
            failing = self.tries[key] <= self.flaky.get(key, 0)
        if failing:
            return self.flaky_reply
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        recipients = [r.lower() for r in envelope.rcpt_tos]
        with self.lock:
            failing = False
            for key in recipients:
                self.data_tries[key] = self.data_tries.get(key, 0) + 1
                failing = failing or self.data_tries[key] <= self.flaky_data.get(key, 0)
            if failing:
                return self.flaky_data_reply
            stall = self.stall_after is not None and len(self.messages) >= self.stall_after
            self.messages.append(
                CapturedMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            )
            self.sender_pids.append(self.pid_of_peer.get(session.peer))
            if stall:
                self.stalled += 1
                self.stalled_recipients.extend(recipients)
        if stall:
            try:
                while not self.released.is_set():
                    await asyncio.sleep(0.02)
            finally:
                with self.lock:
                    self.stalled -= 1
        return "250 2.0.0 Ok: queued"


def socket_owner(local_port: int, remote_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the loopback TCP socket ``127.0.0.1:local_port`` connected to
    ``remote_port`` (Linux: the socket's inode in /proc/net/tcp, then the processes' fds)."""
    wanted_local, wanted_remote = f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted_local and fields[2] == wanted_remote:
            inode = fields[9]
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            with os.scandir(f"/proc/{pid}/fd") as fds:
                if any(_readlink(fd.path) == target for fd in fds):
                    return pid
        except OSError:  # the process is gone
            continue
    return None


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


class _TrackingSMTP(SMTP):
    """aiosmtpd's SMTP session, telling the handler when a connection opens and closes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._peer = transport.get_extra_info("peername")
        self.event_handler.connection_made(self._peer, transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.event_handler.connection_lost(self._peer)
        super().connection_lost(error)


class _TrackingController(Controller):
    def factory(self) -> SMTP:
        return _TrackingSMTP(self.handler, **self.SMTP_kwargs)


class FaultySMTPServer:
    """An SMTP server on loopback with a ``FaultyHandler``; it can go down and come back on
    the same port (``go_down``, ``drop_connections``, ``come_back``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = FaultyHandler(server_port=self.port)
        self._controller: Controller | None = None
        self._dropper: _Dropper | None = None

    def start(self) -> None:
        self._controller = _TrackingController(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        self.handler.released.set()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._dropper is not None:
            self._dropper.stop()
            self._dropper = None

    def go_down(self) -> None:
        """Stop listening and cut every connection: connecting is refused until ``come_back``."""
        controller, self._controller = self._controller, None
        if controller is None:
            return

        def cut() -> None:
            with self.handler.lock:
                transports = list(self.handler.transports.values())
            for transport in transports:
                transport.abort()  # type: ignore[attr-defined]

        controller.loop.call_soon_threadsafe(cut)
        controller.stop()

    def drop_connections(self) -> _Dropper:
        """While down: accept connections on the port and close them at once, counting them
        (a relay that is there but says nothing)."""
        assert self._controller is None, "go_down first"
        self._dropper = _Dropper(self.port)
        return self._dropper

    def stop_dropping(self) -> None:
        """Close the dropping listener: connecting is refused again."""
        if self._dropper is not None:
            self._dropper.stop()
            self._dropper = None

    def come_back(self) -> None:
        """Serve again on the same port with the same handler (what it saw is kept)."""
        self.stop_dropping()
        self.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[CapturedMessage]:
        with self.handler.lock:
            return list(self.handler.messages)

    def to(self, address: str) -> list[CapturedMessage]:
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.recipients)]


class _Dropper(threading.Thread):
    """Accepts TCP connections on a port and closes each one at once."""

    def __init__(self, port: int) -> None:
        super().__init__(name="smtp-dropper", daemon=True)
        self.accepted = 0
        self._sock = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._sock.settimeout(0.1)
        self._stop_event = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self._sock.close()


class RedisConnections:
    """New Redis connections, one per simulated worker, on keys under a prefix of this
    test's own; ``url`` is None on the embedded pass (no Redis)."""

    def __init__(self, backend: dict[str, str | None], name: str) -> None:
        broker = backend["broker"] or ""
        self.url = broker if broker.startswith("redis") else None
        self.prefix = f"nl-test-{name}:{uuid.uuid4().hex}"
        self._clients: list[Any] = []

    def connect(self) -> Any:
        import redis

        assert self.url is not None
        client = redis.Redis.from_url(self.url)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Delete this test's keys and close every connection."""
        for client in self._clients:
            keys = list(client.scan_iter(f"{self.prefix}:*"))
            if keys:
                client.delete(*keys)
            client.close()


def subscriber_status(email: str) -> SubscriberStatus:
    """The subscriber's status as committed (workers may have changed it)."""
    db.session.commit()
    return db.session.scalars(select(Subscriber.status).where(Subscriber.email == email)).one()


def start_workers_if_external(app: Flask, run_jobs: Callable[[], None]) -> None:
    """On Redis, ``--wait`` waits for workers elsewhere: start threads for it in the test."""
    if not is_embedded(app):
        run_jobs()
