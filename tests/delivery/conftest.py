"""Fixtures for the send: an audience on two lists, an issue to them, SMTP servers with faults."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from newsletter.audience.models import (
    MailingList,
    Subscriber,
    SubscriberStatus,
    SubscriptionStatus,
)
from newsletter.content.models import Issue
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.smtp import CapturedMessage, _Handler


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


@pytest.fixture
def audience(app: Any) -> Audience:
    return make_audience()


@pytest.fixture
def issue_id(audience: Audience) -> int:
    """A draft issue to the news and events lists (an id: objects expire when workers run)."""
    return int(make_sendable_issue(audience.news, audience.events).id)


@dataclass
class FaultyHandler(_Handler):
    """The capturing handler, plus faults: ``flaky`` addresses get a 4xx on their first
    ``failures`` tries; once ``hold_after`` messages are in, every MAIL waits (and ``held`` is
    set) until ``release`` — to kill a worker at a known point."""

    flaky: dict[str, int] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)
    hold_after: int | None = None
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        if self.hold_after is not None and len(self.messages) >= self.hold_after:
            self.held.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        key = address.lower()
        with self.lock:
            self.tries[key] = self.tries.get(key, 0) + 1
            failing = self.tries[key] <= self.flaky.get(key, 0)
        if failing:
            return "451 4.3.2 please try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class FaultySMTPServer:
    """An SMTP server on loopback with a ``FaultyHandler``."""

    def __init__(self) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.handler = FaultyHandler()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[CapturedMessage]:
        with self.handler.lock:
            return list(self.handler.messages)

    def to(self, address: str) -> list[CapturedMessage]:
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.recipients)]


@pytest.fixture
def faulty_smtp() -> Iterator[FaultySMTPServer]:
    server = FaultySMTPServer()
    server._controller.start()
    yield server
    server.handler.released.set()
    server._controller.stop()
