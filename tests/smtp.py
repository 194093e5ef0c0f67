"""A real SMTP server on loopback for tests: captures every accepted message."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.helpers import free_port


@dataclass
class CapturedMessage:
    mail_from: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class CapturingHandler:
    """Accepts and keeps every message; refuses the recipients in ``refuse``."""

    messages: list[CapturedMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: address → SMTP reply to give at RCPT instead of accepting (fault injection)
    refuse: dict[str, str] = field(default_factory=dict)
    #: advertise PIPELINING (RFC 2920) as real relays do; the client then sends MAIL, RCPT
    #: and DATA in one write, which aiosmtpd reads in order like any other input
    pipelining: bool = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.lock:
            self.messages.append(
                CapturedMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            )
        return "250 2.0.0 Ok: queued"


class CapturingSMTPServer:
    """Start, inspect and reset a capturing SMTP server."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = CapturingHandler()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def reset(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()
        self.handler.refuse.clear()
        self.handler.pipelining = True

    @property
    def messages(self) -> list[CapturedMessage]:
        with self.handler.lock:
            return list(self.handler.messages)

    def to(self, address: str) -> list[CapturedMessage]:
        """Messages whose envelope recipients include ``address``."""
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.recipients)]

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - convenience only
        raise AttributeError(name)
