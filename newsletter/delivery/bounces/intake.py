"""Intakes of whole messages: files and Maildir folders (``newsletter bounces import``) and
an LMTP/SMTP listener an MTA hands bounce mail to (``newsletter bounces serve``).

Both end in :func:`policy.take_message`; nothing here decides what a bounce means.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask

from newsletter.delivery.bounces import policy
from newsletter.delivery.bounces.models import BounceSource
from newsletter.errors import ValidationError

log = logging.getLogger(__name__)


# --- files and Maildir folders ------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One message found under a path: where it is, and its bytes (capped: a longer one is
    cut, and the policy keeps what it cannot read)."""

    label: str
    raw: bytes


def messages_under(path: Path, max_bytes: int) -> Iterator[Message]:
    """The messages of ``path``: a message file (``.eml`` or any other), a Maildir folder
    (``cur`` and ``new``), or a folder of ``.eml`` files (sorted by name).

    :raises ValidationError: the path is none of these.
    """
    if path.is_file():
        yield _read(path, str(path), max_bytes)
    elif _is_maildir(path):
        box = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(box.keys()):
            # The bytes, not mailbox's parsed message: the classifier parses leniently.
            with box.get_file(key) as handle:
                raw = handle.read(max_bytes + 1)
            yield Message(f"{path}/{key}", raw[:max_bytes])
    elif path.is_dir():
        for child in sorted(path.glob("*.eml")):
            yield _read(child, str(child), max_bytes)
    else:
        raise ValidationError(f"{path}: no such file or folder", field="path")


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _read(path: Path, label: str, max_bytes: int) -> Message:
    with path.open("rb") as handle:
        raw = handle.read(max_bytes + 1)
    return Message(label, raw[:max_bytes])


def outcome_line(label: str, outcome: policy.Outcome) -> str:
    """One line of ``bounces import``: ends exactly ``kind=K recipient=ADDRESS`` (``-``
    when none). A message kept for an editor says so before that ending."""
    kept = f" kept for review (unread #{outcome.unread_id})" if outcome.kept else ""
    return f"{label}{kept} kind={outcome.kind} recipient={outcome.recipient or '-'}"


# --- LMTP / SMTP ----------------------------------------------------------------------------


class BounceHandler:
    """aiosmtpd handler: takes messages for the bounce address, each through the policy.

    With ``BOUNCE_ADDRESS`` set only it and its ``LOCAL+TOKEN`` forms are accepted as
    recipients (anything else is refused at RCPT); unset, every recipient is.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        address = parseaddr(str(app.config.get("BOUNCE_ADDRESS") or ""))[1].lower()
        local, _, domain = address.rpartition("@")
        self._local, self._domain = local, domain

    def accepts(self, address: str) -> bool:
        """Whether ``address`` is the bounce address or one of its return paths."""
        if not self._domain:
            return True
        local, _, domain = address.strip("<>").lower().rpartition("@")
        return domain == self._domain and local.split("+", 1)[0] == self._local

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:  # fmt: skip
        if not self.accepts(address):
            return "550 5.1.1 not a bounce address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        replies = []
        for recipient in envelope.rcpt_tos:
            try:
                # The database work off the event loop: other sessions go on meanwhile.
                await loop.run_in_executor(None, self._take, data, recipient)
                replies.append("250 2.0.0 OK")
            except Exception:  # noqa: BLE001 - the MTA keeps it and tries again later
                log.exception("bounce not taken")
                replies.append("451 4.3.0 not taken, try again later")
        # LMTP answers once per recipient (RFC 2033 §4.2); SMTP once.
        if isinstance(server, LMTP):
            return "\r\n".join(replies)
        return next((reply for reply in replies if not reply.startswith("250")), replies[0])

    def _take(self, data: bytes, recipient: str) -> policy.Outcome:
        with self.app.app_context():
            outcome = policy.take_message(data, BounceSource.LMTP, envelope_recipient=recipient)
            log.info("bounce taken: kind=%s%s", outcome.kind, " (kept)" if outcome.kept else "")
            return outcome


async def serve(app: Flask, host: str, port: int, *, protocol: str = "lmtp",
                ready: Any = None) -> None:  # fmt: skip
    """Listen on ``host:port`` until cancelled.

    :param protocol: ``lmtp`` (RFC 2033, what an MTA's local delivery speaks) or ``smtp``.
    :param ready: called with the bound port once listening (tests, the CLI's message).
    """
    handler = BounceHandler(app)
    limit = int(app.config["BOUNCE_MAX_BYTES"])
    server_class = LMTP if protocol == "lmtp" else SMTP
    # The name in the greeting: the address listened on, unless it is every address (and
    # not aiosmtpd's default, a DNS look-up of our own name).
    greeting_name = "localhost" if host in ("", "0.0.0.0", "::") else host
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: server_class(handler, data_size_limit=limit, hostname=greeting_name),
        host=host,
        port=port,
    )
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    async with server:
        await server.serve_forever()
