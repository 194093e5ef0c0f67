"""Transactional mail: one templated message to one address, ahead of bulk traffic.

``POST /api/v1/tx`` validates and renders at once (so a bad address, an unknown template or a
template that does not render with the given data is the caller's 4xx, not a failure found
later), stores the finished message and queues ``send_transactional`` on the
"transactional" queue, which every worker process consumes with a thread of its own.

The row is the record: ``queued`` until the relay accepts the message (``sent``) or refuses it
for good or too often (``failed``). A worker claims the row with a lease before sending, so
two runs of the actor (a duplicate queue message, a recovery sweep) never send it twice.

Transactional messages carry Message-ID, Date and ``Auto-Submitted: auto-generated`` but no
``List-Unsubscribe``, ``List-Id`` or ``Precedence: bulk``: they are one-to-one mail the
recipient's own action caused (a receipt, a password reset), not list mail; there is no list
to leave, and an unsubscribe link that cannot stop such mail would mislead.
"""

from __future__ import annotations

import enum
import json
import logging
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from typing import Any

from flask import current_app
from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, and_, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from newsletter import queue
from newsletter.audience.addresses import ascii_address, normalise_email
from newsletter.content import templates
from newsletter.content.models import Template, TemplateKind
from newsletter.delivery.bounces import returnpath
from newsletter.delivery.outbound import deliver
from newsletter.delivery.send.outcomes import retry_delay
from newsletter.errors import (
    InvalidEmail,
    NotFound,
    PermanentDeliveryError,
    RelayUnavailable,
    TemporaryDeliveryError,
    ValidationError,
)
from newsletter.extensions import db
from newsletter.mail.message import build_simple_message, one_line
from newsletter.mail.render import FALLBACK_NAME, render_template, render_text
from newsletter.models import UTCDateTime, enum_column, get_or_raise, utcnow

log = logging.getLogger(__name__)

#: limits checked at the edge (characters for text, bytes for the rest)
MAX_SUBJECT = 300
MAX_NAME = 200
MAX_DATA_BYTES = 64 * 1024  # the template data as JSON
MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # the rendered message (HTML + text + headers)


class TransactionalStatus(enum.Enum):
    QUEUED = "queued"  # waiting for a worker, or for its next attempt after a 4xx
    SENT = "sent"  # final: the relay accepted it
    FAILED = "failed"  # final: a 5xx, or out of attempts


class TransactionalMessage(db.Model):  # type: ignore[name-defined]
    """One transactional message and what became of it."""

    __tablename__ = "transactional_messages"
    __table_args__ = (Index("ix_transactional_messages_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[TransactionalStatus] = mapped_column(
        enum_column(TransactionalStatus), default=TransactionalStatus.QUEUED
    )
    to_address: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str] = mapped_column(String(MAX_NAME), default="")
    subject: Mapped[str] = mapped_column(String(MAX_SUBJECT))
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("templates.id", ondelete="SET NULL")
    )
    # The finished message (CRLF bytes), so every attempt sends the same Message-ID and
    # body. Dropped once the outcome is final: it may hold secrets (a reset link).
    message: Mapped[bytes | None] = mapped_column(LargeBinary)
    message_id: Mapped[str] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    last_reply: Mapped[str | None] = mapped_column(Text)
    # A worker holds the row until this time while it sends; past it, another may claim it.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<TransactionalMessage {self.id} {self.status.value} to={self.to_address}>"


messages = TransactionalMessage.__table__


# --- creating ---------------------------------------------------------------------------


def create(
    *,
    to: str,
    template: str | int,
    subject: str,
    data: dict[str, Any] | None = None,
    name: str = "",
) -> TransactionalMessage:
    """Check, render and store one message, then queue it for the transactional workers.

    :raises ValidationError: a field is not acceptable (``field`` names it).
    :raises NotFound: no such template (``field`` is ``template``).
    :raises TemplateError: the template does not render with ``data``.
    """

    address = _check_address(to)
    name = _check_text(name, "name", MAX_NAME)
    data = _check_data(data)
    found = find_template(template)
    if len(subject) > MAX_SUBJECT:  # before rendering: a short template can render long
        raise ValidationError(f"subject is longer than {MAX_SUBJECT} characters", field="subject")
    context = template_context(address=address, name=name, subject=subject, data=data)
    subject = _check_text(render_subject(subject, context, found.name), "subject", MAX_SUBJECT)
    if not subject:
        raise ValidationError("subject must not be empty", field="subject")
    context["subject"] = subject
    html, text = _render(found, context)
    return queue_message(
        to=address, name=name, subject=subject, text=text, html=html, template_id=found.id
    )


def queue_message(
    *,
    to: str,
    subject: str,
    text: str,
    html: str,
    name: str = "",
    template_id: int | None = None,
    message_id: str | None = None,
    from_address: str | None = None,
    headers: dict[str, str] | None = None,
) -> TransactionalMessage:
    """Store one finished message to one checked address and queue it: the one door for
    every mail that is not an issue (confirmations, invitations, password resets, test
    sends), so each is signed, rate-limited, failed over, recorded and retried like the rest.

    :param to: an address already normalised (``normalise_email``).
    :param message_id: its Message-ID (unique, without brackets) when the caller needs to
        find the row again by it; a new one otherwise.
    :param from_address: another display name for ``FROM_ADDRESS`` (an issue's sender
        name); the address itself should stay that of ``FROM_ADDRESS`` (DKIM, bounces).
    :param headers: more header fields (a test send's marker).
    :raises ValidationError: the message is larger than ``MAX_MESSAGE_BYTES``.
    :raises TransactionalQueueError: the broker could not take it (the row is failed).
    """
    message = build_simple_message(
        to=str(Address(name, *ascii_address(to).rsplit("@", 1))),
        subject=subject,
        text=text,
        html=html,
        from_address=from_address or str(current_app.config["FROM_ADDRESS"]),
        message_id=message_id,
        headers=headers,
    )
    if len(message) > MAX_MESSAGE_BYTES:
        raise ValidationError(
            f"the rendered message is {len(message)} bytes; at most {MAX_MESSAGE_BYTES}",
            field="data",
        )
    row = TransactionalMessage(
        to_address=to,
        to_name=name,
        subject=subject,
        template_id=template_id,
        message=message,
        message_id=_message_id_of(message),
    )
    db.session.add(row)
    db.session.commit()
    _enqueue(row)
    return row


def _check_address(to: str) -> str:
    try:
        return normalise_email(to, check_deliverability=bool(
            current_app.config.get("CHECK_DELIVERABILITY")
        ))
    except InvalidEmail as error:
        raise ValidationError(error.message, field="to") from None


def _check_text(value: str, field: str, limit: int) -> str:
    """One line of at most ``limit`` characters (control characters become spaces)."""

    if "\x00" in value:
        raise ValidationError(f"{field} must not contain NUL characters", field=field)
    value = one_line(value)
    if len(value) > limit:
        raise ValidationError(f"{field} is longer than {limit} characters", field=field)
    return value


def _check_data(data: dict[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValidationError("data must be a JSON object", field="data")
    size = len(json.dumps(data, ensure_ascii=False).encode("utf-8"))
    if size > MAX_DATA_BYTES:
        raise ValidationError(
            f"data is {size} bytes as JSON; at most {MAX_DATA_BYTES}", field="data"
        )
    return data


def find_template(key: str | int) -> Template:
    """The transactional template with this name (or id); the built-in "transactional"
    template exists from the first call on.

    :raises NotFound: no such template (``field`` is ``template``).
    :raises ValidationError: it is a template for issues (``field`` is ``template``).
    """
    found = templates.find_template(key)
    if found is None:
        error = NotFound("template", key)
        error.field = "template"
        raise error
    if found.kind is not TemplateKind.TRANSACTIONAL:
        raise ValidationError(
            f"template {found.name!r} is for issues, not transactional mail; use a "
            f"transactional template such as {templates.TRANSACTIONAL_NAME!r}",
            field="template",
        )
    return found


def template_context(
    *, address: str, name: str, subject: str, data: dict[str, Any]
) -> dict[str, Any]:
    """What a template sees for a transactional message: the caller's ``data`` and the
    recipient. Issue-only names (``statements``, ``unsubscribe_url`` …) are absent, so a
    template that needs them fails at once with the name it missed."""

    base_url = str(current_app.config.get("BASE_URL") or "http://localhost").rstrip("/")
    return {
        "data": data,
        "subject": subject,
        "to": {"email": address, "name": name},
        "subscriber": {"email": address, "name": name or FALLBACK_NAME},
        "base_url": base_url,
        "org_name": str(current_app.config.get("SITE_NAME") or "Newsletter"),
    }


def render_subject(subject: str, context: dict[str, Any], template_name: str) -> str:
    """The subject through the template sandbox (``Order {{ data.order }}``), as plain text."""

    return render_text(subject, context, f"{template_name} (subject)")


def _render(template: Template, context: dict[str, Any]) -> tuple[str, str]:

    return render_template(template, context)


def _message_id_of(message: bytes) -> str:
    headers = BytesHeaderParser().parsebytes(message)
    return str(headers["Message-ID"]).strip().strip("<>")


def _enqueue(row: TransactionalMessage, delay_ms: int = 0) -> None:
    """Queue the message; if the broker cannot take it, the row fails (the caller hears so
    and may try again) rather than wait unseen for a sweep."""

    try:
        if delay_ms:
            queue.enqueue("send_transactional", row.id, delay_ms=delay_ms)
        else:
            queue.enqueue("send_transactional", row.id)
    except Exception as error:  # noqa: BLE001 - any broker failure: the same answer
        log.error("transactional message %s could not be queued: %s", row.id, error)
        _finish(row.id, status=TransactionalStatus.FAILED, last_reply=f"not queued: {error}")
        raise TransactionalQueueError(row.id, str(error)) from None


class TransactionalQueueError(Exception):
    """The broker refused the job; the message is recorded as failed."""

    def __init__(self, tx_id: int, reason: str) -> None:
        super().__init__(f"transactional message {tx_id} could not be queued: {reason}")
        self.tx_id = tx_id


def get(tx_id: int) -> TransactionalMessage:
    """The message with this id.

    :raises NotFound: no such message.
    """

    return get_or_raise(TransactionalMessage, tx_id, "transactional message")


# --- sending ----------------------------------------------------------------------------


def send(tx_id: int) -> None:
    """Send one queued message once: claim it, hand it to the relay, record the outcome.

    A message that is final, held by another worker or not yet due is left alone, so a
    duplicate job sends nothing. A 4xx (or a lost connection) records the reply and queues
    the next attempt after a growing wait, up to ``MAX_ATTEMPTS``; a 5xx fails it.
    """

    config = current_app.config
    lease = timedelta(seconds=int(config["LEASE_SECONDS"]))
    row = _claim(tx_id, lease)
    if row is None:
        return
    message, recipient, attempts = row.message or b"", ascii_address(row.to_address), row.attempts
    db.session.commit()  # no transaction held open across the SMTP conversation
    return_path = returnpath.from_config(config)
    sender = (
        return_path.for_transactional(tx_id)
        if return_path is not None
        else ascii_address(parseaddr(str(config["FROM_ADDRESS"]))[1])
    )
    try:
        reply = deliver(sender, recipient, message)
    except RelayUnavailable as error:
        # No relay can take mail now: not this message's fault, so no attempt used up.
        _schedule_retry(tx_id, attempts, error, timedelta(seconds=max(error.retry_after, 0.0)))
        return
    except TemporaryDeliveryError as error:
        _record_temporary(tx_id, attempts + 1, error)
        return
    except PermanentDeliveryError as error:
        _finish(tx_id, status=TransactionalStatus.FAILED, attempts=attempts + 1,
                last_reply=error.message, message=None)
        log.info("transactional %s: %s (failed)", tx_id, error.message)
        return
    except BaseException:
        # Not an SMTP answer (a bug, the database gone): let another run try again.
        db.session.rollback()
        _release(tx_id)
        raise
    # Recorded the moment the relay accepts it: this is what prevents a second copy.
    _finish(tx_id, status=TransactionalStatus.SENT, attempts=attempts + 1,
            last_reply=str(reply), sent_at=utcnow(), message=None)


def _claim(tx_id: int, lease: timedelta) -> TransactionalMessage | None:
    """Take the row for ``lease`` if it is queued, due and not held; None otherwise."""
    now = utcnow()
    claimed = db.session.execute(
        update(messages)
        .where(
            messages.c.id == tx_id,
            messages.c.status == TransactionalStatus.QUEUED,
            or_(messages.c.lease_until.is_(None), messages.c.lease_until < now),
            or_(messages.c.next_attempt_at.is_(None), messages.c.next_attempt_at <= now),
        )
        .values(lease_until=now + lease)
    )
    db.session.commit()
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    return db.session.get(TransactionalMessage, tx_id)


def _record_temporary(tx_id: int, attempts: int, error: TemporaryDeliveryError) -> None:

    config = current_app.config
    if attempts >= int(config["MAX_ATTEMPTS"]):
        _finish(tx_id, status=TransactionalStatus.FAILED, attempts=attempts,
                last_reply=error.message, message=None)
        log.info("transactional %s: %s (gave up)", tx_id, error.message)
        return
    delay = retry_delay(attempts, timedelta(seconds=float(config["RETRY_BACKOFF_SECONDS"])))
    _schedule_retry(tx_id, attempts, error, delay)


def _schedule_retry(
    tx_id: int, attempts: int, error: TemporaryDeliveryError, delay: timedelta
) -> None:
    """Record the reply and queue the next attempt ``delay`` from now."""
    _finish(tx_id, attempts=attempts, last_reply=error.message,
            next_attempt_at=utcnow() + delay)
    log.info("transactional %s: %s (will retry in %s)", tx_id, error.message, delay)
    row = db.session.get(TransactionalMessage, tx_id)
    assert row is not None
    _enqueue(row, delay_ms=max(1, int(delay.total_seconds() * 1000)))


def _finish(tx_id: int, **values: Any) -> None:
    """Write an outcome and give up the lease, only while the row is still queued."""
    db.session.execute(
        update(messages)
        .where(messages.c.id == tx_id, messages.c.status == TransactionalStatus.QUEUED)
        .values(lease_until=None, updated_at=utcnow(), **values)
    )
    db.session.commit()


def _release(tx_id: int) -> None:
    _finish(tx_id)


def recover_overdue(older_than: timedelta) -> int:
    """Queue again the messages that should have gone ``older_than`` ago and that no worker
    holds: their job was lost with the broker. Returns how many (the workers' sweeper)."""
    now = utcnow()
    due_since = now - older_than
    overdue = db.session.scalars(
        select(messages.c.id).where(
            messages.c.status == TransactionalStatus.QUEUED,
            or_(messages.c.lease_until.is_(None), messages.c.lease_until <= now),
            or_(
                messages.c.next_attempt_at <= due_since,
                and_(messages.c.next_attempt_at.is_(None), messages.c.updated_at <= due_since),
            ),
        )
    ).all()
    db.session.commit()

    for tx_id in overdue:
        queue.enqueue("send_transactional", int(tx_id))
    if overdue:
        log.warning("%s transactional messages overdue; queued again", len(overdue))
    return len(overdue)


def recover_queued() -> int:
    """Queue every message still ``queued`` again (after the broker lost its jobs); a
    duplicate job is harmless. Returns how many were queued."""
    now = utcnow()
    rows = db.session.execute(
        select(messages.c.id, messages.c.next_attempt_at).where(
            messages.c.status == TransactionalStatus.QUEUED
        )
    ).all()
    db.session.commit()

    for tx_id, next_attempt_at in rows:
        wait = (next_attempt_at - now).total_seconds() if next_attempt_at else 0.0
        if wait > 0:
            queue.enqueue("send_transactional", tx_id, delay_ms=int(wait * 1000))
        else:
            queue.enqueue("send_transactional", tx_id)
    if rows:
        log.info("recovery: %s transactional messages queued", len(rows))
    return len(rows)
